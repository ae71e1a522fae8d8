"""The `Policy` protocol: one async call from chat (or exact prompt tokens) to generations.

Every backend (scripted, hf, vllm, openai) implements `Policy.generate`. The rollout runner calls it
with one request per episode coroutine, many coroutines at once; a backend that batches (hf, vllm)
groups concurrent calls into one forward pass.

Token-level backends expose their `tokenizer`: the rollout then builds the exact prompt token ids
itself (chat-template deltas, see `palaestra.rollout.chat`) and passes them as
`GenerationRequest.prompt_token_ids`; the backend must condition on exactly those ids and return the
ids it sampled, never re-tokenized text. Text backends (openai, scripted) have `tokenizer = None` and
read `messages`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from palaestra.tools.calls import ToolCall

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "FinishReason",
    "Generation",
    "GenerationRequest",
    "Message",
    "Policy",
    "SamplingParams",
    "message_images",
    "message_text",
]

Message = dict[str, Any]
"""A chat message: {"role": "system" | "user" | "assistant" | "tool", "content": str | list[part]}.

Content is a plain string, or (observations of GUI envs) a list of OpenAI-style content parts:
`{"type": "text", "text": "..."}` and `{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}`.
Backends that take images (openai, vllm with a vision model) pass the parts on as they are; text-only
backends read `message_text(message)`.
"""

FinishReason = Literal["stop", "length", "error"]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample one reply.

    Attributes:
        max_new_tokens: generation budget per reply.
        temperature: 0 means greedy decoding.
        top_p: nucleus sampling mass (1.0 = off).
        top_k: keep the k most likely tokens (0 = off).
        stop: extra stop strings (the end-of-turn token always stops).
        seed: seed for this request; backends that batch derive one seed per batch from their members.
    """

    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={self.max_new_tokens}; it must be >= 1")
        if self.temperature < 0:
            raise ValueError(f"temperature={self.temperature}; it must be >= 0 (0 = greedy)")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p={self.top_p}; it must be in (0, 1]")
        if self.top_k < 0:
            raise ValueError(f"top_k={self.top_k}; it must be >= 0 (0 = off)")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True)
class GenerationRequest:
    """One reply to generate.

    Attributes:
        messages: the whole chat so far (system, user, assistant, ... ending with a user/tool turn).
        sampling: sampling parameters.
        prompt_token_ids: the exact tokens to condition on (token-level backends); None for text-only.
        info: the env's latest `info` (scripted experts read `expert_action` from it).
        request_id: caller's id, for logs and tracing.
        tools: the env's tool declarations (OpenAI function schemas, `palaestra.tools.schema`), for
            backends that pass them to a server; token-level backends find them rendered in
            `prompt_token_ids` already. Assistant messages that called tools carry `tool_calls`
            (OpenAI form) and tool results are `{"role": "tool", "tool_call_id", "name", "content"}`.
    """

    messages: Sequence[Message]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    prompt_token_ids: Sequence[int] | None = None
    info: Mapping[str, Any] = field(default_factory=dict)
    request_id: str = ""
    tools: Sequence[dict[str, Any]] | None = None


@dataclass(frozen=True)
class Generation:
    """One generated reply.

    Attributes:
        text: the reply as text (special tokens such as the end-of-turn token removed).
        token_ids: the sampled token ids, including a final end-of-turn/EOS token when one was sampled
            (empty for text-only backends).
        logprobs: log-probability of each sampled token under the sampling distribution
            (temperature-scaled, before top-p/top-k truncation); None when the backend cannot say.
        finish_reason: "stop" (end-of-turn or a stop string), "length" (budget spent) or "error".
        error: what went wrong when finish_reason == "error".
        prompt_token_ids: the prompt as the engine saw it, where that differs from the request's ids: a
            vision model's engine expands each image placeholder into the image's feature tokens
            (`palaestra.agents.vision`); None otherwise.
        token_versions: per sampled token, the policy version (weight-sync count) whose weights sampled
            it; a reply whose generation spans a weight update mixes versions. None when the backend
            does not track versions (the rollout then records the version current at request time).
        tool_calls: the calls a server returned structured (OpenAI `tool_calls`), apart from `text`;
            empty for backends whose calls are in the text (token-level ones: the env parses them).
    """

    text: str
    token_ids: tuple[int, ...] = ()
    logprobs: tuple[float, ...] | None = None
    finish_reason: FinishReason = "stop"
    error: str | None = None
    prompt_token_ids: tuple[int, ...] | None = None
    token_versions: tuple[int, ...] | None = None
    tool_calls: tuple[ToolCall, ...] = ()

    def __post_init__(self) -> None:
        if self.logprobs is not None and len(self.logprobs) != len(self.token_ids):
            raise ValueError(f"{len(self.logprobs)} logprobs for {len(self.token_ids)} token ids")
        if self.token_versions is not None and len(self.token_versions) != len(self.token_ids):
            raise ValueError(f"{len(self.token_versions)} token versions for {len(self.token_ids)} token ids")


@runtime_checkable
class Policy(Protocol):
    """Anything that turns generation requests into generations.

    Attributes:
        name: a short label for results and logs (e.g. "hf:smollm2-135m").
        tokenizer: the tokenizer of a token-level backend, or None for text-only backends (read-only:
            a plain attribute or a property).
    """

    name: str

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase | None: ...

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Generate one reply per request, in order."""
        ...

    async def close(self) -> None:
        """Release the backend's resources (threads, engines, connections)."""
        ...


def message_text(message: Message, *, image_placeholder: str = "") -> str:
    """The text of a message: its string content, or its text parts joined by newlines.

    Args:
        message: a chat message.
        image_placeholder: text that stands for each image part (empty: images are dropped).
    """
    content = message.get("content", "")
    if isinstance(content, str):
        return content
    pieces = []
    for part in content:
        if part.get("type") == "text":
            pieces.append(str(part.get("text", "")))
        elif part.get("type") == "image_url" and image_placeholder:
            pieces.append(image_placeholder)
    return "\n".join(pieces)


def message_images(message: Message) -> list[str]:
    """The image URLs (usually `data:image/png;base64,...`) of a message's image parts."""
    content = message.get("content", "")
    if isinstance(content, str):
        return []
    return [str(p["image_url"]["url"]) for p in content if p.get("type") == "image_url"]

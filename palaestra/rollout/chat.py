"""Token-exact multi-turn prompts from a chat template.

A multi-turn episode's training sequence must be exactly the tokens the policy was conditioned on and
produced. Re-rendering the whole conversation each turn does not give that: the template may rewrite
earlier turns, and re-tokenizing generated text can split it differently from how it was sampled.
So the sequence is built by appending only:

    prompt(system, user_0)                              rendered once, with the generation prompt
    + sampled ids of reply 0                            verbatim, including its end-of-turn token
    + delta(env message 1)                              template text that closes reply 0 (if the policy
                                                        did not), then message 1, then the generation prompt
    + sampled ids of reply 1 ...

The delta for new messages is found by rendering a fixed two-message conversation with and without
them and taking the difference (the technique used by verl and SkyRL for token-in/token-out rollouts).

Tool envs: the first prompt renders the env's tool declarations with the template's own `tools=`
support (`renders_tools`); a template that ignores tools gets them from `tools_prompt` in the system
message instead (`with_tools`). Tool results are `tool` messages; a template that cannot render the
`tool` role gets them as user messages wrapped in `<tool_response>` tags.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from palaestra.agents.base import Message
from palaestra.agents.vision import template_messages
from palaestra.tools.schema import function_tool, tools_prompt

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["ChatTemplateError", "TokenChat", "env_message", "env_messages", "observation_text"]

_SENTINEL_USER = "palaestra-sentinel-user"
_SENTINEL_REPLY = "palaestra-sentinel-reply"
_SENTINEL_TOOL = "palaestra-sentinel-tool"
_PROBE_TOOL = function_tool(
    "palaestra_sentinel_tool", "A tool declared only to see whether the template renders tools."
)


class ChatTemplateError(ValueError):
    """The tokenizer's chat template cannot be extended turn by turn."""


class TokenChat:
    """Builds token-exact prompts for one tokenizer's chat template.

    Args:
        tokenizer: a tokenizer with a chat template.
        images: the policy takes images (a vision-language model): image parts of messages are rendered
            as the template's image placeholder; otherwise only the text of messages is rendered.

    Raises:
        ChatTemplateError: the tokenizer has no chat template, or its template re-renders earlier turns
            so that a conversation is not a prefix of its continuation.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, *, images: bool = False):
        if not getattr(tokenizer, "chat_template", None):
            raise ChatTemplateError(
                f"tokenizer {type(tokenizer).__name__} has no chat template; token-exact rollouts need one"
            )
        self.tokenizer = tokenizer
        self.images = images
        self.tool_role = True  # probed below; until then `tool` messages render as they are
        self._base: list[Message] = [
            {"role": "user", "content": _SENTINEL_USER},
            {"role": "assistant", "content": _SENTINEL_REPLY},
        ]
        self._base_text = self._render(self._base, add_generation_prompt=False)
        end = self._base_text.rfind(_SENTINEL_REPLY)
        if end < 0:
            raise ChatTemplateError("the chat template drops assistant content; cannot locate replies")
        self.reply_close_text = self._base_text[end + len(_SENTINEL_REPLY) :]
        """Template text after an assistant reply's content, e.g. "<|im_end|>\\n" for ChatML."""
        self.eos_token_ids = self._eos_ids()
        self.tool_role = self._renders_tool_role()
        """The template renders `tool` messages (else they become user messages in `<tool_response>` tags)."""
        self.renders_tools = self._renders_tools()
        """The template renders `tools=` declarations (else `with_tools` puts them in the system message)."""

    def _renders_tool_role(self) -> bool:
        try:
            text = self._render(
                [*self._base, {"role": "tool", "content": _SENTINEL_TOOL}], add_generation_prompt=False
            )
        except Exception:  # jinja raises for roles a template does not know
            return False
        return _SENTINEL_TOOL in text

    def _renders_tools(self) -> bool:
        messages = self._base[:1]
        try:
            plain = self._render(messages, add_generation_prompt=True)
            with_tool = self._render(messages, add_generation_prompt=True, tools=[_PROBE_TOOL])
        except Exception:  # a template that fails with tools does not render them
            return False
        return with_tool != plain and "palaestra_sentinel_tool" in with_tool

    def with_tools(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]]) -> list[Message]:
        """The chat with `tools` declared in its system message, for a template that ignores `tools=`
        (unchanged when the template renders them natively, or there are none)."""
        messages = list(messages)
        if not tools or self.renders_tools:
            return messages
        declaration = tools_prompt(tools)
        if messages and messages[0].get("role") == "system":
            system = str(messages[0].get("content") or "")
            messages[0] = {**messages[0], "content": f"{system}\n\n{declaration}" if system else declaration}
        else:
            messages.insert(0, {"role": "system", "content": declaration})
        return messages

    def _render(
        self,
        messages: Sequence[Message],
        *,
        add_generation_prompt: bool,
        tools: Sequence[dict[str, Any]] | None = None,
    ) -> str:
        # a text-only policy sees the text parts of multimodal messages (GUI observations); a vision
        # policy also sees one image placeholder per image (its engine expands them)
        messages = template_messages(messages, images=self.images)
        if not self.tool_role:
            messages = [_as_user_tool_response(m) if m.get("role") == "tool" else m for m in messages]
        text = self.tokenizer.apply_chat_template(
            messages,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            tools=list(tools) if tools else None,
        )
        if not isinstance(text, str):  # tokenize=False renders text; anything else is a broken tokenizer
            raise ChatTemplateError(f"the chat template rendered {type(text).__name__}, not text")
        return text

    def _eos_ids(self) -> frozenset[int]:
        ids = {self.tokenizer.eos_token_id} if self.tokenizer.eos_token_id is not None else set()
        # the token that closes an assistant turn (e.g. <|im_end|>, <|eot_id|>) also counts as its end
        close_ids = self._encode(self.reply_close_text)
        if close_ids:
            ids.add(close_ids[0])
        return frozenset(ids)

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_ids(
        self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None = None
    ) -> list[int]:
        """Token ids of the first prompt (whole chat so far plus the generation prompt).

        Args:
            messages: the chat so far (for a template that ignores tools: already `with_tools`).
            tools: the env's tool declarations, rendered by a template that supports them.
        """
        text = self._render(messages, add_generation_prompt=True, tools=tools if self.renders_tools else None)
        return self._encode(text)

    def continuation_ids(self, reply_ids: Sequence[int], new_messages: Sequence[Message]) -> list[int]:
        """Token ids to append after a sampled reply so the prompt continues with `new_messages`.

        Args:
            reply_ids: the ids just sampled (their last id tells whether the policy closed its turn).
            new_messages: the environment's messages (user/tool roles) that follow the reply.

        Returns:
            Ids that close the reply if the policy did not (budget spent, stop string), render the new
            messages, and open the next assistant turn.
        """
        full = self._render([*self._base, *new_messages], add_generation_prompt=True)
        if not full.startswith(self._base_text):
            raise ChatTemplateError(
                "the chat template renders earlier turns differently once more messages follow; "
                "token-exact multi-turn rollouts need an append-only template"
            )
        delta = full[len(self._base_text) :]
        closed = bool(reply_ids) and reply_ids[-1] in self.eos_token_ids
        if closed:
            eos_text = str(self.tokenizer.decode([reply_ids[-1]]))
            close = self.reply_close_text
            remainder = close[len(eos_text) :] if close.startswith(eos_text) else close
        else:
            remainder = self.reply_close_text
        return self._encode(remainder + delta)

    def render(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None = None) -> str:
        """The template's text for a whole conversation (for checks and viewers)."""
        return self._render(
            messages, add_generation_prompt=False, tools=tools if self.renders_tools else None
        )


def _as_user_tool_response(message: Message) -> Message:
    return {"role": "user", "content": f"<tool_response>\n{message.get('content', '')}\n</tool_response>"}


def observation_text(observation: Any) -> str:
    """The text of an env observation: the string itself, or a GUI observation's "text" entry."""
    if isinstance(observation, dict):
        return str(observation.get("text", ""))
    return str(observation)


def _png_data_url(image: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def env_messages(observation: Any, info: dict[str, Any]) -> list[Message]:
    """The chat messages that carry an env's answer: a tool env's tool results (`info["tool_messages"]`),
    one message each, else one message with the observation in the role the env names."""
    tool_messages = info.get("tool_messages")
    if tool_messages:
        return [dict(m) for m in tool_messages]
    return [env_message(observation, info.get("role", "user"))]


def env_message(observation: Any, role: str = "user") -> Message:
    """The chat message that carries an env observation.

    A text observation becomes `{"role", "content": str}`. A GUI observation (a dict with "text" and a
    (H, W, 3) uint8 "screenshot") becomes OpenAI-style content parts: the text, then the screenshot as a
    PNG data URL, which image-capable backends pass on and text-only ones drop (`message_text`).
    """
    if not isinstance(observation, dict):
        return {"role": role, "content": str(observation)}
    parts: list[dict[str, Any]] = [{"type": "text", "text": observation_text(observation)}]
    screenshot = observation.get("screenshot")
    if screenshot is not None:
        parts.append({"type": "image_url", "image_url": {"url": _png_data_url(screenshot)}})
    return {"role": role, "content": parts}

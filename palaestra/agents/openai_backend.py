"""The `openai` backend: any server speaking the OpenAI API (vLLM/SGLang servers, hosted models).

Two modes:
    * chat (default): `/v1/chat/completions` with the episode's messages as they are, image content
      parts included (GUI envs); text in, text out (`tokenizer = None`).
    * tokens (a `tokenizer` is given): `/v1/completions` with the exact prompt token ids the rollout
      built, asking the server for the sampled token ids (`return_token_ids`, a vLLM/SGLang extension),
      so trajectories stay token-exact and trainable against a remote engine.

The official `openai` client does the HTTP: timeouts, and retries with exponential backoff and jitter on
connection errors, 408/409/429 and 5xx (honouring `Retry-After`). On top of it this backend bounds the
requests in flight (`max_concurrency`), counts token usage and HTTP failures (`usage`), and turns a
request that still fails after its retries into a `Generation` with `finish_reason="error"`: the
rollout records that episode as failed and the others go on.

Tools (chat mode): a request that carries `tools` (an env's declarations) sends them as the server's
`tools` with `tool_choice="auto"`, and the reply's `tool_calls` come back as `Generation.tool_calls`
(`ToolCall`s, arguments decoded from their JSON string), its content as `Generation.text` (may be
empty). Arguments that do not decode to a JSON object are kept as the string the server sent:
formatted into a reply text (`format_tool_calls`), they give the env's parser the same format error
("the arguments of NAME are not valid JSON") that a token-level model's malformed call gives, never an
exception. The chat is sent in the form the Chat Completions API requires (`api_messages`). Servers
must support tools: vLLM's with `--enable-auto-tool-choice --tool-call-parser hermes` (or the parser
of the model's family). In token mode the rollout has rendered the tools into the prompt ids, and the
calls stay in the text, where the env parses them.

The API key is read from the environment variable the caller names and is never logged or shown.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from palaestra.agents.base import FinishReason, Generation, GenerationRequest, Message, SamplingParams
from palaestra.agents.models import chat_prompt_ids
from palaestra.tools.calls import ToolCall

if TYPE_CHECKING:
    from openai import AsyncOpenAI
    from transformers import PreTrainedTokenizerBase

__all__ = ["OpenAIPolicy", "Usage", "api_messages"]

logger = logging.getLogger(__name__)

_FINISH: dict[str | None, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "eos": "stop",
    "tool_calls": "stop",
    None: "stop",
}
_NOT_RUN = "Not run: the environment answered this reply without running its tool calls."


@dataclass
class Usage:
    """What the server was asked and answered (for cost and throughput accounting).

    Attributes:
        requests: generations asked for.
        failed: generations that ended in an error after their retries.
        prompt_tokens: prompt tokens the server reported.
        completion_tokens: completion tokens the server reported.
        http_errors: HTTP responses with status 408/409/429/5xx (each was retried, or counted failed).
    """

    requests: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    http_errors: int = 0


class OpenAIPolicy:
    """A `Policy` over an OpenAI-compatible endpoint.

    Args:
        model: the model name the server knows (`"model"` in each request).
        base_url: the API root, e.g. `http://127.0.0.1:8000/v1`.
        api_key_env: name of the environment variable holding the API key; None for servers that
            need no key (a placeholder is sent).
        tokenizer: the served model's tokenizer: switches to token mode (see module docstring).
        name: label for results and logs (default `openai:MODEL`).
        max_concurrency: most requests in flight at once.
        max_retries: retries per request after the first try (429, 5xx, timeouts, lost connections).
        timeout_s: limit for one HTTP request.
        logprobs: ask for per-token logprobs (chat mode keeps them only with token ids).
        return_token_ids: in chat mode too, ask for sampled token ids (vLLM/SGLang servers only).

    Raises:
        ValueError: a bad limit, or `api_key_env` names a variable that is not set.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str,
        api_key_env: str | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        name: str | None = None,
        max_concurrency: int = 32,
        max_retries: int = 4,
        timeout_s: float = 120.0,
        logprobs: bool = True,
        return_token_ids: bool = False,
    ):
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency={max_concurrency}; it must be >= 1")
        if max_retries < 0:
            raise ValueError(f"max_retries={max_retries}; it must be >= 0")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s={timeout_s}; it must be > 0")
        if api_key_env is not None and not os.environ.get(api_key_env):
            raise ValueError(
                f"api_key_env={api_key_env!r} but that environment variable is not set; export it, "
                "or leave api_key_env unset for a server that needs no key"
            )
        self._api_key = os.environ[api_key_env] if api_key_env is not None else "EMPTY"
        self.model = model
        self.base_url = base_url
        self.tokenizer = tokenizer
        self.name = name or f"openai:{model}"
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.logprobs = logprobs
        self.return_token_ids = return_token_ids or tokenizer is not None
        self.usage = Usage()
        self._clients: dict[asyncio.AbstractEventLoop, tuple[AsyncOpenAI, asyncio.Semaphore]] = {}

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIPolicy(model={self.model!r}, base_url={self.base_url!r}, name={self.name!r})"

    # -- public API --------------------------------------------------------------------------------
    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Generate one reply per request, concurrently (at most `max_concurrency` in flight)."""
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    def sync_weights(self, state_dict: Any = None) -> None:
        """A remote server loads new weights itself; refuse rather than train against stale weights."""
        raise NotImplementedError(
            "the openai backend cannot receive weights from the trainer; train with agent.backend=hf "
            "or vllm, and serve the saved checkpoint to evaluate it with openai:"
        )

    async def close(self) -> None:
        """Close the HTTP clients of every event loop this policy ran on (that is still open)."""
        clients, self._clients = self._clients, {}
        for loop, (client, _) in clients.items():
            if loop is asyncio.get_running_loop():
                await client.close()

    # -- one request -------------------------------------------------------------------------------
    def _client(self) -> tuple[AsyncOpenAI, asyncio.Semaphore]:
        """One client and semaphore per event loop: connections cannot move between loops."""
        from openai import AsyncOpenAI, DefaultAsyncHttpxClient

        loop = asyncio.get_running_loop()
        if loop not in self._clients:
            for old in [lp for lp in self._clients if lp.is_closed()]:
                del self._clients[old]
            http = DefaultAsyncHttpxClient(event_hooks={"response": [self._count_response]})
            client = AsyncOpenAI(
                base_url=self.base_url,
                api_key=self._api_key,
                max_retries=self.max_retries,
                timeout=self.timeout_s,
                http_client=http,
            )
            self._clients[loop] = (client, asyncio.Semaphore(self.max_concurrency))
        return self._clients[loop]

    async def _count_response(self, response: Any) -> None:
        if response.status_code in (408, 409, 429) or response.status_code >= 500:
            self.usage.http_errors += 1

    async def _one(self, request: GenerationRequest) -> Generation:
        from openai import OpenAIError

        client, limit = self._client()
        self.usage.requests += 1
        async with limit:
            try:
                if self.tokenizer is not None:
                    return await self._completion(client, request)
                return await self._chat(client, request)
            except OpenAIError as exc:
                self.usage.failed += 1
                logger.warning("request %s to %s failed: %s", request.request_id, self.base_url, exc)
                return Generation(text="", finish_reason="error", error=f"{type(exc).__name__}: {exc}")

    def _body(self, sampling: SamplingParams) -> tuple[dict[str, Any], dict[str, Any]]:
        """(standard arguments, vendor extensions) for one request."""
        kwargs: dict[str, Any] = {
            "model": self.model,
            "max_tokens": sampling.max_new_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
        }
        if sampling.stop:
            kwargs["stop"] = list(sampling.stop)
        if sampling.seed is not None:
            kwargs["seed"] = sampling.seed & 0x7FFF_FFFF
        extra: dict[str, Any] = {}
        if sampling.top_k:
            extra["top_k"] = sampling.top_k
        if self.return_token_ids:
            extra["return_token_ids"] = True
            extra["skip_special_tokens"] = True
        return kwargs, extra

    def _account(self, usage: Any) -> None:
        if usage is not None:
            self.usage.prompt_tokens += int(usage.prompt_tokens or 0)
            self.usage.completion_tokens += int(usage.completion_tokens or 0)

    async def _chat(self, client: AsyncOpenAI, request: GenerationRequest) -> Generation:
        kwargs, extra = self._body(request.sampling)
        if self.logprobs:
            kwargs["logprobs"] = True
        messages: list[Message] = list(request.messages)
        if request.tools:
            kwargs["tools"] = list(request.tools)
            kwargs["tool_choice"] = "auto"
            messages = api_messages(messages)
        response = await client.chat.completions.create(
            messages=messages,  # type: ignore[arg-type]  # content parts pass through
            extra_body=extra or None,
            **kwargs,
        )
        self._account(response.usage)
        choice = response.choices[0]
        token_ids = _token_ids(choice)
        logprobs = None
        if token_ids and choice.logprobs is not None and choice.logprobs.content is not None:
            logprobs = tuple(float(t.logprob) for t in choice.logprobs.content)
        calls = _tool_calls(choice.message.tool_calls)
        return _generation(choice.message.content or "", token_ids, logprobs, choice.finish_reason, calls)

    async def _completion(self, client: AsyncOpenAI, request: GenerationRequest) -> Generation:
        if request.prompt_token_ids is None:
            assert self.tokenizer is not None
            prompt = chat_prompt_ids(self.tokenizer, list(request.messages))
        else:
            prompt = [int(i) for i in request.prompt_token_ids]
        kwargs, extra = self._body(request.sampling)
        if self.logprobs:
            kwargs["logprobs"] = 1
        response = await client.completions.create(prompt=prompt, extra_body=extra or None, **kwargs)
        self._account(response.usage)
        choice = response.choices[0]
        token_ids = _token_ids(choice)
        if not token_ids and choice.text:
            raise_missing = "the server returned no token ids; token mode needs a vLLM or SGLang server"
            return Generation(text=choice.text, finish_reason="error", error=raise_missing)
        logprobs = None
        if choice.logprobs is not None and choice.logprobs.token_logprobs is not None:
            logprobs = tuple(float(x) for x in choice.logprobs.token_logprobs)
        return _generation(choice.text, token_ids, logprobs, choice.finish_reason)


def _token_ids(choice: Any) -> tuple[int, ...]:
    """Sampled token ids from a vLLM/SGLang `return_token_ids` answer (a field outside the schema)."""
    extra = getattr(choice, "model_extra", None) or {}
    ids = extra.get("token_ids")
    return tuple(int(i) for i in ids) if ids else ()


def _generation(
    text: str,
    token_ids: tuple[int, ...],
    logprobs: tuple[float, ...] | None,
    finish: str | None,
    tool_calls: tuple[ToolCall, ...] = (),
) -> Generation:
    if logprobs is not None and len(logprobs) != len(token_ids):
        logprobs = None  # the server's logprobs do not line up with its ids: keep the ids only
    finish_reason = _FINISH.get(finish, "stop")
    return Generation(
        text=text, token_ids=token_ids, logprobs=logprobs, finish_reason=finish_reason, tool_calls=tool_calls
    )


def _tool_calls(calls: Sequence[Any] | None) -> tuple[ToolCall, ...]:
    """The function calls of a chat reply (calls of other tool types cannot occur: none is declared)."""
    out = []
    for index, call in enumerate(calls or ()):
        function = getattr(call, "function", None)
        if function is not None:
            arguments = _decode_arguments(function.arguments or "")
            out.append(ToolCall(function.name, arguments, call.id or f"call_{index}"))
    return tuple(out)


def _decode_arguments(text: str) -> dict[str, Any]:
    """A call's arguments; the server's string as it is when it is not a JSON object (module docstring)."""
    try:
        value = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else cast("dict[str, Any]", text)


def api_messages(messages: Sequence[Message]) -> list[Message]:
    """A chat with tool calls in the form the Chat Completions API requires.

    - An assistant message that calls tools keeps `role`, `content` (None when empty) and `tool_calls`
      (`{"id", "type": "function", "function": {"name", "arguments": JSON string}}`; `ToolCall`s and
      dict arguments are encoded; arguments that `ToolCall.openai()` encoded from a malformed call's raw
      string are unwrapped back to that string).
    - Each call must be answered by a tool message `{"role": "tool", "tool_call_id", "content"}` right
      after it (other keys, such as `name`, are dropped). A tool message whose id is not one of the
      open calls (an env that numbers calls itself) answers the first open call. A call no tool message
      answers (the env refused the reply and said why in a user message) gets a tool message saying it
      was not run.
    - A tool message that answers no call becomes a user message; every other message is unchanged.
    """
    out: list[Message] = []
    open_ids: list[str] = []

    def close_open_calls() -> None:
        out.extend({"role": "tool", "tool_call_id": i, "content": _NOT_RUN} for i in open_ids)
        open_ids.clear()

    for message in messages:
        role = message.get("role")
        if role == "tool" and open_ids:
            call_id = message.get("tool_call_id")
            call_id = call_id if call_id in open_ids else open_ids[0]
            open_ids.remove(call_id)
            out.append({"role": "tool", "tool_call_id": call_id, "content": message.get("content", "")})
            continue
        close_open_calls()
        if role == "tool":
            out.append({"role": "user", "content": message.get("content", "")})
        elif role == "assistant" and message.get("tool_calls"):
            calls = [_api_call(call, index) for index, call in enumerate(message["tool_calls"])]
            out.append({"role": "assistant", "content": message.get("content") or None, "tool_calls": calls})
            open_ids.extend(call["id"] for call in calls)
        else:
            out.append(message)
    close_open_calls()
    return out


def _api_call(call: ToolCall | dict[str, Any], index: int) -> dict[str, Any]:
    entry = call.openai() if isinstance(call, ToolCall) else call
    function = entry.get("function") or {}
    arguments = function.get("arguments", {})
    if isinstance(arguments, str):
        try:
            decoded = json.loads(arguments)
        except json.JSONDecodeError:
            decoded = None
        arguments = decoded if isinstance(decoded, str) else arguments
    else:
        arguments = json.dumps(arguments, ensure_ascii=False)
    name = str(function.get("name", ""))
    return {
        "id": entry.get("id") or f"call_{index}",
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }

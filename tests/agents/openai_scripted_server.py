"""A scripted OpenAI Chat Completions server for tests: it answers each request with the next reply
the test queued (content, tool calls, or an HTTP error) and records every request body it received.

A real HTTP server (starlette under uvicorn, in a thread of the test process) on a free loopback port:

    with ScriptedChatServer() as server:
        server.replies.append(tool_reply(("get", '{"key": "alpha"}', "call_a")))
        policy = OpenAIPolicy("m", base_url=server.url)
        ...
        server.requests[0]["tools"]
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def tool_reply(*calls: tuple[str, str, str], content: str | None = None) -> dict[str, Any]:
    """A reply that calls tools: each call is (name, arguments as the server sends them, id)."""
    tool_calls = [
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        for name, arguments, call_id in calls
    ]
    message = {"role": "assistant", "content": content, "tool_calls": tool_calls}
    return {"message": message, "finish_reason": "tool_calls"}


def text_reply(content: str) -> dict[str, Any]:
    """A reply without tool calls."""
    return {"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}


def error_reply(status: int, message: str) -> dict[str, Any]:
    """An HTTP error with an OpenAI-style error body."""
    return {"status": status, "error": {"message": message, "type": "BadRequestError", "code": status}}


class ScriptedChatServer:
    """Serves `/v1/chat/completions` from `replies` (oldest first; `text_reply("ok")` once they run out)
    and appends each request's JSON body to `requests`."""

    def __init__(self) -> None:
        self.replies: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}/v1"
        app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]})

    def __enter__(self) -> ScriptedChatServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the scripted chat server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._socket.close()

    async def _chat(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.requests.append(body)
        reply = self.replies.pop(0) if self.replies else text_reply("ok")
        if "status" in reply:
            return JSONResponse({"error": reply["error"]}, status_code=reply["status"])
        choice = {"index": 0, "logprobs": None, **reply}
        usage = {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}
        payload = {"id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": 0}
        payload.update(model=body.get("model", "m"), choices=[choice], usage=usage)
        return JSONResponse(payload)

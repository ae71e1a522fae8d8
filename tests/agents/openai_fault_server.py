"""A small OpenAI-compatible HTTP server for fault injection (run as a separate process by the tests).

It answers `/v1/chat/completions` and `/v1/completions` with the last user message echoed back (so
a math env's answer can be steered), and can fail: the first `--fail-first` requests get `--status`
(429, 500, ...), every request can wait `--delay` seconds, and each request body is appended to
`--log` (one JSON object a line) so tests can check what reached the server.

    python tests/agents/openai_fault_server.py --port 8123 --fail-first 5 --status 429
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _reply_text(body: dict) -> str:
    messages = body.get("messages") or [{"content": "ok"}]
    content = messages[-1].get("content", "")
    if isinstance(content, list):
        content = " ".join(p.get("text", "") for p in content if p.get("type") == "text")
    return f"echo: {content}"


def make_handler(args: argparse.Namespace) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()
    state = {"seen": 0}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            with lock:
                state["seen"] += 1
                seen = state["seen"]
                if args.log:
                    with open(args.log, "a") as f:
                        auth = self.headers.get("Authorization", "")
                        f.write(json.dumps({"path": self.path, "body": body, "auth": auth}) + "\n")
            if args.delay:
                time.sleep(args.delay)
            if seen <= args.fail_first:
                payload = json.dumps({"error": {"message": "injected", "code": args.status}}).encode()
                self.send_response(args.status)
                self.send_header("Retry-After-Ms", "10")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            text = _reply_text(body)
            usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
            if self.path.endswith("/chat/completions"):
                choice = {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
                obj = "chat.completion"
            else:
                choice = {"index": 0, "text": text, "finish_reason": "length", "logprobs": None}
                obj = "text_completion"
            payload = json.dumps(
                {
                    "id": f"x-{seen}",
                    "object": obj,
                    "created": 0,
                    "model": body.get("model", "m"),
                    "choices": [choice],
                    "usage": usage,
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--status", type=int, default=429)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--log", default="")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args))
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

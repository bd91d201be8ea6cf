"""A real OpenAI-compatible HTTP server for tests: scripted replies, every request recorded.

It speaks the wire format the ``openai`` client uses (POST /v1/chat/completions, GET /v1/models),
so the tests drive akg's real client over real HTTP. The replies are scripted: they test akg's
machinery (prompts, feedback, repair, lineage, replay), not any model's quality.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPLIES = Path(__file__).parent / "llm_replies"


def kernel_reply(name: str, preamble: str = "Here is the kernel.") -> str:
    """A reply in the contract's shape: prose, then one fenced python block with the whole file."""
    return f"{preamble}\n\n```python\n{(REPLIES / name).read_text()}```\n"


def design_reply(idea: str) -> str:
    design = {"kernels": [{"name": "cummax_sigmoid", "ops": ["cummax", "sigmoid"],
                           "notes": "walk down the rows, 64 columns at a time"}],
              "fusion": "the sigmoid is applied to the running maximum before the store",
              "tiling": "blocks of 64 contiguous columns", "memory": "read x once, write y once", "idea": idea}
    return f"The plan:\n```json\n{json.dumps(design)}\n```\n"


class ScriptedServer:
    """``replies``: texts served in order (or (status, body) tuples to answer with an HTTP error)."""

    def __init__(self, replies: list, model: str = "scripted-model", tokens: tuple[int, int] = (100, 50)):
        self.replies = list(replies)
        self.model = model
        self.tokens = tokens
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model",
                                                                  "created": 0, "owned_by": "test"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    return self._send(404, {"error": {"message": "not found"}})
                if body.get("model") != server.model:
                    return self._send(404, {"error": {"message": f"model {body.get('model')} not found"}})
                with server._lock:
                    server.requests.append(body)
                    reply = server.replies.pop(0) if server.replies else "(the script has no more replies)"
                if isinstance(reply, tuple):
                    return self._send(reply[0], {"error": {"message": reply[1]}})
                prompt, completion = server.tokens
                self._send(200, {
                    "id": f"chatcmpl-{len(server.requests)}", "object": "chat.completion", "created": 0,
                    "model": server.model,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": reply}}],
                    "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                              "total_tokens": prompt + completion}})

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def prompt(self, i: int) -> str:
        """The user message of request ``i``."""
        return self.requests[i]["messages"][-1]["content"]

    def __enter__(self) -> "ScriptedServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

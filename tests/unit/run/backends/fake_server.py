"""A tiny OpenAI-compatible completions server for the backend unit tests (stdlib `http.server` in a thread).

It speaks the part of vLLM's schema the `openai` backend uses: `/v1/models`, `/version`, `/metrics` and
`/v1/completions` with token-id prompts, `return_token_ids` and `prompt_logprobs`. Each request body is recorded;
`fail` scripts the statuses of the first completion requests (e.g. two 503s, then answers); `delay_s` keeps each
completion in flight long enough to measure concurrency.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeServer:
    def __init__(self, *, reply: Callable[[dict[str, Any]], dict[str, Any]] | None = None, fail: list[int] | None = None,
                 delay_s: float = 0.0, version: str = "0.32.0", model: str = "m", max_model_len: int | None = 512,
                 owned_by: str = "vllm") -> None:
        self.reply = reply or (lambda body: {"token_ids": [5, 6, 2][: body["max_tokens"]], "text": "x"})
        self.fail = list(fail or [])
        self.delay_s = delay_s
        self.version, self.model, self.max_model_len, self.owned_by = version, model, max_model_len, owned_by
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.generation_tokens = 0
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, payload: Any, content_type: str = "application/json") -> None:
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/version":
                    self._send(200, {"version": server.version})
                elif self.path == "/v1/models":
                    entry = {"id": server.model, "object": "model", "owned_by": server.owned_by}
                    if server.max_model_len is not None:
                        entry["max_model_len"] = server.max_model_len
                    self._send(200, {"object": "list", "data": [entry]})
                elif self.path == "/metrics":
                    self._send(200, f'# HELP x\nvllm:generation_tokens_total{{engine="0"}} {server.generation_tokens}\n',
                               "text/plain")
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests.append(body)
                    status = server.fail.pop(0) if server.fail else 200
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                # A request is in flight from its arrival until its answer is sent: counted down before the send, since
                # the client may reuse its slot the moment the answer arrives (before this thread resumes).
                try:
                    time.sleep(server.delay_s)
                    if status != 200:
                        answer: tuple[int, dict] = (status, {"error": f"scripted {status} from the fake server"})
                    else:
                        choice = {"index": 0, "finish_reason": "stop", "stop_reason": None,
                                  "prompt_token_ids": body["prompt"], **server.reply(body)}
                        with server._lock:
                            server.generation_tokens += len(choice.get("token_ids") or [])
                        answer = (200, {"id": "cmpl-1", "object": "text_completion", "model": server.model,
                                        "choices": [choice],
                                        "usage": {"completion_tokens": len(choice.get("token_ids") or [])}})
                finally:
                    with server._lock:
                        server.in_flight -= 1
                self._send(*answer)

        return Handler

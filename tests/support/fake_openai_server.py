"""A small OpenAI-compatible chat-completions server on 127.0.0.1 for tests.

It is a real HTTP server (``http.server`` in a thread) so the real ``openai`` client talks to
it over real sockets. Each test scripts it: a list of actions consumed one per request
(then ``default``), and response texts handed out in order. It records what it received.

Actions:
    ("choices", k)       200 with k choices (k=None: as many as the request's n)
    ("status", code, headers[, error_code])   an error status with a JSON error body
    ("sleep", seconds)   wait, then answer like ("choices", None) (to provoke timeouts)
    ("malformed",)       200, JSON content type, a body that is not JSON
    ("wrong_shape",)     200, valid JSON that is not a chat completion
    ("drop",)            close the connection without answering
    ("trickle", seconds) 200 headers promising a long body, then one byte every ``seconds`` until
                         the client goes away or the server stops (a per-read timeout never trips)
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]  # names in lower case
    body: dict[str, Any]
    raw_body: bytes
    time: float


@dataclass
class FakeOpenAIServer:
    texts: list[str] = field(default_factory=lambda: ["| Part | Part |\n|---|---|\n| hand | head |"])
    script: list[tuple] = field(default_factory=list)
    default: tuple = ("choices", None)
    received: list[ReceivedRequest] = field(default_factory=list)
    prompt_tokens: int = 100
    completion_tokens_per_choice: int = 20

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._text_index = 0
        self._stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                pass

            def do_POST(self) -> None:
                server._handle(self)

            def do_GET(self) -> None:
                self.send_error(404)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> "FakeOpenAIServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def _next_action(self) -> tuple:
        with self._lock:
            return self.script.pop(0) if self.script else self.default

    def _next_texts(self, count: int) -> list[str]:
        with self._lock:
            out = []
            for _ in range(count):
                out.append(self.texts[self._text_index % len(self.texts)])
                self._text_index += 1
            return out

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        with self._lock:
            self.received.append(
                ReceivedRequest(handler.path, {k.lower(): v for k, v in handler.headers.items()}, body, raw, time.monotonic())
            )
        action = self._next_action()
        kind = action[0]
        if kind == "drop":
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if kind == "trickle":
            try:
                handler.send_response(200)
                handler.send_header("Content-Type", "application/json")
                handler.send_header("Content-Length", "100000")
                handler.end_headers()
                handler.wfile.flush()
                while not self._stopping.wait(action[1]):
                    handler.wfile.write(b" ")
                    handler.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up: what it should do
            handler.close_connection = True
            return
        if kind == "malformed":
            self._send(handler, 200, b'{"id": "x", "choices": [ {"index": 0, "mess', {})
            return
        if kind == "wrong_shape":
            self._send(handler, 200, b'{"choices": "none today", "usage": 7}', {})
            return
        if kind == "status":
            code = action[1]
            headers = action[2] if len(action) > 2 else {}
            error_code = action[3] if len(action) > 3 else None
            error = {"message": f"scripted {code}", "type": "test", "code": error_code}
            payload = json.dumps({"error": error}).encode()
            self._send(handler, code, payload, headers)
            return
        if kind == "sleep":
            time.sleep(action[1])
            count = None
        else:
            count = action[1]
        if count is None:
            count = int(body.get("n") or 1)
        texts = self._next_texts(count)
        payload = {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "unknown"),
            "choices": [
                {
                    "index": index,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
                for index, text in enumerate(texts)
            ],
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens_per_choice * count,
                "total_tokens": self.prompt_tokens + self.completion_tokens_per_choice * count,
            },
        }
        try:
            self._send(handler, 200, json.dumps(payload).encode(), {})
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, code: int, payload: bytes, headers: dict[str, str]) -> None:
        handler.send_response(code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)
        handler.wfile.flush()

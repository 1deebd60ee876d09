"""A tiny 127.0.0.1 server speaking the example plugin's made-up protocol (NDJSON tokens),
in a thread: the lens under test runs in a subprocess."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FIRST_TOKEN_DELAY_S = 0.08  # the TTFT floor every request must show
TOKEN_GAP_S = 0.01
TOKENS = ("Hel", "lo", ", ", "plug", "in")
INPUT_TOKENS = 7


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        self.server.requests.append((self.path, dict(self.headers), json.loads(body)))
        if self.path != "/v1/generate":
            self._answer(404, b'{"error": "no such path"}')
            return
        self.send_response(200)
        self.send_header("content-type", "application/x-ndjson")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        time.sleep(FIRST_TOKEN_DELAY_S)
        for i, token in enumerate(TOKENS):
            if i:
                time.sleep(TOKEN_GAP_S)
            self._chunk(json.dumps({"t": token}).encode() + b"\n")
        usage = {"input": INPUT_TOKENS, "output": len(TOKENS)}
        self._chunk(json.dumps({"done": True, "usage": usage}).encode() + b"\n")
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: pytest output stays readable


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    requests: list[tuple[str, dict[str, str], Any]]


@contextmanager
def ndjson_server() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

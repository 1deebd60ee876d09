"""A hostile HTTP/1.1 server on 127.0.0.1: one route per misbehaviour, for end-to-end tests.

Raw sockets, not an HTTP library, so a route can send anything (broken framing, echoed
credentials, JSON nested 5000 deep).  It runs in threads, so lens can be driven in-process
(``lens.cli.main``, which runs its own trio loop) or as a subprocess.

The route is the first path segment: a provider with ``base_url: {url}/echo-401/v1`` gets
the ``echo-401`` behaviour for its ``/v1/chat/completions`` requests.  A route is a function
of the parsed request returning the raw bytes to send; the connection is closed after it.
Add a route with ``@route("name")``; tests name the routes they use (``ROUTES`` lists all).
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    head: bytes  # the request line and headers as received
    headers: dict[str, str]  # lower-cased names
    body: bytes

    @property
    def route(self) -> str:
        return self.target.split("/")[1] if self.target.count("/") >= 1 else ""


Route = Callable[[Request], bytes]
ROUTES: dict[str, Route] = {}


def route(name: str) -> Callable[[Route], Route]:
    def register(fn: Route) -> Route:
        ROUTES[name] = fn
        return fn

    return register


def response(
    status: int, body: bytes, content_type: str = "application/json", **extra: str
) -> bytes:
    headers = [
        f"HTTP/1.1 {status} Whatever",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name.replace('_', '-')}: {value}" for name, value in extra.items()),
    ]
    return ("\r\n".join(headers) + "\r\n\r\n").encode("latin-1") + body


def sse(*events: bytes) -> bytes:
    return response(200, b"".join(b"data: " + e + b"\n\n" for e in events), "text/event-stream")


def delta(text: str) -> bytes:
    return json.dumps({"choices": [{"index": 0, "delta": {"content": text}}]}).encode()


USAGE = b'{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}'
DEEP = 5000


@route("ok")
def ok(req: Request) -> bytes:
    return sse(delta("hello"), delta(" world"), USAGE, b"[DONE]")


@route("echo-401")
def echo_401(req: Request) -> bytes:
    """An auth error quoting every header it got, as JSON (OpenAI-style error body)."""
    echoed = "; ".join(f"{k}: {v}" for k, v in req.headers.items())
    return response(401, json.dumps({"error": {"message": f"bad credentials: {echoed}"}}).encode())


@route("echo-500")
def echo_500(req: Request) -> bytes:
    """A server error whose plain-text body is the raw request head."""
    return response(500, b"upstream failed for:\n" + req.head, "text/plain")


@route("sse-error-echo")
def sse_error_echo(req: Request) -> bytes:
    """A 200 stream whose in-band error echoes the Authorization header."""
    message = f"token rejected: Authorization: {req.headers.get('authorization', '')}"
    return sse(delta("hi"), json.dumps({"error": {"message": message}}).encode())


@route("deep-401")
def deep_401(req: Request) -> bytes:
    return response(401, b"[" * DEEP)


@route("deep-sse-error")
def deep_sse_error(req: Request) -> bytes:
    return sse(delta("hi"), b'{"error": ' + b"[" * DEEP)


@route("null-choice")
def null_choice(req: Request) -> bytes:
    return sse(delta("hi"), b'{"choices":[null]}', b"[DONE]")


@route("usage-true")
def usage_true(req: Request) -> bytes:
    return sse(delta("hi"), b'{"usage":true,"choices":[]}', b"[DONE]")


@route("content-number")
def content_number(req: Request) -> bytes:
    return sse(b'{"choices":[{"delta":{"content":5}}]}', b"[DONE]")


@route("redirect")
def redirect(req: Request) -> bytes:
    """A redirect to a login page carrying the caller's key in the query."""
    key = req.headers.get("authorization", "").removeprefix("Bearer ")
    return response(302, b"", "text/plain", Location=f"http://127.0.0.1:1/login?token={key}")


@route("hang-up")
def hang_up(req: Request) -> bytes:
    """Read the request, answer nothing, close."""
    return b""


def raw(status_line: str, *headers: str, body: bytes = b"", eol: bytes = b"\r\n") -> bytes:
    """A response written exactly as given: no header is added or fixed."""
    head = eol.join(line.encode("latin-1") for line in (status_line, *headers))
    return head + eol + eol + body


def sse_body(*events: bytes) -> bytes:
    return b"".join(b"data: " + e + b"\n\n" for e in events)


OK_EVENTS = (b'{"choices":[{"index":0,"delta":{"content":"hello"}}]}', USAGE, b"[DONE]")
# Bounded like every test loop: the scenario's limits: end these long before their end.
ENDLESS_BYTES = 4 * 1024 * 1024
STALL_S = 4.0  # longer than the test scenario's timeout


@route("gzip-sse")
def gzip_sse(req: Request) -> bytes:
    """A proxy that compresses the event stream whatever Accept-Encoding said."""
    body = gzip.compress(sse_body(*OK_EVENTS))
    return raw(
        "HTTP/1.1 200 OK",
        "Content-Type: text/event-stream",
        "Content-Encoding: gzip",
        f"Content-Length: {len(body)}",
        body=body,
    )


@route("gzip-401")
def gzip_401(req: Request) -> bytes:
    body = gzip.compress(b'{"error":{"message":"invalid api key (gzip body)"}}')
    return raw(
        "HTTP/1.1 401 Unauthorized",
        "Content-Type: application/json",
        "Content-Encoding: gzip",
        f"Content-Length: {len(body)}",
        body=body,
    )


@route("gzip-chunked")
def gzip_chunked(req: Request) -> bytes:
    """A transfer coding HTTP/1.1 clients do not decode: still-encoded bytes as the body."""
    data = gzip.compress(sse_body(*OK_EVENTS))
    chunked = b"%x\r\n" % len(data) + data + b"\r\n0\r\n\r\n"
    return raw("HTTP/1.1 200 OK", "Transfer-Encoding: gzip, chunked", body=chunked)


@route("brotli")
def brotli(req: Request) -> bytes:
    body = b"\x1b\x03\x00\xf8\xa5\x02"  # any bytes: the coding is refused, not decoded
    return raw(
        "HTTP/1.1 200 OK",
        "Content-Encoding: br",
        f"Content-Length: {len(body)}",
        body=body,
    )


@route("switching")
def switching(req: Request) -> bytes:
    return raw("HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade")


@route("lf-only")
def lf_only(req: Request) -> bytes:
    """Header lines ended by a bare LF (which clients must accept)."""
    body = sse_body(*OK_EVENTS)
    return raw(
        "HTTP/1.1 200 OK",
        "Content-Type: text/event-stream",
        f"Content-Length: {len(body)}",
        body=body,
        eol=b"\n",
    )


@route("obs-fold")
def obs_fold(req: Request) -> bytes:
    """A header continued on the next line (obsolete line folding, RFC 9112 §5.2)."""
    body = sse_body(*OK_EVENTS)
    return raw(
        "HTTP/1.1 200 OK",
        "Content-Type: text/event-stream",
        "X-Folded: first part",
        "  second part",
        f"Content-Length: {len(body)}",
        body=body,
    )


@route("endless-line")
def endless_line(req: Request) -> bytes:
    """An SSE line that never ends (until ENDLESS_BYTES, then the connection closes)."""
    return raw("HTTP/1.1 200 OK", "Content-Type: text/event-stream") + (
        b"data: " + b"x" * ENDLESS_BYTES
    )


@route("endless-stream")
def endless_stream(req: Request) -> bytes:
    """Valid events without end (until ENDLESS_BYTES): only a response-size bound stops it."""
    event = b'data: {"choices":[{"index":0,"delta":{"content":"la"}}]}\n\n'
    return raw("HTTP/1.1 200 OK", "Content-Type: text/event-stream") + event * (
        ENDLESS_BYTES // len(event)
    )


@route("keepalive-liar")
def keepalive_liar(req: Request) -> bytes:
    """llama.cpp's llama-server: advertises keep-alive, then closes after every response."""
    body = sse_body(*OK_EVENTS)
    return raw(
        "HTTP/1.1 200 OK",
        "Content-Type: text/event-stream",
        "Keep-Alive: timeout=5, max=100",
        f"Content-Length: {len(body)}",
        body=body,
    )


@route("stall-head")
def stall_head(req: Request) -> bytes:
    """Accept the request, then say nothing for longer than the client waits."""
    time.sleep(STALL_S)
    return b""


class HostileServer:
    """``with HostileServer() as server: ...`` serves ``ROUTES`` at ``server.url``."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[Request] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._sock.close()
        self._thread.join(timeout=5)

    def base_url(self, name: str) -> str:
        assert name in ROUTES, name
        return f"{self.url}/{name}/v1"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                req = _read_request(conn)
            except (OSError, ValueError):
                return
            if req is None:
                return  # lens's connection warm-up: opened, then closed or reused later
            self.requests.append(req)
            handler = ROUTES.get(req.route)
            data = handler(req) if handler else response(404, b'{"error":"no such route"}')
            try:
                conn.sendall(data)
                conn.shutdown(socket.SHUT_WR)
            except OSError:
                pass


def _read_request(conn: socket.socket) -> Request | None:
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None
        buf += data
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        data = conn.recv(65536)
        if not data:
            break
        body += data
    return Request(method, target, head, headers, body)

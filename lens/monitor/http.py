"""A small HTTP/1.1 server on trio for the monitor's endpoints.

Why not the stdlib's ``http.server`` in a thread: the answers read the monitor's state,
which the monitor's trio loop changes between cycles; on the same loop, a handler never
sees a half-applied cycle and needs no lock.  The server is deliberately minimal: ``GET``
and ``HEAD`` only, one request per connection (``Connection: close``: Prometheus and
kubelet probes reconnect without cost), request heads capped in size and time so a slow or
hostile client cannot hold a task forever.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import trio

MAX_HEAD_BYTES = 8192
HEAD_TIMEOUT_S = 10.0
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


Route = Callable[[str], Response]  # path (no query) -> response to a GET


def text(status: int, body: str) -> Response:
    return Response(status, body.encode())


def _encode(resp: Response, head_only: bool) -> bytes:
    head = (
        f"HTTP/1.1 {resp.status} {_REASONS.get(resp.status, 'Unknown')}\r\n"
        f"Content-Type: {resp.content_type}\r\n"
        f"Content-Length: {len(resp.body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode("ascii")
    return head if head_only else head + resp.body


async def _read_head(stream: trio.abc.ReceiveStream) -> bytes | None:
    """The request head (up to its blank line), or None if it grew past the cap."""
    data = b""
    while True:
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            return data if end <= MAX_HEAD_BYTES else None
        if len(data) > MAX_HEAD_BYTES:
            return None
        chunk = await stream.receive_some(4096)
        if not chunk:
            return data  # the client closed early: answered as a bad request line
        data += chunk


def respond_to(head: bytes | None, route: Route) -> tuple[Response, bool]:
    """The response to a request head, and whether it is a HEAD request."""
    if head is None:
        return text(431, "request head too large\n"), False
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return text(400, "bad request line\n"), False
    method, target, _ = parts
    if method not in ("GET", "HEAD"):
        return text(405, "only GET and HEAD\n"), False
    return route(target.split("?", 1)[0]), method == "HEAD"


async def handle(stream: trio.SocketStream, route: Route) -> None:
    try:
        with trio.move_on_after(HEAD_TIMEOUT_S) as scope:
            head = await _read_head(stream)
        if scope.cancelled_caught:
            return
        response, head_only = respond_to(head, route)
        await stream.send_all(_encode(response, head_only))
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass  # the client went away: nothing to answer
    finally:
        await trio.aclose_forcefully(stream)


async def open_listeners(host: str, port: int) -> list[trio.SocketListener]:
    """Bind now (an ``OSError`` says why it cannot be), serve later."""
    return await trio.open_tcp_listeners(port, host=host)


def bound_address(listeners: list[trio.SocketListener]) -> tuple[str, int]:
    sockname = listeners[0].socket.getsockname()
    return str(sockname[0]), int(sockname[1])


async def serve(listeners: list[trio.SocketListener], route: Route) -> None:
    async def one(stream: trio.SocketStream) -> None:
        await handle(stream, route)

    await trio.serve_listeners(one, listeners)


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` -> (host, port); ``ValueError`` naming what is wrong."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected HOST:PORT (e.g. 127.0.0.1:9464), got {listen!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)

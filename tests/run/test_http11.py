"""LeanHTTP11Transport against real loopback sockets: scripted servers and lens-sim.

The scripted servers below speak raw bytes, so framing edge cases (split reads, 1xx,
trailers, truncation, resets) are exact; lens-sim checks real streams end to end.
"""

from __future__ import annotations

import itertools
import json
import socket
import ssl
import struct
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import cast

import httpx
import pytest
import trio
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from lens.plan.model import SimSettings
from lens.run import http11
from lens.run.http11 import LeanHTTP11Transport, _Connection
from lens.run.http11_parse import ProtocolViolation
from lens.sim.openai_chat import completion_text
from lens.sim.server import SimServer
from tests.run.netkit import RequestReader

# -- a scripted HTTP/1.1 server ------------------------------------------------------------


@dataclass
class RawServer:
    port: int
    accepts: int = 0
    requests: list[bytes] = field(default_factory=list)
    closed: int = 0  # connections whose client side hung up or that the handler ended

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class ServerConn(RequestReader):
    def __init__(self, stream: trio.SocketStream, server: RawServer) -> None:
        super().__init__(stream, server.requests)
        self.server = server
        self.socket_stream = stream

    async def send(self, *parts: bytes, pause: float = 0.0) -> None:
        for k, part in enumerate(parts):
            if k and pause:
                await trio.sleep(pause)
            await self.stream.send_all(part)

    async def wait_eof(self) -> None:
        while await self.stream.receive_some(65536):
            pass

    def reset(self) -> None:
        """Close with RST instead of FIN."""
        self.socket_stream.socket.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        self.socket_stream.socket.close()


Handler = Callable[[ServerConn], Awaitable[None]]
StartRaw = Callable[[Handler], Awaitable[RawServer]]


@pytest.fixture
async def start_raw(nursery: trio.Nursery) -> StartRaw:
    async def start(handler: Handler) -> RawServer:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        server = RawServer(listeners[0].socket.getsockname()[1])

        async def on_connection(stream: trio.SocketStream) -> None:
            server.accepts += 1
            try:
                await handler(ServerConn(stream, server))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            finally:
                server.closed += 1
                await trio.aclose_forcefully(stream)

        await nursery.start(trio.serve_listeners, on_connection, listeners)
        return server

    return start


def replies(*responses: bytes | tuple[bytes, ...], close_after: bool = False) -> Handler:
    """Answer successive requests (across connections) with ``responses`` in order.

    A tuple is sent as separate writes with a short pause between them.  With
    ``close_after`` the server closes each connection after one response.
    """
    queue = iter(responses)

    async def handler(conn: ServerConn) -> None:
        while await conn.read_request() is not None:
            reply = next(queue)
            if isinstance(reply, tuple):
                await conn.send(*reply, pause=0.005)
            else:
                await conn.send(reply)
            if close_after:
                return

    return handler


def chunked(*payloads: bytes, head: bytes = b"HTTP/1.1 200 OK\r\n") -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in payloads)
    return head + b"Transfer-Encoding: chunked\r\n\r\n" + body + b"0\r\n\r\n"


def ok(body: bytes, *headers: bytes) -> bytes:
    extra = b"".join(h + b"\r\n" for h in headers)
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def fetch(
    transport: LeanHTTP11Transport, url: str, method: str = "GET", **kw: object
) -> tuple[httpx.Response, list[bytes]]:
    """One request straight through the transport (no httpx timeouts: the fast path)."""
    response = await transport.handle_async_request(httpx.Request(method, url, **kw))  # type: ignore[arg-type]
    parts: list[bytes] = []
    try:
        assert isinstance(response.stream, httpx.AsyncByteStream)
        await collect(parts, response.stream)
    finally:
        await response.aclose()
    return response, parts


async def collect(parts: list[bytes], chunks: AsyncIterable[bytes] | httpx.SyncByteStream) -> None:
    """Append each chunk as it comes, so a test still sees them when iteration fails."""
    assert not isinstance(chunks, httpx.SyncByteStream)
    async for part in chunks:
        parts.append(part)  # noqa: PERF401 - a comprehension would lose them on error


@pytest.fixture
async def transport() -> AsyncIterator[LeanHTTP11Transport]:
    t = LeanHTTP11Transport()
    try:
        yield t
    finally:
        await t.aclose()


# -- basics --------------------------------------------------------------------------------


async def test_chunked_and_keep_alive_reuse(
    start_raw: StartRaw, transport: LeanHTTP11Transport
) -> None:
    server = await start_raw(replies(chunked(b"data: a\n\n", b"data: b\n\n"), ok(b"hello")))
    response, parts = await fetch(transport, server.url + "/one")
    assert response.status_code == 200
    assert response.http_version == "HTTP/1.1"
    assert response.reason_phrase == "OK"
    assert response.headers["transfer-encoding"] == "chunked"
    assert b"".join(parts) == b"data: a\n\ndata: b\n\n"
    response, parts = await fetch(transport, server.url + "/two?q=1")
    assert b"".join(parts) == b"hello"
    assert server.accepts == 1
    assert transport.connects == 1
    assert server.requests[0].startswith(b"GET /one HTTP/1.1\r\n")
    assert server.requests[1].startswith(b"GET /two?q=1 HTTP/1.1\r\n")
    assert b"\r\nHost: 127.0.0.1:%d\r\n" % server.port in server.requests[0]


async def test_response_sent_whole_is_one_yield(
    start_raw: StartRaw, transport: LeanHTTP11Transport
) -> None:
    """Head and body in one write arrive in one read: the body is one bytes, no extra read."""
    server = await start_raw(replies(chunked(b"a", b"bb", b"ccc")))
    _, parts = await fetch(transport, server.url)
    assert parts == [b"abbccc"]


async def test_each_paced_write_is_its_own_yield(
    start_raw: StartRaw, transport: LeanHTTP11Transport
) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    server = await start_raw(replies((head, b"3\r\nabc\r\n", b"2\r\nde\r\n", b"0\r\n\r\n")))
    _, parts = await fetch(transport, server.url)
    # Separate writes are normally separate reads (exact read boundaries are tested with
    # ScriptedStream below); a read with no payload, like the terminator's, yields nothing.
    assert b"".join(parts) == b"abcde"
    assert all(parts)
    assert len(parts) <= 2


async def test_connection_close_response_is_not_reused(
    start_raw: StartRaw, transport: LeanHTTP11Transport
) -> None:
    server = await start_raw(
        replies(ok(b"one", b"Connection: close"), ok(b"two"), close_after=True)
    )
    assert b"".join((await fetch(transport, server.url))[1]) == b"one"
    assert b"".join((await fetch(transport, server.url))[1]) == b"two"
    assert server.accepts == 2


async def test_request_connection_close_is_not_reused(
    start_raw: StartRaw, transport: LeanHTTP11Transport
) -> None:
    server = await start_raw(replies(ok(b"one"), ok(b"two")))
    await fetch(transport, server.url, headers={"Connection": "close"})
    await fetch(transport, server.url)
    assert server.accepts == 2


async def test_http10_response_is_not_reused(
    start_raw: StartRaw, transport: LeanHTTP11Transport
) -> None:
    server = await start_raw(replies(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", ok(b"x")))
    response, parts = await fetch(transport, server.url)
    assert response.http_version == "HTTP/1.0"
    assert parts == [b"hi"]
    await fetch(transport, server.url)
    assert server.accepts == 2


async def test_close_delimited_body(start_raw: StartRaw, transport: LeanHTTP11Transport) -> None:
    server = await start_raw(
        replies((b"HTTP/1.1 200 OK\r\n\r\nfirst ", b"second"), ok(b"x"), close_after=True)
    )
    _, parts = await fetch(transport, server.url)
    assert b"".join(parts) == b"first second"
    await fetch(transport, server.url)
    assert server.accepts == 2


async def test_content_length_body_in_pieces(
    start_raw: StartRaw, transport: LeanHTTP11Transport
) -> None:
    server = await start_raw(
        replies((b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234", b"56789"), ok(b"again"))
    )
    _, parts = await fetch(transport, server.url)
    assert b"".join(parts) == b"0123456789"
    await fetch(transport, server.url)
    assert server.accepts == 1


async def test_interim_responses_are_skipped(
    start_raw: StartRaw, transport: LeanHTTP11Transport
) -> None:
    server = await start_raw(
        replies(
            (
                b"HTTP/1.1 100 Continue\r\n\r\n",
                b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n" + ok(b"final"),
            )
        )
    )
    response, parts = await fetch(transport, server.url, "POST", content=b"body")
    assert response.status_code == 200
    assert "link" not in response.headers
    assert parts == [b"final"]


async def test_head_and_204_have_no_body_and_keep_the_connection(
    start_raw: StartRaw, transport: LeanHTTP11Transport
) -> None:
    server = await start_raw(
        replies(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n",
            ok(b"after"),
        )
    )
    response, parts = await fetch(transport, server.url, "HEAD")
    assert response.headers["content-length"] == "1000"
    assert parts == []
    assert (await fetch(transport, server.url))[1] == []
    assert (await fetch(transport, server.url))[1] == []
    assert (await fetch(transport, server.url))[1] == [b"after"]
    assert server.accepts == 1


async def test_chunk_extensions_and_trailers(
    start_raw: StartRaw, transport: LeanHTTP11Transport
) -> None:
    response = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
        b'4;name=value;other\r\nabcd\r\n3 ; q="x"\r\nefg\r\n0;last\r\nX-Sum: 7\r\nX-B: 2\r\n\r\n'
    )
    server = await start_raw(replies(response, ok(b"next")))
    _, parts = await fetch(transport, server.url)
    assert b"".join(parts) == b"abcdefg"
    assert (await fetch(transport, server.url))[1] == [b"next"]
    assert server.accepts == 1


async def test_both_framings_use_chunked_and_never_reuse(
    start_raw: StartRaw, transport: LeanHTTP11Transport
) -> None:
    smuggle = chunked(b"abc", head=b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n")
    server = await start_raw(replies(smuggle, ok(b"x")))
    assert (await fetch(transport, server.url))[1] == [b"abc"]
    await fetch(transport, server.url)
    assert server.accepts == 2


async def test_extra_bytes_after_the_body_forbid_reuse(
    start_raw: StartRaw, transport: LeanHTTP11Transport
) -> None:
    server = await start_raw(replies(ok(b"abc") + b"junk", chunked(b"x") + b"junk", ok(b"y")))
    assert (await fetch(transport, server.url))[1] == [b"abc"]
    assert (await fetch(transport, server.url))[1] == [b"x"]
    assert (await fetch(transport, server.url))[1] == [b"y"]
    assert server.accepts == 3


async def test_extra_bytes_after_a_bodiless_response_forbid_reuse(
    start_raw: StartRaw, transport: LeanHTTP11Transport
) -> None:
    server = await start_raw(replies(b"HTTP/1.1 204 No Content\r\n\r\njunk", ok(b"y")))
    assert (await fetch(transport, server.url))[1] == []
    await fetch(transport, server.url)
    assert server.accepts == 2


# -- request framing -----------------------------------------------------------------------


async def test_request_body_and_framing_headers(
    start_raw: StartRaw, transport: LeanHTTP11Transport
) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"streamed "
        yield b"body"

    server = await start_raw(replies(ok(b"1"), ok(b"2"), ok(b"3")))
    await fetch(transport, server.url, "POST", json={"k": "v"})
    await fetch(transport, server.url, "POST", content=body())
    await fetch(transport, server.url)
    posted, streamed, get = server.requests
    head, _, payload = posted.partition(b"\r\n\r\n")
    assert payload == b'{"k":"v"}'
    assert head.lower().count(b"content-length: 9") == 1
    head, _, payload = streamed.partition(b"\r\n\r\n")
    assert payload == b"streamed body"
    assert b"transfer-encoding" not in head.lower()
    assert head.lower().count(b"content-length: 13") == 1
    assert b"content-length" not in get.lower()


async def test_a_request_larger_than_the_send_buffer_arrives_whole(
    start_raw: StartRaw, transport: LeanHTTP11Transport, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one-write fast path hands the kernel what fits; the rest goes through trio."""
    through_trio: list[bytes] = []  # what lens (not the test server) sent through trio
    send_all = trio.SocketStream.send_all

    async def counted(self: trio.SocketStream, data: bytes | bytearray | memoryview) -> None:
        if not bytes(data[:5]).startswith(b"HTTP/"):  # the server's responses
            through_trio.append(bytes(data))
        await send_all(self, data)

    monkeypatch.setattr(trio.SocketStream, "send_all", counted)
    big = bytes(range(256)) * (64 * 1024)  # 16 MiB: more than a loopback send buffer
    server = await start_raw(replies(ok(b"1"), ok(b"2")))
    await fetch(transport, server.url, "POST", content=big)
    await fetch(transport, server.url, "POST", content=b"small")  # same connection
    posted, small = server.requests
    assert posted.partition(b"\r\n\r\n")[2] == big
    assert small.partition(b"\r\n\r\n")[2] == b"small"
    assert server.accepts == 1
    # The big one's rest went through trio; the small one never did.
    assert len(through_trio) == 1
    assert 0 < len(through_trio[0]) < len(big)
    assert big.endswith(through_trio[0])


async def test_a_write_to_a_closed_connection_is_a_write_error() -> None:
    """A plain-TCP write that fails (the fast path's ``os.write``) is a WriteError."""
    left, right = socket.socketpair()
    right.close()
    conn = _Connection(trio.SocketStream(trio.socket.from_stdlib_socket(left)), (b"http", "x", 80))
    assert conn.fd >= 0
    with pytest.raises(httpx.WriteError, match="write failed"):
        await LeanHTTP11Transport._send(conn, b"x" * 1024, None)  # EPIPE: the peer is gone
    conn.close()


# -- protocol errors -----------------------------------------------------------------------


async def test_oversize_head(start_raw: StartRaw, transport: LeanHTTP11Transport) -> None:
    big = b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"x" * 70000 + b"\r\n\r\n"
    server = await start_raw(replies(big, b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70000))
    with pytest.raises(httpx.RemoteProtocolError, match="larger than"):
        await fetch(transport, server.url)
    with pytest.raises(httpx.RemoteProtocolError, match="larger than"):
        await fetch(transport, server.url)
    assert server.accepts == 2  # a failed exchange never leaves the connection for reuse


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nbad header line\r\n\r\n",
        b"SPDY/3 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n",
    ],
)
async def test_malformed_head(
    start_raw: StartRaw, transport: LeanHTTP11Transport, reply: bytes
) -> None:
    server = await start_raw(replies(reply, ok(b"fine")))
    with pytest.raises(httpx.RemoteProtocolError):
        await fetch(transport, server.url)
    assert (await fetch(transport, server.url))[1] == [b"fine"]
    assert server.accepts == 2


async def test_malformed_chunk_size(start_raw: StartRaw, transport: LeanHTTP11Transport) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    server = await start_raw(
        replies(
            (head + b"3\r\nabc\r\n", b"zz\r\n"),
            head + b"2\r\nde\r\nyy\r\n",  # good payload and the error in one read
            ok(b"fine"),
        )
    )
    response = await transport.handle_async_request(httpx.Request("GET", server.url))
    parts: list[bytes] = []
    with pytest.raises(httpx.RemoteProtocolError, match="chunk size"):
        await collect(parts, response.stream)
    await response.aclose()
    assert parts == [b"abc"]
    response = await transport.handle_async_request(httpx.Request("GET", server.url))
    parts = []
    with pytest.raises(httpx.RemoteProtocolError, match="chunk size") as info:
        await collect(parts, response.stream)
    await response.aclose()
    assert parts == [b"de"]
    assert type(info.value) is ProtocolViolation  # the error itself, not a PartialBody
    assert (await fetch(transport, server.url))[1] == [b"fine"]
    assert server.accepts == 3


async def _truncated(server: RawServer, transport: LeanHTTP11Transport) -> list[bytes]:
    response = await transport.handle_async_request(httpx.Request("GET", server.url))
    parts: list[bytes] = []
    with pytest.raises(httpx.RemoteProtocolError, match="peer closed connection without"):
        await collect(parts, response.stream)
    await response.aclose()
    return parts


async def test_eof_mid_chunked_body(start_raw: StartRaw, transport: LeanHTTP11Transport) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    server = await start_raw(
        replies((head + b"3\r\nabc\r\n", b"5\r\nde"), ok(b"fine"), close_after=True)
    )
    assert b"".join(await _truncated(server, transport)) == b"abcde"
    assert (await fetch(transport, server.url))[1] == [b"fine"]


async def test_eof_mid_content_length_body(
    start_raw: StartRaw, transport: LeanHTTP11Transport
) -> None:
    server = await start_raw(
        replies(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", close_after=True)
    )
    assert await _truncated(server, transport) == [b"abc"]


async def test_eof_before_any_response(start_raw: StartRaw, transport: LeanHTTP11Transport) -> None:
    async def hang_up(conn: ServerConn) -> None:
        await conn.read_request()

    server = await start_raw(hang_up)
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        await fetch(transport, server.url)


async def test_eof_mid_head(start_raw: StartRaw, transport: LeanHTTP11Transport) -> None:
    server = await start_raw(replies(b"HTTP/1.1 200 OK\r\nContent-", close_after=True))
    with pytest.raises(httpx.RemoteProtocolError, match="middle of the response head"):
        await fetch(transport, server.url)


async def test_reset_mid_body_is_read_error(
    start_raw: StartRaw, transport: LeanHTTP11Transport
) -> None:
    async def reset(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
        await trio.sleep(0.02)
        conn.reset()

    server = await start_raw(reset)
    response = await transport.handle_async_request(httpx.Request("GET", server.url))
    parts: list[bytes] = []
    with pytest.raises(httpx.ReadError) as info:
        await collect(parts, response.stream)
    await response.aclose()
    assert parts == [b"abc"]
    assert isinstance(info.value.__cause__, ConnectionResetError)


# -- connection lifecycle ------------------------------------------------------------------


async def test_idle_connection_closed_by_server_reconnects(
    start_raw: StartRaw, transport: LeanHTTP11Transport
) -> None:
    async def one_then_close(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.send(ok(b"ok"))  # keep-alive promised, then closed while idle

    server = await start_raw(one_then_close)
    await fetch(transport, server.url)
    with trio.fail_after(5):
        while server.closed < 1:
            await trio.sleep(0.001)
    await trio.sleep(0.01)  # let the FIN arrive
    assert (await fetch(transport, server.url))[1] == [b"ok"]
    assert server.accepts == 2
    assert transport.connects == 2


async def test_other_origin_reconnects(start_raw: StartRaw, transport: LeanHTTP11Transport) -> None:
    a = await start_raw(replies(ok(b"a"), ok(b"a2")))
    b = await start_raw(replies(ok(b"b")))
    assert (await fetch(transport, a.url))[1] == [b"a"]
    assert (await fetch(transport, b.url))[1] == [b"b"]
    assert (await fetch(transport, a.url))[1] == [b"a2"]
    assert (a.accepts, b.accepts) == (2, 1)


async def test_connection_refused(transport: LeanHTTP11Transport) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(httpx.ConnectError) as info:
        await fetch(transport, f"http://127.0.0.1:{port}/")
    assert isinstance(info.value.__cause__, OSError)


async def test_an_ip_address_is_connected_without_the_resolver(
    start_raw: StartRaw, transport: LeanHTTP11Transport, monkeypatch: pytest.MonkeyPatch
) -> None:
    """127.0.0.1 and ::1 are connected directly; a name still goes through trio's opener."""
    opened: list[str] = []
    real = trio.open_tcp_stream

    async def recorded(host: str, port: int, **kw: object) -> trio.SocketStream:
        opened.append(host)
        return await real(host, port)

    monkeypatch.setattr(trio, "open_tcp_stream", recorded)
    server = await start_raw(replies(ok(b"4"), ok(b"6")))
    _, parts = await fetch(transport, server.url)
    assert b"".join(parts) == b"4"
    assert opened == []
    assert http11._ip_family("127.0.0.1") == socket.AF_INET
    assert http11._ip_family("::1") == socket.AF_INET6
    assert http11._ip_family("localhost") is None
    assert http11._ip_family("fe80::1%eth0") is None  # a zone: trio's opener handles it
    await transport.aclose()
    _, parts = await fetch(transport, f"http://localhost:{server.port}/")
    assert b"".join(parts) == b"6"
    assert opened == ["localhost"]


async def test_a_refused_ip_connect_says_so(transport: LeanHTTP11Transport) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(httpx.ConnectError, match=f"cannot connect to 127.0.0.1:{port}: .*refused"):
        await fetch(transport, f"http://127.0.0.1:{port}/")


async def test_connect_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    async def never(*args: object, **kw: object) -> trio.SocketStream:
        await trio.sleep_forever()
        raise AssertionError  # pragma: no cover

    monkeypatch.setattr(http11, "_open_tcp", never)
    t = LeanHTTP11Transport(connect_timeout=0.01)
    with pytest.raises(httpx.ConnectTimeout) as info:
        await fetch(t, "http://127.0.0.1:9/")
    assert isinstance(info.value.__cause__, trio.TooSlowError)


async def test_tls_handshake_timeout_uses_request_connect_timeout(start_raw: StartRaw) -> None:
    """A server that accepts but never answers the ClientHello: the handshake times out."""

    async def silent(conn: ServerConn) -> None:
        await conn.wait_eof()

    server = await start_raw(silent)
    t = LeanHTTP11Transport()
    request = httpx.Request(
        "GET",
        f"https://127.0.0.1:{server.port}/",
        extensions={"timeout": httpx.Timeout(None, connect=0.05).as_dict()},
    )
    with pytest.raises(httpx.ConnectTimeout):
        await t.handle_async_request(request)
    await t.aclose()


async def test_unsupported_scheme(transport: LeanHTTP11Transport) -> None:
    with pytest.raises(httpx.UnsupportedProtocol):
        await fetch(transport, "ftp://127.0.0.1/")


async def test_second_request_while_open_is_misuse(
    start_raw: StartRaw, transport: LeanHTTP11Transport
) -> None:
    server = await start_raw(replies(ok(b"one"), ok(b"two")))
    response = await transport.handle_async_request(httpx.Request("GET", server.url))
    with pytest.raises(RuntimeError, match="one request at a time"):
        await transport.handle_async_request(httpx.Request("GET", server.url))
    await response.aclose()  # unread body: the connection is closed, not reused
    assert (await fetch(transport, server.url))[1] == [b"two"]
    assert server.accepts == 2


async def test_cancelled_mid_body_closes_and_next_request_works(
    start_raw: StartRaw, transport: LeanHTTP11Transport
) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"

    async def handler(conn: ServerConn) -> None:
        if server.accepts == 1:
            await conn.read_request()
            await conn.send(head + b"3\r\nabc\r\n")
            await conn.wait_eof()  # the client must hang up on its own
        else:
            await replies(ok(b"fresh"))(conn)

    server = await start_raw(handler)
    response = await transport.handle_async_request(httpx.Request("GET", server.url))
    parts: list[bytes] = []
    with trio.move_on_after(0.05) as scope:
        await collect(parts, response.stream)
    assert scope.cancelled_caught
    await response.aclose()
    assert parts == [b"abc"]
    with trio.fail_after(5):
        while server.closed < 1:
            await trio.sleep(0.001)
    assert (await fetch(transport, server.url))[1] == [b"fresh"]
    assert server.accepts == 2


async def test_cancelled_waiting_for_head(
    start_raw: StartRaw, transport: LeanHTTP11Transport
) -> None:
    async def handler(conn: ServerConn) -> None:
        if server.accepts == 1:
            await conn.read_request()
            await conn.wait_eof()
        else:
            await replies(ok(b"fresh"))(conn)

    server = await start_raw(handler)
    with trio.move_on_after(0.05):
        await transport.handle_async_request(httpx.Request("GET", server.url))
    assert (await fetch(transport, server.url))[1] == [b"fresh"]
    assert server.accepts == 2


async def test_transport_aclose_during_response(
    start_raw: StartRaw, transport: LeanHTTP11Transport
) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n"
    server = await start_raw(replies((head + b"abc", b"def")))
    response = await transport.handle_async_request(httpx.Request("GET", server.url))
    stream = response.stream
    assert isinstance(stream, httpx.AsyncByteStream)
    iterator = stream.__aiter__()
    assert await iterator.__anext__() == b"abc"
    await transport.aclose()
    with pytest.raises(httpx.ReadError):
        await iterator.__anext__()
    await response.aclose()


async def test_stream_iterated_twice_or_after_close(
    start_raw: StartRaw, transport: LeanHTTP11Transport
) -> None:
    server = await start_raw(replies(ok(b"abc"), ok(b"def")))
    response, _ = await fetch(transport, server.url)
    with pytest.raises(httpx.StreamConsumed):
        async for _ in response.stream:  # type: ignore[union-attr]
            pass  # pragma: no cover
    response = await transport.handle_async_request(httpx.Request("GET", server.url))
    await response.aclose()
    await response.stream.aclose()  # type: ignore[union-attr]  # idempotent; httpx guards its own
    with pytest.raises(httpx.StreamClosed):
        async for _ in response.stream:  # type: ignore[union-attr]
            pass  # pragma: no cover


# -- timeouts from the request (httpx.Timeout) ---------------------------------------------


async def test_read_timeout_on_head_and_body(start_raw: StartRaw) -> None:
    async def slow(conn: ServerConn) -> None:
        await conn.read_request()
        if server.accepts == 2:
            await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabc")
        await conn.wait_eof()

    server = await start_raw(slow)
    async with httpx.AsyncClient(
        transport=LeanHTTP11Transport(), timeout=httpx.Timeout(None, read=0.05)
    ) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(server.url)
        async with client.stream("GET", server.url) as response:
            parts: list[bytes] = []
            with pytest.raises(httpx.ReadTimeout):
                await collect(parts, response.aiter_raw())
        assert parts == [b"abc"]


async def test_body_with_read_timeout_completes(start_raw: StartRaw) -> None:
    server = await start_raw(replies((chunked(b"x")[:-5], b"0\r\n\r\n")))
    async with httpx.AsyncClient(
        transport=LeanHTTP11Transport(), timeout=httpx.Timeout(5.0)
    ) as client:
        response = await client.get(server.url)
        assert response.content == b"x"


async def test_write_timeout(start_raw: StartRaw) -> None:
    async def never_reads(conn: ServerConn) -> None:
        await trio.sleep_forever()

    server = await start_raw(never_reads)
    t = LeanHTTP11Transport()
    request = httpx.Request(
        "POST",
        server.url,
        content=b"x" * (64 * 1024 * 1024),
        extensions={"timeout": httpx.Timeout(None, write=0.1).as_dict()},
    )
    with pytest.raises(httpx.WriteTimeout):
        await t.handle_async_request(request)
    await t.aclose()


# -- through httpx.AsyncClient, against lens-sim ------------------------------------------


@dataclass
class Sim:
    url: str
    server: SimServer
    accepts: list[int]


@pytest.fixture
async def sim(nursery: trio.Nursery) -> Sim:
    server = SimServer(SimSettings(ttft_s=0.0, itl_s=0.001, output_tokens=12))
    accepts = [0]

    async def counting(stream: trio.SocketStream) -> None:
        accepts[0] += 1
        await server.handle(stream)

    await nursery.start(server.pacer.run)
    listeners = await nursery.start(trio.serve_tcp, counting, 0)
    port = listeners[0].socket.getsockname()[1]
    return Sim(f"http://127.0.0.1:{port}/v1/chat/completions", server, accepts)


def chat(fault: str | None = None) -> dict[str, object]:
    headers = {"accept-encoding": "identity"}
    if fault:
        headers["x-lens-sim-fault"] = fault
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    return {"json": body, "headers": headers}


def sse_content(body: bytes) -> tuple[str, list[str]]:
    events = [e.removeprefix(b"data: ") for e in body.split(b"\n\n") if e]
    text = ""
    for event in events[:-1]:
        for choice in json.loads(event)["choices"]:
            text += choice["delta"].get("content", "")
    return text, [e.decode() for e in events[-1:]]


async def test_sim_stream_through_async_client(sim: Sim) -> None:
    transport = LeanHTTP11Transport(connect_timeout=5.0)
    async with httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(None)) as client:
        for _ in range(3):
            request = client.build_request("POST", sim.url, **chat())  # type: ignore[arg-type]
            response = await client.send(request, stream=True)
            try:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                parts = [part async for part in response.aiter_raw()]
            finally:
                await response.aclose()
            text, last = sse_content(b"".join(parts))
            assert text == completion_text(12)
            assert last == ["[DONE]"]
            assert len(parts) >= 2  # paced tokens arrive in separate reads
    assert sim.accepts[0] == 1
    assert transport.connects == 1


async def test_sim_matches_default_transport_bytes(sim: Sim) -> None:
    async def body(client: httpx.AsyncClient) -> bytes:
        request = client.build_request("POST", sim.url, **chat())  # type: ignore[arg-type]
        response = await client.send(request, stream=True)
        try:
            return b"".join([part async for part in response.aiter_raw()])
        finally:
            await response.aclose()

    async with httpx.AsyncClient(transport=LeanHTTP11Transport()) as lean:
        ours = await body(lean)
    async with httpx.AsyncClient() as default:
        theirs = await body(default)
    assert sse_content(ours) == sse_content(theirs)
    assert len(ours) == len(theirs)


@pytest.mark.parametrize(
    ("fault", "status"), [("500", 500), ("429", 429), ("empty", 200), ("midstream-error", 200)]
)
async def test_sim_faults_keep_the_connection(sim: Sim, fault: str, status: int) -> None:
    async with httpx.AsyncClient(transport=LeanHTTP11Transport()) as client:
        response = await client.post(sim.url, **chat(fault))  # type: ignore[arg-type]
        assert response.status_code == status
        response = await client.post(sim.url, **chat())  # type: ignore[arg-type]
        assert sse_content(response.content)[0] == completion_text(12)
    assert sim.accepts[0] == 1


async def test_sim_cut_stream(sim: Sim) -> None:
    async with httpx.AsyncClient(transport=LeanHTTP11Transport()) as client:
        request = client.build_request("POST", sim.url, **chat("cut"))  # type: ignore[arg-type]
        response = await client.send(request, stream=True)
        parts: list[bytes] = []
        with pytest.raises(httpx.RemoteProtocolError):
            await collect(parts, response.aiter_raw())
        await response.aclose()
        assert b"".join(parts).startswith(b"data: ")
        response = await client.post(sim.url, **chat())  # type: ignore[arg-type]
        assert sse_content(response.content)[0] == completion_text(12)
    assert sim.accepts[0] == 2


async def test_sim_hang_cancelled_by_deadline(sim: Sim) -> None:
    async with httpx.AsyncClient(transport=LeanHTTP11Transport()) as client:
        request = client.build_request("POST", sim.url, **chat("hang"))  # type: ignore[arg-type]
        with trio.move_on_after(0.05) as scope:
            response = await client.send(request, stream=True)
            try:
                async for _ in response.aiter_raw():
                    pass  # pragma: no cover - the sim sends nothing
            finally:
                await response.aclose()
        assert scope.cancelled_caught
        response = await client.post(sim.url, **chat())  # type: ignore[arg-type]
        assert response.status_code == 200
    assert sim.accepts[0] == 2


# -- TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def test_tls_round_trip(nursery: trio.Nursery, ca: trustme.CA) -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    server_ctx.set_alpn_protocols(["http/1.1"])
    accepts = [0]

    async def handler(stream: trio.SSLStream[trio.SocketStream]) -> None:
        accepts[0] += 1
        conn = ServerConn(stream, RawServer(0))  # type: ignore[arg-type]
        try:
            while await conn.read_request() is not None:
                alpn = stream.selected_alpn_protocol() or "none"
                await conn.send(chunked(b"secure ", alpn.encode()))
        except trio.BrokenResourceError:
            pass

    listeners = await trio.open_ssl_over_tcp_listeners(0, server_ctx, host="127.0.0.1")
    await nursery.start(trio.serve_listeners, handler, listeners)
    port = cast(trio.SocketListener, listeners[0].transport_listener).socket.getsockname()[1]

    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    transport = LeanHTTP11Transport(ssl_context=client_ctx, connect_timeout=5.0)
    async with httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(None)) as client:
        for _ in range(2):
            async with client.stream("GET", f"https://127.0.0.1:{port}/") as response:
                parts = [part async for part in response.aiter_raw()]
            assert b"".join(parts) == b"secure http/1.1"
    assert accepts[0] == 1


async def test_tls_untrusted_certificate_is_connect_error(
    nursery: trio.Nursery, ca: trustme.CA
) -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)

    async def handler(stream: trio.SSLStream[trio.SocketStream]) -> None:
        with pytest.raises(trio.BrokenResourceError):
            await stream.do_handshake()

    listeners = await trio.open_ssl_over_tcp_listeners(0, server_ctx, host="127.0.0.1")
    await nursery.start(trio.serve_listeners, handler, listeners)
    port = cast(trio.SocketListener, listeners[0].transport_listener).socket.getsockname()[1]
    transport = LeanHTTP11Transport()  # default context: certifi's CAs, not ours
    with pytest.raises(httpx.ConnectError) as info:
        await fetch(transport, f"https://127.0.0.1:{port}/")
    assert isinstance(info.value.__cause__, trio.BrokenResourceError)


# -- exact read boundaries through the whole response path ---------------------------------


class ScriptedStream(trio.abc.Stream):
    """A stream that returns ``pieces`` one per ``receive_some``: reads are exact."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = iter(pieces)
        self.reads = 0
        self.sent = b""
        self.fail_send = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        if self.fail_send:
            raise trio.BrokenResourceError("scripted")
        self.sent += bytes(data)

    async def wait_send_all_might_not_block(self) -> None:  # pragma: no cover - unused
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        self.reads += 1
        piece = next(self.pieces, b"")
        assert max_bytes is None or len(piece) <= max_bytes
        return piece

    async def aclose(self) -> None:  # pragma: no cover - the transport closes sockets only
        await trio.lowlevel.checkpoint()


def scripted_transport(stream: ScriptedStream) -> LeanHTTP11Transport:
    transport = LeanHTTP11Transport()
    transport._conn = _Connection(stream, (b"http", "scripted", 80))
    return transport


def chunked_wire(payloads: list[bytes]) -> tuple[bytes, list[bool]]:
    wire = bytearray(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    mask = [False] * len(wire)
    for p in payloads:
        size = b"%x\r\n" % len(p)
        wire += size + p + b"\r\n"
        mask += [False] * len(size) + [True] * len(p) + [False, False]
    wire += b"0\r\n\r\n"
    mask += [False] * 5
    return bytes(wire), mask


def _pieces(wire: bytes, cuts: list[int]) -> Iterator[tuple[int, int]]:
    edges = [0, *sorted({c for c in cuts if 0 < c < len(wire)}), len(wire)]
    return itertools.pairwise(edges)


@settings(max_examples=200, deadline=None)
@given(
    payloads=st.lists(st.binary(min_size=1, max_size=30), max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=25),
)
def test_every_yield_is_exactly_one_reads_payload(payloads: list[bytes], cuts: list[int]) -> None:
    wire, mask = chunked_wire(payloads)
    bounds = list(_pieces(wire, cuts))
    expected: list[tuple[int, bytes]] = []
    for k, (a, b) in enumerate(bounds, start=1):
        got = bytes(x for x, m in zip(wire[a:b], mask[a:b], strict=True) if m)
        if got:
            expected.append((k, got))

    async def main() -> list[tuple[int, bytes]]:
        stream = ScriptedStream([wire[a:b] for a, b in bounds])
        transport = scripted_transport(stream)
        response = await transport.handle_async_request(httpx.Request("GET", "http://scripted/"))
        seen = [(stream.reads, part) async for part in response.stream]  # type: ignore[union-attr]
        await response.aclose()
        assert stream.sent.startswith(b"GET / HTTP/1.1\r\n")
        assert transport._conn is not None  # complete body, keep-alive: kept
        return seen

    assert trio.run(main) == expected


async def test_every_byte_boundary_over_tcp(start_raw: StartRaw) -> None:
    """Split a real response at each byte: the decoded body is always the same."""
    wire, _ = chunked_wire([b"data: one\n\n", b"data: two\n\n"])
    cut = iter(range(1, len(wire)))

    async def split_server(conn: ServerConn) -> None:
        while await conn.read_request() is not None:
            k = next(cut)
            await conn.send(wire[:k], wire[k:], pause=0.001)

    server = await start_raw(split_server)
    transport = LeanHTTP11Transport()
    for _ in range(1, len(wire)):
        _, parts = await fetch(transport, server.url)
        assert b"".join(parts) == b"data: one\n\ndata: two\n\n"
    assert server.accepts == 1
    await transport.aclose()


async def test_one_byte_reads_over_tcp(start_raw: StartRaw) -> None:
    wire, _ = chunked_wire([b"abc", b"defgh"])
    server = await start_raw(replies(wire, wire))
    transport = LeanHTTP11Transport(read_size=1)
    for _ in range(2):
        _, parts = await fetch(transport, server.url)
        assert parts == [bytes([c]) for c in b"abcdefgh"]
    assert server.accepts == 1
    await transport.aclose()


async def test_write_error_is_write_error() -> None:
    stream = ScriptedStream([])
    stream.fail_send = True
    transport = scripted_transport(stream)
    with pytest.raises(httpx.WriteError):
        await transport.handle_async_request(httpx.Request("GET", "http://scripted/"))
    assert transport._conn is None


async def test_read_error_on_stream_path() -> None:
    class Broken(ScriptedStream):
        async def receive_some(self, max_bytes: int | None = None) -> bytes:
            raise trio.BrokenResourceError("scripted")

    transport = scripted_transport(Broken([]))
    with pytest.raises(httpx.ReadError):
        await transport.handle_async_request(httpx.Request("GET", "http://scripted/"))


async def test_error_in_a_later_read_after_good_payload() -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    stream = ScriptedStream([head, b"2\r\nde\r\nzz\r\n"])
    transport = scripted_transport(stream)
    response = await transport.handle_async_request(httpx.Request("GET", "http://scripted/"))
    parts: list[bytes] = []
    with pytest.raises(httpx.RemoteProtocolError, match="chunk size"):
        await collect(parts, response.stream)
    await response.aclose()
    assert parts == [b"de"]
    assert transport._conn is None


def test_read_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="read_size"):
        LeanHTTP11Transport(read_size=0)


async def test_warm_connects_ahead_and_the_request_reuses_it(
    start_raw: StartRaw, transport: LeanHTTP11Transport
) -> None:
    server = await start_raw(replies(ok(b"hello")))
    await transport.warm(httpx.URL(server.url + "/x"))
    await transport.warm(httpx.URL(server.url + "/x"))  # already connected: nothing more
    assert transport.connects == 1
    response, parts = await fetch(transport, server.url + "/x")
    assert response.status_code == 200
    assert b"".join(parts) == b"hello"
    assert server.accepts == 1
    assert transport.connects == 1


async def test_warm_leaves_a_refused_connect_to_the_request(transport: LeanHTTP11Transport) -> None:
    await transport.warm(httpx.URL("http://127.0.0.1:9/"))
    await transport.warm(httpx.URL("ftp://127.0.0.1/"))  # not HTTP: ignored
    assert transport.connects == 0
    with pytest.raises(httpx.ConnectError):
        await transport.handle_async_request(httpx.Request("GET", "http://127.0.0.1:9/"))

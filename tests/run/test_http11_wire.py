"""LeanHTTP11Transport on odd but real wire input, over loopback sockets: LF-only heads,
obs-fold, content codings, 101, 3xx, and the response and SSE event size bounds."""

from __future__ import annotations

import contextlib
import json
import zlib
from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from lens.providers.sse import SseDecoder, SseEventTooLarge
from lens.run.http11 import DEFAULT_MAX_RESPONSE_BYTES, LeanHTTP11Transport
from lens.run.http11_parse import ProtocolViolation
from tests.run import test_http11 as base
from tests.run.test_http11 import (
    ScriptedStream,
    ServerConn,
    StartRaw,
    chunked,
    collect,
    fetch,
    ok,
    replies,
    scripted_transport,
)

# The fixtures of the transport's main test module, shared.
start_raw = base.start_raw
transport = base.transport

# Each await in these tests is bounded: a head the transport fails to see the end of
# would otherwise wait forever (no httpx timeout on the fast path).
DEADLINE_S = 10.0


def gzip_stream(pieces: list[bytes], *, wbits: int = 16 + zlib.MAX_WBITS) -> list[bytes]:
    """``pieces`` compressed, each flushed (Z_SYNC_FLUSH) into its own output piece, as a
    compressing proxy sends an event stream."""
    c = zlib.compressobj(wbits=wbits)
    out = [c.compress(p) + c.flush(zlib.Z_SYNC_FLUSH) for p in pieces]
    out[-1] += c.flush()
    return out


def events(n: int) -> list[bytes]:
    return [b'data: {"choices":[{"delta":{"content":"t%d"}}]}\n\n' % k for k in range(n)]


# -- heads ---------------------------------------------------------------------------------


async def test_lf_only_head(start_raw: StartRaw, transport: LeanHTTP11Transport) -> None:
    server = await start_raw(
        replies(
            b"HTTP/1.1 200 OK\nContent-Type: text/plain\nContent-Length: 5\n\nhello",
            b"HTTP/1.1 100 Continue\n\nHTTP/1.1 200 OK\r\nContent-Length: 2\n\r\nhi",
        )
    )
    with trio.fail_after(DEADLINE_S):
        response, parts = await fetch(transport, server.url)
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/plain"
        assert b"".join(parts) == b"hello"
        response, parts = await fetch(transport, server.url)  # kept alive, mixed line ends
        assert b"".join(parts) == b"hi"
    assert server.accepts == 1


async def test_lf_only_head_split_at_every_byte(start_raw: StartRaw) -> None:
    wire = b"HTTP/1.1 200 OK\nX-A: 1\nContent-Length: 3\n\nabc"
    cut = iter(range(1, len(wire)))

    async def split_server(conn: ServerConn) -> None:
        while await conn.read_request() is not None:
            k = next(cut)
            await conn.send(wire[:k], wire[k:], pause=0.001)

    server = await start_raw(split_server)
    async with LeanHTTP11Transport() as t:
        with trio.fail_after(DEADLINE_S):
            for _ in range(1, len(wire)):
                response, parts = await fetch(t, server.url)
                assert response.headers["x-a"] == "1"
                assert b"".join(parts) == b"abc"


async def test_obs_fold_is_unfolded(start_raw: StartRaw, transport: LeanHTTP11Transport) -> None:
    server = await start_raw(
        replies(
            b"HTTP/1.1 200 OK\r\nX-Long: first\r\n  second\r\n\tthird\r\nContent-Length: 0\r\n\r\n"
        )
    )
    response, _ = await fetch(transport, server.url)
    assert response.headers["x-long"] == "first second third"


@pytest.mark.parametrize(
    ("reply", "match"),
    [
        (b"HTTP/1.1 200 OK\r\nX\0Y: 1\r\n\r\n", "illegal character"),
        (b"HTTP/1.1 200 OK\r\nX Y: 1\r\n\r\n", "malformed header line"),
        (b"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", "bare CR"),
        (b"HTTP/1.1 099 Low\r\n\r\n", "outside 100-599"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "more than one Transfer-Encoding",
        ),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n", "'identity'"),
    ],
)
async def test_what_h11_rejects_is_a_protocol_violation(
    start_raw: StartRaw, transport: LeanHTTP11Transport, reply: bytes, match: str
) -> None:
    server = await start_raw(replies(reply, ok(b"fine")))
    with pytest.raises(ProtocolViolation, match=match):
        await fetch(transport, server.url)
    assert (await fetch(transport, server.url))[1] == [b"fine"]
    assert server.accepts == 2  # the broken exchange's connection is never reused


# -- content codings -----------------------------------------------------------------------


async def test_gzip_sse_is_decoded_per_read(
    start_raw: StartRaw, transport: LeanHTTP11Transport
) -> None:
    """A proxy compressing an event stream: each flushed piece arrives in its own write
    and comes out decoded in its own read, so arrival stamps stay per event."""
    sent = events(4)
    compressed = gzip_stream(sent)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n"
    wire = chunked(*compressed, head=head)
    first_chunk = wire.index(b"\r\n\r\n") + 4
    body_writes = [b"%x\r\n%s\r\n" % (len(p), p) for p in compressed]

    async def paced(conn: ServerConn) -> None:
        while await conn.read_request() is not None:
            await conn.send(wire[:first_chunk], *body_writes, b"0\r\n\r\n", pause=0.02)

    server = await start_raw(paced)
    with trio.fail_after(DEADLINE_S):
        response, parts = await fetch(transport, server.url)
    assert response.status_code == 200
    assert "content-encoding" not in response.headers  # delivered decoded
    assert b"".join(parts) == b"".join(sent)
    # Writes 20 ms apart are separate reads on loopback, each one whole event.
    assert len(parts) > 1
    assert all(part.count(b"\n\n") >= 1 and part.endswith(b"\n\n") for part in parts)
    assert (await fetch(transport, server.url))[0].status_code == 200
    assert server.accepts == 1  # a complete gzip body leaves the connection reusable


async def test_gzip_reads_map_one_to_one_to_decoded_yields() -> None:
    """Exact reads (a scripted stream): read k's compressed bytes come out in read k."""
    sent = events(5)
    compressed = gzip_stream(sent)
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % sum(
        map(len, compressed)
    )
    stream = ScriptedStream([head, *compressed])
    t = scripted_transport(stream)
    response = await t.handle_async_request(httpx.Request("GET", "http://scripted/"))
    seen = [(stream.reads, part) async for part in response.stream]  # type: ignore[union-attr]
    await response.aclose()
    assert seen == [(k + 2, e) for k, e in enumerate(sent)]


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS], ids=["zlib", "raw"])
async def test_deflate(start_raw: StartRaw, transport: LeanHTTP11Transport, wbits: int) -> None:
    sent = events(3)
    body = b"".join(gzip_stream(sent, wbits=wbits))
    server = await start_raw(replies(ok(body, b"Content-Encoding: deflate")))
    response, parts = await fetch(transport, server.url)
    assert b"".join(parts) == b"".join(sent)
    assert "content-length" not in response.headers  # it measured the encoded body


async def test_gzip_error_body_is_readable(start_raw: StartRaw) -> None:
    error = json.dumps({"error": {"message": "rate limited", "type": "requests"}}).encode()
    body = b"".join(gzip_stream([error]))
    reply = b"HTTP/1.1 429 Too Many Requests\r\nContent-Encoding: gzip\r\n"
    reply += b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    server = await start_raw(replies(reply + body, reply + body))
    async with httpx.AsyncClient(transport=LeanHTTP11Transport()) as client:
        # The request layer's path for error bodies: aiter_raw.
        async with client.stream("POST", server.url, json={}) as response:
            raw = b"".join([part async for part in response.aiter_raw()])
        assert response.status_code == 429
        assert json.loads(raw)["error"]["message"] == "rate limited"
        # httpx's own decoding sees no Content-Encoding left: no second gunzip.
        response = await client.post(server.url, json={})
        assert response.json()["error"]["message"] == "rate limited"


async def test_gzip_chunked_transfer_encoding_is_rejected(
    start_raw: StartRaw, transport: LeanHTTP11Transport
) -> None:
    body = b"".join(gzip_stream([b"data: x\n\n"]))
    te = chunked(body, head=b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n")
    te = te.replace(b"Transfer-Encoding: chunked\r\n", b"", 1)  # chunked() adds its own
    assert te.count(b"Transfer-Encoding") == 1
    server = await start_raw(replies(te, ok(b"fine")))
    with pytest.raises(ProtocolViolation, match="unsupported Transfer-Encoding 'gzip, chunked'"):
        await fetch(transport, server.url)
    assert (await fetch(transport, server.url))[1] == [b"fine"]
    assert server.accepts == 2


@pytest.mark.parametrize("coding", [b"br", b"zstd", b"compress", b"gzip, br"])
async def test_unsupported_content_encoding_is_rejected(
    start_raw: StartRaw, transport: LeanHTTP11Transport, coding: bytes
) -> None:
    server = await start_raw(replies(ok(b"\x0b\x02\x80x\x03", b"Content-Encoding: " + coding)))
    with pytest.raises(
        ProtocolViolation,
        match=rf"unsupported Content-Encoding '{coding.decode()}' \(lens asks for identity\)",
    ):
        await fetch(transport, server.url)
    assert transport._conn is None


async def test_truncated_gzip_is_a_protocol_violation(
    start_raw: StartRaw, transport: LeanHTTP11Transport
) -> None:
    body = b"".join(gzip_stream(events(3)))[:-6]  # the framing is complete, the gzip is not
    server = await start_raw(replies(ok(body, b"Content-Encoding: gzip")))
    parts: list[bytes] = []
    response = await transport.handle_async_request(httpx.Request("GET", server.url))
    with pytest.raises(ProtocolViolation, match="truncated gzip body"):
        await collect(parts, response.stream)
    await response.aclose()


async def test_gzip_cut_by_the_peer_is_a_cut_stream(
    start_raw: StartRaw, transport: LeanHTTP11Transport
) -> None:
    compressed = gzip_stream(events(3))
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 999\r\n\r\n"
    server = await start_raw(replies((head + compressed[0], compressed[1]), close_after=True))
    parts: list[bytes] = []
    response = await transport.handle_async_request(httpx.Request("GET", server.url))
    with pytest.raises(httpx.RemoteProtocolError, match="peer closed connection") as info:
        await collect(parts, response.stream)
    await response.aclose()
    assert not isinstance(info.value, ProtocolViolation)
    assert b"".join(parts) == b"".join(events(2))  # what arrived was delivered


# -- status codes --------------------------------------------------------------------------


async def test_101_switching_protocols_is_a_protocol_violation(
    start_raw: StartRaw, transport: LeanHTTP11Transport
) -> None:
    server = await start_raw(
        replies(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello",
            ok(b"fine"),
        )
    )
    with pytest.raises(ProtocolViolation, match="101 Switching Protocols"):
        await fetch(transport, server.url)
    assert (await fetch(transport, server.url))[1] == [b"fine"]
    assert server.accepts == 2  # the upgraded connection is not HTTP any more: dropped


async def test_interim_then_final_is_the_final(
    start_raw: StartRaw, transport: LeanHTTP11Transport
) -> None:
    server = await start_raw(
        replies(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n" + ok(b"final"))
    )
    response, parts = await fetch(transport, server.url)
    assert (response.status_code, parts) == (200, [b"final"])


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirects_are_returned_not_followed(
    start_raw: StartRaw, transport: LeanHTTP11Transport, status: int
) -> None:
    reply = (
        b"HTTP/1.1 %d Moved\r\nLocation: http://elsewhere.test/v1\r\nContent-Length: 5\r\n\r\nmoved"
    )
    server = await start_raw(replies(reply % status, ok(b"next")))
    response, parts = await fetch(transport, server.url, "POST", content=b"{}")
    assert response.status_code == status
    assert response.headers["location"] == "http://elsewhere.test/v1"
    assert parts == [b"moved"]
    assert len(server.requests) == 1  # nothing followed
    assert (await fetch(transport, server.url))[1] == [b"next"]
    assert server.accepts == 1


# -- bounds --------------------------------------------------------------------------------


def test_default_max_response_bytes_is_64_mib() -> None:
    assert DEFAULT_MAX_RESPONSE_BYTES == 64 * 1024 * 1024
    with pytest.raises(ValueError, match="max_response_bytes"):
        LeanHTTP11Transport(max_response_bytes=0)


@pytest.mark.parametrize("framing", ["chunked", "length", "close"])
async def test_response_larger_than_the_limit(start_raw: StartRaw, framing: str) -> None:
    piece = b"x" * 1000
    if framing == "chunked":
        reply: bytes | tuple[bytes, ...] = chunked(*[piece] * 5)
    elif framing == "length":
        reply = ok(piece * 5)
    else:
        reply = b"HTTP/1.1 200 OK\r\n\r\n" + piece * 5
    server = await start_raw(replies(reply, close_after=True))
    async with LeanHTTP11Transport(max_response_bytes=4096, read_size=1000) as t:
        response = await t.handle_async_request(httpx.Request("GET", server.url))
        parts: list[bytes] = []
        with pytest.raises(
            ProtocolViolation,
            match=r"response body larger than 4096 bytes \(limits.max_response_bytes\)",
        ):
            await collect(parts, response.stream)
        await response.aclose()
    assert sum(map(len, parts)) <= 4096


async def test_response_exactly_at_the_limit_passes(start_raw: StartRaw) -> None:
    server = await start_raw(replies(ok(b"y" * 4096)))
    async with LeanHTTP11Transport(max_response_bytes=4096) as t:
        assert b"".join((await fetch(t, server.url))[1]) == b"y" * 4096


async def test_gzip_bomb_is_bounded(start_raw: StartRaw) -> None:
    bomb = zlib.compressobj(9, wbits=16 + zlib.MAX_WBITS)
    body = bomb.compress(b"\0" * (16 << 20)) + bomb.flush()  # 16 MiB from ~16 KiB
    server = await start_raw(replies(ok(body, b"Content-Encoding: gzip")))
    async with LeanHTTP11Transport(max_response_bytes=1 << 20) as t:
        with pytest.raises(ProtocolViolation, match=r"larger than 1 MiB"):
            await fetch(t, server.url)


async def feed_all(parts: AsyncIterator[bytes], decoder: SseDecoder) -> None:
    async for part in parts:
        decoder.feed(part)


async def test_endless_sse_line_is_bounded_by_max_event_bytes(start_raw: StartRaw) -> None:
    """A server that streams one line forever: the request ends at max_event_bytes."""

    async def endless(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: ")
        while True:
            await conn.send(b"x" * 65536)

    server = await start_raw(endless)
    decoder = SseDecoder(max_event_bytes=4 << 20)
    async with LeanHTTP11Transport() as t:
        response = await t.handle_async_request(httpx.Request("GET", server.url))
        assert isinstance(response.stream, httpx.AsyncByteStream)
        async with contextlib.aclosing(response.stream.__aiter__()) as parts:  # type: ignore[type-var]
            with trio.fail_after(60), pytest.raises(SseEventTooLarge, match="max_event_bytes"):
                await feed_all(parts, decoder)
        await response.aclose()

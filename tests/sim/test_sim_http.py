"""The hand-written HTTP/1.1 layer: keep-alive, pipelining, partial reads, rejections."""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing

from lens.sim.http import MAX_BODY_BYTES, MAX_HEAD_BYTES, HttpError, RequestReader
from tests.sim.conftest import LiveSim
from tests.sim.rawhttp import CHAT, Connection, chat_body


async def test_keep_alive_serves_sequential_requests_on_one_connection(sim: LiveSim) -> None:
    async with await sim.connect() as conn:
        first = await conn.chat()
        second = await conn.chat(stream=False)
        third = await conn.request("GET", "/health")
        assert not await _closed_soon(conn)
    assert first.complete
    assert second.complete
    assert third.json() == {"status": "ok"}
    assert first.headers["connection"] == "keep-alive"
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def _closed_soon(conn: Connection) -> bool:
    with trio.move_on_after(0.05):
        return await conn.at_eof()
    return False


async def test_pipelined_requests_are_answered_in_order(sim: LiveSim) -> None:
    async with await sim.connect() as conn:
        await conn.send(
            conn.render("POST", CHAT, chat_body(max_tokens=2))
            + conn.render("GET", "/nope")
            + conn.render("POST", CHAT, chat_body(stream=False, max_tokens=3))
        )
        a, b, c = [await conn.read_response() for _ in range(3)]
    assert len(a.payloads()) == 6  # role, 2 tokens, finish, usage, [DONE]
    assert b.status == 404
    assert c.json()["usage"]["completion_tokens"] == 3


async def test_request_arriving_in_small_pieces(sim: LiveSim) -> None:
    raw = Connection.render("POST", CHAT, chat_body(stream=False))
    async with await sim.connect() as conn:
        for i in range(0, len(raw), 7):
            await conn.send(raw[i : i + 7])
            await trio.sleep(0)
        resp = await conn.read_response()
    assert resp.status == 200


async def test_connection_close_is_honoured(sim: LiveSim) -> None:
    async with await sim.connect() as conn:
        resp = await conn.chat(headers={"connection": "close"})
        assert resp.complete
        assert resp.headers["connection"] == "close"
        assert resp.eof


async def test_http_1_0_closes_unless_keep_alive(sim: LiveSim) -> None:
    async with await sim.connect() as conn:
        await conn.send(b"GET /health HTTP/1.0\r\n\r\n")
        resp = await conn.read_response()
        assert resp.headers["connection"] == "close"
        assert resp.eof
    async with await sim.connect() as conn:
        await conn.send(b"GET /health HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
        resp = await conn.read_response()
        assert resp.headers["connection"] == "keep-alive"
        assert not await _closed_soon(conn)


async def test_headers_are_case_insensitive_and_leading_blank_lines_ignored(
    sim: LiveSim,
) -> None:
    body = json.dumps(chat_body()).encode()
    raw = (
        b"\r\n\r\nPOST /v1/chat/completions?api-version=1 HTTP/1.1\r\nHost: x\r\n"
        b"CONTENT-LENGTH: %d\r\nX-Lens-Sim-Tokens: 2\r\nX-Dup: a\r\nx-dup: b\r\n\r\n%b"
        % (len(body), body)
    )
    async with await sim.connect() as conn:
        await conn.send(raw)
        resp = await conn.read_response()
    assert resp.status == 200
    assert len(resp.payloads()) == 6


async def test_expect_100_continue(sim: LiveSim) -> None:
    body = json.dumps(chat_body(stream=False)).encode()
    async with await sim.connect() as conn:
        await conn.send(
            b"POST %b HTTP/1.1\r\ncontent-length: %d\r\nexpect: 100-continue\r\n\r\n"
            % (CHAT.encode(), len(body))
        )
        interim = await conn.read_head()
        assert interim.status == 100
        await conn.send(body)
        resp = await conn.read_response()
    assert resp.status == 200


async def _error(conn: Connection, raw: bytes) -> tuple[int, dict[str, str], str]:
    await conn.send(raw)
    resp = await conn.read_response()
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] is None
    return resp.status, resp.headers, error["message"]


async def test_unknown_path_is_404_and_keeps_the_connection(sim: LiveSim) -> None:
    async with await sim.connect() as conn:
        resp = await conn.request("GET", "/v1/audio/speech")
        assert resp.status == 404
        assert resp.json()["error"]["code"] == "unknown_url"
        assert (await conn.request("GET", "/health")).status == 200


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("GET", CHAT, "POST"), ("POST", "/health", "GET"), ("DELETE", "/v1/models", "GET")],
)
async def test_wrong_method_is_405(sim: LiveSim, method: str, path: str, allow: str) -> None:
    async with await sim.connect() as conn:
        resp = await conn.request(method, path, b"" if method == "POST" else None)
        assert resp.status == 405
        assert resp.headers["allow"] == allow
        assert (await conn.request("GET", "/health")).status == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"model": "m"}', "messages"),
        (b'{"messages": []}', "messages"),
        (b'{"messages": [{}], "model": 3}', "model"),
        (b'{"messages": [{}], "stream": "yes"}', "stream"),
        (b'{"messages": [{}], "stream_options": 1}', "stream_options"),
        (b'{"messages": [{}], "max_tokens": 0}', "max_tokens"),
        (b'{"messages": [{}], "max_tokens": true}', "max_tokens"),
        (b'{"messages": [{}], "max_completion_tokens": 1.5}', "max_completion_tokens"),
    ],
)
async def test_invalid_chat_bodies_are_400(sim: LiveSim, body: bytes, message: str) -> None:
    async with await sim.connect() as conn:
        status, _, text = await _error(conn, Connection.render("POST", CHAT, body))
        assert status == 400
        assert message in text
        assert (await conn.request("GET", "/health")).status == 200  # still usable


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("x-lens-sim-fault", "explode"),
        ("x-lens-sim-ttft-ms", "soon"),
        ("x-lens-sim-itl-ms", "-1"),
        ("x-lens-sim-tokens", "many"),
    ],
)
async def test_invalid_sim_headers_are_400(sim: LiveSim, header: str, value: str) -> None:
    async with await sim.connect() as conn:
        raw = Connection.render("POST", CHAT, chat_body(), {header: value})
        status, _, text = await _error(conn, raw)
    assert status == 400
    assert header in text


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /health HTTP/2.0\r\n\r\n", 505),
        (b"GET /health SPDY/3\r\n\r\n", 400),
        (b"GET /health HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"GET /health HTTP/1.1\r\nbad : space\r\n\r\n", 400),
        (b"GET /health HTTP/1.1\r\nx: 1\r\n folded\r\n\r\n", 400),
        (b"POST /v1/chat/completions HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n", 400),
        (b"POST /v1/chat/completions HTTP/1.1\r\ncontent-length: -1\r\n\r\n", 400),
        (b"POST /x HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n", 400),
        (b"POST /x HTTP/1.1\r\ncontent-length: %d\r\n\r\n" % (MAX_BODY_BYTES + 1), 413),
    ],
)
async def test_broken_framing_is_rejected_and_closed(sim: LiveSim, raw: bytes, status: int) -> None:
    async with await sim.connect() as conn:
        got, headers, _ = await _error(conn, raw)
        assert got == status
        assert headers["connection"] == "close"
        assert await conn.at_eof()


async def test_huge_head_is_431(sim: LiveSim) -> None:
    async with await sim.connect() as conn:
        raw = b"GET /health HTTP/1.1\r\nx-big: " + b"a" * (MAX_HEAD_BYTES + 10)
        got, _, _ = await _error(conn, raw)
    assert got == 431


async def test_repeated_equal_content_length_is_accepted(sim: LiveSim) -> None:
    body = json.dumps(chat_body(stream=False)).encode()
    raw = b"POST %b HTTP/1.1\r\ncontent-length: %d\r\ncontent-length: %d\r\n\r\n%b" % (
        CHAT.encode(),
        len(body),
        len(body),
        body,
    )
    async with await sim.connect() as conn:
        await conn.send(raw)
        assert (await conn.read_response()).status == 200


# -- RequestReader on in-memory streams -------------------------------------------------------


async def test_reader_returns_none_on_clean_eof_and_rejects_truncation() -> None:
    client, server = trio.testing.memory_stream_pair()
    reader = RequestReader(server)
    await client.send_all(b"GET /a HTTP/1.1\r\n\r\n")
    await client.aclose()
    request = await reader.next_request()
    assert request is not None
    assert request.path == "/a"
    assert request.body == b""
    assert await reader.next_request() is None

    for partial in (b"GET /a HTTP/1.1\r\nx: y", b"POST /a HTTP/1.1\r\ncontent-length: 9\r\n\r\nab"):
        client, server = trio.testing.memory_stream_pair()
        await client.send_all(partial)
        await client.aclose()
        with pytest.raises(HttpError) as info:
            await RequestReader(server).next_request()
        assert info.value.status == 400


async def test_reader_rejects_a_complete_but_oversized_head() -> None:
    client, server = trio.testing.memory_stream_pair()
    await client.send_all(b"GET / HTTP/1.1\r\nx: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n")
    with pytest.raises(HttpError) as info:
        await RequestReader(server).next_request()
    assert info.value.status == 431


async def test_reader_reassembles_a_body_split_across_reads() -> None:
    client, server = trio.testing.memory_stream_pair()
    reader = RequestReader(server)

    async def feed() -> None:
        for piece in (b"POST /p?q=1 HTTP/1.1\r\nContent-Length: 10\r\n", b"\r\n01234", b"56789"):
            await client.send_all(piece)
            await trio.sleep(0.001)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed)
        request = await reader.next_request()
    assert request is not None
    assert request.body == b"0123456789"
    assert request.path == "/p"
    assert request.target == "/p?q=1"
    assert request.keep_alive

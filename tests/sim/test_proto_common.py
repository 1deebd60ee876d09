"""What every protocol shares: a full stream, caps, each fault, errors and exact timing.

Each test runs once per ``Wire`` (the six protocols, Bedrock's two streaming APIs), reading
the response the way that provider's client would (``tests/sim/wire.py``).
"""

from __future__ import annotations

import itertools
import json
import statistics
from typing import Any

import pytest
import trio
import trio.testing

from lens.plan.model import SimSettings
from lens.sim.server import SimServer
from lens.sim.text import VOCAB, completion_text
from tests.sim.conftest import LiveSim, StartSim
from tests.sim.rawhttp import Connection, Response
from tests.sim.wire import WIRES, Wire
from tests.timing import assert_on_time

ALL = pytest.mark.parametrize("wire", list(WIRES.values()), ids=list(WIRES))
CLOSE_AFTER_ERROR = {"anthropic", "gemini"}
STREAMING_CONTENT_TYPES = {
    "openai": "text/event-stream; charset=utf-8",
    "azure-openai": "text/event-stream; charset=utf-8",
    "openai-responses": "text/event-stream; charset=utf-8",
    "anthropic": "text/event-stream; charset=utf-8",
    "gemini": "text/event-stream",
    "bedrock": "application/vnd.amazon.eventstream",
    "bedrock-invoke": "application/vnd.amazon.eventstream",
}


def _settings(wire: Wire, **kw: Any) -> SimSettings:
    return SimSettings(
        **{"ttft_s": 0.0, "itl_s": 0.0, "output_tokens": 5, **kw}, protocol=wire.protocol
    )


async def _call(
    sim: LiveSim,
    wire: Wire,
    headers: dict[str, str] | None = None,
    *,
    stream: bool = True,
    max_tokens: int | None = None,
    conn: Connection | None = None,
) -> Response:
    body = wire.body(stream=stream, max_tokens=max_tokens)
    all_headers = {**wire.headers, **(headers or {})}
    if conn is not None:
        return await conn.request("POST", wire.target(stream=stream), body, all_headers)
    async with await sim.connect() as fresh:
        return await fresh.request("POST", wire.target(stream=stream), body, all_headers)


def error_message(resp: Response) -> str:
    """The message of any protocol's error body."""
    body = resp.json()
    message = body["error"]["message"] if "error" in body else body["message"]
    assert isinstance(message, str)
    return message


def _words(n: int) -> list[str]:
    return [VOCAB[k % len(VOCAB)] for k in range(n)]


@ALL
async def test_full_stream(start_sim: StartSim, wire: Wire) -> None:
    sim = await start_sim(_settings(wire))
    resp = await _call(sim, wire)
    assert resp.status == 200
    assert resp.headers["content-type"] == STREAMING_CONTENT_TYPES[wire.name]
    assert resp.headers["transfer-encoding"] == "chunked"
    assert resp.complete
    decoded = wire.decode(resp)
    assert decoded.texts == _words(5)
    assert decoded.text == completion_text(5)
    assert decoded.input_tokens == 2  # "Say hi." is 7 characters
    assert decoded.output_tokens == 5
    assert decoded.finish == wire.finish_stop
    assert decoded.terminated
    assert decoded.error is None
    # Every token is its own HTTP chunk, after the prefix events.
    assert len(resp.chunks) >= wire.prefix_chunks + 5


@ALL
@pytest.mark.parametrize(("cap", "n", "capped"), [(16, 16, True), (50, 20, False)])
async def test_max_tokens_caps_the_output(
    start_sim: StartSim, wire: Wire, cap: int, n: int, capped: bool
) -> None:
    sim = await start_sim(_settings(wire, output_tokens=20))
    decoded = wire.decode(await _call(sim, wire, max_tokens=cap))
    assert decoded.texts == _words(n)
    assert decoded.output_tokens == n
    assert decoded.finish == (wire.finish_length if capped else wire.finish_stop)


@ALL
async def test_forced_http_errors(start_sim: StartSim, wire: Wire) -> None:
    sim = await start_sim(_settings(wire))
    async with await sim.connect() as conn:
        for fault, status in (("429", 429), ("500", 500), ("529", wire.overloaded_status)):
            resp = await _call(sim, wire, {"x-lens-sim-fault": fault}, conn=conn)
            assert resp.status == status, fault
            assert resp.headers["content-type"].startswith("application/json")
            assert error_message(resp)
        assert (await _call(sim, wire, conn=conn)).complete  # the connection stays usable


@ALL
async def test_seeded_rate_errors_use_the_protocol_format(start_sim: StartSim, wire: Wire) -> None:
    sim = await start_sim(_settings(wire, error_500=1.0))
    resp = await _call(sim, wire)
    assert resp.status == 500
    assert error_message(resp)


@ALL
async def test_cut_stream(start_sim: StartSim, wire: Wire) -> None:
    sim = await start_sim(_settings(wire, itl_s=0.001, output_tokens=8))
    resp = await _call(sim, wire, {"x-lens-sim-fault": "cut"})
    assert resp.status == 200
    assert not resp.complete
    assert resp.eof
    decoded = wire.decode(resp)
    assert 1 <= len(decoded.texts) < 8
    assert not decoded.terminated
    assert decoded.error is None
    assert len(resp.chunks) == wire.prefix_chunks + len(decoded.texts)


@ALL
async def test_midstream_error(start_sim: StartSim, wire: Wire) -> None:
    sim = await start_sim(_settings(wire, itl_s=0.001, output_tokens=8))
    async with await sim.connect() as conn:
        resp = await _call(sim, wire, {"x-lens-sim-fault": "midstream-error"}, conn=conn)
        assert resp.status == 200
        assert resp.complete
        decoded = wire.decode(resp)
        assert decoded.error is not None
        assert not decoded.terminated
        assert 1 <= len(decoded.texts) < 8
        if wire.name in CLOSE_AFTER_ERROR:
            assert await conn.at_eof()  # the body ended properly, then the connection
        else:
            assert (await _call(sim, wire, conn=conn)).complete  # keep-alive survives


@ALL
async def test_empty_stream(start_sim: StartSim, wire: Wire) -> None:
    sim = await start_sim(_settings(wire))
    resp = await _call(sim, wire, {"x-lens-sim-fault": "empty"})
    assert resp.complete
    decoded = wire.decode(resp)
    assert decoded.texts == []
    assert decoded.output_tokens == 0
    assert decoded.finish == wire.finish_stop
    assert decoded.terminated


@ALL
async def test_hang_sends_the_head_then_nothing(start_sim: StartSim, wire: Wire) -> None:
    sim = await start_sim(_settings(wire))
    conn = await sim.connect()
    raw = conn.render(
        "POST", wire.target(), wire.body(), {**wire.headers, "x-lens-sim-fault": "hang"}
    )
    resp = await conn.read_head(await conn.send(raw))
    assert resp.status == 200
    assert resp.headers["content-type"] == STREAMING_CONTENT_TYPES[wire.name]
    with trio.move_on_after(0.05) as scope:
        await conn.read_body(resp)
    assert scope.cancelled_caught
    assert not resp.chunks
    await conn.aclose()


@ALL
async def test_faults_without_streaming(start_sim: StartSim, wire: Wire) -> None:
    sim = await start_sim(_settings(wire))
    async with await sim.connect() as conn:
        ok = await _call(sim, wire, stream=False, conn=conn)
        assert ok.status == 200
        assert ok.headers["content-type"].startswith("application/json")
        assert completion_text(5) in ok.body.decode()
        failed = await _call(sim, wire, {"x-lens-sim-fault": "midstream-error"}, stream=False)
        assert failed.status == 500
        assert error_message(failed)
        limited = await _call(sim, wire, {"x-lens-sim-fault": "429"}, stream=False, conn=conn)
        assert limited.status == 429


@ALL
@pytest.mark.parametrize(
    ("header", "value"), [("x-lens-sim-fault", "explode"), ("x-lens-sim-tokens", "many")]
)
async def test_invalid_sim_headers_are_400_in_the_protocol_format(
    start_sim: StartSim, wire: Wire, header: str, value: str
) -> None:
    live = await start_sim(_settings(wire))
    resp = await _call(live, wire, {header: value})
    assert resp.status == 400
    assert header in error_message(resp)


@ALL
async def test_unknown_path_and_wrong_method(start_sim: StartSim, wire: Wire) -> None:
    sim = await start_sim(_settings(wire))
    async with await sim.connect() as conn:
        missing = await conn.request("POST", "/v2/nothing/here", wire.body(), wire.headers)
        assert missing.status == 404
        assert error_message(missing)
        wrong = await conn.request("GET", wire.target(), None, wire.headers)
        assert wrong.status == 405
        assert wrong.headers["allow"] == "POST"
        assert error_message(wrong)
        assert (await conn.request("GET", "/health")).json() == {"status": "ok"}


@ALL
async def test_malformed_http_is_answered_in_the_protocol_format(
    start_sim: StartSim, wire: Wire
) -> None:
    sim = await start_sim(_settings(wire))
    async with await sim.connect() as conn:
        await conn.send(b"GARBAGE\r\n\r\n")
        resp = await conn.read_response()
    assert resp.status == 400
    assert resp.headers["connection"] == "close"
    assert "malformed request line" in error_message(resp)


@ALL
async def test_invalid_json_is_400(start_sim: StartSim, wire: Wire) -> None:
    sim = await start_sim(_settings(wire))
    async with await sim.connect() as conn:
        resp = await conn.request("POST", wire.target(), b"{nope", wire.headers)
    assert resp.status == 400
    assert "JSON" in error_message(resp)


# -- timing: exact on a mock clock for every protocol, tolerances on real sockets -----------


async def _over_socketpair(settings: SimSettings, wire: Wire) -> Response:
    server = SimServer(settings)
    a, b = trio.socket.socketpair()

    async def serve_one() -> None:
        async with trio.SocketStream(a) as stream:
            await server.handle(stream)

    async with trio.open_nursery() as nursery:
        await nursery.start(server.pacer.run)
        nursery.start_soon(serve_one)
        async with Connection(trio.SocketStream(b)) as conn:
            t_sent = await conn.send(conn.render("POST", wire.target(), wire.body(), wire.headers))
            resp = await conn.read_response(t_sent)
        nursery.cancel_scope.cancel()
    return resp


@ALL
async def test_mock_clock_every_token_leaves_when_due(
    autojump_clock: trio.testing.MockClock, wire: Wire
) -> None:
    settings = _settings(wire, ttft_s=0.1, itl_s=0.01, output_tokens=6)
    resp = await _over_socketpair(settings, wire)
    t0, p = resp.t_sent, wire.prefix_chunks
    assert resp.t_head == t0
    assert resp.chunk_times[:p] == [t0] * p  # prefix events at once
    tokens = resp.chunk_times[p : p + 6]
    assert tokens == pytest.approx([t0 + 0.1 + k * 0.01 for k in range(6)], abs=1e-9)
    assert resp.chunk_times[-1] == pytest.approx(t0 + 0.15, abs=1e-9)  # suffix: last token
    assert len(wire.decode(resp).texts) == 6


@pytest.mark.parametrize("name", ["anthropic", "gemini", "bedrock"])
async def test_measured_ttft_and_itl(start_sim: StartSim, name: str) -> None:
    wire = WIRES[name]
    sim = await start_sim(_settings(wire, ttft_s=0.05, itl_s=0.01, output_tokens=20))
    resp = await _call(sim, wire)
    times = resp.chunk_times[wire.prefix_chunks : wire.prefix_chunks + 20]
    assert resp.t_head < times[0]  # the head goes out at once, not with the first token
    assert len(wire.decode(resp).texts) == 20
    assert_on_time(times[0] - resp.t_sent, 0.05)
    itl = statistics.median(y - x for x, y in itertools.pairwise(times))
    assert itl == pytest.approx(0.01, abs=0.003)  # a median of 19 gaps: robust to a stall
    assert_on_time(times[-1] - resp.t_sent, 0.05 + 19 * 0.01)


async def test_long_zero_delay_stream_cycles_the_vocabulary(start_sim: StartSim) -> None:
    wire = WIRES["anthropic"]
    sim = await start_sim(_settings(wire, output_tokens=200))
    resp = await _call(sim, wire)
    assert wire.decode(resp).text == completion_text(200)
    delta = next(e for e in resp.chunks if e.startswith(b"event: message_delta"))
    assert json.loads(delta.split(b"data: ")[1])["usage"]["output_tokens"] == 200

"""When tokens leave: the pure schedule, exact times on a mock clock, real-socket tolerances."""

from __future__ import annotations

import itertools
import math
import random
import statistics
import time

import pytest
import trio
import trio.testing

from lens.plan.model import SimSettings
from lens.sim.schedule import jitter_factor, token_due_times
from lens.sim.server import SimServer, _merge_equal_times
from tests.sim.conftest import StartSim
from tests.sim.rawhttp import Connection, Response, chat_body
from tests.timing import assert_on_time

# -- the pure schedule -----------------------------------------------------------------------


def test_due_times_without_jitter_are_exact() -> None:
    settings = SimSettings(ttft_s=0.1, itl_s=0.01)
    due = token_due_times(10.0, settings, 5, random.Random(0))
    assert due == [10.0 + 0.1 + k * 0.01 for k in range(5)]
    assert token_due_times(10.0, settings, 0, random.Random(0)) == []


def test_no_jitter_draws_no_random_numbers() -> None:
    rng = random.Random(3)
    state = rng.getstate()
    assert jitter_factor(0.0, rng) == 1.0
    token_due_times(0.0, SimSettings(), 50, rng)
    assert rng.getstate() == state


def test_jitter_is_deterministic_by_seed() -> None:
    settings = SimSettings(ttft_s=0.2, itl_s=0.02, jitter=0.3)
    a = token_due_times(0.0, settings, 40, random.Random(7))
    b = token_due_times(0.0, settings, 40, random.Random(7))
    c = token_due_times(0.0, settings, 40, random.Random(8))
    assert a == b
    assert a != c
    assert all(y >= x for x, y in itertools.pairwise(a))  # never earlier than before
    gaps = [y - x for x, y in itertools.pairwise(a)]
    assert len(set(gaps)) > 30  # really jittered


def test_jitter_factor_has_mean_one_and_the_configured_spread() -> None:
    rng = random.Random(1)
    factors = [jitter_factor(0.25, rng) for _ in range(40_000)]
    assert min(factors) > 0
    assert statistics.fmean(factors) == pytest.approx(1.0, abs=0.01)
    assert statistics.pstdev(factors) == pytest.approx(0.25, abs=0.01)


def test_schedule_is_absolute_not_accumulated_from_wakeups() -> None:
    """The last token's due time depends only on t0 and the drawn delays."""
    settings = SimSettings(ttft_s=0.05, itl_s=0.01, jitter=0.1)
    due = token_due_times(1.0, settings, 101, random.Random(5))
    rng = random.Random(5)
    delays = [0.05 * jitter_factor(0.1, rng)] + [0.01 * jitter_factor(0.1, rng) for _ in range(100)]
    assert due[-1] == pytest.approx(1.0 + math.fsum(delays), abs=1e-12)


def test_merge_equal_times() -> None:
    times, payloads = _merge_equal_times([1.0, 1.0, 2.0, 3.0, 3.0], [b"a", b"b", b"c", b"d", b"e"])
    assert times == [1.0, 2.0, 3.0]
    assert payloads == [b"ab", b"c", b"de"]


# -- exact times on trio's MockClock, through a real socketpair ------------------------------


async def _over_socketpair(
    settings: SimSettings,
    body: dict[str, object],
    headers: dict[str, str] | None = None,
    *,
    sndbuf: int = 0,
    read_delay: float = 0.0,
) -> Response:
    """One request to a fresh server over a socketpair (no listener, no TCP).

    ``sndbuf`` shrinks the server's send buffer so a payload cannot be written at once;
    ``read_delay`` makes the client wait before reading, so the buffer really fills.
    """
    server = SimServer(settings)
    a, b = trio.socket.socketpair()
    if sndbuf:
        a.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_SNDBUF, sndbuf)
        b.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, sndbuf)

    async def serve_one() -> None:
        async with trio.SocketStream(a) as stream:  # serve_tcp would close it for us
            await server.handle(stream)

    async with trio.open_nursery() as nursery:
        await nursery.start(server.pacer.run)
        nursery.start_soon(serve_one)
        async with Connection(trio.SocketStream(b)) as conn:
            t_sent = await conn.send(conn.render("POST", "/v1/chat/completions", body, headers))
            await trio.sleep(read_delay)
            resp = await conn.read_response(t_sent)
        nursery.cancel_scope.cancel()
    return resp


async def test_mock_clock_tokens_leave_exactly_when_due(
    autojump_clock: trio.testing.MockClock,
) -> None:
    resp = await _over_socketpair(SimSettings(ttft_s=0.1, itl_s=0.01, output_tokens=6), chat_body())
    t0 = resp.t_sent
    assert resp.t_head == t0  # headers and role chunk at once
    assert resp.chunk_times[0] == t0
    assert resp.content_times() == pytest.approx([t0 + 0.1 + k * 0.01 for k in range(6)], abs=1e-9)
    assert resp.chunk_times[-1] == pytest.approx(t0 + 0.15, abs=1e-9)  # trailer with last token


async def test_mock_clock_zero_itl_sends_all_tokens_at_ttft(
    autojump_clock: trio.testing.MockClock,
) -> None:
    resp = await _over_socketpair(
        SimSettings(ttft_s=0.05, itl_s=0.0, output_tokens=20), chat_body()
    )
    assert resp.content_times() == pytest.approx([resp.t_sent + 0.05] * 20, abs=1e-9)


async def _jittered_offsets(seed: int) -> list[float]:
    resp = await _over_socketpair(
        SimSettings(ttft_s=0.1, itl_s=0.01, output_tokens=30, jitter=0.5, seed=seed), chat_body()
    )
    return [t - resp.t_sent for t in resp.content_times()]


async def test_mock_clock_jitter_is_reproducible_end_to_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b, c = await _jittered_offsets(1), await _jittered_offsets(1), await _jittered_offsets(2)
    assert a == pytest.approx(b, abs=1e-9)
    assert a != pytest.approx(c, abs=1e-6)
    gaps = [y - x for x, y in itertools.pairwise(a)]
    assert statistics.fmean(gaps) == pytest.approx(0.01, rel=0.35)


async def test_mock_clock_header_overrides(autojump_clock: trio.testing.MockClock) -> None:
    headers = {"x-lens-sim-ttft-ms": "20", "x-lens-sim-itl-ms": "2.5", "x-lens-sim-tokens": "4"}
    resp = await _over_socketpair(
        SimSettings(ttft_s=1.0, itl_s=1.0, output_tokens=50), chat_body(), headers
    )
    expected = [resp.t_sent + 0.02 + k * 0.0025 for k in range(4)]
    assert resp.content_times() == pytest.approx(expected, abs=1e-9)


async def test_mock_clock_itl_header_alone(autojump_clock: trio.testing.MockClock) -> None:
    settings = SimSettings(ttft_s=0.01, itl_s=1.0, output_tokens=3)
    resp = await _over_socketpair(settings, chat_body(), {"x-lens-sim-itl-ms": "5"})
    expected = [resp.t_sent + 0.01 + k * 0.005 for k in range(3)]
    assert resp.content_times() == pytest.approx(expected, abs=1e-9)


async def test_mock_clock_non_streamed_answer_waits_for_the_last_token(
    autojump_clock: trio.testing.MockClock,
) -> None:
    resp = await _over_socketpair(
        SimSettings(ttft_s=0.1, itl_s=0.01, output_tokens=11), chat_body(stream=False)
    )
    assert resp.t_head - resp.t_sent == pytest.approx(0.1 + 10 * 0.01, abs=1e-9)
    assert resp.headers["openai-processing-ms"] == "200"


# -- real sockets, real clock: tolerances ----------------------------------------------------


async def test_measured_ttft_and_itl(start_sim: StartSim) -> None:
    sim = await start_sim(SimSettings(ttft_s=0.1, itl_s=0.01, output_tokens=30))
    async with await sim.connect() as conn:
        resp = await conn.chat()
    times = resp.content_times()
    assert resp.t_head < times[0]  # headers + role chunk go out at once
    assert len(times) == 30
    assert_on_time(times[0] - resp.t_sent, 0.1)
    itl = statistics.median(y - x for x, y in itertools.pairwise(times))
    assert itl == pytest.approx(0.01, abs=0.003)  # a median of 29 gaps: robust to a stall
    # The whole stream takes ttft + (n-1)*itl.  That lateness never accumulates is exact
    # in test_schedule_is_absolute_not_accumulated_from_wakeups and the MockClock tests.
    assert_on_time(times[-1] - resp.t_sent, 0.1 + 29 * 0.01)


async def test_stalled_server_catches_up_instead_of_drifting(start_sim: StartSim) -> None:
    sim = await start_sim(SimSettings(ttft_s=0.0, itl_s=0.005, output_tokens=40))

    async def stall() -> None:
        await trio.sleep(0.05)
        time.sleep(0.1)  # block the whole event loop (server included) for 100 ms

    async with trio.open_nursery() as nursery, await sim.connect() as conn:
        nursery.start_soon(stall)
        resp = await conn.chat()
    times = resp.content_times()
    assert len(times) == 40
    # Tokens due during the stall are late, but the stream still ends on schedule (at
    # 195 ms; a server that drifted would end 100 ms later).
    assert_on_time(times[-1] - resp.t_sent, 39 * 0.005, late_s=0.06)


async def test_slow_reader_gets_every_byte() -> None:
    """Socket buffer full: the pacer hands the rest to the connection task, then resumes."""
    settings = SimSettings(ttft_s=0.001, itl_s=0.00005, output_tokens=400)
    resp = await _over_socketpair(settings, chat_body(), sndbuf=4096, read_delay=0.05)
    assert resp.complete
    assert len(resp.content_times()) == 400


async def test_big_burst_due_after_ttft_is_finished_by_send_all() -> None:
    """One large write due at ttft: partially written by the pacer, then ``send_all``."""
    settings = SimSettings(ttft_s=0.02, itl_s=0.0, output_tokens=2000)
    resp = await _over_socketpair(settings, chat_body(), sndbuf=4096, read_delay=0.04)
    assert resp.complete
    assert len(resp.content_times()) == 2000


async def test_zero_delay_responses_larger_than_the_socket_buffer() -> None:
    """Written at once as far as the socket takes it, then finished by ``send_all``."""
    server = SimServer(SimSettings(ttft_s=0.0, itl_s=0.0, output_tokens=2000))
    a, b = trio.socket.socketpair()
    a.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_SNDBUF, 4096)
    b.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, 4096)

    async def serve_one() -> None:
        async with trio.SocketStream(a) as stream:
            await server.handle(stream)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_one)
        async with Connection(trio.SocketStream(b)) as conn:
            request = conn.render("POST", "/v1/chat/completions", chat_body())
            await conn.send(request * 3)  # pipelined: later answers find a full buffer
            await trio.sleep(0.03)
            responses = [await conn.read_response() for _ in range(3)]
        nursery.cancel_scope.cancel()
    assert [len(r.content_times()) for r in responses] == [2000] * 3


async def test_client_gone_before_the_answer_is_written() -> None:
    server = SimServer(SimSettings(ttft_s=0.0, itl_s=0.0, output_tokens=5))
    a, b = trio.socket.socketpair()
    with b:
        await b.send(Connection.render("POST", "/v1/chat/completions", chat_body()))
    async with trio.SocketStream(a) as stream:
        await server.handle(stream)  # EPIPE is the client's business: returns quietly


async def test_cancelled_stream_is_dropped_by_the_pacer() -> None:
    server = SimServer(SimSettings(ttft_s=0.0, itl_s=0.005, output_tokens=100))
    a, b = trio.socket.socketpair()
    handler_scope = trio.CancelScope()

    async def serve_one() -> None:
        with handler_scope:
            async with trio.SocketStream(a) as stream:
                await server.handle(stream)

    async with trio.open_nursery() as nursery:
        await nursery.start(server.pacer.run)
        nursery.start_soon(serve_one)
        async with Connection(trio.SocketStream(b)) as conn:
            await conn.send(conn.render("POST", "/v1/chat/completions", chat_body()))
            await conn.read_head()
            await trio.sleep(0.02)
            handler_scope.cancel()  # the connection's task goes, the pacer stays
            await trio.sleep(0.03)  # the pacer pops the dead job and drops it
            assert not server.pacer._heap
        nursery.cancel_scope.cancel()


async def test_concurrent_streams_keep_their_own_schedules(start_sim: StartSim) -> None:
    sim = await start_sim(SimSettings(ttft_s=0.0, itl_s=0.004, output_tokens=10))
    results: dict[int, Response] = {}

    async def one(i: int) -> None:
        async with await sim.connect() as conn:
            # Later requests are due earlier, so the pacer's wake-up moves both ways.
            results[i] = await conn.chat(headers={"x-lens-sim-ttft-ms": str(60 - 5 * i)})

    async with trio.open_nursery() as nursery:
        for i in range(12):
            nursery.start_soon(one, i)
    for i, resp in results.items():
        times = resp.content_times()
        assert len(times) == 10
        due = (60 - 5 * i) / 1e3
        # Never early (the server's delay starts after the send stamp); late only by what a
        # loaded 2-core machine adds, far below the ~1 s that serving the streams one after
        # another would take.  Precise pacing is asserted under MockClock and in make bench.
        assert due - 0.002 <= times[0] - resp.t_sent <= due + 0.25


async def test_server_shutdown_mid_stream_is_clean() -> None:
    server = SimServer(SimSettings(ttft_s=0.0, itl_s=0.01, output_tokens=100))
    async with trio.open_nursery() as nursery:
        url: str = await nursery.start(server.serve)
        host, port = url.removeprefix("http://").rsplit(":", 1)
        async with await Connection.open(host, int(port)) as conn:
            await conn.send(conn.render("POST", "/v1/chat/completions", chat_body()))
            resp = await conn.read_head()
            assert resp.status == 200
            await trio.sleep(0.03)
            nursery.cancel_scope.cancel()

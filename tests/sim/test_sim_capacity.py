"""A simulated server with a capacity: at most N responses at once, the rest wait FIFO."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from lens.plan.model import SimSettings
from lens.sim.config import parse_argv
from lens.sim.server import SimServer
from tests.sim.conftest import StartSim
from tests.sim.rawhttp import Connection, Response, chat_body
from tests.timing import assert_on_time


async def _concurrent(
    server: SimServer, requests: list[dict[str, str]], *, stream: bool = True
) -> list[Response]:
    """Send one request per entry (its headers) at once, each on its own socketpair."""
    responses: list[Response | None] = [None] * len(requests)

    async def one(i: int, headers: dict[str, str]) -> None:
        a, b = trio.socket.socketpair()

        async def serve_one() -> None:
            async with trio.SocketStream(a) as stream_:
                await server.handle(stream_)

        async with trio.open_nursery() as inner:
            inner.start_soon(serve_one)
            async with Connection(trio.SocketStream(b)) as conn:
                body = chat_body(stream=stream)
                t_sent = await conn.send(conn.render("POST", "/v1/chat/completions", body, headers))
                responses[i] = await conn.read_response(t_sent)
            inner.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        await nursery.start(server.pacer.run)
        async with trio.open_nursery() as clients:
            for i, headers in enumerate(requests):
                clients.start_soon(one, i, headers)
                await trio.sleep(0)  # arrival order is the order of the list
        nursery.cancel_scope.cancel()
    assert all(r is not None for r in responses)
    return [r for r in responses if r is not None]


async def test_mock_clock_the_queue_wait_delays_every_token(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = SimServer(SimSettings(ttft_s=0.1, itl_s=0.01, output_tokens=6, capacity=1))
    first, second, third = await _concurrent(server, [{}, {}, {}])
    t0 = first.t_sent
    assert second.t_sent == third.t_sent == t0
    # One slot: each response starts when the one before has written its last token
    # (ttft + 5 itl = 0.15 s), and keeps its own schedule from there.
    for k, resp in enumerate((first, second, third)):
        start = t0 + k * 0.15
        expected = [start + 0.1 + j * 0.01 for j in range(6)]
        assert resp.content_times() == pytest.approx(expected, abs=1e-9)


async def test_mock_clock_rejections_never_queue(autojump_clock: trio.testing.MockClock) -> None:
    server = SimServer(SimSettings(ttft_s=0.1, itl_s=0.01, output_tokens=6, capacity=1))
    busy, rejected = await _concurrent(server, [{}, {"x-lens-sim-fault": "429"}])
    assert rejected.status == 429
    assert rejected.t_head == rejected.t_sent  # answered at once while the slot is taken
    assert busy.content_times()[0] == pytest.approx(busy.t_sent + 0.1, abs=1e-9)


async def test_mock_clock_non_streamed_answers_queue_too(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = SimServer(SimSettings(ttft_s=0.1, itl_s=0.01, output_tokens=6, capacity=1))
    first, second = await _concurrent(server, [{}, {}], stream=False)
    assert first.t_head - first.t_sent == pytest.approx(0.15, abs=1e-9)
    assert second.t_head - second.t_sent == pytest.approx(0.30, abs=1e-9)
    assert second.headers["openai-processing-ms"] == "300"  # the wait is processing time


async def test_queue_wait_shows_in_ttft_over_real_sockets(start_sim: StartSim) -> None:
    # Capacity 2, e2e 50 ms + 15 x 5 ms = 125 ms: six requests at once are served in three
    # waves of two, whose TTFTs are 50, 175 and 300 ms (waves far enough apart to be told
    # apart on a loaded machine).
    sim = await start_sim(SimSettings(ttft_s=0.05, itl_s=0.005, output_tokens=16, capacity=2))
    ttfts: list[float] = []

    async def one() -> None:
        async with await sim.connect() as conn:
            resp = await conn.chat()
        assert len(resp.content_times()) == 16
        ttfts.append(resp.content_times()[0] - resp.t_sent)

    async with trio.open_nursery() as nursery:
        for _ in range(6):
            nursery.start_soon(one)
    expected = [0.05, 0.05, 0.175, 0.175, 0.3, 0.3]
    for ttft, due in zip(sorted(ttfts), expected, strict=True):
        assert_on_time(ttft, due, late_s=0.06)


def test_capacity_flag() -> None:
    assert parse_argv(["--capacity", "4"]).settings.capacity == 4
    assert parse_argv(["--capacity", "0"]).settings.capacity is None  # 0: no limit
    assert parse_argv([]).settings.capacity is None

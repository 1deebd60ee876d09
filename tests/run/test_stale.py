"""Stale keep-alive connections: a request that fails on a reused connection before any
response byte is re-sent once on a fresh one and flagged on its record; Keep-Alive
timeout/max and keep_alive: false.  Real sockets on 127.0.0.1, through execute_request."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import httpx
import pytest
import trio

from lens.plan.compile import compile_plan
from lens.plan.model import Message, OpenAISettings, PromptSpec, ProviderSpec
from lens.providers.registry import adapter_for
from lens.records import RequestRecord
from lens.run.clock import RunClock
from lens.run.executor import StageRunner
from lens.run.http11 import LeanHTTP11Transport
from lens.run.request import execute_request
from lens.scenario import parse_scenario
from tests.run.netkit import Conn, Origin, sse_response, start_origin, start_proxy

PROMPT = PromptSpec(id="q", messages=(Message("user", "hi"),))
KEEP_ALIVE = b"Keep-Alive: timeout=5, max=100\r\n"


def reply(headers: bytes = KEEP_ALIVE) -> bytes:
    chunk = {"choices": [{"index": 0, "delta": {"content": "hello"}}]}
    usage = {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
    return sse_response(
        json.dumps(chunk).encode(), json.dumps(usage).encode(), b"[DONE]", headers=headers
    )


async def run_requests(
    origin: Origin, n: int, transport: LeanHTTP11Transport, gap_s: float = 0.0
) -> list[RequestRecord]:
    spec = ProviderSpec(
        id="p",
        type="openai-compatible",
        model="m",
        base_url=origin.url("127.0.0.1", "/v1"),
        settings=OpenAISettings(),
    )
    adapter = adapter_for(spec)
    clock = RunClock()
    records: list[RequestRecord] = []
    for i in range(n):
        if i and gap_s:
            await trio.sleep(gap_s)
        await execute_request(
            transport,
            adapter,
            PROMPT,
            clock=clock,
            stage="s",
            index=i,
            t_intended=None,
            timeout_s=10,
            max_tokens=8,
            emit=records.append,
        )
    await transport.aclose()
    return records


Closer = Callable[[Conn], Awaitable[None]]


async def close_fin(conn: Conn) -> None:
    conn.close()


async def close_rst(conn: Conn) -> None:
    conn.reset()


def one_per_connection(close: Closer, delay_s: float = 0.0) -> Callable[[Conn], Awaitable[None]]:
    """llama-server's way: advertise keep-alive, then close after each streamed response."""

    async def handler(conn: Conn) -> None:
        if await conn.read_request() is None:
            return
        await conn.send(reply())
        if delay_s:
            await trio.sleep(delay_s)
        await close(conn)

    return handler


def answer_then_drop_next(close: Closer) -> Callable[[Conn], Awaitable[None]]:
    """Deterministic staleness: answer one request, then take the next request's bytes and
    close without a word, as when the close races the client's reuse."""

    async def handler(conn: Conn) -> None:
        if await conn.read_request() is None:
            return
        await conn.send(reply())
        await conn.read_request()
        conn.origin.requests.pop()  # never handed to the "application"
        await close(conn)

    return handler


@pytest.mark.parametrize(
    ("close", "delay_s"),
    [(close_fin, 0.0), (close_fin, 0.002), (close_rst, 0.0), (close_rst, 0.002)],
    ids=["fin-at-once", "fin-after-2ms", "rst-at-once", "rst-after-2ms"],
)
async def test_server_closing_after_each_response_costs_no_request(
    nursery: trio.Nursery, close: Closer, delay_s: float
) -> None:
    origin = await start_origin(nursery, one_per_connection(close, delay_s))
    transport = LeanHTTP11Transport()
    records = await run_requests(origin, 50, transport)
    assert [r.error_message for r in records if not r.ok] == []
    assert all(r.attempt == 1 for r in records)
    assert len(origin.requests) == 50  # each reached the server exactly once
    stale = [r for r in records if r.stale_connection]
    assert len(stale) == transport.stale_resends
    for r in stale:
        assert r.stale_lost_ns is not None
        assert 0 <= r.stale_lost_ns < 1_000_000_000
    for r in records:
        if not r.stale_connection:
            assert r.stale_lost_ns is None


@pytest.mark.parametrize("close", [close_fin, close_rst], ids=["fin", "rst"])
async def test_every_stale_reuse_is_resent_and_flagged(
    nursery: trio.Nursery, close: Closer
) -> None:
    origin = await start_origin(nursery, answer_then_drop_next(close))
    transport = LeanHTTP11Transport()
    records = await run_requests(origin, 10, transport)
    assert all(r.ok for r in records), [r.error_message for r in records]
    assert [r.stale_connection for r in records] == [False] + [True] * 9
    assert transport.stale_resends == 9
    assert len(origin.requests) == 10
    for r in records[1:]:
        assert r.stale_lost_ns is not None
        assert r.stale_lost_ns > 0
        # Dispatch is the re-send's, so TTFT is not inflated by the stale attempt.
        assert r.t_first_token is not None
        assert r.t_first_token - r.t_dispatch < 500_000_000


async def test_failure_after_a_response_byte_is_never_resent(nursery: trio.Nursery) -> None:
    async def handler(conn: Conn) -> None:
        if await conn.read_request() is None:
            return
        await conn.send(reply())
        if await conn.read_request() is None:
            return
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Ty")  # then gone
        conn.close()

    origin = await start_origin(nursery, handler)
    transport = LeanHTTP11Transport()
    records = await run_requests(origin, 2, transport)
    assert records[0].ok
    assert not records[1].ok
    assert not records[1].stale_connection
    assert transport.stale_resends == 0
    assert origin.accepts == 1


async def test_failure_on_a_fresh_connection_is_never_resent(nursery: trio.Nursery) -> None:
    async def handler(conn: Conn) -> None:
        await conn.read_request()
        conn.close()

    origin = await start_origin(nursery, handler)
    transport = LeanHTTP11Transport()
    (record,) = await run_requests(origin, 1, transport)
    assert not record.ok
    assert not record.stale_connection
    assert origin.accepts == 1


async def test_a_stale_resend_that_fails_again_is_an_error_and_still_flagged(
    nursery: trio.Nursery,
) -> None:
    async def handler(conn: Conn) -> None:
        if conn.origin.accepts == 1:
            await conn.read_request()
            await conn.send(reply())
            await conn.read_request()
        else:
            await conn.read_request()  # the re-send: dropped as well
        conn.close()

    origin = await start_origin(nursery, handler)
    transport = LeanHTTP11Transport()
    records = await run_requests(origin, 2, transport)
    assert records[0].ok
    assert not records[1].ok
    assert records[1].stale_connection
    assert transport.stale_resends == 1  # once, never twice
    assert origin.accepts == 2


async def test_warmed_connection_closed_while_idle_is_resent(nursery: trio.Nursery) -> None:
    """A connection opened ahead of the stage (warm) that the server dropped unseen."""

    async def handler(conn: Conn) -> None:
        if conn.origin.accepts == 1:
            await conn.read_request()
            conn.reset()
            return
        while await conn.read_request() is not None:
            await conn.send(reply())

    origin = await start_origin(nursery, handler)
    transport = LeanHTTP11Transport()
    await transport.warm(httpx.URL(origin.url()))
    (record,) = await run_requests(origin, 1, transport)
    assert record.ok
    assert record.stale_connection


# -- Keep-Alive, Connection: close, keep_alive: false -----------------------------------------


def serve_all(headers: bytes) -> Callable[[Conn], Awaitable[None]]:
    async def handler(conn: Conn) -> None:
        while await conn.read_request() is not None:
            await conn.send(reply(headers))

    return handler


async def test_keep_alive_timeout_is_honoured(nursery: trio.Nursery) -> None:
    origin = await start_origin(nursery, serve_all(b"Keep-Alive: timeout=1\r\n"))
    transport = LeanHTTP11Transport()
    # timeout=1 (minus the margin): reuse within 0.5 s of the response's end, not after.
    records = await run_requests(origin, 2, transport, gap_s=0.1)
    assert origin.accepts == 1
    records += await run_requests(origin, 2, transport, gap_s=0.7)
    assert all(r.ok and not r.stale_connection for r in records)
    assert origin.accepts == 3  # the 0.7 s gap: a new connection, without a stale attempt


async def test_keep_alive_max_is_honoured(nursery: trio.Nursery) -> None:
    origin = await start_origin(nursery, serve_all(b"Keep-Alive: timeout=5, max=2\r\n"))
    transport = LeanHTTP11Transport()
    records = await run_requests(origin, 6, transport)
    assert all(r.ok for r in records)
    # max=2: two more after the first response; counted down on our side too.
    assert origin.accepts == 2
    assert transport.connects == 2


async def test_connection_close_response_is_not_reused(nursery: trio.Nursery) -> None:
    transport = LeanHTTP11Transport()

    async def closing(conn: Conn) -> None:
        await conn.read_request()
        await conn.send(reply(b"Connection: close\r\n"))
        await trio.sleep(0.05)  # a slow close: only the header says it is coming

    origin = await start_origin(nursery, closing)
    records = await run_requests(origin, 3, transport)
    assert all(r.ok and not r.stale_connection for r in records)
    assert origin.accepts == 3


async def test_keep_alive_false_opens_a_connection_per_request(nursery: trio.Nursery) -> None:
    origin = await start_origin(nursery, serve_all(KEEP_ALIVE))
    transport = LeanHTTP11Transport(keep_alive=False)
    records = await run_requests(origin, 3, transport)
    assert all(r.ok and not r.stale_connection for r in records)
    assert origin.accepts == 3
    assert all(b"\r\nConnection: close\r\n" in req for req in origin.requests)
    # The connect happened inside each request, before dispatch: kept out of TTFT and shown.
    assert all("pre_dispatch_ms" in r.extra for r in records)


async def test_scenario_settings_reach_the_transport(nursery: trio.Nursery) -> None:
    """keep_alive: false and proxy: from a scenario, through the executor."""
    origin = await start_origin(nursery, serve_all(KEEP_ALIVE))
    proxy = await start_proxy(nursery)
    text = f"""\
version: 1
name: t
providers:
  p:
    type: openai-compatible
    base_url: {origin.url("127.0.0.1", "/v1")}
    model: m
    price: {{input: 0, output: 0}}
    keep_alive: false
    proxy: {proxy.url}
prompts:
  - id: q
    messages:
      - {{role: user, content: hi}}
load:
  - id: s
    pattern: concurrency
    concurrency: 1
    requests: 3
"""
    plan = compile_plan(parse_scenario(text, env={}), env={"HTTP_PROXY": "http://unused:1"})
    records: list[RequestRecord] = []
    await StageRunner(plan, plan.providers, records.append).run_all()
    assert [r.ok for r in records] == [True, True, True]
    assert len(proxy.forwarded) == 3
    assert proxy.forwarded[0].startswith(b"POST http://127.0.0.1:")
    assert origin.accepts == 3
    assert all(b"\r\nConnection: close\r\n" in req for req in origin.requests)

"""How ``lens.run_async`` should run, by measurement: the timing error of one workload
against the simulated server, run

* ``cli``: ``lens.run`` from the main thread, ``trio.run`` there: what ``lens run`` does;
* ``thread``: ``await lens.run_async`` under ``asyncio.run``: a worker thread with its own
  trio loop (what ``run_async`` does);
* ``guest``: ``trio.lowlevel.start_guest_run`` on the caller's asyncio loop (trio's I/O
  waits in a helper thread, every trio step runs as an asyncio callback);

each with an idle caller loop and with a busy one (a coroutine computing in 2 ms slices
between ``await asyncio.sleep(0)``, as a service doing its own work would; for the thread
also with ``sys.setswitchinterval(0.001)``, the remedy the README advises).  A loop that
``anyio`` would let lens share natively is the ``guest`` case without the helper thread:
its timestamps wait on the caller's callbacks all the same.

Error = measured minus configured (TTFT 200 ms, ITL 20 ms), p50 and p99, in ms; ``python -m
bench.bench_embed`` prints the table (part of ``make bench``).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import outcome
import trio

import lens
from bench.bench_client import closed, pct, sim_plan
from lens.metrics.request import itl_values
from lens.pipeline import harness_monitor
from lens.plan.model import Message, Plan, PromptSpec, SimSettings
from lens.records import RequestRecord
from lens.redact import Redactor
from lens.run.session import execute
from lens.run.simulators import live_providers

TTFT_MS, ITL_MS, TOKENS = 200.0, 20.0, 64
BUSY_SLICE_S = 0.002

PROMPT = PromptSpec(id="p", messages=(Message("user", "Count to sixty four."),))


def _plan(concurrency: int, requests: int) -> Plan:
    sim = SimSettings(ttft_s=TTFT_MS / 1e3, itl_s=ITL_MS / 1e3, output_tokens=TOKENS)
    return sim_plan(sim, closed(concurrency, requests))


async def _busy(stop: asyncio.Event) -> None:
    while not stop.is_set():
        end = time.perf_counter() + BUSY_SLICE_S
        while time.perf_counter() < end:
            pass
        await asyncio.sleep(0)


async def _with_host_load(busy: bool, work: Awaitable[Any]) -> Any:
    stop = asyncio.Event()
    noise = asyncio.create_task(_busy(stop)) if busy else None
    try:
        return await work
    finally:
        stop.set()
        if noise is not None:
            await noise


def run_cli(plan: Plan, busy: bool) -> list[RequestRecord]:
    assert not busy  # the CLI has no caller loop to be busy
    seen: list[RequestRecord] = []
    lens.run(plan, on_record=seen.append)
    return seen


def run_thread(plan: Plan, busy: bool) -> list[RequestRecord]:
    seen: list[RequestRecord] = []
    asyncio.run(_with_host_load(busy, lens.run_async(plan, on_record=seen.append)))
    return seen


def run_thread_short_switch(plan: Plan, busy: bool) -> list[RequestRecord]:
    """The worker thread with the caller's advised remedy for a CPU-bound loop: a 1 ms
    GIL switch interval instead of 5 ms, so the measuring thread waits less for the GIL."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    try:
        return run_thread(plan, busy)
    finally:
        sys.setswitchinterval(before)


def run_guest(plan: Plan, busy: bool) -> list[RequestRecord]:
    seen: list[RequestRecord] = []

    async def guest() -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[outcome.Outcome[Any]] = loop.create_future()
        with live_providers(plan) as providers:
            trio.lowlevel.start_guest_run(
                lambda: execute(
                    plan,
                    providers,
                    handle_signals=False,
                    on_record=seen.append,
                    harness=harness_monitor(plan),
                    redactor=Redactor.for_plan(plan),
                ),
                run_sync_soon_threadsafe=loop.call_soon_threadsafe,
                run_sync_soon_not_threadsafe=loop.call_soon,
                done_callback=done.set_result,
                host_uses_signal_set_wakeup_fd=True,
            )
            (await done).unwrap()

    asyncio.run(_with_host_load(busy, guest()))
    return seen


MODES: list[tuple[str, Callable[[Plan, bool], list[RequestRecord]], bool]] = [
    ("cli (trio.run, main thread)", run_cli, False),
    ("run_async: worker thread", run_thread, False),
    ("trio guest on asyncio", run_guest, False),
    ("run_async: worker thread, busy", run_thread, True),
    ("  same, switchinterval 1 ms", run_thread_short_switch, True),
    ("trio guest on asyncio, busy", run_guest, True),
]


def embedding(emit: Callable[[str], None]) -> None:
    run_cli(_plan(2, 4), False)  # lazy imports and first connections, outside the figures
    emit(
        f"run_async timing vs the CLI (simulated server: TTFT {TTFT_MS:.0f} ms, "
        f"ITL {ITL_MS:.0f} ms, {TOKENS} tokens; busy: caller loop computing in "
        f"{BUSY_SLICE_S * 1e3:.0f} ms slices)"
    )
    emit(
        f"{'mode':<34} {'streams':>7} {'errors':>6} {'TTFT err p50':>13} {'p99':>8} "
        f"{'ITL err p50':>12} {'p99':>8}"
    )
    for concurrency, requests in ((1, 4), (32, 96)):
        for label, fn, busy in MODES:
            if busy and concurrency > 1:
                # A busy caller starves the measuring thread of the GIL (every syscall
                # waits up to a switch interval to get it back): at 32 streams such a run
                # took minutes and its figures say nothing the 1-stream rows do not.
                continue
            records = fn(_plan(concurrency, requests), busy)
            ok = [r for r in records if r.ok]
            ttft = [(r.t_first_token - r.t_dispatch) / 1e6 - TTFT_MS for r in ok if r.t_first_token]
            itl = [v - ITL_MS for r in ok for v in itl_values(r)]
            emit(
                f"{label:<34} {concurrency:>7} {len(records) - len(ok):>6} "
                f"{pct(ttft, 0.5):>+11.2f}ms {pct(ttft, 0.99):>+6.2f}ms "
                f"{pct(itl, 0.5):>+10.2f}ms {pct(itl, 0.99):>+6.2f}ms"
            )


if __name__ == "__main__":
    embedding(lambda line: print(line, flush=True))

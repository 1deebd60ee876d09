from __future__ import annotations

import time

import pytest
import trio
import trio.testing

from lens.records import HarnessLimits, HarnessReport
from lens.run.harness import HarnessMonitor


def report(**kw: object) -> HarnessReport:
    base: dict[str, object] = {
        "loop_lag_p50_ms": 1.0,
        "loop_lag_p99_ms": 2.0,
        "loop_lag_max_ms": 3.0,
        "cpu": 0.2,
        "limits": HarnessLimits(max_loop_lag_ms=25.0, max_cpu=0.9),
        "samples": 40,
        "span_s": 2.0,
    }
    base.update(kw)
    return HarnessReport(**base)  # type: ignore[arg-type]


def test_thresholds_decide_overload_and_say_why() -> None:
    assert not report().overloaded
    lagging = report(loop_lag_p99_ms=40.0)
    assert lagging.overloaded
    assert lagging.reasons == (
        "event-loop lag p99 40.0 ms > 25 ms (timestamps may be late by as much)",
    )
    busy = report(cpu=0.95)
    assert busy.reasons == ("client CPU 95% of a core > 90%",)
    assert not report(loop_lag_p99_ms=None, cpu=None).overloaded
    # too short to tell start-up from load
    assert not report(cpu=0.95, span_s=1.9).overloaded
    assert not report(loop_lag_p99_ms=40.0, samples=19).overloaded


async def test_a_stalled_loop_shows_as_lag_once(autojump_clock: trio.testing.MockClock) -> None:
    cpu = iter([1.0, 1.5])
    monitor = HarnessMonitor(interval_s=0.05, cpu_clock=lambda: next(cpu))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(monitor.run)
        await trio.sleep(0.5)
        autojump_clock.jump(0.3)  # the loop is held for 300 ms past a due wake-up
        await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    r = monitor.report()
    late = [lag for lag in monitor.lags_ms if lag > 0]
    # due at 0.55 s, woken at 0.8 s; one stall is one late sample, not a trail of them
    assert late == [pytest.approx(250.0)]
    assert r.loop_lag_max_ms == late[0]
    assert r.samples >= 15
    assert r.cpu == pytest.approx(0.5 / 1.3, rel=0.01)  # 0.5 s CPU over 1.3 s


def test_real_blocking_work_is_measured_as_lag() -> None:
    async def main() -> HarnessReport:
        monitor = HarnessMonitor(interval_s=0.01)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(monitor.run)
            await trio.sleep(0.05)
            time.sleep(0.12)  # blocks the loop, as a parse storm or a GIL hog would
            await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
        return monitor.report()

    r = trio.run(main)
    assert r.loop_lag_max_ms is not None
    assert 100.0 <= r.loop_lag_max_ms <= 300.0
    assert r.cpu is not None
    assert 0.0 <= r.cpu < 1.0  # sleeping is not CPU


def test_no_samples_no_figures() -> None:
    r = HarnessMonitor().report()
    assert (r.samples, r.loop_lag_p99_ms, r.cpu) == (0, None, None)
    assert not r.overloaded

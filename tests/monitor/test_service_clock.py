"""The monitor's loop under MockClock: interval, jitter, overruns, deadline, failures, stop.

The cycles here are fakes that take a scripted time; the pipeline's own cycles are in
test_monitor_e2e.py.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
import trio
import trio.testing

from lens import exitcodes
from lens.monitor.service import (
    ABANDON_GRACE_S,
    STOP_GRACE_S,
    CycleReport,
    MonitorConfig,
    MonitorService,
)
from lens.monitor.state import MonitorState
from lens.run.session import StopSwitch

Clock = trio.testing.MockClock


def _service(
    config: MonitorConfig, cycle: Callable[[int, StopSwitch, float], object]
) -> tuple[MonitorService, io.StringIO]:
    state = MonitorState(
        "s",
        every_s=config.every_s,
        deadline_s=config.deadline_s,
        windows_s=config.windows_s,
        started_at=0.0,
    )
    log = io.StringIO()
    service = MonitorService(
        config,
        state,
        cycle,  # type: ignore[arg-type]
        log=log,
        wall=trio.current_time,
        handle_signals=False,
    )
    return service, log


class Script:
    """A fake cycle: takes ``durations[n]`` seconds (the last one repeats), notes when it
    started, raises where told, and asks the service to stop after ``stop_after`` cycles."""

    def __init__(
        self,
        durations: list[float],
        *,
        stop_after: int,
        fail_on: frozenset[int] = frozenset(),
        hang_on: frozenset[int] = frozenset(),
    ) -> None:
        self.durations = durations
        self.stop_after = stop_after
        self.fail_on = fail_on
        self.hang_on = hang_on
        self.starts: list[float] = []
        self.service: MonitorService | None = None

    async def __call__(self, number: int, stop: StopSwitch, deadline_s: float) -> CycleReport:
        self.starts.append(trio.current_time())
        index = len(self.starts) - 1
        if index in self.hang_on:
            await trio.sleep_forever()  # ignores its stop switch: lens stuck
        await trio.sleep(self.durations[min(index, len(self.durations) - 1)])
        if len(self.starts) >= self.stop_after and self.service is not None:
            self.service.request_stop("test")
        if index in self.fail_on:
            raise RuntimeError("boom inside a cycle")
        return CycleReport("pass", exitcodes.OK)


async def _run(config: MonitorConfig, script: Script) -> tuple[MonitorService, str, int]:
    service, log = _service(config, script)
    script.service = service
    code = await service.run_cycles()
    return service, log.getvalue(), code


async def test_cycles_start_every_interval_from_the_start(autojump_clock: Clock) -> None:
    script = Script([3.0], stop_after=4)
    origin = trio.current_time()
    service, _, code = await _run(MonitorConfig(every_s=60, jitter=0, deadline_s=48), script)
    assert code == exitcodes.OK
    assert [t - origin for t in script.starts] == [0, 60, 120, 180]
    assert service.state.cycles_by_outcome["pass"] == 4
    assert service.state.skipped == 0
    assert service.state.overruns == 0


async def test_jitter_delays_each_start_within_its_bound(autojump_clock: Clock) -> None:
    script = Script([1.0], stop_after=30)
    origin = trio.current_time()
    config = MonitorConfig(every_s=100, jitter=0.2, deadline_s=80, seed=11)
    await _run(config, script)
    late = [t - origin - k * 100 for k, t in enumerate(script.starts)]
    assert all(0 <= x <= 20 for x in late), late
    assert len({round(x, 6) for x in late}) > 20  # drawn per slot, not one fixed offset


async def test_an_overrun_starts_the_next_cycle_late_and_counts_skipped_slots(
    autojump_clock: Clock,
) -> None:
    # Cycle 0 takes 25 s of a 10 s interval: slots 1 (10 s) and 2 (20 s) pass while it
    # runs; the next cycle starts at once (25 s) in slot 2, slot 1 skipped.
    script = Script([25.0, 1.0], stop_after=3)
    origin = trio.current_time()
    service, log, _ = await _run(MonitorConfig(every_s=10, jitter=0, deadline_s=8), script)
    assert [t - origin for t in script.starts] == [0, 25, 30]
    assert service.state.skipped == 1
    assert service.state.overruns == 1
    assert "overran the next slot: the next cycle starts 5s late, 1 slot(s) skipped" in log
    text = service.state.exposition(trio.current_time())
    assert 'lens_monitor_cycles_skipped_total{scenario="s"} 1' in text
    assert 'lens_monitor_cycle_overruns_total{scenario="s"} 1' in text


async def test_a_cycle_that_never_returns_is_abandoned_and_the_next_one_runs(
    autojump_clock: Clock,
) -> None:
    script = Script([1.0], stop_after=3, hang_on=frozenset({0}))
    origin = trio.current_time()
    config = MonitorConfig(every_s=100, jitter=0, deadline_s=80)
    service, log, _ = await _run(config, script)
    # Abandoned at deadline + grace (110 s): slot 1 (100 s) passed, so the next starts then.
    assert [t - origin for t in script.starts] == [0, 80 + ABANDON_GRACE_S, 200]
    assert service.state.cycles_by_outcome["deadline"] == 1
    assert service.state.cycles_by_outcome["pass"] == 2
    assert "cycle 1: deadline in 110.0s, 0 requests, 0 errors; the cycle did not end" in log


async def test_lens_failing_inside_a_cycle_is_one_line_counted_and_not_the_end(
    autojump_clock: Clock,
) -> None:
    script = Script([1.0], stop_after=3, fail_on=frozenset({1}))
    service, log, code = await _run(MonitorConfig(every_s=10, jitter=0, deadline_s=8), script)
    assert code == exitcodes.OK
    assert len(script.starts) == 3
    assert service.state.cycles_by_outcome == {
        "pass": 2,
        "sla_failed": 0,
        "inconclusive": 0,
        "deadline": 0,
        "interrupted": 0,
        "lens_failed": 1,
    }
    failed = [line for line in log.splitlines() if "lens failed" in line]
    assert failed == [
        "lens monitor: cycle 2: lens_failed in 1.0s, 0 requests, 0 errors; "
        "lens failed: RuntimeError: boom inside a cycle"
    ]
    assert service.state.last_exit_code == exitcodes.OK  # the cycle after it passed


async def test_a_stop_during_a_stuck_cycle_ends_it_within_the_grace(
    autojump_clock: Clock,
) -> None:
    script = Script([1.0], stop_after=99, hang_on=frozenset({0}))
    service, log = _service(MonitorConfig(every_s=100, jitter=0, deadline_s=80), script)
    origin = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(service.run_cycles)
        await trio.sleep(5)
        service.request_stop("SIGTERM")
    assert trio.current_time() - origin == pytest.approx(5 + STOP_GRACE_S)
    assert service.state.cycles_by_outcome["interrupted"] == 1
    assert "SIGTERM: stopping after the current cycle's results" in log.getvalue()


async def test_a_stop_between_cycles_ends_the_sleep_at_once(autojump_clock: Clock) -> None:
    script = Script([1.0], stop_after=99)
    service, _ = _service(MonitorConfig(every_s=300, jitter=0, deadline_s=240), script)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(service.run_cycles)
        await trio.sleep(50)
        service.request_stop("SIGTERM")
        stopped = trio.current_time()
    assert trio.current_time() == stopped  # no wait for the next slot
    assert len(script.starts) == 1


async def test_once_runs_one_cycle_at_once_and_returns_its_exit_code(
    autojump_clock: Clock,
) -> None:
    async def failing(number: int, stop: StopSwitch, deadline_s: float) -> CycleReport:
        return CycleReport("sla_failed", exitcodes.SLA_FAILED)

    service, _ = _service(MonitorConfig(every_s=300, jitter=0.5, deadline_s=1, once=True), failing)
    origin = trio.current_time()
    assert await service.run_cycles() == exitcodes.SLA_FAILED
    assert trio.current_time() == origin  # no jitter before the one cycle


def test_health_turns_503_when_no_cycle_ended_within_twice_the_interval_plus_deadline() -> None:
    state = MonitorState("s", every_s=60, deadline_s=48, windows_s=(3600,), started_at=1000.0)
    assert state.health(1000 + 168).ok  # 2 x 60 + 48
    stale = state.health(1000 + 169)
    assert not stale.ok
    assert "no cycle finished in the 169s since the start" in stale.reason
    state.add_cycle(None, outcome="pass", duration_s=1, ended_at=1200.0, exit_code=0, results=None)
    assert state.health(1200 + 168).ok
    late = state.health(1200 + 400)
    assert not late.ok
    assert late.reason == "no cycle finished in the last 168s: the last one ended 400s ago"

"""The executor follows every pattern's schedule exactly (MockClock: no time passes unasked)."""

from __future__ import annotations

import dataclasses

import trio
import trio.testing

from lens.plan.arrivals import RateProfile, burst_arrivals, paced_arrivals
from lens.plan.model import ArrivalSchedule, ClosedLoop, OpenLoop, StagePlan
from lens.records import RequestRecord, StageWindow, SweepStep
from lens.run.executor import StageRunner

from .fake_server import FakeOpenAI, Script
from .test_executor import MS, open_stage, plan_of


async def run_units(
    *units: StagePlan, script: Script | None = None
) -> tuple[list[RequestRecord], list[StageWindow]]:
    fake = FakeOpenAI(script or Script(ttft_s=0.05, itl_s=0.01, tokens=2))
    records: list[RequestRecord] = []
    plan = plan_of(*units)
    runner = StageRunner(plan, plan.providers, records.append, transport_for=lambda _: fake)
    await runner.run_all()
    return sorted(records, key=lambda r: (r.stage, r.index)), runner.windows


def assert_on_schedule(
    records: list[RequestRecord], window: StageWindow, schedule: ArrivalSchedule
) -> None:
    mine = [r for r in records if r.stage == window.stage]
    assert len(mine) == schedule.count
    for rec, offset in zip(mine, schedule.offsets_s, strict=True):
        assert rec.t_intended == window.t_start + round(offset * 1e9)
        assert rec.t_dispatch == rec.t_intended  # nothing waits: no lag on a mock clock


async def test_linear_ramp_is_sent_on_its_schedule(autojump_clock: trio.testing.MockClock) -> None:
    schedule = paced_arrivals(RateProfile.ramp(1.0, 9.0, 4.0, None), requests=None)
    recs, (window,) = await run_units(open_stage(schedule, pattern="ramp"))
    assert schedule.count == 20  # (1 + 9) / 2 * 4
    assert_on_schedule(recs, window, schedule)
    assert all(r.ok for r in recs)


async def test_stepped_ramp_and_poisson_ramp(autojump_clock: trio.testing.MockClock) -> None:
    stepped = paced_arrivals(RateProfile.ramp(2.0, 6.0, 3.0, 3), requests=None)
    poisson = paced_arrivals(
        RateProfile.ramp(10.0, 2.0, 3.0, None), requests=None, process="poisson", seed=4
    )
    recs, (w1, w2) = await run_units(
        open_stage(stepped, stage="stepped"),
        open_stage(poisson, stage="poisson"),
    )
    assert_on_schedule(recs, w1, stepped)
    assert_on_schedule(recs, w2, poisson)


async def test_gamma_schedule_with_a_cap_is_late_only_by_the_cap(
    autojump_clock: trio.testing.MockClock,
) -> None:
    schedule = paced_arrivals(
        RateProfile.constant(20.0, None), requests=30, process="gamma", burstiness=0.3, seed=1
    )
    recs, (window,) = await run_units(open_stage(schedule, max_concurrency=2))
    for rec, offset in zip(recs, schedule.offsets_s, strict=True):
        assert rec.t_intended == window.t_start + round(offset * 1e9)
        assert rec.t_dispatch >= rec.t_intended


async def test_burst_waves_go_out_together(autojump_clock: trio.testing.MockClock) -> None:
    schedule = burst_arrivals(3, waves=3, interval_s=2.0)
    recs, (window,) = await run_units(open_stage(schedule, pattern="burst"))
    assert_on_schedule(recs, window, schedule)
    starts = sorted({r.t_dispatch - window.t_start for r in recs})
    assert starts == [0, 2000 * MS, 4000 * MS]


async def test_pause_before_a_step_is_idle_and_outside_both_windows(
    autojump_clock: trio.testing.MockClock,
) -> None:
    first = open_stage(
        [0.0, 0.5],
        stage="ladder.2rps",
        pattern="sweep",
        sweep=SweepStep("ladder", 0, 2, rate_per_s=2.0),
    )
    second = dataclasses.replace(
        first,
        stage="ladder.4rps",
        load=OpenLoop(ArrivalSchedule((0.0, 0.25, 0.5, 0.75))),
        sweep=SweepStep("ladder", 1, 2, rate_per_s=4.0),
        pause_before_s=3.0,
    )
    recs, (w1, w2) = await run_units(first, second)
    assert w2.t_start - w1.t_end == 3000 * MS
    assert max(r.t_end for r in recs if r.stage == "ladder.2rps") <= w1.t_end
    assert min(r.t_dispatch for r in recs if r.stage == "ladder.4rps") == w2.t_start
    assert (w1.sweep, w2.sweep) == (first.sweep, second.sweep)
    assert isinstance(second.load, OpenLoop)
    assert_on_schedule(recs, w2, second.load.arrivals)


async def test_closed_loop_sweep_steps_keep_their_concurrency(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def step(index: int, concurrency: int) -> StagePlan:
        return StagePlan(
            stage=f"c.c{concurrency}",
            provider="p",
            pattern="sweep",
            prompts=("a",),
            timeout_s=5.0,
            max_tokens=None,
            load=ClosedLoop(concurrency=concurrency, requests=8),
            sweep=SweepStep("c", index, 2, concurrency=concurrency),
            pause_before_s=1.0 if index else 0.0,
        )

    recs, (w1, w2) = await run_units(step(0, 1), step(1, 4), script=Script(ttft_s=0.1, tokens=1))
    # 8 requests of 100 ms: one at a time, then four at a time.
    assert w1.t_end - w1.t_start == 800 * MS
    assert w2.t_end - w2.t_start == 200 * MS
    assert w2.t_start - w1.t_end == 1000 * MS
    assert len(recs) == 16

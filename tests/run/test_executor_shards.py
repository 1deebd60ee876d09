"""Shards of one plan run its global schedule exactly (MockClock: no time passes unasked):
every arrival once, at its planned offset, in the shard that owns it, with its plan index
(and so its prompt and phase)."""

from __future__ import annotations

import trio
import trio.testing

from lens.plan.arrivals import RateProfile, burst_arrivals, paced_arrivals
from lens.plan.model import ClosedLoop, Phases
from lens.plan.split import shard_plan
from lens.records import RequestRecord, StageWindow
from lens.run.executor import StageRunner

from .fake_server import FakeOpenAI, Script
from .test_executor import open_stage, plan_of


async def run_shard(
    plan_units: tuple[object, ...], index: int, count: int
) -> tuple[list[RequestRecord], list[StageWindow]]:
    fake = FakeOpenAI(Script(ttft_s=0.05, itl_s=0.01, tokens=2))
    plan = shard_plan(plan_of(*plan_units), index, count)  # type: ignore[arg-type]
    records: list[RequestRecord] = []
    runner = StageRunner(plan, plan.providers, records.append, transport_for=lambda _: fake)
    await runner.run_all()
    return records, runner.windows


async def test_every_arrival_once_at_its_offset_in_its_shard(
    autojump_clock: trio.testing.MockClock,
) -> None:
    poisson = paced_arrivals(
        RateProfile.constant(40.0, None), requests=53, process="poisson", seed=3
    )
    waves = burst_arrivals(5, waves=3, interval_s=1.0)
    units = (
        open_stage(poisson, stage="p", phases=Phases(warmup_requests=4, cooldown_from_index=50)),
        open_stage(waves, stage="w", pattern="burst"),
    )
    count = 3
    seen: dict[tuple[str, int], int] = {}
    for k in range(count):
        records, windows = await run_shard(units, k, count)
        starts = {w.stage: w.t_start for w in windows}
        for rec in records:
            assert (rec.stage, rec.index) not in seen
            seen[(rec.stage, rec.index)] = k
            assert rec.index % count == k  # shard k owns arrivals k, k+N, ...
            schedule = poisson if rec.stage == "p" else waves
            assert rec.t_intended == starts[rec.stage] + round(schedule.offsets_s[rec.index] * 1e9)
            assert rec.t_dispatch == rec.t_intended
            assert rec.prompt == ("a", "b")[rec.index % 2]  # the plan's prompt cycle
            if rec.stage == "p":
                expected = (
                    "warmup" if rec.index < 4 else "cooldown" if rec.index >= 50 else "measure"
                )
                assert rec.phase == expected
    assert sorted(i for s, i in seen if s == "p") == list(range(53))
    assert sorted(i for s, i in seen if s == "w") == list(range(15))


async def test_closed_loop_shares_add_up(autojump_clock: trio.testing.MockClock) -> None:
    closed = open_stage([], stage="c", pattern="concurrency", load=ClosedLoop(3, requests=10))
    totals = []
    for k in range(4):
        records, (window,) = await run_shard((closed,), k, 4)
        totals.append(len(records))
        if k == 3:  # no client left for the last shard: an empty unit, over at once
            assert window.planned == 0
            assert window.t_end == window.t_start
    assert totals == [4, 3, 3, 0]

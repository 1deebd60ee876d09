"""stop_on_fail: a failed assertion stops the run (the executor under a mock clock, with
the metrics-side watch injected as the pipeline injects it)."""

from __future__ import annotations

from dataclasses import replace

import trio
import trio.testing

from lens.metrics.slawatch import SlaWatch
from lens.metrics.summary import aggregate
from lens.metrics.windows import judge_all
from lens.plan.model import AdaptiveSweep, Plan, SlaSpec, StagePlan
from lens.records import ErrorClass, RequestRecord
from lens.run.executor import StageRunner
from lens.run.slastop import SlaStop
from lens.scenario.sla import parse_sla

from .fake_server import FakeOpenAI, Script
from .test_executor import open_stage, plan_of

S = 1_000_000_000
ARRIVALS = [0.1 * i for i in range(40)]  # 10/s for 4 s


def slow_second_second(call: int) -> Script:
    """Requests 10..19 (sent from 1.0 s to 1.9 s) answer after 900 ms, the rest after 100."""
    return Script(ttft_s=0.9 if 10 <= call < 20 else 0.1, itl_s=0.01, tokens=3)


def windowed(text: str = "ttft.p50 < 500ms", **kw: object) -> SlaSpec:
    base: dict[str, object] = {"window_s": 1.0, "allow": 0, "stop_on_fail": True}
    base.update(kw)
    return SlaSpec(parse_sla(text), **base)  # type: ignore[arg-type]


async def run(
    units: tuple[StagePlan, ...], slas: tuple[SlaSpec, ...], fake: FakeOpenAI
) -> tuple[Plan, list[RequestRecord], StageRunner, SlaWatch]:
    plan = replace(plan_of(*units), slas=slas)
    watch = SlaWatch(plan, plan.slas)
    records: list[RequestRecord] = []
    runner = StageRunner(
        plan,
        plan.providers,
        records.append,
        transport_for=lambda _: fake,
        sla_stop=SlaStop(watch.on_record, watch.on_unit_end),
    )
    await runner.run_all()
    return plan, records, runner, watch


async def test_a_failed_window_stops_the_stage_before_its_end_and_later_stages(
    autojump_clock: trio.testing.MockClock,
) -> None:
    first = open_stage(ARRIVALS)
    later = replace(first, stage="later")
    plan, records, runner, watch = await run(
        (first, later), (windowed(),), FakeOpenAI(slow_second_second)
    )
    assert runner.sla_stop is not None
    assert runner.sla_stop.reason is not None
    assert runner.sla_stop.reason.startswith(
        "ttft.p50 < 500ms failed on stage=s provider=p: 1 windows of 1s failed (allow 0): "
        "#1 [1s-2s]"
    )
    assert watch.stopped_by is not None
    assert {r.stage for r in records} == {"s"}  # the later stage never started
    sent = max(r.t_dispatch or 0 for r in records)
    assert 2 * S < sent < 3 * S  # stopped once the window could no longer pass
    assert 20 < len(records) < 30
    assert all(r.ok for r in records)  # drain: wait, the in-flight ones finished
    (window,) = runner.windows
    assert window.t_end < 4 * S  # before the stage's planned end
    # The final verdict, from every record, agrees with the stop.
    spans = {("s", "p"): window.span("measure")}
    summaries = aggregate(records, stage_windows=spans)
    (v,) = judge_all(plan.slas, summaries, records, spans)
    assert v.outcome == "fail"
    assert v.window is not None
    assert [w.outcome for w in v.window.windows[:2]] == ["pass", "fail"]


async def test_allowing_the_slow_window_runs_to_the_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    first = open_stage(ARRIVALS)
    later = open_stage([0.0], stage="later")
    _, records, runner, watch = await run(
        (first, later), (windowed(allow=1),), FakeOpenAI(slow_second_second)
    )
    assert runner.sla_stop is not None
    assert not runner.sla_stop.tripped
    assert watch.stopped_by is None
    assert len(records) == 41


async def test_drain_cancel_cuts_the_requests_in_flight_at_the_stop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    first = open_stage(ARRIVALS, drain="cancel")
    _, records, runner, _ = await run((first,), (windowed(),), FakeOpenAI(slow_second_second))
    assert runner.sla_stop is not None
    assert runner.sla_stop.tripped
    drained = [r for r in records if r.error_class is ErrorClass.DRAINED]
    assert drained  # slow ones still in flight when it stopped
    assert max(r.t_end for r in records) < 3 * S


async def test_a_plain_assertion_stops_the_run_when_its_stage_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    slow = FakeOpenAI(Script(ttft_s=0.9, itl_s=0.01, tokens=3))
    first = open_stage([0.1 * i for i in range(10)])
    later = replace(first, stage="later")
    spec = SlaSpec(parse_sla("ttft.p50 < 500ms"), stage="s", stop_on_fail=True)
    _, records, runner, _ = await run((first, later), (spec,), slow)
    assert runner.sla_stop is not None
    assert runner.sla_stop.reason is not None
    assert "ttft.p50 = 900" in runner.sla_stop.reason
    assert len(records) == 10
    assert [w.stage for w in runner.windows] == ["s"]


async def test_an_inconclusive_window_never_stops_the_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # p95 needs 20 samples: ten per window are never enough to fail it.
    first = open_stage(ARRIVALS)
    _, records, runner, _ = await run(
        (first,), (windowed("ttft.p95 < 500ms"),), FakeOpenAI(slow_second_second)
    )
    assert runner.sla_stop is not None
    assert not runner.sla_stop.tripped
    assert len(records) == 40


def test_a_scope_naming_an_adaptive_sweep_covers_the_steps_chosen_at_run_time() -> None:
    plan = replace(
        plan_of(open_stage([0.0], stage="ladder.1rps")),
        sweeps=(AdaptiveSweep(sweep="ladder", kind="find_max_rate"),),
    )
    watch = SlaWatch(plan, (windowed(stage="ladder"), windowed(stage="other")))
    assert watch._applies(watch.specs[0], "ladder.7.5rps", "p")  # decided at run time
    assert not watch._applies(watch.specs[1], "ladder.7.5rps", "p")
    assert not watch._applies(watch.specs[0], "ladderx.1rps", "p")

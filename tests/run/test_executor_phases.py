"""Warmup/cooldown tags, drain at the cutoff and idle probes, on a MockClock: exact times."""

from __future__ import annotations

import trio
import trio.testing

from lens.metrics.idle import idle_probes
from lens.metrics.integrity import cold_flags
from lens.plan.model import Phases, RetryPolicy, StagePlan
from lens.records import ErrorClass, RequestRecord
from lens.run.executor import StageRunner, StageWindow

from .fake_server import FakeOpenAI, Script
from .test_executor import MS, open_stage, plan_of

# One token 100 ms after dispatch: every request takes exactly 100 ms.
TENTH = Script(ttft_s=0.1, itl_s=0.0, tokens=1)


async def run_unit(
    unit: StagePlan, script: Script = TENTH
) -> tuple[list[RequestRecord], StageWindow]:
    fake = FakeOpenAI(script)
    records: list[RequestRecord] = []
    plan = plan_of(unit)
    runner = StageRunner(plan, plan.providers, records.append, transport_for=lambda _: fake)
    await runner.run_all()
    (window,) = runner.windows
    return sorted(records, key=lambda r: r.index), window


def closed_stage(**kw: object) -> StagePlan:
    base: dict[str, object] = {
        "stage": "c",
        "provider": "p",
        "pattern": "concurrency",
        "prompts": ("a",),
        "timeout_s": 5.0,
        "max_tokens": None,
        "concurrency": 1,
    }
    base.update(kw)
    return StagePlan(**base)  # type: ignore[arg-type]


async def test_open_loop_requests_carry_their_phase_and_the_window_its_bounds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    phases = Phases(warmup_requests=2, cooldown_from_index=8)
    recs, window = await run_unit(open_stage([i * 0.2 for i in range(10)], phases=phases))
    assert [r.phase for r in recs] == ["warmup"] * 2 + ["measure"] * 6 + ["cooldown"] * 2
    assert window.t_measure_start == recs[2].t_intended
    assert window.t_measure_end == recs[8].t_intended
    assert window.span("warmup") == (window.t_start, window.t_start + 400 * MS)
    assert window.span("measure") == (window.t_start + 400 * MS, window.t_start + 1600 * MS)
    assert window.span("cooldown") == (window.t_start + 1600 * MS, window.t_end)


async def test_closed_loop_phase_follows_when_a_request_starts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Requests start at 0, 0.1, 0.2, ... 0.9 s: warmup before 0.25 s, cooldown from 0.75 s.
    phases = Phases(warmup_s=0.25, cooldown_from_s=0.75)
    recs, window = await run_unit(closed_stage(duration_s=1.0, phases=phases))
    assert [r.phase for r in recs] == ["warmup"] * 3 + ["measure"] * 5 + ["cooldown"] * 2
    assert window.span("measure") == (window.t_start + 300 * MS, window.t_start + 800 * MS)


async def test_retries_keep_the_phase_of_their_first_attempt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    policy = RetryPolicy(max_retries=1, on=frozenset({"http_429"}), backoff_s=0.1, max_wait_s=1)
    unit = open_stage([0.0, 1.0], phases=Phases(warmup_requests=1), retries=policy)
    recs, _ = await run_unit(unit, Script(status=429))
    assert [(r.index, r.attempt, r.phase) for r in recs] == [
        (0, 1, "warmup"),
        (0, 2, "warmup"),
        (1, 1, "measure"),
        (1, 2, "measure"),
    ]


async def test_drain_cancel_cuts_requests_off_at_the_cutoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The 0.3 s stage ends while the request sent at 0.25 s is in flight (until 0.35 s).
    unit = open_stage([0.0, 0.25], drain="cancel", cutoff_s=0.3)
    recs, window = await run_unit(unit)
    assert recs[0].ok
    assert recs[1].error_class is ErrorClass.DRAINED
    assert recs[1].error_message == "in flight at the stage's cutoff (drain: cancel)"
    assert recs[1].t_end == window.t_end == window.t_start + 300 * MS


async def test_drain_timeout_is_a_grace_after_the_cutoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # No duration: the cutoff is the last send (0.25 s); 80 ms later the request is cut off.
    unit = open_stage([0.0, 0.25], drain="wait", drain_timeout_s=0.08)
    recs, window = await run_unit(unit)
    assert recs[1].error_class is ErrorClass.DRAINED
    assert window.t_end == window.t_start + 330 * MS
    # A grace long enough lets it finish.
    recs, window = await run_unit(open_stage([0.0, 0.25], drain="wait", drain_timeout_s=0.5))
    assert all(r.ok for r in recs)
    assert window.t_end == window.t_start + 350 * MS


async def test_drain_wait_lets_requests_finish(autojump_clock: trio.testing.MockClock) -> None:
    recs, window = await run_unit(open_stage([0.0, 0.25], cutoff_s=0.3))
    assert all(r.ok for r in recs)
    assert window.t_end == window.t_start + 350 * MS


async def test_closed_loop_drain_at_its_duration_and_at_its_last_request(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Duration 0.25 s: requests start at 0, 0.1, 0.2; the third is cut off at 0.25 s.
    unit = closed_stage(duration_s=0.25, cutoff_s=0.25, drain="cancel")
    recs, window = await run_unit(unit)
    assert [r.error_class for r in recs] == [None, None, ErrorClass.DRAINED]
    assert window.t_end == window.t_start + 250 * MS
    # Three requests, no duration: the cutoff is the third start (0.2 s), grace 50 ms.
    unit = closed_stage(requests=3, drain="cancel", drain_timeout_s=0.05)
    recs, window = await run_unit(unit)
    assert [r.error_class for r in recs] == [None, None, ErrorClass.DRAINED]
    assert window.t_end == window.t_start + 250 * MS


async def test_an_interruption_is_still_cancelled_not_drained(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeOpenAI(TENTH)
    records: list[RequestRecord] = []
    plan = plan_of(open_stage([0.0], drain="cancel", cutoff_s=1.0))
    runner = StageRunner(plan, plan.providers, records.append, transport_for=lambda _: fake)
    with trio.move_on_after(0.05):
        await runner.run_all()
    assert [r.error_class for r in records] == [ErrorClass.CANCELLED]


async def test_idle_probe_waits_each_gap_after_the_previous_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    unit = StagePlan(
        stage="idle",
        provider="p",
        pattern="idle-probe",
        prompts=("a",),
        timeout_s=5.0,
        max_tokens=None,
        requests=4,
        idle_gaps_s=(0.0, 1.0, 5.0),
    )
    recs, window = await run_unit(unit)
    starts = [r.t_dispatch - window.t_start for r in recs]
    assert starts == [0, 100 * MS, 1200 * MS, 6300 * MS]
    assert all(r.t_intended is None and r.phase == "measure" for r in recs)
    colds = cold_flags(recs, cold_after_s=2.0)
    (probed,) = idle_probes(recs, colds, {"idle"})
    assert [p.idle_s for p in probed.probes] == [None, 0.0, 1.0, 5.0]
    assert [p.cold for p in probed.probes] == [True, False, False, True]
    assert [p.ttft_ms for p in probed.probes] == [100.0] * 4
    assert window.started == 4


async def test_requests_waiting_for_a_slot_at_the_cutoff_are_recorded_never_sent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # One slot, three due at once, 100 ms each, cut off at 150 ms: the first finishes, the
    # second is in flight (drained), the third never got a slot (drained, never sent).
    unit = open_stage([0.0, 0.0, 0.0], drain="cancel", cutoff_s=0.15, max_concurrency=1)
    recs, window = await run_unit(unit)
    assert [r.error_class for r in recs] == [None, ErrorClass.DRAINED, ErrorClass.DRAINED]
    never = recs[2]
    assert (
        never.error_message
        == "waited for a max_concurrency slot until the stage's cutoff; never sent"
    )
    assert never.t_intended == window.t_start
    assert never.t_dispatch == never.t_end == window.t_start + 150 * MS  # waited 150 ms
    assert never.http_status is None

"""Warmup/cooldown tags, drain at the cutoff and idle probes, on a MockClock: exact times."""

from __future__ import annotations

from collections.abc import Callable

import trio
import trio.testing

from lens.metrics.idle import idle_probes
from lens.metrics.integrity import cold_flags
from lens.metrics.summary import SummaryBuilder
from lens.plan.model import ClosedLoop, IdleProbe, Phases, RetryPolicy, StagePlan
from lens.records import ErrorClass, RequestRecord, StageWindow
from lens.run.executor import StageRunner

from .fake_server import FakeOpenAI, Script
from .test_executor import MS, open_stage, plan_of

# One token 100 ms after dispatch: every request takes exactly 100 ms.
TENTH = Script(ttft_s=0.1, itl_s=0.0, tokens=1)


async def run_unit(
    unit: StagePlan, script: Script | Callable[[int], Script] = TENTH
) -> tuple[list[RequestRecord], StageWindow]:
    fake = FakeOpenAI(script)
    records: list[RequestRecord] = []
    plan = plan_of(unit)
    runner = StageRunner(plan, plan.providers, records.append, transport_for=lambda _: fake)
    await runner.run_all()
    (window,) = runner.windows
    return sorted(records, key=lambda r: r.index), window


def closed_stage(
    *,
    concurrency: int = 1,
    requests: int | None = None,
    duration_s: float | None = None,
    **kw: object,
) -> StagePlan:
    base: dict[str, object] = {
        "stage": "c",
        "provider": "p",
        "pattern": "concurrency",
        "prompts": ("a",),
        "timeout_s": 5.0,
        "max_tokens": None,
        "load": ClosedLoop(concurrency, requests, duration_s),
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


def lasting(*first_ms: int, then_ms: int = 100) -> Callable[[int], Script]:
    """Call k (in send order) takes ``first_ms[k]`` ms, every later one ``then_ms``."""

    def script(call: int) -> Script:
        ms = first_ms[call] if call < len(first_ms) else then_ms
        return Script(ttft_s=ms / 1000, itl_s=0.0, tokens=1)

    return script


def rates(recs: list[RequestRecord], window: StageWindow) -> dict[str, float | None]:
    """Each phase's req/s over its own span, as the pipeline summarises them."""
    builder = SummaryBuilder()
    builder.add_many(recs)
    (measured,) = builder.build({("c", "p"): window.span("measure")})
    out: dict[str, float | None] = {"measure": measured.rps}
    for s in builder.build_phases(
        {("c", "p", ph): window.span(ph) for ph in ("warmup", "cooldown")}
    ):
        out[s.phase] = s.rps
    return out


def starts_ms(recs: list[RequestRecord], window: StageWindow) -> list[tuple[str, int]]:
    return [(r.phase, (r.t_dispatch - window.t_start) // MS) for r in recs]


async def test_closed_loop_warmup_is_a_barrier_and_the_measured_span_opens_at_its_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Four workers, 100 ms a request, the first two warmup.  The two workers without a
    # warmup request wait; all four start measured requests at 100 ms (8: two rounds).
    fake = FakeOpenAI(TENTH)
    records: list[RequestRecord] = []
    plan = plan_of(closed_stage(concurrency=4, requests=10, phases=Phases(warmup_requests=2)))
    runner = StageRunner(plan, plan.providers, records.append, transport_for=lambda _: fake)
    await runner.run_all()
    (window,) = runner.windows
    recs = sorted(records, key=lambda r: r.index)
    assert (
        starts_ms(recs, window)
        == [("warmup", 0)] * 2 + [("measure", 100)] * 4 + [("measure", 200)] * 4
    )
    assert fake.max_in_flight == 4
    assert window.t_end - window.t_start == 300 * MS
    assert window.span("warmup") == (window.t_start, window.t_start + 100 * MS)
    assert window.span("measure") == (window.t_start + 100 * MS, window.t_end)
    # 4 in flight for 200 ms: 40/s, the rate of four 100 ms slots; 2 warmup in 100 ms.
    assert rates(recs, window) == {"measure": 40.0, "warmup": 20.0}


async def test_a_slow_warmup_request_holds_every_worker_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Two workers; the warmup request takes 300 ms.  The other worker waits for it rather
    # than run measured requests beside it: measured requests start at 300 and 400 ms.
    recs, window = await run_unit(
        closed_stage(concurrency=2, requests=5, phases=Phases(warmup_requests=1)),
        lasting(300),
    )
    assert (
        starts_ms(recs, window) == [("warmup", 0)] + [("measure", 300)] * 2 + [("measure", 400)] * 2
    )
    assert window.span("measure") == (window.t_start + 300 * MS, window.t_start + 500 * MS)
    assert rates(recs, window) == {"measure": 20.0, "warmup": 1 / 0.3}


async def test_a_timed_warmup_ends_when_its_last_request_does(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Warmup: requests started in the first 150 ms.  Worker A: 0-100, 100-200 (both
    # warmup); worker B: 0-250.  A's next request (at 200 ms) is measured: it waits for
    # B's, and both start measured requests at 250 ms.
    phases = Phases(warmup_s=0.15)
    recs, window = await run_unit(
        closed_stage(concurrency=2, duration_s=0.5, phases=phases), lasting(100, 250, 100)
    )
    warmup = [("warmup", 0), ("warmup", 0), ("warmup", 100)]
    measured = [("measure", ms) for ms in (250, 250, 350, 350, 450, 450)]
    assert starts_ms(recs, window) == warmup + measured
    assert window.span("warmup") == (window.t_start, window.t_start + 250 * MS)
    assert window.span("measure") == (window.t_start + 250 * MS, window.t_end)
    assert window.t_end - window.t_start == 550 * MS


async def test_closed_loop_cooldown_span_starts_with_the_first_cooldown_request(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Two workers, 100 ms each; 1 warmup, 4 measured, 2 cooldown of 7.  Warmup 0-100 (the
    # other worker waits); measured at 100 and 200 ms; cooldown at 300 ms.
    phases = Phases(warmup_requests=1, cooldown_from_index=5)
    recs, window = await run_unit(closed_stage(concurrency=2, requests=7, phases=phases))
    assert window.span("measure") == (window.t_start + 100 * MS, window.t_start + 300 * MS)
    assert window.span("cooldown") == (window.t_start + 300 * MS, window.t_start + 400 * MS)
    assert rates(recs, window) == {"measure": 20.0, "warmup": 10.0, "cooldown": 20.0}


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
        load=IdleProbe((0.0, 1.0, 5.0)),
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

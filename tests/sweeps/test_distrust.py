"""An overloaded client distorts every timing a sweep decided on: its sweeps are flagged."""

from __future__ import annotations

from datetime import UTC, datetime

from lens.metrics.sweep_outcomes import SweepOutcome, SweepProbe, distrust_sweeps
from lens.pipeline import judge_sweeps
from lens.records import HarnessLimits, HarnessReport, RunOutcome
from lens.sweeps.driver import SweepDriver
from tests.sweeps.test_driver import plan_of

PROBE = SweepProbe("s.85rps", 85.0, None, held=True, rps=84.0, detail="ttft.p95 = 120 ms")
FOUND = SweepOutcome(
    "s",
    "fake",
    "find_max_rate",
    "85/s meets ttft.p95 < 150ms: bracket within 5/s",
    (PROBE,),
    max_rate_per_s=85.0,
    bracket=(85.0, 88.75),
)
LADDER = SweepOutcome("l", "fake", "stop_when", "every step ran", (PROBE,))


def harness(lag_p99_ms: float) -> HarnessReport:
    return HarnessReport(
        samples=100,
        loop_lag_p50_ms=1.0,
        loop_lag_p99_ms=lag_p99_ms,
        loop_lag_max_ms=lag_p99_ms,
        cpu=0.2,
        limits=HarnessLimits(max_loop_lag_ms=25.0, max_cpu=0.9),
        span_s=10.0,
    )


def outcome_with(report: HarnessReport | None) -> RunOutcome:
    started = datetime(2026, 1, 1, tzinfo=UTC)
    return RunOutcome((), (), started_at=started, duration_s=10.0, harness=report)


def test_every_sweep_is_flagged_with_the_harness_reasons_first() -> None:
    flagged = distrust_sweeps([FOUND, LADDER], ["event-loop lag p99 60.0 ms > 25 ms", "cpu"])
    assert all(o.distrusted for o in flagged)
    found, ladder = flagged
    assert found.reason == (
        "measurements distorted by the client: event-loop lag p99 60.0 ms > 25 ms; cpu "
        "(85/s meets ttft.p95 < 150ms: bracket within 5/s)"
    )
    # What was found is kept, as distrusted verdicts keep their measured value.
    assert (found.max_rate_per_s, found.bracket, found.probes) == (85.0, (85.0, 88.75), (PROBE,))
    assert ladder.reason.endswith("(every step ran)")


def test_no_reasons_leave_the_sweeps_as_they_were() -> None:
    assert distrust_sweeps([FOUND], []) == (FOUND,)


def test_the_run_harness_report_applies_to_every_sweep_of_the_run() -> None:
    driver = SweepDriver(plan_of("- {id: b, pattern: burst, requests: 1}\n"))
    driver.outcomes = [FOUND, LADDER]
    overloaded = judge_sweeps(driver, outcome_with(harness(lag_p99_ms=60.0)))
    assert [o.distrusted for o in overloaded] == [True, True]
    assert overloaded[0].reason.startswith("measurements distorted by the client: event-loop")
    assert judge_sweeps(driver, outcome_with(harness(lag_p99_ms=5.0))) == (FOUND, LADDER)
    assert judge_sweeps(driver, outcome_with(None)) == (FOUND, LADDER)

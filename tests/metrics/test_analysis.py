"""lens.metrics.analysis: what the results carry beyond summaries and verdicts, worked out
from a run's outcome without export (the results only format it)."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from lens import exitcodes
from lens.metrics.analysis import RunAnalysis, analyse_run
from lens.metrics.judge import Outcome, Verdict, run_exit_code
from lens.pipeline import judge_run, summarise
from lens.plan.compile import compile_plan
from lens.plan.model import Plan
from lens.records import HarnessLimits, HarnessReport, RunOutcome, StageWindow
from lens.scenario import parse_scenario
from tests.export._results import SCENARIO, STARTED_AT, rich_records


def verdict(outcome: Outcome) -> Verdict:
    return Verdict(
        sla="ttft.p95 < 1s",
        label="ttft.p95",
        op="<",
        threshold=1000.0,
        provider=None,
        stage=None,
        outcome=outcome,
        value=1.0,
        n=1,
        reason="",
        exact=True,
    )


@pytest.mark.parametrize(
    ("outcomes", "partial", "failed", "code"),
    [
        ((), False, False, exitcodes.OK),
        (("pass",), False, False, exitcodes.OK),
        (("pass",), True, False, exitcodes.INCONCLUSIVE),  # an interrupted run cannot pass
        (("pass", "fail"), True, False, exitcodes.SLA_FAILED),  # but it can fail
        (("inconclusive",), False, False, exitcodes.INCONCLUSIVE),
        (("fail",), False, True, exitcodes.LENS_FAILED),  # lens failing outranks the verdicts
    ],
)
def test_run_exit_code(
    outcomes: tuple[Outcome, ...], partial: bool, failed: bool, code: int
) -> None:
    verdicts = [verdict(o) for o in outcomes]
    assert run_exit_code(verdicts, partial=partial, failed=failed) == code


def plan() -> Plan:
    return compile_plan(parse_scenario(SCENARIO), env={"OPENAI_API_KEY": "sk-test-secret"})


def outcome(
    harness: HarnessReport | None = None,
    interrupted_by: str | None = None,
    failure: Exception | None = None,
) -> RunOutcome:
    windows = (
        StageWindow("warm", "sim", 0, 300_000_000, planned=3, started=3),
        StageWindow("warm", "gpt", 0, 300_000_000, planned=4, started=4),
    )
    return RunOutcome(rich_records(), windows, STARTED_AT, 0.3, interrupted_by, harness, failure)


def analyse(run: RunOutcome) -> RunAnalysis:
    p = plan()
    summaries, _ = summarise(p, run, p.slas)
    return analyse_run(p, run, summaries, judge_run(p.slas, summaries, run))


def test_per_record_fields_follow_the_records() -> None:
    run = outcome()
    analysis = analyse(run)
    assert len(analysis.cold) == len(analysis.prices) == len(run.records)
    # The first request to each provider is cold; gpt's token-priced ones have a price,
    # the simulated provider's have none.
    first = {r.provider: i for i, r in reversed(list(enumerate(run.records)))}
    assert [analysis.cold[first["sim"]], analysis.cold[first["gpt"]]] == [True, True]
    priced = {r.provider for r, price in zip(run.records, analysis.prices, strict=True) if price}
    assert priced == {"gpt"}
    assert len(analysis.bill.units) == len(run.windows)


def test_pacing_only_for_open_loop_pairs() -> None:
    analysis = analyse(outcome())
    paced = analysis.pacing_of("warm", "sim")  # sim's records carry intended send times
    assert paced is not None
    assert paced.sent == 3
    assert analysis.pacing_of("warm", "gpt") is None


def test_an_overloaded_harness_warns_and_the_report_is_kept() -> None:
    busy = HarnessReport(
        samples=40,
        loop_lag_p50_ms=2.0,
        loop_lag_p99_ms=40.0,
        loop_lag_max_ms=50.0,
        cpu=0.25,
        limits=HarnessLimits(max_loop_lag_ms=25.0, max_cpu=0.9),
        span_s=3.0,
    )
    analysis = analyse(outcome(busy))
    assert analysis.integrity.harness is busy
    assert [w for w in analysis.integrity.warnings if w.startswith("harness overloaded")] == [
        f"harness overloaded: {busy.reasons[0]}"
    ]
    assert not [w for w in analyse(outcome()).integrity.warnings if "harness" in w]


def test_exit_code_and_recommendation() -> None:
    assert analyse(outcome()).exit_code == exitcodes.SLA_FAILED  # sim's HTTP 500: error_rate
    assert analyse(outcome(interrupted_by="SIGINT")).exit_code == exitcodes.SLA_FAILED
    failed = analyse(outcome(interrupted_by="lens_failed", failure=RuntimeError("bug")))
    assert failed.exit_code == exitcodes.LENS_FAILED
    assert {c.provider for c in failed.recommendation.candidates} == {"sim", "gpt"}


def test_the_analysis_is_frozen() -> None:
    analysis = analyse(outcome())
    with pytest.raises(FrozenInstanceError):
        analysis.exit_code = 0  # type: ignore[misc]

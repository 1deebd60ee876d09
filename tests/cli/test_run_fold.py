"""A run on the simulator analysed as it goes (lens.metrics.fold) gives what the batch
functions give on the same records: every record is kept here (results: {records: all})
so both can be computed from one run and compared."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lens import exitcodes, pipeline
from lens.api import compile_plan, load_scenario
from lens.metrics import fold as fold_module
from lens.metrics.analysis import analyse_run
from lens.metrics.pacing import PacingAccumulator
from lens.pipeline import run_plan

LOAD = (
    "  - {id: probe, pattern: idle-probe, gaps: [0s, 150ms]}\n"
    "  - {id: open, pattern: constant-rate, rate: 200/s, requests: 150, warmup: 20 requests,"
    " cooldown: 10 requests}\n"
    "  - {id: closed, pattern: concurrency, concurrency: 6, requests: 120}\n"
    "  - {id: pooled, pattern: concurrency, concurrency: 3, requests: 40,"
    " warmup: 5 requests, sla_includes_warmup: true}"
)
SLA = (
    "  - error_rate < 50%\n"
    '  - {assert: "ttft.p50 < 1s", window: 100ms, allow: 1}\n'
    '  - {assert: "error_rate < 10%", window: 200ms}\n'
    '  - {assert: "e2e.max < 1ms", window: 150ms, stage: closed}'
)
EXTRA = "errors: {rate_500: 10%, cut_stream: 5%}\n    jitter: 0.5"


@pytest.mark.slow
def test_a_folded_run_analyses_exactly_as_the_batch_functions(
    write_scenario: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_scenario(load=LOAD, sla=SLA, extra=EXTRA, ttft="5ms", itl="1ms", tokens=6)
    path.write_text(
        path.read_text().replace(
            "integrity: {", "integrity: {cold_after: 100ms, buffered_share: 10%, "
        )
    )
    plan = compile_plan(load_scenario(path))
    assert pipeline.run_fold(plan) is not None
    checked: list[str] = []
    folded_analysis = fold_module.analyse_fold
    folded_judge = pipeline.judge_run

    def judge_both(*args: Any, **kw: Any) -> Any:
        verdicts = folded_judge(*args, **kw)
        assert args[4] is not None  # the windows fed as the run went
        assert verdicts == folded_judge(*args[:4])  # from the records
        checked.append("verdicts")
        return verdicts

    def analyse_both(
        fold: Any, kept: Any, outcome: Any, summaries: Any, verdicts: Any, bill: Any
    ) -> Any:
        online = folded_analysis(fold, kept, outcome, summaries, verdicts, bill)
        assert kept.dropped == 0
        batch = analyse_run(plan, outcome, summaries, verdicts)
        for part in ("exit_code", "pacing", "cold", "prices", "integrity", "idle_probes"):
            assert getattr(online, part) == getattr(batch, part), part
        assert list(online.pacing) == list(batch.pacing)
        checked.append("analysis")
        return online

    monkeypatch.setattr(pipeline, "judge_run", judge_both)
    monkeypatch.setattr(pipeline, "analyse_fold", analyse_both)
    report = run_plan(plan, handle_signals=False)
    assert checked == ["verdicts", "analysis"]
    results = report.results
    assert {v.outcome for v in results.verdicts} >= {"pass", "fail"}
    assert any(r.cold for r in results.records)
    assert any(not r.cold for r in results.records)
    assert results.idle_probes
    assert any(r.status == "error" for r in results.records)
    assert len(results.records) == report.outcome.measured


@pytest.mark.slow
def test_a_folded_run_keeps_only_its_sample_and_counts_every_record(
    write_scenario: Callable[..., Path],
) -> None:
    plan = compile_plan(load_scenario(write_scenario(load=LOAD, sla=SLA, ttft="2ms", itl="1ms")))
    report = run_plan(dataclasses.replace(plan, results_records=7), handle_signals=False)
    total = 3 + 150 + 120 + 40  # the idle probe sends one request, then one per gap
    assert sum(w.started for w in report.outcome.windows) == total
    assert len(report.outcome.records) == 7
    assert report.outcome.measured == total
    assert report.results.records_omitted == total - 7
    assert (
        sum(s.requests for s in report.results.summaries)
        + sum(s.requests for s in report.results.phase_summaries)
        == total
    )


@pytest.mark.slow
def test_when_folding_fails_the_run_goes_on_and_salvages_what_it_can(
    write_scenario: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = compile_plan(load_scenario(write_scenario(load=LOAD, sla=SLA, ttft="2ms", itl="1ms")))
    seen: list[int] = []
    feed = PacingAccumulator.add

    def breaks_at_50(self: PacingAccumulator, rec: Any) -> None:
        seen.append(1)
        if len(seen) == 50:
            raise RuntimeError("a bug in an accumulator")
        feed(self, rec)

    monkeypatch.setattr(PacingAccumulator, "add", breaks_at_50)
    report = run_plan(dataclasses.replace(plan, results_records=20), handle_signals=False)
    assert isinstance(report.failure, RuntimeError)
    assert report.outcome.interrupted_by is None  # the run itself went to its end
    assert report.outcome.measured == 313
    results = report.results
    assert results.exit_code == exitcodes.LENS_FAILED
    assert "a bug in an accumulator" in (results.failure or "")
    assert results.summaries  # built from the sketches fed before the failure
    assert 0 < len(results.records) <= 20
    assert results.records_omitted == 313 - len(results.records)

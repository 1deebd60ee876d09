"""results: {records: all | none | N} and lens run --results-records: what results.json lists
of a run's per-request records, while summaries and --records still cover every request."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lens import pipeline
from lens.api import compile_plan, load_scenario
from lens.cli import main
from lens.errors import ScenarioError
from lens.export.results import kept_records
from lens.pipeline import run_plan
from lens.plan.model import DEFAULT_RESULTS_RECORDS
from lens.records import RequestStart, RunOutcome

LOAD = (
    "  - {id: b, pattern: burst, requests: 6}\n"
    "  - {id: c, pattern: concurrency, concurrency: 2, requests: 10}"
)


def test_a_sample_is_evenly_spaced_in_completion_order() -> None:
    assert kept_records(10, None) == range(10)
    assert kept_records(10, 20) == range(10)
    assert list(kept_records(10, 0)) == []
    assert list(kept_records(10, 5)) == [0, 2, 4, 6, 8]
    assert list(kept_records(10, 3)) == [0, 3, 6]


@pytest.mark.parametrize(("value", "kept"), [("all", None), ("none", 0), ("7", 7)])
def test_the_scenario_option_reaches_the_plan(
    write_scenario: Callable[..., Path], value: str, kept: int | None
) -> None:
    path = write_scenario(load=LOAD)
    path.write_text(path.read_text() + f"results: {{records: {value}}}\n")
    assert compile_plan(load_scenario(path)).results_records == kept


@pytest.mark.parametrize("value", ["-1", "some", "1.5"])
def test_a_bad_value_is_an_input_error_naming_where(
    write_scenario: Callable[..., Path], value: str
) -> None:
    path = write_scenario(load=LOAD)
    path.write_text(path.read_text() + f"results: {{records: {value}}}\n")
    with pytest.raises(ScenarioError, match=r"s\.yaml:\d+:\d+: results\.records"):
        load_scenario(path)


@pytest.mark.slow
def test_results_list_a_sample_and_records_jsonl_every_request(
    write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    path = write_scenario(load=LOAD)
    out, recs = tmp_path / "r.json", tmp_path / "r.jsonl"
    args = ["run", "-q", str(path), "-o", str(out), "--records", str(recs)]
    assert main([*args, "--results-records", "4"]) == 0
    doc = json.loads(out.read_text())
    assert len(doc["records"]) == 4
    assert doc["records_omitted"] == 12
    assert [s["requests"] for s in doc["summaries"]] == [6, 10]  # every request summarised
    assert len(recs.read_text().splitlines()) == 16  # the streamed file is left complete

    assert main([*args, "--results-records", "none"]) == 0
    doc = json.loads(out.read_text())
    assert (doc["records"], doc["records_omitted"]) == ([], 16)

    assert main([*args, "--results-records", "all"]) == 0
    doc = json.loads(out.read_text())
    assert len(doc["records"]) == 16
    assert "records_omitted" not in doc  # absent when every record is listed


def test_the_cli_refuses_a_bad_count(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "x.yaml", "--results-records", "lots"])
    assert "expected all, none or a count, got 'lots'" in capsys.readouterr().err


def replay(outcome: RunOutcome) -> Callable[..., RunOutcome]:
    """A ``run_blocking`` that feeds ``outcome``'s records again as a run would (each
    request's start once the records before it ended later than its dispatch), then
    returns ``outcome`` holding only what the caller keeps."""

    def run(*_: Any, on_record: Any, on_start: Any, keep_records: bool, **__: Any) -> RunOutcome:
        pending = sorted(outcome.records, key=lambda r: r.t_dispatch)
        for rec in outcome.records:
            while pending and pending[0].t_dispatch <= rec.t_end:
                s = pending.pop(0)
                if on_start is not None:
                    on_start(
                        RequestStart(
                            s.stage,
                            s.provider,
                            s.prompt,
                            s.index,
                            s.attempt,
                            s.phase,
                            s.t_intended,
                            s.t_dispatch,
                        )
                    )
            on_record(rec)
        return outcome if keep_records else dataclasses.replace(outcome, records=())

    return run


@pytest.mark.slow
def test_summaries_are_the_same_with_and_without_records_kept(
    write_scenario: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = compile_plan(load_scenario(write_scenario(load=LOAD)))
    full_report = run_plan(plan, handle_signals=False)
    full = full_report.results
    assert len(full.records) == 16
    # The same measurements again, as the run fed them, listed as none this time.
    monkeypatch.setattr(pipeline, "run_blocking", replay(full_report.outcome))
    sampled = run_plan(dataclasses.replace(plan, results_records=0), handle_signals=False)
    assert sampled.results.records == ()
    assert sampled.results.records_omitted == 16
    assert sampled.outcome.records == ()
    for part in ("summaries", "phase_summaries", "verdicts", "stages", "integrity", "billing"):
        assert getattr(sampled.results, part) == getattr(full, part), part


@pytest.mark.slow
def test_summaries_streamed_as_records_finish_equal_the_batch_ones(
    write_scenario: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The summaries are fed each record as it finishes; past the sketches' exact limit
    (10,000 values: here ~14,000 ITL gaps) a t-digest depends on order, so the stream must
    be the records' own order."""
    load = (
        "  - {id: w, pattern: burst, requests: 20}\n"
        "  - {id: c, pattern: concurrency, concurrency: 16, requests: 2000, warmup: 50 requests}"
    )
    plan = compile_plan(load_scenario(write_scenario(load=load, ttft="1ms", itl="1ms")))
    assert pipeline.streaming_summaries(plan) is not None
    compared: list[int] = []
    batch_summarise = pipeline.summarise

    def both(*args: Any, **kw: Any) -> Any:
        streamed = batch_summarise(*args, **kw)
        assert args[4] is not None  # the streamed builder reached summarise
        batch = batch_summarise(*args[:4])
        assert streamed == batch
        compared.append(sum(s.metrics["itl"].n for s in streamed[0]))
        return streamed

    monkeypatch.setattr(pipeline, "summarise", both)
    report = run_plan(plan, handle_signals=False)
    assert compared[0] > 10_000
    assert [s.requests for s in report.results.summaries] == [20, 1950]


def test_unset_the_plan_keeps_the_default_limit(write_scenario: Callable[..., Path]) -> None:
    plan = compile_plan(load_scenario(write_scenario(load=LOAD)))
    assert plan.results_records == DEFAULT_RESULTS_RECORDS == 10_000
    assert plan.results_records_default


@pytest.mark.slow
def test_past_the_default_limit_results_list_a_sample_with_a_warning(
    write_scenario: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr("lens.plan.compile.DEFAULT_RESULTS_RECORDS", 5)
    path, out = write_scenario(load=LOAD), tmp_path / "r.json"
    assert main(["run", "-q", str(path), "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert (len(doc["records"]), doc["records_omitted"]) == (5, 11)
    assert "sample of 5 of 16 records (lens's default limit" in capsys.readouterr().err
    # Asked for explicitly: no warning.
    assert main(["run", "-q", str(path), "-o", str(out), "--results-records", "5"]) == 0
    assert "warning" not in capsys.readouterr().err
    # A shard keeps every record by default: lens merge rebuilds from them.
    assert main(["run", "-q", str(path), "-o", str(out), "--shard", "0/1"]) == 0
    doc = json.loads(out.read_text())
    assert len(doc["records"]) == 16
    assert "records_omitted" not in doc

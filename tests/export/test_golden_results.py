"""The results document, byte for byte: fixed records through the pipeline's own functions
(summarise, judge, analyse, build_results) give exactly the stored JSON.

A guard for changes of structure (how results are modelled and serialised) that must not
change the document.  Only the machine's environment is normalised.  After a change that
is *meant* to alter the document, rewrite the files with ``LENS_UPDATE_GOLDEN=1`` and
review the diff.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

import lens.plan.prices
from lens.export.merge import merge_results
from lens.export.results import Environment, Results, build_results, load_results
from lens.metrics.analysis import analyse_run
from lens.pipeline import Baseline, judge_regressions, judge_run, shard_results, summarise
from lens.plan.compile import compile_plan
from lens.plan.split import Shard
from lens.records import (
    CounterDelta,
    EngineTimings,
    ErrorClass,
    GaugeSeries,
    RequestRecord,
    RunOutcome,
    ServerMetricsReport,
    StageServerMetrics,
    StageWindow,
)
from lens.redact import Redactor
from lens.scenario import parse_scenario
from tests.export._repeat_results import repeat_results
from tests.export._results import SCENARIO, hand_results, rich_results
from tests.metrics._factory import failed, ns, record

GOLDEN = Path(__file__).parent / "golden"

# GPU-hour pricing (a bill), an idle-probe stage (probes, cold flags), a token-priced
# provider with reasoning and cached tokens, and records of every shape.
GPU_SCENARIO = """\
version: 1
name: golden-gpu
providers:
  g: {type: simulated, model: m, price: {gpu_hour: 3600, gpus: 2}}
  t: {type: simulated, model: m, price: {input: 1, output: 2}}
prompts:
  - id: q
    messages: [{role: user, content: hi}]
load:
  - {id: steady, pattern: burst, requests: 3}
  - {id: idle, pattern: idle-probe, providers: [g], gaps: [0s, 150ms, 2s]}
sla:
  - ttft.p50 < 300ms
  - itl.p99 < 5ms
  - cost.total < $1
  - {assert: "e2e.max < 1s", stage: idle}
"""


def _gpu_records() -> tuple[RequestRecord, ...]:
    steady = tuple(
        record(
            provider=p,
            stage="steady",
            index=i,
            t_dispatch=ns(10 + i),
            chunk_times=(ns(210), ns(220), ns(240)),
            chunk_tokens=(1, 2, 1),
            cached_input_tokens=4,
            reasoning_tokens=1,
            t_first_visible=ns(220),
            request_id=f"req-{p}-{i}",
            extra={"x-ratelimit-remaining-requests": "99"},
            # The engine's own timings (llama.cpp's): g reported them, t did not.
            engine=EngineTimings(
                prompt_ms=150.5,
                prompt_tokens=8,
                cached_tokens=4,
                decode_ms=30.0,
                decode_tokens=4,
                per_token_ms=7.5,
            )
            if p == "g"
            else None,
        )
        for p in ("g", "t")
        for i in range(2)
    )
    broken = failed(
        ErrorClass.CONNECTION_LOST,
        provider="t",
        stage="steady",
        index=2,
        stale_connection=True,
        stale_lost_ns=ns(1.5),
    )
    idle = (
        record(provider="g", stage="idle", index=0, t_dispatch=ns(400), t_first_token=ns(450),
               t_first_visible=ns(450), t_first_chunk=ns(450), chunk_times=(ns(450), ns(460)),
               chunk_tokens=(1, 3), t_last_token=ns(460), t_end=ns(470), t_headers=ns(420)),
        record(provider="g", stage="idle", index=1, t_dispatch=ns(620), t_first_token=ns(700),
               t_first_visible=ns(700), t_first_chunk=ns(700), chunk_times=(ns(700),),
               chunk_tokens=(4,), t_last_token=ns(700), t_end=ns(705), t_headers=ns(650)),
        record(provider="g", stage="idle", index=2, t_dispatch=ns(2705), t_first_token=ns(3000),
               t_first_visible=ns(3000), t_first_chunk=ns(3000), chunk_times=(ns(3000), ns(3010)),
               chunk_tokens=(2, 2), t_last_token=ns(3010), t_end=ns(3020), t_headers=ns(2800)),
    )  # fmt: skip
    return (*steady, broken, *idle)


# What a provider's server_metrics endpoint said (lens.run.servermetrics): a counter reset
# in a stage, histogram sums, a gauge series, one failed scrape.
SERVER_METRICS = ServerMetricsReport(
    provider="g",
    url="http://***:***@10.0.0.5:8080/metrics",
    every_s=0.1,
    names=("llamacpp:*",),
    scrapes=6,
    failed=1,
    last_error="ConnectError: [Errno 111] Connection refused",
    stages=(
        StageServerMetrics(
            stage="steady",
            t_before=ns(1),
            t_after=ns(301),
            scrapes=4,
            failed=0,
            counters=(
                CounterDelta("llamacpp:tokens_predicted_total", (), "counter", 10, 18, 8),
                CounterDelta("llamacpp:prompt_tokens_total", (), "counter", 50, 4, 12, True),
                CounterDelta(
                    "vllm:e2e_request_latency_seconds_count",
                    (("model_name", "m"),),
                    "histogram",
                    2,
                    4,
                    2,
                ),
            ),
        ),
        StageServerMetrics(stage="idle", t_before=None, t_after=ns(3101), scrapes=1, failed=1),
    ),
    gauges=(
        GaugeSeries(
            "llamacpp:requests_processing",
            (),
            ((ns(1), 0.0), (ns(101), 2.0), (ns(201), 1.0), (ns(301), 0.0), (ns(3101), 0.0)),
        ),
    ),
)


def gpu_results(kept: str = "all", server_metrics: bool = False) -> Results:
    """``kept``: the scenario's results: {records: ...}; ``server_metrics``: with what
    provider g's engine said (``SERVER_METRICS``)."""
    text = GPU_SCENARIO + f"results: {{records: {kept}}}\n"
    plan = compile_plan(parse_scenario(text), env={})
    records = _gpu_records()
    windows = (
        StageWindow("steady", "g", 0, ns(300), planned=3, started=2),
        StageWindow("steady", "t", 0, ns(300), planned=3, started=3),
        StageWindow("idle", "g", ns(350), ns(3100), planned=3, started=3),
    )
    outcome = RunOutcome(
        records,
        windows,
        started_at=datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC),
        duration_s=3.2,
        server_metrics=(SERVER_METRICS,) if server_metrics else (),
    )
    summaries, phase_summaries = summarise(plan, outcome, plan.slas)
    verdicts = judge_run(plan.slas, summaries, outcome)
    analysis = analyse_run(plan, outcome, summaries, verdicts)
    return build_results(plan, outcome, summaries, verdicts, analysis, phase_summaries)


def compared_results() -> Results:
    """The GPU run judged against itself as a baseline, with a threshold of the scenario's
    regression: block (the rest lens compare's defaults)."""
    block = "regression:\n  thresholds: {ttft.p50: +20ms}\n"
    plan = compile_plan(parse_scenario(GPU_SCENARIO + block), env={})
    results, problem = judge_regressions(plan, gpu_results(), Baseline(gpu_results(), "base.json"))
    assert problem is None
    return results


def shard_of_hand(index: int) -> Results:
    """The hand results as shard ``index`` of 2, waiting for a fixed --start-at."""
    plan = compile_plan(parse_scenario(SCENARIO), env={"OPENAI_API_KEY": "sk-test-secret"})
    start_at = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
    return shard_results(hand_results(), plan, Shard(index, 2), start_at, Redactor.for_plan(plan))


def merged_results() -> Results:
    return merge_results([shard_of_hand(1), shard_of_hand(0)], ["b.json", "a.json"])


CASES: dict[str, Callable[[], Results]] = {
    "hand": hand_results,
    "rich": rich_results,
    "rich-overloaded": lambda: rich_results(overloaded=True),
    "gpu-idle": gpu_results,
    "sampled": lambda: gpu_results(kept="3"),
    "compared": compared_results,
    "repeat": repeat_results,
    "shard": lambda: shard_of_hand(1),
    "merged": merged_results,
    "server-metrics": lambda: gpu_results(server_metrics=True),
}


def normalised(results: Results) -> str:
    """``results.to_json()`` with the machine's environment replaced by fixed values (the
    run's own times, started_at and finished_at, are kept: they come from the outcome)."""
    env = Environment.model_validate(
        results.environment.model_dump()
        | {
            "lens_version": "0",
            "python": "3",
            "implementation": "CPython",
            "os": "os",
            "machine": "machine",
            "cpu_count": 2,
            "hostname": "host",
            "argv": ["lens"],
        }
    )
    return results.model_copy(update={"environment": env}).to_json()


class _GoldenDay(date):
    """The day the golden files were written: a price given in the scenario is "checked"
    the day the plan is compiled (``lens.plan.prices``), so without a fixed day the files
    would hold a date and fail from the next day on."""

    @classmethod
    def today(cls) -> _GoldenDay:
        return cls(2026, 12, 6)


@pytest.fixture(autouse=True)
def _compiled_on_the_golden_day(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lens.plan.prices, "date", _GoldenDay)


@pytest.mark.parametrize("name", sorted(CASES))
def test_results_json_is_byte_identical_to_the_golden_file(name: str) -> None:
    text = normalised(CASES[name]())
    path = GOLDEN / f"{name}.json"
    if os.environ.get("LENS_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_results_round_trip_through_a_file_byte_for_byte(name: str, tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text((GOLDEN / f"{name}.json").read_text(encoding="utf-8"), encoding="utf-8")
    assert load_results(path).to_json() == path.read_text(encoding="utf-8")


def test_the_golden_files_hold_every_section_the_document_has() -> None:
    # A golden file that lacks a section cannot guard it.
    sections: set[str] = set()
    for name in CASES:
        doc = json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))
        sections |= {k for k, v in doc.items() if v not in (None, [], {})}
    assert sections == set(Results.model_fields) - {"failure", "interrupted_by"}

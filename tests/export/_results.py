"""A small, fully known ``Results`` built from hand-made records through the real pipeline
(plan, aggregate, judge, build_results), with awkward characters where exporters escape."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from lens.export.results import Results, build_results
from lens.metrics.analysis import analyse_run
from lens.metrics.judge import judge
from lens.metrics.summary import aggregate
from lens.metrics.sweep_outcomes import SweepOutcome, SweepProbe, distrust_sweeps
from lens.pipeline import judge_run, summarise
from lens.plan.compile import compile_plan
from lens.records import (
    ErrorClass,
    HarnessLimits,
    HarnessReport,
    RequestRecord,
    RunOutcome,
    StageWindow,
)
from lens.scenario import parse_scenario
from tests.metrics._factory import failed, ns, record

# A name with every character line protocol and the exposition format escape.
SCENARIO_NAME = 'nightly, v=2 "quoted" back\\slash'
ERROR_MESSAGE = 'upstream said: "no", a=b, c\\d\nsecond line'
STARTED_AT = datetime(2026, 11, 27, 12, 0, 0, 123456, tzinfo=UTC)

SCENARIO = f"""\
version: 1
name: '{SCENARIO_NAME}'
providers:
  sim: {{type: simulated}}
  gpt: {{type: openai, model: gpt-4o-mini}}
prompts:
  - id: q
    messages: [{{role: user, content: hi}}]
load:
  - {{id: warm, pattern: burst, requests: 3}}
sla:
  - ttft.p50 < 1s
  - error_rate < 1%
  - ttft.p99 < 1s
"""


def hand_records() -> tuple[RequestRecord, ...]:
    """sim: two successes and one HTTP 500; gpt: two successes with usage (so a cost)."""
    return (
        record(provider="sim", stage="warm", index=0),
        record(provider="sim", stage="warm", index=1, t_dispatch=ns(20)),
        failed(
            ErrorClass.HTTP_5XX, provider="sim", stage="warm", index=2, error_message=ERROR_MESSAGE
        ),
        # Dispatched in the same nanosecond: line protocol must keep both.
        record(provider="gpt", stage="warm", index=0),
        record(provider="gpt", stage="warm", index=1),
    )


def hand_results(started_at: datetime = STARTED_AT) -> Results:
    plan = compile_plan(parse_scenario(SCENARIO), env={"OPENAI_API_KEY": "sk-test-secret"})
    records = hand_records()
    windows = (
        StageWindow("warm", "sim", 0, ns(300), planned=3, started=3),
        StageWindow("warm", "gpt", 0, ns(300), planned=3, started=2),
    )
    outcome = RunOutcome(records, windows, started_at=started_at, duration_s=0.3)
    spans = {(w.stage, w.provider): (w.t_start, w.t_end) for w in windows}
    summaries = aggregate(records, stage_windows=spans, providers=plan.providers, slas=plan.slas)
    verdicts = judge(plan.slas, summaries)
    analysis = analyse_run(plan, outcome, summaries, verdicts)
    return build_results(plan, outcome, summaries, verdicts, analysis)


def rich_records() -> tuple[RequestRecord, ...]:
    """The hand records, sim's sent on an open-loop schedule (4 to 8 ms late), a gpt warmup
    request before its measured ones, and a gpt request drained at the stage's cutoff."""
    sim_intended = (ns(4), ns(12), ns(26))
    sim_dispatch = (ns(10), ns(20), ns(30))
    out = [
        replace(rec, t_intended=sim_intended[rec.index], t_dispatch=sim_dispatch[rec.index])
        if rec.provider == "sim"
        else rec
        for rec in hand_records()
    ]
    warmup = record(provider="gpt", stage="warm", index=0, phase="warmup", t_dispatch=ns(1))
    drained = failed(ErrorClass.DRAINED, provider="gpt", stage="warm", index=2, t_end=ns(300))
    return (warmup, *out, drained)


SWEEPS = (
    SweepOutcome(
        "search",
        "gpt",
        "find_max_rate",
        "85/s meets ttft.p95 < 150ms: bracket within 5/s",
        (SweepProbe("search.85rps", 85.0, None, held=True, rps=84.5, detail="ttft.p95 = 120 ms"),),
        max_rate_per_s=85.0,
        bracket=(85.0, 88.75),
    ),
    SweepOutcome(
        "search",
        "sim",
        "find_max_rate",
        "cut short: the budget ran out, after 1 completed step(s); no answer",
        (SweepProbe("search.40rps", 40.0, None, held=True, rps=39.9, detail="ttft.p95 = 20 ms"),),
        cut_short=True,
    ),
)


def rich_results(*, overloaded: bool = False) -> Results:
    """``hand_results`` with what newer runs hold: pacing, a warmup phase summary, the
    harness self-check (``overloaded``: its event-loop lag over the limit), cold start and
    two find_max_rate sweeps (gpt found 85/s; sim's was cut short)."""
    plan = compile_plan(parse_scenario(SCENARIO), env={"OPENAI_API_KEY": "sk-test-secret"})
    records = rich_records()
    windows = (
        StageWindow("warm", "sim", 0, ns(300), planned=3, started=3),
        StageWindow("warm", "gpt", 0, ns(300), planned=4, started=4, t_measure_start=ns(5)),
    )
    report = HarnessReport(
        samples=40,
        loop_lag_p50_ms=2.0,
        loop_lag_p99_ms=40.0 if overloaded else 8.0,
        loop_lag_max_ms=50.0,
        cpu=0.25,
        limits=HarnessLimits(max_loop_lag_ms=25.0, max_cpu=0.9),
        span_s=3.0,
    )
    outcome = RunOutcome(records, windows, started_at=STARTED_AT, duration_s=0.3, harness=report)
    summaries, phase_summaries = summarise(plan, outcome, plan.slas)
    verdicts = judge_run(plan.slas, summaries, outcome)
    sweeps = distrust_sweeps(SWEEPS, report.reasons)
    analysis = analyse_run(plan, outcome, summaries, verdicts)
    return build_results(plan, outcome, summaries, verdicts, analysis, phase_summaries, sweeps)

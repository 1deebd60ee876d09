"""A fixed run of a repeated stage (``repeat: 3``, providers a and b), through the
pipeline's own functions: for the golden file, the exporters and the spread tests."""

from __future__ import annotations

from datetime import UTC, datetime

from lens.export.results import Results, build_results
from lens.metrics.analysis import analyse_run
from lens.metrics.repetitions import repetition_spreads
from lens.pipeline import judge_run, summarise
from lens.plan.compile import compile_plan
from lens.plan.model import Plan
from lens.records import ErrorClass, Repetition, RequestRecord, RunOutcome, StageWindow
from lens.scenario import parse_scenario
from tests.metrics._factory import failed, ns, record

REPEAT_SCENARIO = """\
version: 1
name: golden-repeat
providers:
  a: {type: simulated, model: m, price: {input: 1, output: 2}}
  b: {type: simulated, model: m}
prompts:
  - id: q
    messages: [{role: user, content: hi}]
load:
  - {id: steady, pattern: burst, requests: 2, repeat: 3}
  - {id: once, pattern: burst, requests: 1, providers: [a]}
sla:
  - ttft.p50 < 300ms
  - {assert: "error_rate < 20%", stage: steady}
"""

# TTFT (ms after dispatch) of each request: repetition k, provider, index.
TTFT_MS = {
    (1, "a"): (100.0, 120.0),
    (1, "b"): (150.0, 170.0),
    (2, "a"): (110.0, 130.0),
    (2, "b"): (160.0, 180.0),
    (3, "a"): (90.0, 200.0),
    (3, "b"): (140.0, 160.0),
}
UNIT_MS = 1000.0  # each unit's window: 1 s, one after another


def repeat_plan() -> Plan:
    return compile_plan(parse_scenario(REPEAT_SCENARIO), env={})


def repeat_outcome() -> RunOutcome:
    records: list[RequestRecord] = []
    windows: list[StageWindow] = []
    start = 0.0
    for k in (1, 2, 3):
        for p in ("a", "b"):
            stage = f"steady#{k}"
            for i, ttft in enumerate(TTFT_MS[(k, p)]):
                t0 = start + 10 + i
                first = t0 + ttft
                records.append(
                    record(
                        provider=p,
                        stage=stage,
                        index=i,
                        t_dispatch=ns(t0),
                        t_headers=ns(t0 + 5),
                        t_first_chunk=ns(first),
                        t_first_token=ns(first),
                        t_first_visible=ns(first),
                        chunk_times=(ns(first), ns(first + 10), ns(first + 30)),
                        chunk_tokens=(1, 2, 1),
                        t_last_token=ns(first + 30),
                        t_end=ns(first + 40),
                    )
                )
            if (k, p) == (2, "b"):
                records.append(
                    failed(ErrorClass.HTTP_5XX, provider=p, stage=stage, index=2,
                           t_dispatch=ns(start + 20), t_end=ns(start + 33))
                )  # fmt: skip
            # Unit k of a lasts 1 s, of b 0.5 s: rates are per second of each one's own
            # windows added up, not of the wall time spanning them.
            length = UNIT_MS if p == "a" else UNIT_MS / 2
            windows.append(
                StageWindow(
                    stage, p, ns(start), ns(start + length), planned=2,
                    started=3 if (k, p) == (2, "b") else 2,
                    repetition=Repetition("steady", k, 3),
                )
            )  # fmt: skip
            start += length + 100
    records.append(
        record(provider="a", stage="once", index=0, t_dispatch=ns(start + 10),
               t_first_token=ns(start + 110), t_first_chunk=ns(start + 110),
               t_first_visible=ns(start + 110), chunk_times=(ns(start + 110),),
               chunk_tokens=(4,), t_last_token=ns(start + 110), t_end=ns(start + 120))
    )  # fmt: skip
    windows.append(StageWindow("once", "a", ns(start), ns(start + 200), planned=1, started=1))
    return RunOutcome(
        tuple(records),
        tuple(windows),
        started_at=datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC),
        duration_s=(start + 200) / 1000,
    )


def repeat_results() -> Results:
    plan = repeat_plan()
    outcome = repeat_outcome()
    summaries, phase_summaries = summarise(plan, outcome, plan.slas)
    verdicts = judge_run(plan.slas, summaries, outcome)
    analysis = analyse_run(plan, outcome, summaries, verdicts)
    return build_results(
        plan,
        outcome,
        summaries,
        verdicts,
        analysis,
        phase_summaries,
        repetitions=repetition_spreads(summaries),
    )

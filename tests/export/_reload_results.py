"""Results built in-process from hand-made records, for the export tests."""

from __future__ import annotations

from datetime import UTC, datetime

from lens.export.results import Results, build_results
from lens.metrics.analysis import analyse_run
from lens.metrics.judge import judge
from lens.metrics.summary import Summary, aggregate
from lens.plan.compile import compile_plan
from lens.plan.model import Plan
from lens.records import RequestRecord, RunOutcome, StageWindow
from lens.scenario import parse_scenario
from tests.metrics._factory import failed, ns, record

SCENARIO = """\
version: 1
name: reload
providers:
  a: {type: simulated, price: {input: 1, output: 2}}
  b: {type: simulated, price: {input: 5, output: 10}}
prompts:
  - id: q
    messages: [{role: user, content: hi}]
load:
  - {id: s, pattern: burst, requests: 4}
sla:
  - ttft.max < 250ms
  - itl.max < 15ms
"""


def records() -> list[RequestRecord]:
    # a: ttft 200 ms, itl 10 ms; one request slow to start, one with a 20 ms gap, one failed.
    slow_gap = (ns(210), ns(220), ns(240), ns(250))
    a = [
        record(provider="a", index=0),
        record(provider="a", index=1, t_first_token=ns(300), chunk_times=(ns(300),)),
        record(provider="a", index=2, chunk_times=slow_gap, t_last_token=ns(250)),
        failed(provider="a", index=3),
    ]
    b = [record(provider="b", index=i, t_first_token=ns(60)) for i in range(4)]
    return [*a, *b]


def built() -> tuple[Plan, list[Summary], Results]:
    plan = compile_plan(parse_scenario(SCENARIO), env={})
    recs = records()
    summaries = list(
        aggregate(
            recs,
            stage_windows={("s", p): (0, ns(1000)) for p in "ab"},
            providers=plan.providers,
            slas=plan.slas,
        )
    )
    outcome = RunOutcome(
        records=tuple(recs),
        windows=tuple(StageWindow("s", p, 0, ns(1000), 4, 4) for p in "ab"),
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        duration_s=1.0,
    )
    verdicts = judge(plan.slas, summaries)
    analysis = analyse_run(plan, outcome, summaries, verdicts)
    results = build_results(plan, outcome, summaries, verdicts, analysis)
    return plan, summaries, results

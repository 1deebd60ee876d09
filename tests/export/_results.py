"""A small, fully known ``Results`` built from hand-made records through the real pipeline
(plan, aggregate, judge, build_results), with awkward characters where exporters escape."""

from __future__ import annotations

from datetime import UTC, datetime

from lens.export.results import Results, build_results
from lens.metrics.judge import judge
from lens.metrics.summary import aggregate
from lens.plan.compile import compile_plan
from lens.records import ErrorClass, RequestRecord
from lens.run.executor import StageWindow
from lens.run.session import RunOutcome
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
    return build_results(plan, outcome, summaries, judge(plan.slas, summaries))

"""Hand-made Results for the report tests, built through the real pipeline
(aggregate, judge, build_results) from records of ``tests.metrics._factory``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from lens.export.results import Results, build_results
from lens.metrics.analysis import analyse_run
from lens.metrics.judge import judge
from lens.metrics.summary import aggregate
from lens.plan.compile import compile_plan
from lens.records import RequestRecord, RunOutcome, StageWindow
from lens.scenario import load_scenario

SCENARIO = """\
version: 1
name: handmade
providers:
  a: {type: simulated}
  b: {type: simulated}
prompts:
  - id: q
    messages: [{role: user, content: hi}]
load:
  - {id: s1, pattern: burst, requests: 4}
  - {id: s2, pattern: burst, requests: 4}
sla:
  - ttft.p50 < 1s
"""


def make_results(
    tmp_path: Path,
    records: Sequence[RequestRecord],
    *,
    interrupted_by: str | None = None,
) -> Results:
    """Windows are taken from the records: each stage x provider from its first dispatch
    to its last end."""
    path = tmp_path / "handmade.yaml"
    path.write_text(SCENARIO)
    plan = compile_plan(load_scenario(path), source=str(path))
    spans: dict[tuple[str, str], tuple[int, int]] = {}
    for r in records:
        lo, hi = spans.get((r.stage, r.provider), (r.t_dispatch, r.t_end))
        spans[(r.stage, r.provider)] = (min(lo, r.t_dispatch), max(hi, r.t_end))
    windows = tuple(
        StageWindow(stage, provider, lo, hi, 4, 4) for (stage, provider), (lo, hi) in spans.items()
    )
    outcome = RunOutcome(
        records=tuple(records),
        windows=windows,
        started_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        duration_s=2.5,
        interrupted_by=interrupted_by,
    )
    summaries = aggregate(records, stage_windows=spans, providers=plan.providers, slas=plan.slas)
    verdicts = judge(plan.slas, summaries)
    analysis = analyse_run(plan, outcome, summaries, verdicts)
    return build_results(plan, outcome, summaries, verdicts, analysis)


def with_costs(results: Results, per_1m: dict[str, str]) -> Results:
    """``results`` as if each provider in ``per_1m`` had that list price per 1M output
    tokens (USD); the others keep no price."""
    summaries = []
    for s in results.summaries:
        if s.provider in per_1m:
            total = Decimal(per_1m[s.provider]) * s.output_tokens / 1_000_000
            cost: dict[str, str | int | None] = {
                "total_usd": str(total),
                "per_request_usd": str(total / s.requests),
                "per_1k_successful_usd": str(total * 1000 / s.ok) if s.ok else None,
                "per_1m_output_tokens_usd": per_1m[s.provider],
                "priced_requests": s.requests,
                "unpriced_requests": 0,
            }
            summaries.append(s.model_copy(update={"cost": cost}))
        else:
            summaries.append(s)
    return results.model_copy(update={"summaries": summaries})

"""A repeated stage's pooled summary, its judging, and the run-to-run spread across its
repetitions, on fixed records (tests/export/_repeat_results.py)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from lens.export.reload import rejudge
from lens.export.results import load_results, write_results
from lens.metrics.judge import judge
from lens.metrics.recommend import recommend
from lens.metrics.repetitions import (
    SPREAD_STATISTICS,
    Spread,
    repetition_spreads,
    spread_half_width,
    t_quantile,
)
from lens.metrics.summary import aggregate
from lens.pipeline import judge_run, summarise
from lens.plan.model import SlaSpec
from lens.scenario.sla import parse_sla
from tests.export._repeat_results import repeat_outcome, repeat_plan, repeat_results


def test_summaries_come_per_repetition_then_pooled_in_run_order() -> None:
    plan, outcome = repeat_plan(), repeat_outcome()
    summaries, _ = summarise(plan, outcome, plan.slas)
    assert [(s.stage, s.provider) for s in summaries] == [
        ("steady#1", "a"), ("steady#1", "b"), ("steady#2", "a"), ("steady#2", "b"),
        ("steady#3", "a"), ("steady#3", "b"), ("steady", "a"), ("steady", "b"), ("once", "a"),
    ]  # fmt: skip
    assert [s.repeated for s in summaries] == [0] * 6 + [3, 3, 0]
    assert summaries[3].repetition is not None
    assert summaries[3].repetition.index == 2


def test_the_pooled_summary_is_every_repetitions_records_over_their_windows_added_up() -> None:
    plan, outcome = repeat_plan(), repeat_outcome()
    summaries, _ = summarise(plan, outcome, plan.slas)
    pooled = {(s.stage, s.provider): s for s in summaries if s.repeated}
    for provider, unit_s in (("a", 1.0), ("b", 0.5)):
        records = [
            dataclasses.replace(r, stage="steady")
            for r in outcome.records
            if r.provider == provider and r.stage.startswith("steady#")
        ]
        # Three windows of unit_s each: not the wall time from the first to the last,
        # which holds the other provider's units and the gaps between them.
        expected = aggregate(
            records,
            stage_windows={("steady", provider): (0, round(3 * unit_s * 1e9))},
            providers=plan.providers,
            slas=plan.slas,
        )[0]
        got = pooled[("steady", provider)]
        assert got == dataclasses.replace(expected, repeated=3)
        assert got.duration_s == 3 * unit_s
    a, b = pooled[("steady", "a")], pooled[("steady", "b")]
    assert (a.requests, a.ok, a.rps) == (6, 6, 2.0)  # 6 ok over 3 s
    assert (b.requests, b.ok, b.rps) == (7, 6, 4.0)  # 6 ok over 1.5 s
    assert b.error_counts["http_5xx"] == 1


def test_slas_judge_the_pooled_summary_never_a_repetition() -> None:
    plan, outcome = repeat_plan(), repeat_outcome()
    summaries, _ = summarise(plan, outcome, plan.slas)
    verdicts = judge_run(plan.slas, summaries, outcome)
    assert [(v.sla, v.stage, v.provider, v.n) for v in verdicts] == [
        ("ttft.p50 < 300ms", "steady", "a", 6),
        ("ttft.p50 < 300ms", "steady", "b", 6),
        ("ttft.p50 < 300ms", "once", "a", 1),
        ("error_rate < 20%", "steady", "a", 6),
        ("error_rate < 20%", "steady", "b", 7),
    ]
    # An SLA scoped to the stage holds the repetitions' requests to its per-request checks
    # (sla_conforming) as it does the pooled ones.
    per_request = SlaSpec(parse_sla("ttft.max < 115ms"), stage="steady", steps=plan.slas[1].steps)
    summaries, _ = summarise(plan, outcome, (per_request,))
    by_key = {(s.stage, s.provider): s for s in summaries}
    assert by_key[("steady#1", "a")].sla_conforming == 1  # 100 ms yes, 120 ms no
    assert by_key[("steady", "a")].sla_conforming == 3  # 100, 110, 90
    assert [v.stage for v in judge((per_request,), summaries)] == ["steady", "steady"]


def test_spread_values_are_exact_on_fixed_records() -> None:
    plan, outcome = repeat_plan(), repeat_outcome()
    summaries, _ = summarise(plan, outcome, plan.slas)
    spreads = repetition_spreads(summaries)
    assert [(s.stage, s.provider, s.count, s.stages) for s in spreads] == [
        ("steady", "a", 3, ("steady#1", "steady#2", "steady#3")),
        ("steady", "b", 3, ("steady#1", "steady#2", "steady#3")),
    ]
    a, b = spreads
    assert tuple(a.spread) == SPREAD_STATISTICS
    # TTFT p50 of two values is the lower one (nearest rank): 100, 110, 90.
    assert a.spread["ttft.p50"] == Spread((100.0, 110.0, 90.0), 3, 90.0, 110.0, 100.0, 10.0)
    assert a.spread["ttft.p95"].values == (120.0, 130.0, 200.0)
    assert a.spread["rps"] == Spread((2.0, 2.0, 2.0), 3, 2.0, 2.0, 2.0, 0.0)
    err = b.spread["error_rate"]
    assert err.values == (0.0, 1 / 3, 0.0)
    assert (err.n, err.min, err.max) == (3, 0.0, 1 / 3)
    assert math.isclose(err.mean or 0.0, 1 / 9)
    assert math.isclose(err.stdev or 0.0, math.sqrt(1 / 27))
    # Priced by the token (a), unpriced (b): a cost spread only where a cost is known.
    assert a.spread["cost.mean"].n == 3
    assert b.spread["cost.mean"] == Spread((None, None, None), 0, None, None, None, None)


def test_a_statistic_some_repetitions_did_not_measure() -> None:
    assert Spread.of([None, 4.0]) == Spread((None, 4.0), 1, 4.0, 4.0, 4.0, None)
    assert Spread.of([1.0, None, 3.0]) == Spread((1.0, None, 3.0), 2, 1.0, 3.0, 2.0, math.sqrt(2))


def test_recommend_counts_a_repeated_stage_once() -> None:
    plan, outcome = repeat_plan(), repeat_outcome()
    summaries, _ = summarise(plan, outcome, plan.slas)
    rec = recommend(summaries, (), {"a": "m", "b": "m"})
    by_provider = {c.provider: c for c in rec.candidates}
    assert by_provider["a"].stages == ("steady", "once")
    assert by_provider["a"].requests == 6 + 1
    assert by_provider["b"].requests == 7


def test_rejudging_saved_results_judges_the_pooled_summary(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_results(repeat_results(), path)
    results = load_results(path)
    assert len(results.repetitions) == 2
    spec = SlaSpec(parse_sla("ttft.max < 115ms"), stage="steady")  # as lens recommend --sla
    summaries, verdicts = rejudge(results, (spec,))
    by_key = {(s.stage, s.provider): s for s in summaries}
    assert by_key[("steady", "a")].sla_conforming == 3
    assert by_key[("steady", "a")].repeated == 3
    assert [(v.stage, v.provider) for v in verdicts] == [("steady", "a"), ("steady", "b")]


@pytest.mark.parametrize(
    ("df", "expected"),
    [(1, 12.7062), (2, 4.3027), (4, 2.7764), (10, 2.2281), (30, 2.0423)],
)
def test_t_quantiles_match_the_tables(df: int, expected: float) -> None:
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-4)
    assert t_quantile(0.025, df) == pytest.approx(-expected, abs=1e-4)


def test_the_spread_interval_is_welchs_on_the_runs() -> None:
    runs = Spread.of([100.0, 110.0, 90.0])  # stdev 10 over 3 runs
    # Both sides: se = sqrt(100/3 + 100/3), df = 4.
    both = spread_half_width(runs, runs, 0.95)
    assert both == pytest.approx(t_quantile(0.975, 4) * math.sqrt(200 / 3))
    # One side run once: it varies as the other's runs do, as one run (variance 100).
    se2 = 100 + 100 / 3
    df = se2**2 / (100**2 / 2 + (100 / 3) ** 2 / 2)
    one = spread_half_width(None, runs, 0.95)
    assert one == pytest.approx(t_quantile(0.975, df) * math.sqrt(se2))
    assert one == spread_half_width(runs, Spread.of([5.0]), 0.95)
    assert spread_half_width(None, None, 0.95) is None
    assert spread_half_width(Spread.of([1.0]), Spread.of([None, 2.0]), 0.95) is None
    assert spread_half_width(Spread.of([3.0, 3.0]), None, 0.95) == 0.0

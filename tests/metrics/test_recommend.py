from __future__ import annotations

from decimal import Decimal

from lens.metrics.cost import StageCost
from lens.metrics.judge import Outcome, Verdict, judge
from lens.metrics.recommend import (
    Exclusion,
    Recommendation,
    pareto_frontier,
    recommend,
    worst_stage_p95,
)
from lens.metrics.summary import MetricStats, Summary
from lens.plan.model import SlaSpec
from lens.scenario.sla import parse_sla


def summary(
    provider: str,
    *,
    stage: str = "s",
    total: str | None = "0.01",
    requests: int = 20,
    conforming: int = 20,
    output_tokens: int = 1000,
    ttft_p95: float | None = 100.0,
) -> Summary:
    cost = (
        None
        if total is None
        else StageCost(
            kind="tokens",
            total=Decimal(total),
            priced_requests=requests,
            unpriced_requests=0,
            ok_requests=requests,
            output_tokens=output_tokens,
            sla_conforming=conforming,
        )
    )
    return Summary(
        stage=stage,
        provider=provider,
        requests=requests,
        ok=requests,
        errors=0,
        error_counts={},
        error_rate=0.0 if requests else None,
        success_rate=1.0 if requests else None,
        rps=None,
        throughput=None,
        duration_s=None,
        output_tokens=output_tokens,
        token_sources={},
        metrics={"ttft": MetricStats(n=requests, p95=ttft_p95)},
        cost=cost,
        sla_conforming=conforming,
    )


def verdict(provider: str | None, outcome: Outcome, stage: str | None = "s") -> Verdict:
    return Verdict(
        sla="ttft.p95 < 150ms",
        label="ttft.p95",
        op="<",
        threshold=150.0,
        provider=provider,
        stage=stage,
        outcome=outcome,
        value=None,
        n=20,
        reason=f"it was {outcome}",
    )


def ids(rec: Recommendation) -> list[str]:
    return [c.provider for c in rec.candidates]


def test_eligible_candidates_rank_by_cost_per_sla_conforming_request() -> None:
    # a spends more in total but more of its requests conform: it is the cheaper choice
    sums = [
        summary("a", total="0.30", conforming=20),  # 0.015 per conforming request
        summary("b", total="0.10", conforming=5),  # 0.02
        summary("c", total="0.20", conforming=10, ttft_p95=50.0),  # 0.02, faster than b
    ]
    rec = recommend(sums, [], {"a": "model-a"})
    assert ids(rec) == ["a", "c", "b"]
    assert [c.rank for c in rec.candidates] == [1, 2, 3]
    assert rec.best is not None
    assert rec.best.provider == "a"
    assert rec.best.model == "model-a"
    assert rec.candidates[1].model == ""  # no model known for c
    assert rec.best.per_sla_conforming_usd == Decimal("0.015")


def test_full_ties_fall_back_to_the_provider_id() -> None:
    rec = recommend([summary("z"), summary("m"), summary("a")], [], {})
    assert ids(rec) == ["a", "m", "z"]
    # an unknown TTFT ranks after a known one at the same price
    rec = recommend([summary("a", ttft_p95=None), summary("b")], [], {})
    assert ids(rec) == ["b", "a"]


def test_stages_are_pooled_per_provider_with_exact_decimal_sums() -> None:
    sums = [
        summary("p", stage="x", total="0.1", conforming=3, output_tokens=100, ttft_p95=80.0),
        summary("p", stage="y", total="0.2", conforming=0, output_tokens=200, ttft_p95=120.0),
    ]
    (c,) = recommend(sums, [], {}).candidates
    assert c.stages == ("x", "y")
    assert c.total_usd == Decimal("0.3")  # not 0.30000000000000004
    assert c.sla_conforming == 3
    assert c.per_sla_conforming_usd == Decimal("0.1")
    assert c.per_1m_output_tokens_usd == Decimal(1000)  # 0.3 * 1e6 / 300
    assert c.ttft_p95_ms == 120.0  # the worst stage
    assert c.requests == 40
    assert c.ok == 40


def test_a_third_of_a_dollar_is_divided_exactly_to_the_context_precision() -> None:
    (c,) = recommend([summary("p", total="1", conforming=3)], [], {}).candidates
    assert c.per_sla_conforming_usd == Decimal("0." + "3" * 40)


def test_excluded_candidates_carry_every_reason() -> None:
    sums = [
        summary("failing"),
        summary("unpriced", total=None),
        summary("useless", conforming=0),
        summary("ok"),
    ]
    verdicts = [
        verdict("failing", "fail"),
        verdict("failing", "inconclusive"),
        verdict("ok", "pass"),
        verdict("useless", "pass"),
    ]
    rec = recommend(sums, verdicts, {})
    assert ids(rec) == ["ok", "failing", "unpriced", "useless"]
    assert [c.eligible for c in rec.candidates] == [True, False, False, False]
    assert [c.rank for c in rec.candidates] == [1, None, None, None]
    by_id = {c.provider: c for c in rec.candidates}
    assert by_id["failing"].excluded_because == (
        Exclusion("it was fail", "ttft.p95 < 150ms", "s", "fail"),
        Exclusion("it was inconclusive", "ttft.p95 < 150ms", "s", "inconclusive"),
    )
    assert (by_id["failing"].passed, by_id["failing"].failed) == (0, 1)
    assert by_id["failing"].inconclusive == 1
    assert by_id["unpriced"].excluded_because == (Exclusion("no price known"),)
    assert by_id["unpriced"].total_usd is None
    assert by_id["unpriced"].per_sla_conforming_usd is None
    assert by_id["useless"].excluded_because == (Exclusion("no SLA-conforming request"),)
    assert by_id["ok"].passed == 1


def test_a_stage_without_cost_leaves_the_pooled_cost_unknown() -> None:
    sums = [summary("p", stage="x"), summary("p", stage="y", total=None)]
    (c,) = recommend(sums, [], {}).candidates
    assert c.total_usd is None
    assert not c.eligible
    # an empty stage (nothing started, so nothing priced) does not spoil the rest
    sums = [summary("p", stage="x"), summary("p", stage="y", total=None, requests=0)]
    (c,) = recommend(sums, [], {}).candidates
    assert c.total_usd == Decimal("0.01")


def test_without_sla_every_costed_candidate_is_eligible() -> None:
    rec = recommend([summary("a"), summary("b", total=None)], judge([], []), {})
    assert [c.provider for c in rec.eligible] == ["a"]
    assert [c.provider for c in rec.excluded] == ["b"]


def test_nothing_eligible_has_no_best() -> None:
    rec = recommend([summary("a")], [verdict("a", "fail")], {})
    assert rec.best is None
    assert rec.eligible == ()
    assert recommend([], [], {}).best is None


def test_stage_filter_restricts_summaries_and_verdicts() -> None:
    sums = [
        summary("a", stage="warm", total="0.01"),
        summary("a", stage="load", total="0.04"),
        summary("b", stage="load", total="0.02"),
    ]
    verdicts = [verdict("a", "fail", stage="warm"), verdict("b", "pass", stage="load")]
    everything = recommend(sums, verdicts, {})
    assert [c.provider for c in everything.eligible] == ["b"]
    load = recommend(sums, verdicts, {}, stages={"load"})
    assert load.stages == ("load",)
    assert ids(load) == ["b", "a"]
    assert load.candidates[1].total_usd == Decimal("0.04")
    assert load.candidates[1].eligible  # the failure was in the other stage
    warm = recommend(sums, verdicts, {}, stages={"warm"})
    assert ids(warm) == ["a"]  # b never ran the warm stage


def test_an_sla_scope_that_matched_nothing_counts_against_every_candidate() -> None:
    unmatched = judge([SlaSpec(parse_sla("ttft.p95 < 1s"), stage="typo")], [summary("a")])
    assert unmatched[0].provider is None
    rec = recommend([summary("a"), summary("b")], unmatched, {})
    assert rec.eligible == ()
    # ... unless a stage filter leaves its stage out
    assert len(recommend([summary("a")], unmatched, {}, stages={"s"}).eligible) == 1


def test_pareto_marks_the_non_dominated_candidates() -> None:
    sums = [
        # (p95 TTFT, cost per 1M output tokens): 1000 output tokens each
        summary("cheap_slow", total="0.0002", ttft_p95=300.0),  # (300, 0.2)
        summary("mid_fast", total="0.002", ttft_p95=30.0),  # (30, 2)
        summary("dear_fast", total="0.01", ttft_p95=60.0),  # dominated by mid_fast
        summary("dear_fastest", total="0.01", ttft_p95=20.0),  # fastest: on the frontier
        summary("unknown", total="0.01", ttft_p95=None),  # no point to place
    ]
    rec = recommend(sums, [], {})
    marked = {c.provider for c in rec.candidates if c.pareto}
    assert marked == {"cheap_slow", "mid_fast", "dear_fastest"}
    assert pareto_frontier(rec.candidates) == marked


def test_equal_points_are_both_on_the_frontier_and_equal_on_one_axis_is_not_enough() -> None:
    twins = recommend([summary("a"), summary("b")], [], {})
    assert all(c.pareto for c in twins.candidates)
    # same TTFT, b costs more: a dominates b
    rec = recommend([summary("a"), summary("b", total="0.02")], [], {})
    assert {c.provider: c.pareto for c in rec.candidates} == {"a": True, "b": False}


def test_worst_stage_p95_skips_unmeasured_stages() -> None:
    sums = [summary("p", ttft_p95=None), summary("p", stage="t", ttft_p95=40.0)]
    assert worst_stage_p95(sums) == 40.0
    assert worst_stage_p95(sums[:1]) is None
    assert worst_stage_p95(sums, "e2e") is None  # not in these summaries' metrics

"""The recommendation in the run table and in ``lens recommend``'s report."""

from __future__ import annotations

import pytest

from lens.export.results import ExclusionOut, RecommendationOut, Results
from lens.export.table import render, render_recommendation, verdict_rows
from lens.metrics.judge import measured_text
from tests.export._reload_results import built
from tests.export._results import hand_results, rich_results


def _with(results: Results, rec: RecommendationOut | None) -> Results:
    return results.model_copy(update={"recommendation": rec})


def test_the_run_table_names_the_best_and_why_the_others_are_out() -> None:
    _, _, results = built()
    text = render(results)
    best = "recommendation: b (lens-sim), $0.0001 per SLA-conforming request, the cheapest of 1"
    assert best in text
    assert "  excluded a: ttft.max < 250ms (fail); itl.max < 15ms (fail)" in text
    # after the verdicts, before the final count
    assert text.index("SLA\n") < text.index("recommendation:") < text.index("SLA: ")


def test_the_run_table_says_so_when_nobody_is_eligible() -> None:
    _, _, results = built()
    rec = results.recommendation
    assert rec is not None
    out = [c.model_copy(update={"rank": None, "eligible": False}) for c in rec.candidates]
    none = rec.model_copy(update={"best": None, "candidates": out})
    assert "recommendation: none of 2 providers meets every SLA" in render(_with(results, none))
    report = render_recommendation(none)
    assert report.startswith("no provider meets every SLA at a known cost\n")


def test_no_recommendation_block_without_a_choice_or_a_price() -> None:
    _, _, results = built()
    rec = results.recommendation
    assert rec is not None
    alone = rec.model_copy(update={"candidates": rec.candidates[:1]})
    unpriced = rec.model_copy(
        update={"candidates": [c.model_copy(update={"total_usd": None}) for c in rec.candidates]}
    )
    for without in (None, alone, unpriced):
        assert "recommendation" not in render(_with(results, without))


@pytest.mark.parametrize(
    ("usd", "shown"),
    [
        ("0.000018", "$0.000018"),
        ("0.00001234567", "$0.00001235"),
        ("11.2500000001", "$11.25"),
        ("123456.789", "$123456.79"),
        ("100", "$100"),
        ("0", "$0"),
        (None, "-"),
    ],
)
def test_prices_show_four_significant_digits_or_cents(usd: str | None, shown: str) -> None:
    _, _, results = built()
    rec = results.recommendation
    assert rec is not None
    first = rec.candidates[0].model_copy(update={"per_sla_conforming_usd": usd})
    row = render_recommendation(rec.model_copy(update={"candidates": [first]})).splitlines()[4]
    assert row.split()[3] == shown


def test_reasons_other_than_verdicts_are_shown_as_they_are() -> None:
    _, _, results = built()
    rec = results.recommendation
    assert rec is not None
    a, b = rec.candidates[1], rec.candidates[0]
    unpriced = b.model_copy(
        update={
            "rank": None,
            "eligible": False,
            "total_usd": None,
            "per_sla_conforming_usd": None,
            "excluded_because": [
                ExclusionOut(reason="no price known", sla=None, stage=None, outcome=None)
            ],
        }
    )
    # a still has a known cost, so the run table shows the block
    none = rec.model_copy(update={"best": None, "candidates": [a, unpriced]})
    assert "  excluded b: no price known" in render(_with(results, none))
    report = render_recommendation(none)
    assert "  b:\n    no price known\n" in report
    assert "    ttft.max < 250ms [stage s] fail: ttft.max = 290 ms, not < 250 ms\n" in report


def test_sweeps_say_when_they_were_cut_short_or_distrusted() -> None:
    lines = render(rich_results(overloaded=True)).splitlines()
    assert (
        "  search/gpt (find_max_rate, DISTRUSTED): max rate 85/s, bracket [85/s, 88.75/s), 1 steps"
        in lines
    )
    assert "  search/sim (find_max_rate, cut short, DISTRUSTED): no answer, 1 steps" in lines
    trusted = render(rich_results()).splitlines()
    assert (
        "  search/gpt (find_max_rate): max rate 85/s, bracket [85/s, 88.75/s), 1 steps" in trusted
    )


def test_verdicts_show_the_measured_value_in_the_assertions_unit() -> None:
    """`error_rate < 1%` measured 1/3 reads 33.333%, not 0.33; money keeps its digits."""
    _, rows = verdict_rows(hand_results().verdicts)
    measured = {row[3] for row in rows if row[1] == "error_rate < 1%"}
    assert "33.333%" in measured
    assert all(m.endswith("%") for m in measured)
    assert measured_text("cost.mean", 0.0000274) == "$0.0000274"
    assert measured_text("ttft.p95", 123.4567) == "123.457 ms"
    assert measured_text("ttft.p95", None) == "-"


def test_cold_start_says_which_warm_requests_it_is_compared_with() -> None:
    text = render(rich_results())
    assert "\ncold start (TTFT of cold requests vs warm ones):\n" in text
    assert (
        "  gpt: 1 cold, TTFT p50 209.0 ms vs warm p50 200.0 ms, p90 200.0 ms, 1.04x; "
        "compared with warm requests of stage warm (the cold requests' own stage: 2 warm, "
        "3.4 in flight on average)\n"
    ) in text

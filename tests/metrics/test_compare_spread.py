"""lens compare with repeated stages: a difference's interval is at least as wide as the
two runs' run-to-run spread implies (Welch's t on the repetitions' values), never
narrower than the within-run interval."""

from __future__ import annotations

import dataclasses

import pytest

from lens.metrics.compare import compare_sides
from lens.metrics.repetitions import Spread, spread_half_width
from tests.metrics.test_compare import by_label, checks, side


def test_a_spread_larger_than_the_within_run_interval_widens_it() -> None:
    base, cur = side(1), side(3, ttft=130)  # +30 %: regressed on the bootstrap alone
    plain = by_label(compare_sides(base, cur, checks("ttft.p50")))["ttft.p50"]
    assert plain.outcome == "regressed"
    assert plain.method == "bootstrap"
    # The same pooled values, but the runs of each side disagreed wildly.
    noisy = Spread.of([60.0, 100.0, 140.0])
    b = dataclasses.replace(base, spread={"ttft.p50": noisy})
    c = dataclasses.replace(cur, spread={"ttft.p50": noisy})
    wide = by_label(compare_sides(b, c, checks("ttft.p50")))["ttft.p50"]
    h = spread_half_width(noisy, noisy, 0.95)
    assert h is not None
    assert wide.change == plain.change
    assert wide.interval == pytest.approx((plain.change - h, plain.change + h))  # type: ignore[operator]
    assert wide.relative_interval is not None
    assert wide.relative_interval[0] == pytest.approx((plain.change - h) / plain.baseline)  # type: ignore[operator]
    assert wide.outcome == "inconclusive"
    assert wide.method == "bootstrap + run-to-run spread"
    assert "widened to the runs' run-to-run spread" in wide.reason


def test_a_spread_smaller_than_the_within_run_interval_changes_nothing() -> None:
    base, cur = side(1), side(3, ttft=130)
    plain = compare_sides(base, cur, checks())
    # The runs agreed (to far within what the bootstrap allows on either side).
    quiet = {label: Spread.of([1.0, 1.0, 1.0]) for label, _ in checks()}
    found = compare_sides(
        dataclasses.replace(base, spread=quiet), dataclasses.replace(cur, spread=quiet), checks()
    )
    assert found == plain


def test_only_the_current_run_repeated_still_widens() -> None:
    base, cur = side(1), side(2)
    noisy = {"ttft.p50": Spread.of([80.0, 100.0, 120.0])}
    plain = by_label(compare_sides(base, cur, checks("ttft.p50")))["ttft.p50"]
    assert plain.outcome == "unchanged"
    found = by_label(
        compare_sides(base, dataclasses.replace(cur, spread=noisy), checks("ttft.p50"))
    )["ttft.p50"]
    h = spread_half_width(None, noisy["ttft.p50"], 0.95)
    assert h is not None
    assert found.interval is not None
    assert found.interval[1] - found.interval[0] == pytest.approx(2 * h)
    assert found.outcome == "inconclusive"  # 20 ms either way of a 100 ms TTFT


def test_error_rate_spread_widens_the_newcombe_interval() -> None:
    base, cur = side(1, errors=2), side(2, errors=2)
    noisy = {"error_rate": Spread.of([0.0, 0.05, 0.0])}
    plain = by_label(compare_sides(base, cur, checks("error_rate")))["error_rate"]
    found = by_label(
        compare_sides(
            dataclasses.replace(base, spread=noisy),
            dataclasses.replace(cur, spread=noisy),
            checks("error_rate"),
        )
    )["error_rate"]
    assert plain.method == "newcombe"
    assert found.method == "newcombe + run-to-run spread"
    assert found.interval is not None
    assert plain.interval is not None
    assert found.interval[0] < plain.interval[0]
    assert found.interval[1] > plain.interval[1]

"""Regression thresholds: parsed like SLA values, relative or absolute, never negative."""

from __future__ import annotations

import pytest

from lens.scenario.thresholds import Threshold, ThresholdError, parse_threshold


@pytest.mark.parametrize(
    ("key", "text", "amount", "relative"),
    [
        ("ttft.p95", "+10%", 0.10, True),
        ("ttft.p95", "10%", 0.10, True),
        ("itl.p50", "+2ms", 2.0, False),
        ("e2e.p95", "+0.1s", 100.0, False),  # in the metric's unit: ms
        ("e2e.p95", "50", 50.0, False),  # a bare number: the metric's unit, as in an SLA
        ("output_tokens_per_s.p50", "+5/s", 5.0, False),
        ("cost.mean", "+$0.0001", 0.0001, False),
        ("cost.mean", "+20%", 0.20, True),
        # A percentage of a ratio is percentage points, not a share of the baseline.
        ("error_rate", "+0.5%", 0.005, False),
        ("error_rate", "0.01", 0.01, False),
    ],
)
def test_parses(key: str, text: str, amount: float, relative: bool) -> None:
    t = parse_threshold(key, text)
    assert (t.key, t.relative, t.text) == (key, relative, text)
    assert t.amount == pytest.approx(amount)


def test_a_number_is_accepted_as_yaml_gives_it() -> None:
    assert parse_threshold("itl.p50", 3).amount == 3.0


def test_allowed_is_relative_to_the_baseline_or_absolute() -> None:
    assert parse_threshold("ttft.p95", "+10%").allowed(200.0) == pytest.approx(20.0)
    assert parse_threshold("ttft.p95", "+50ms").allowed(200.0) == 50.0
    assert Threshold("x", None, 0.5, True, "+50%").allowed(-4.0) == 2.0


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("ttft.p95", "-10%", "how much worse a value may get"),
        ("ttft.p95", "+10tokens", "is not an amount"),
        ("ttft.p95", True, "expected an amount"),
        ("ttft.p95", None, "expected an amount"),
        ("ttft", "+10%", "name a statistic"),
        ("ttf.p95", "+1ms", "did you mean 'ttft'"),
        ("error_rate", "+2ms", "is a ratio"),
        ("ttft.p95", "+2/s", "is a time"),
    ],
)
def test_bad_thresholds_say_what_was_expected(key: str, value: object, expected: str) -> None:
    with pytest.raises(ThresholdError, match=expected) as info:
        parse_threshold(key, value)
    assert str(info.value).startswith(f"{key}:")

"""Dollar amounts as people read them: significant digits, never $0.00 for a real cost,
never exponent notation (lens.pricing.money, used by every table, report and verdict)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lens.export.report.series import usd
from lens.metrics.judge import format_value, measured_text
from lens.pricing.money import usd_text


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (0.0000274, "$0.0000274"),
        (0.1 * 0.000274, "$0.0000274"),  # 2.7400000000000002e-05: noise rounds away
        (Decimal("0.00014581"), "$0.000146"),
        (1e-9, "$0.000000001"),  # not 1e-09, not $0
        ("0.5", "$0.5"),
        (12.345, "$12.35"),  # from $1 up: cents
        (Decimal("1234.5"), "$1,234.50"),
        (0, "$0"),
        (-0.0000123, "-$0.0000123"),
        (None, "-"),
    ],
)
def test_usd_text(amount: Decimal | float | str | None, text: str) -> None:
    assert usd_text(amount) == text


def test_a_change_carries_its_sign() -> None:
    assert usd_text(0.0000012, sign=True) == "+$0.0000012"
    assert usd_text(-0.0000012, sign=True) == "-$0.0000012"
    assert usd_text(0.0, sign=True) == "$0"


def test_verdicts_and_the_report_print_money_the_same_way() -> None:
    # The HTML report's SLA table prints measured_text; its cost table and charts usd().
    assert measured_text("cost.mean", 0.0000274) == "$0.0000274"
    assert format_value(0.0000274, "usd") == "$0.0000274"
    assert format_value(0.00012345678, "usd") == "$0.000123457"  # thresholds keep 6 digits
    assert usd(Decimal("0.0000274")) == "$0.0000274"
    assert usd(Decimal("0.0000001")) == "$0.0000001"  # was 1.00e-7
    assert "e" not in usd(Decimal("1E-12"))

"""Dollar amounts for people: significant digits, never ``$0.00`` for a real cost.

A request costs fractions of a cent ($0.0000274), so rounding to cents, or to a fixed
number of decimals, prints 0 for what was measured; exponent notation (``2.74e-05``) is
no better in a table.  One formatter, used wherever lens prints money.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

SIGNIFICANT_DIGITS = 3


def usd_text(
    amount: Decimal | float | str | None, *, digits: int = SIGNIFICANT_DIGITS, sign: bool = False
) -> str:
    """``$0.0000274`` (``digits`` significant digits below $1), ``$12.35`` (cents from $1
    up, thousands separated), ``$0`` for zero, ``-`` for None; ``sign`` writes ``+`` on a
    positive amount (a change)."""
    if amount is None:
        return "-"
    try:
        d = Decimal(repr(amount)) if isinstance(amount, float) else Decimal(str(amount))
    except InvalidOperation:
        return str(amount)
    if not d.is_finite():
        return str(amount)
    prefix = "-" if d < 0 else ("+" if sign and d > 0 else "")
    d = abs(d)
    if d == 0:
        return "$0"
    if d >= 1:
        return f"{prefix}${d.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,.2f}"
    exponent = d.adjusted() - digits + 1  # keep `digits` significant digits
    rounded = d.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_UP).normalize()
    return f"{prefix}${rounded:f}"

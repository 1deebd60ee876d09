"""Self-hosted deployments priced by the GPU-hour.

The model: the deployment is paid for every second lens uses it, busy or idle.  The run's
wall time (its clock, from the start to the end of the last stage unit) is cut into one
billed span per stage unit: the unit's own window plus the lead-in before it (the sweep's
pause, connection set-up, lens choosing the next step), i.e. from the end of the unit
before.  A unit costs ``usd_per_gpu_hour x gpus x billed hours``, and that cost is shared
among the unit's requests by busy time (dispatch to end): a request that held the server
twice as long costs twice as much.  Failed requests take their share too: the GPUs were
paid for while they ran.

Money here is integer units of ``QUANTUM`` (10^-12 USD).  A bill is worked out top down,
each level by largest remainder (``apportion``), so the parts always add up to the whole
exactly: record shares to their unit's cost, units to the provider's run cost, and that to
``rate x gpus x billed time`` rounded once to the quantum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Context, Decimal
from fractions import Fraction

_CTX = Context(prec=40)
_NS_PER_HOUR = 3_600_000_000_000
UNITS_PER_USD = 10**12  # the smallest amount a GPU-hour bill keeps: 10^-12 USD
QUANTUM = Decimal(1).scaleb(-12)


@dataclass(frozen=True, slots=True)
class GpuHourRate:
    usd_per_gpu_hour: Decimal
    gpus: int
    source: str

    def _exact_units(self, wall_ns: int) -> Fraction:
        return Fraction(self.usd_per_gpu_hour) * self.gpus * wall_ns * UNITS_PER_USD / _NS_PER_HOUR

    def cost_of(self, wall_ns: int) -> Decimal:
        """USD for holding the deployment ``wall_ns`` nanoseconds (40 significant digits)."""
        hourly = _CTX.multiply(self.usd_per_gpu_hour, Decimal(self.gpus))
        return _CTX.divide(_CTX.multiply(hourly, Decimal(wall_ns)), Decimal(_NS_PER_HOUR))

    def units_of(self, wall_ns: int) -> int:
        """The bill for ``wall_ns``, in quanta: exact, rounded half to even once."""
        return round(self._exact_units(wall_ns))

    def ceil_units_of(self, wall_ns: int) -> int:
        """The same rounded up: what a budget must count (never below any bill)."""
        return math.ceil(self._exact_units(wall_ns))

    def to_dict(self) -> dict[str, str | int]:
        return {
            "usd_per_gpu_hour": str(self.usd_per_gpu_hour),
            "gpus": self.gpus,
            "source": self.source,
        }


def usd_of_units(units: int) -> Decimal:
    """Quanta as USD, with the quantum's exponent (``Decimal('1.234000000000')``)."""
    return Decimal(units).scaleb(-12)


def money_text(amount: Decimal) -> str:
    """A USD amount as plain decimal digits, never in exponent notation."""
    return format(amount, "f")


def apportion(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` split in proportion to ``weights`` (non-negative integers), in whole units.

    Largest remainder: each part gets the floor of its exact quota, and the units left over
    go one each to the parts with the largest remainders (ties to the earlier part), so the
    parts add up to ``total`` exactly and none is more than one unit from its quota.  All
    weights zero: nothing can carry the total, every part is 0.
    """
    whole = sum(weights)
    if whole <= 0 or total == 0:
        return [0] * len(weights)
    if any(w < 0 for w in weights):
        raise ValueError("weights must not be negative")
    parts: list[int] = []
    remainders: list[tuple[int, int]] = []
    for i, w in enumerate(weights):
        q, r = divmod(total * w, whole)
        parts.append(q)
        remainders.append((-r, i))
    left = total - sum(parts)
    for _, i in sorted(remainders)[:left]:
        parts[i] += 1
    return parts

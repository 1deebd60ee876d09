"""Bisection for the highest rate that meets its SLAs: pure, driven by a pass/fail answer.

``bisect_max_rate`` is a generator: it yields the next rate to try and is sent back whether
that rate passed.  It first tries both ends of the range, lowest first: if the lowest fails
there is no answer (the bracket is open below); if the highest passes, it is the answer (open
above; the true limit may be higher).  Otherwise it halves ``[passing, failing)`` until the
two are within the precision or the step budget is spent.  The midpoint is arithmetic and
rounded to 4 significant digits, so step ids stay readable (``search.81.25rps``).

The search assumes a pass at a rate implies a pass at every lower rate (latency rises with
load); a measurement that breaks that only narrows the bracket around a different edge.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass

from lens.scenario.units import Precision

SIGNIFICANT_DIGITS = 4


@dataclass(frozen=True, slots=True)
class SearchResult:
    max_rate_per_s: float | None  # the highest rate that passed; None: none did
    passing: float | None  # the bracket: highest passing rate (None: open below)
    failing: float | None  # lowest failing rate (None: open above)
    probes: tuple[tuple[float, bool], ...]  # (rate, passed) in the order tried
    reason: str


def round_rate(rate: float) -> float:
    return float(f"{rate:.{SIGNIFICANT_DIGITS}g}")


def bisect_max_rate(
    low: float, high: float, precision: Precision | None, max_steps: int | None
) -> Generator[float, bool, SearchResult]:
    """Yield rates to try, receive whether each passed; return the result.  At least one of
    ``precision`` and ``max_steps`` (>= 2) bounds the search."""
    assert low < high
    assert precision is not None or max_steps is not None
    assert max_steps is None or max_steps >= 2
    probes: list[tuple[float, bool]] = []

    def result(passing: float | None, failing: float | None, reason: str) -> SearchResult:
        return SearchResult(passing, passing, failing, tuple(probes), reason)

    passed = yield low
    probes.append((low, passed))
    if not passed:
        return result(
            None, low, f"even the lowest rate, {low:g}/s, fails: the bracket is open below"
        )
    passed = yield high
    probes.append((high, passed))
    if passed:
        return result(
            high, None, f"even the highest rate, {high:g}/s, passes: the bracket is open above"
        )
    passing, failing = low, high
    while precision is None or not precision.reached(passing, failing):
        if max_steps is not None and len(probes) >= max_steps:
            return result(passing, failing, f"stopped after max_steps ({max_steps}) steps")
        mid = round_rate((passing + failing) / 2)
        if not passing < mid < failing:  # the bracket is down to the rounding step
            break
        passed = yield mid
        probes.append((mid, passed))
        if passed:
            passing = mid
        else:
            failing = mid
    within = f"within {precision}" if precision is not None else "as narrow as rates go"
    return result(passing, failing, f"bracket {within}")


def search_max_rate(
    low: float,
    high: float,
    precision: Precision | None,
    max_steps: int | None,
    passes: Callable[[float], bool],
) -> SearchResult:
    """``bisect_max_rate`` answered by ``passes(rate)``."""
    search = bisect_max_rate(low, high, precision, max_steps)
    try:
        rate = next(search)
        while True:
            rate = search.send(passes(rate))
    except StopIteration as done:
        result: SearchResult = done.value
        return result

"""Bisection for the highest rate (or concurrency) that meets its SLAs: pure, driven by a
pass/fail answer.

``bisect_max_rate`` is a generator: it yields the next rate to try and is sent back whether
that rate passed.  It first tries both ends of the range, lowest first: if the lowest fails
there is no answer (the bracket is open below); if the highest passes, it is the answer (open
above; the true limit may be higher).  Otherwise it halves ``[passing, failing)`` until the
two are within the precision or the step budget is spent.  The midpoint is arithmetic and
rounded to 4 significant digits, so step ids stay readable (``search.81.25rps``).
``bisect_max_concurrency`` does the same over whole numbers of requests in flight: the
midpoint rounds down, and precision 1 ends on neighbours (the exact edge).

The search assumes a pass at a load implies a pass at every lower load (latency rises with
load); a measurement that breaks that only narrows the bracket around a different edge.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Generic, TypeVar

from lens.scenario.units import Precision

SIGNIFICANT_DIGITS = 4
N = TypeVar("N", int, float)


@dataclass(frozen=True, slots=True)
class SearchResult(Generic[N]):
    found: N | None  # the highest value that passed; None: none did
    passing: N | None  # the bracket: highest passing value (None: open below)
    failing: N | None  # lowest failing value (None: open above)
    probes: tuple[tuple[N, bool], ...]  # (value, passed) in the order tried
    reason: str

    @property
    def max_rate_per_s(self) -> N | None:
        return self.found


def round_rate(rate: float) -> float:
    return float(f"{rate:.{SIGNIFICANT_DIGITS}g}")


def _bisect(
    low: N,
    high: N,
    *,
    narrow_enough: Callable[[N, N], bool],
    midpoint: Callable[[N, N], N],
    show: Callable[[N], str],
    noun: str,
    within: str,
    max_steps: int | None,
) -> Generator[N, bool, SearchResult[N]]:
    """Both ends, lowest first, then halving ``[passing, failing)`` until ``narrow_enough``,
    ``max_steps`` probes, or ``midpoint`` has nothing left between the two."""
    assert low < high
    assert max_steps is None or max_steps >= 2
    probes: list[tuple[N, bool]] = []

    def result(passing: N | None, failing: N | None, reason: str) -> SearchResult[N]:
        return SearchResult(passing, passing, failing, tuple(probes), reason)

    passed = yield low
    probes.append((low, passed))
    if not passed:
        return result(
            None, low, f"even the lowest {noun}, {show(low)}, fails: the bracket is open below"
        )
    passed = yield high
    probes.append((high, passed))
    if passed:
        return result(
            high, None, f"even the highest {noun}, {show(high)}, passes: the bracket is open above"
        )
    passing, failing = low, high
    while not narrow_enough(passing, failing):
        if max_steps is not None and len(probes) >= max_steps:
            return result(passing, failing, f"stopped after max_steps ({max_steps}) steps")
        mid = midpoint(passing, failing)
        if not passing < mid < failing:  # the bracket is down to the rounding step
            break
        passed = yield mid
        probes.append((mid, passed))
        if passed:
            passing = mid
        else:
            failing = mid
    return result(passing, failing, f"bracket {within}")


def bisect_max_rate(
    low: float, high: float, precision: Precision | None, max_steps: int | None
) -> Generator[float, bool, SearchResult[float]]:
    """Yield rates to try, receive whether each passed; return the result.  At least one of
    ``precision`` and ``max_steps`` (>= 2) bounds the search.  The midpoint is rounded to
    ``SIGNIFICANT_DIGITS``."""
    assert precision is not None or max_steps is not None
    return _bisect(
        low,
        high,
        narrow_enough=lambda p, f: precision is not None and precision.reached(p, f),
        midpoint=lambda p, f: round_rate((p + f) / 2),
        show=lambda rate: f"{rate:g}/s",
        noun="rate",
        within=f"within {precision}" if precision is not None else "as narrow as rates go",
        max_steps=max_steps,
    )


def bisect_max_concurrency(
    low: int, high: int, precision: int = 1, max_steps: int | None = None
) -> Generator[int, bool, SearchResult[int]]:
    """The same search over whole concurrencies: the midpoint rounds down, and the bracket
    ``[passing, failing)`` narrows until ``failing - passing <= precision`` (1: neighbours,
    so the answer is exact), or ``max_steps`` probes."""
    assert precision >= 1
    within = "down to neighbours" if precision == 1 else f"within {precision} in flight"
    return _bisect(
        low,
        high,
        narrow_enough=lambda p, f: f - p <= precision,
        midpoint=lambda p, f: (p + f) // 2,
        show=lambda c: f"{c} in flight",
        noun="concurrency",
        within=within,
        max_steps=max_steps,
    )


def search_max_rate(
    low: float,
    high: float,
    precision: Precision | None,
    max_steps: int | None,
    passes: Callable[[float], bool],
) -> SearchResult[float]:
    """``bisect_max_rate`` answered by ``passes(rate)``."""
    search = bisect_max_rate(low, high, precision, max_steps)
    try:
        rate = next(search)
        while True:
            rate = search.send(passes(rate))
    except StopIteration as done:
        result: SearchResult[float] = done.value
        return result

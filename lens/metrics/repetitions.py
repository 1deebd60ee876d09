"""The run-to-run spread of a repeated stage (``repeat: N``): each statistic as every
repetition measured it, and how far apart those values are.

A repeated stage x provider has one summary per repetition (stage ``<id>#<k>``) and one
pooled over all of them (stage ``<id>``, the judged one).  The pooled summary says what the
stage measured; the spread says how much that figure moves from one execution to the next
on the same system, which the within-run interval of a percentile (its requests' noise)
does not show: a server's state, a neighbour's load, the network's hour.  ``lens compare``
widens a difference's interval by it (``lens.metrics.compare``).

Pure and synchronous like the rest of ``lens.metrics``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from lens.metrics._results_config import RESULTS_VALUE
from lens.metrics.summary import Summary
from lens.scenario.thresholds import DEFAULT_CHECKS

# The statistics lens compare checks by default, then the stage's rates: each as
# ``metric.stat`` (request metrics) or ``metric`` (one value per stage), as SLAs name them.
SPREAD_STATISTICS: tuple[str, ...] = (*DEFAULT_CHECKS, "rps", "throughput")


@dataclass(frozen=True, slots=True)
class Spread:
    """One statistic across the repetitions of a stage x provider.  ``min`` .. ``stdev``
    are over the repetitions that measured it (``n``); ``None`` when none did
    (``stdev``: fewer than two)."""

    __pydantic_config__ = RESULTS_VALUE

    values: Annotated[
        tuple[float | None, ...],
        Field(description="the statistic of each repetition, in order; null: not measured"),
    ]
    n: Annotated[int, Field(description="repetitions that measured it")]
    min: float | None
    max: float | None
    mean: float | None
    stdev: Annotated[
        float | None, Field(description="sample standard deviation (n - 1); null when n < 2")
    ]

    @classmethod
    def of(cls, values: Sequence[float | None]) -> Spread:
        measured = [v for v in values if v is not None]
        if not measured:
            return cls(tuple(values), 0, None, None, None, None)
        return cls(
            values=tuple(values),
            n=len(measured),
            min=min(measured),
            max=max(measured),
            mean=statistics.fmean(measured),
            stdev=statistics.stdev(measured) if len(measured) > 1 else None,
        )


@dataclass(frozen=True, slots=True)
class RepetitionSpread:
    """What the repetitions of one stage x provider measured, statistic by statistic."""

    stage: str  # the repeated stage's id: its pooled summary's
    provider: str
    count: int  # the stage's repeat
    stages: tuple[str, ...]  # the repetitions' stage ids that ran, in order
    spread: Mapping[str, Spread]  # SPREAD_STATISTICS -> across the repetitions


def _value(summary: Summary, statistic: str) -> float | None:
    metric, _, stat = statistic.partition(".")
    try:
        return summary.get(metric, stat or None)
    except KeyError:  # a metric a newer lens's summary lacks
        return None


def repetition_spreads(
    summaries: Sequence[Summary], statistics_: Sequence[str] = SPREAD_STATISTICS
) -> tuple[RepetitionSpread, ...]:
    """One entry per repeated stage x provider of ``summaries`` (measured phase), in the
    order their pooled summaries appear."""
    reps: dict[tuple[str, str], list[Summary]] = {}
    for s in summaries:
        if s.repetition is not None and s.phase == "measure":
            reps.setdefault((s.repetition.stage, s.provider), []).append(s)
    out = []
    for s in summaries:
        group = reps.get((s.stage, s.provider))
        if s.repetition is not None or s.phase != "measure" or not group:
            continue
        group = sorted(group, key=lambda r: r.repetition.index if r.repetition else 0)
        out.append(
            RepetitionSpread(
                stage=s.stage,
                provider=s.provider,
                count=group[0].repetition.count if group[0].repetition else len(group),
                stages=tuple(r.stage for r in group),
                spread={name: Spread.of([_value(r, name) for r in group]) for name in statistics_},
            )
        )
    return tuple(out)


# --- the spread as an interval, for lens compare -------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta (Lentz's method)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """Student's t distribution function with ``df`` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (bisection on ``t_cdf``; 1e-10 close)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), not {p}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    while hi - lo > 1e-10 * max(1.0, hi):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2.0


def spread_half_width(
    baseline: Spread | None, current: Spread | None, confidence: float
) -> float | None:
    """Half the width of the ``confidence`` interval of the difference ``current -
    baseline`` that the two runs' run-to-run spreads imply: Welch's t interval for a
    difference of means, each side's value taken as the mean of its repetitions' (its
    variance ``stdev**2 / runs``).  A side that was not repeated (``None``, or a single
    run) counts as one run varying as the other side's runs do (its variance
    ``stdev**2``, its degrees of freedom the other side's).  None when neither side
    measured a spread (two runs at least)."""

    def variance(s: Spread | None) -> tuple[float, int] | None:
        if s is None or s.stdev is None or s.n < 2:
            return None
        return s.stdev**2, s.n

    b, c = variance(baseline), variance(current)
    if b is None and c is None:
        return None
    known = b or c
    assert known is not None
    b = b or (known[0], 1)
    c = c or (known[0], 1)
    parts = [var / runs for var, runs in (b, c)]
    dofs = [runs - 1 if runs > 1 else known[1] - 1 for _, runs in (b, c)]
    se2 = sum(parts)
    if se2 == 0:
        return 0.0
    df = se2**2 / sum(p**2 / d for p, d in zip(parts, dofs, strict=True))
    return t_quantile((1.0 + confidence) / 2.0, df) * math.sqrt(se2)

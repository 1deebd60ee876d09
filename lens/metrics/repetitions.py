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

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from lens.metrics._results_config import RESULTS_VALUE
from lens.metrics.summary import Summary

# The statistics lens compare checks by default, then the stage's rates: each as
# ``metric.stat`` (request metrics) or ``metric`` (one value per stage), as SLAs name them.
SPREAD_STATISTICS: tuple[str, ...] = (
    "ttft.p50",
    "ttft.p95",
    "itl.p50",
    "itl.p95",
    "e2e.p95",
    "output_tokens_per_s.p50",
    "error_rate",
    "cost.mean",
    "rps",
    "throughput",
)


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

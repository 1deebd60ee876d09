"""Did the open-loop schedule go out as planned?  Achieved vs planned rate, and lateness.

Per stage x provider, over the first attempts that had an intended send time (every
phase: pacing is a property of the schedule, not of the measured window).  A conversation's
later turns are not arrivals: their intended time is the previous reply's end plus the think
time, so only turn 1 (the session's arrival) counts here:

* ``planned_rate_per_s``: (n - 1) / (last - first intended time) of the n arrivals sent,
  so a run stopped early (budget, Ctrl-C) is compared with the part of the plan it ran;
* ``achieved_rate_per_s``: the same over the dispatch stamps;
* ``rate_error``: achieved / planned - 1;
* dispatch lag (dispatch - intended) p50, p99 (nearest rank) and max, in ms.

A burst has no rate (every arrival of a wave is due at once): its rates are ``None`` and
only the lag is reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from lens.metrics._results_config import RESULTS_VALUE
from lens.metrics.request import NS_PER_MS, NS_PER_S
from lens.metrics.sketch import MetricSketch, nearest_rank
from lens.records import RequestRecord


@dataclass(frozen=True, slots=True)
class Pacing:
    """How closely an open-loop schedule was kept (lens.metrics.pacing)."""

    __pydantic_config__ = RESULTS_VALUE

    sent: Annotated[int, Field(description="first attempts with an intended send time")]
    planned_rate_per_s: Annotated[
        float | None,
        Field(
            description="(n - 1) / span of the intended times of the arrivals sent; null: a burst"
        ),
    ]
    achieved_rate_per_s: Annotated[
        float | None, Field(description="the same over the dispatch times")
    ]
    rate_error: Annotated[float | None, Field(description="achieved / planned - 1")]
    lag_p50_ms: Annotated[float, Field(description="dispatch - intended, nearest-rank p50")]
    lag_p99_ms: float
    lag_max_ms: float


def _rate(first_ns: int, last_ns: int, n: int) -> float | None:
    return (n - 1) * NS_PER_S / (last_ns - first_ns) if last_ns > first_ns else None


def pacing(records: Iterable[RequestRecord]) -> Mapping[tuple[str, str], Pacing]:
    """(stage, provider) -> its ``Pacing``, for each open-loop stage x provider, in
    first-seen order."""
    stamps: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for rec in records:
        if rec.t_intended is not None and rec.attempt == 1 and (rec.turn or 1) == 1:
            stamps.setdefault((rec.stage, rec.provider), []).append(
                (rec.t_intended, rec.t_dispatch)
            )
    out: dict[tuple[str, str], Pacing] = {}
    for key, pairs in stamps.items():
        intended = [i for i, _ in pairs]
        dispatched = [d for _, d in pairs]
        n = len(pairs)
        planned = _rate(min(intended), max(intended), n)
        achieved = _rate(min(dispatched), max(dispatched), n) if planned is not None else None
        lags = sorted((d - i) / NS_PER_MS for i, d in pairs)
        out[key] = Pacing(
            sent=n,
            planned_rate_per_s=planned,
            achieved_rate_per_s=achieved,
            rate_error=achieved / planned - 1 if planned and achieved else None,
            lag_p50_ms=nearest_rank(lags, 0.5),
            lag_p99_ms=nearest_rank(lags, 0.99),
            lag_max_ms=lags[-1],
        )
    return out


class _UnitPacing:
    __slots__ = ("first_dispatch", "first_intended", "lags", "last_dispatch", "last_intended", "n")

    def __init__(self, intended: int, dispatched: int) -> None:
        self.n = 0
        self.first_intended = self.last_intended = intended
        self.first_dispatch = self.last_dispatch = dispatched
        self.lags = MetricSketch()


class PacingAccumulator:
    """``pacing`` fed one record at a time, in memory bounded by the number of open-loop
    units: the rates need only the first and last stamps, the lag percentiles a sketch
    (exact, as ``pacing``'s nearest rank, up to ``DEFAULT_EXACT_LIMIT`` arrivals per unit;
    a t-digest estimate beyond, as every summary percentile; the maximum stays exact)."""

    def __init__(self) -> None:
        self._units: dict[tuple[str, str], _UnitPacing] = {}

    def add(self, rec: RequestRecord) -> None:
        intended = rec.t_intended
        if intended is None or rec.attempt != 1 or (rec.turn or 1) != 1:
            return  # a retry, or a conversation's later turn: not an arrival
        key = (rec.stage, rec.provider)
        unit = self._units.get(key)
        dispatched = rec.t_dispatch
        if unit is None:
            unit = self._units[key] = _UnitPacing(intended, dispatched)
        unit.n += 1
        unit.first_intended = min(unit.first_intended, intended)
        unit.last_intended = max(unit.last_intended, intended)
        unit.first_dispatch = min(unit.first_dispatch, dispatched)
        unit.last_dispatch = max(unit.last_dispatch, dispatched)
        unit.lags.add((dispatched - intended) / NS_PER_MS)

    def result(self) -> Mapping[tuple[str, str], Pacing]:
        out: dict[tuple[str, str], Pacing] = {}
        for key, u in self._units.items():
            planned = _rate(u.first_intended, u.last_intended, u.n)
            achieved = (
                _rate(u.first_dispatch, u.last_dispatch, u.n) if planned is not None else None
            )
            p50, p99, top = u.lags.quantile(0.5), u.lags.quantile(0.99), u.lags.max
            assert p50 is not None  # n >= 1: every statistic is known
            assert p99 is not None
            assert top is not None
            out[key] = Pacing(
                sent=u.n,
                planned_rate_per_s=planned,
                achieved_rate_per_s=achieved,
                rate_error=achieved / planned - 1 if planned and achieved else None,
                lag_p50_ms=p50,
                lag_p99_ms=p99,
                lag_max_ms=top,
            )
        return out

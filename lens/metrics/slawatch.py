"""Watching ``stop_on_fail`` assertions while a run goes on (``lens.run.slastop``).

When an assertion is judged:

* a plain one when its stage x provider unit ends: its value is then final, so the
  verdict the results will carry is the one that stops the run (later units never start);
* a windowed one as soon as one of its windows has *conclusively* failed, i.e. would fail
  whatever the requests still in flight turn out to be.  A window is looked at once the
  run's clock (the end of the record just emitted) has passed its end, so nothing more
  can be dispatched in it; what it may still gain are requests in flight, at most
  ``in_flight`` of them.  The window fails conclusively when it fails even if each of
  those succeeded with the best value there is (0 for ``<``, unbounded for ``>``) and it
  already has the samples its statistic needs.  So a stop never rests on a window the
  final verdict could pass: requests that are cut off by the drain are left out of every
  window (``drained``), which cannot turn a failing window into a passing one either.

Checking a record costs a few counter updates per watched assertion and, per window still
open to change, a comparison: percentiles are decided by counting values on each side of
the threshold (nearest rank), never by sorting.  A window stops being watched once it has
failed or once the unit's request timeout has passed its end (every request of it has
ended, plus a margin); when the unit ends, every window is looked at once more, with
nothing in flight, which is exact.  Per-request ``cost`` is
left to the final verdict (it is priced once the run's windows are known) and never
stops a run early; nor do ``itl``/``icl`` while requests are in flight (one stream adds
many gaps).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from lens.metric_catalog import REQUEST_METRICS
from lens.metrics.conformance import SERIES
from lens.metrics.judge import judge_one
from lens.metrics.request import icl_values, itl_values, request_metrics
from lens.metrics.sketch import DEFAULT_EXACT_LIMIT
from lens.metrics.summary import PERCENTILES, StageAccumulator, StageKey
from lens.metrics.windows import NS_PER_S, window_index
from lens.plan.model import Plan, SlaSpec
from lens.records import LENS_SIDE, RequestRecord, StageWindow
from lens.scenario.sla import SlaExpr

SETTLE_MARGIN_NS = NS_PER_S  # past a request's deadline, for its record to be emitted
_QUANTILES = {name: Fraction(repr(q)) for name, q in PERCENTILES}


@dataclass(slots=True)
class _Tally:
    """One window of one assertion: the counts a conclusive verdict needs."""

    requests: int = 0
    ok: int = 0
    n: int = 0  # values of the assertion's metric
    good: int = 0  # of them, those that hold the assertion's comparison
    total: float = 0.0
    lo: float = math.inf
    hi: float = -math.inf

    def add(self, rec: RequestRecord, values: Sequence[float], expr: SlaExpr) -> None:
        self.requests += 1
        self.ok += rec.ok
        for v in values:
            self.n += 1
            self.good += expr.holds(v)
            self.total += v
            self.lo = min(self.lo, v)
            self.hi = max(self.hi, v)


def fails_whatever_comes(t: _Tally, expr: SlaExpr, in_flight: int) -> bool:
    """Whether the window ``t`` fails ``expr`` however its up to ``in_flight`` pending
    requests end (each best case in turn: they succeed, with the most favourable value)."""
    m, less = in_flight, expr.op in ("<", "<=")
    if t.requests == 0:
        return False
    if expr.stat is None:  # error_rate, success_rate, requests, errors
        count = {"error_rate": t.requests - t.ok, "success_rate": t.ok, "requests": t.requests}
        num = count.get(expr.metric, t.requests - t.ok)
        if expr.metric in ("error_rate", "success_rate"):
            best = num / (t.requests + m) if less else (num + m) / (t.requests + m)
        else:
            best = num if less else num + m
        return not expr.holds(best)
    if expr.metric not in REQUEST_METRICS or expr.metric == "cost":
        return False
    if expr.metric in SERIES and m > 0:
        return False
    if expr.stat == "n":
        return not expr.holds(t.n if less else t.n + m)
    if t.n == 0 or t.n < expr.min_samples or t.n + m > DEFAULT_EXACT_LIMIT:
        return False  # could still be inconclusive, or judged on an estimate
    match expr.stat:
        case "mean":  # pending values of 0 lower it; for ">", unbounded ones save it
            return (m == 0 or less) and not expr.holds(t.total / (t.n + m))
        case "min":
            return not expr.holds(t.lo if m == 0 or not less else 0.0)
        case "max":
            return (m == 0 or less) and not expr.holds(t.hi)
    assert expr.stat is not None
    rank = max(1, math.ceil(_QUANTILES[expr.stat] * (t.n + m)))
    if less:  # the pending values, all 0, are the lowest ranks
        return not expr.holds(0.0) if rank <= m else t.good < rank - m
    return rank <= t.n and t.n - t.good >= rank  # theirs are the highest ranks


@dataclass(slots=True)
class _Watched:
    """One windowed assertion on one stage x provider."""

    spec: SlaSpec
    window_ns: int
    timeout_ns: int
    tallies: dict[int, _Tally] = field(default_factory=dict)
    failed: set[int] = field(default_factory=set)
    done: set[int] = field(default_factory=set)  # no longer open to change


class SlaWatch:
    """The ``stop_on_fail`` assertions of a plan, fed each record as it is emitted."""

    def __init__(self, plan: Plan, slas: Sequence[SlaSpec]) -> None:
        self.specs = tuple(s for s in slas if s.stop_on_fail)
        self.pooled = frozenset(u.stage for u in plan.stages if u.phases.pooled)
        self.timeouts = {(u.stage, u.provider): u.timeout_s for u in plan.stages}
        self.plan = plan
        self.adaptive = frozenset(s.sweep for s in plan.sweeps)
        self._windowed: dict[StageKey, list[_Watched]] = {}
        self._plain: dict[StageKey, tuple[list[SlaSpec], StageAccumulator]] = {}
        self._seen: set[StageKey] = set()
        self.stopped_by: tuple[SlaSpec, str, str] | None = None  # spec, stage, provider

    def _applies(self, spec: SlaSpec, stage: str, provider: str) -> bool:
        """``applies_to``, and a scope naming an adaptive sweep takes in the steps it
        decides at run time (ids ``<sweep>.<rate>rps`` / ``<sweep>.c<n>``)."""
        if spec.applies_to(stage, provider):
            return True
        return (
            spec.stage in self.adaptive
            and stage.startswith(f"{spec.stage}.")
            and spec.provider in (None, provider)
        )

    def _open(self, key: StageKey) -> None:
        self._seen.add(key)
        stage, provider = key
        specs = [s for s in self.specs if self._applies(s, stage, provider)]
        # A unit decided at run time (an adaptive sweep's step) is not in the plan: its
        # windows stay watched until it ends.
        timeout_ns = round(self.timeouts.get(key, 1e9) * NS_PER_S) + SETTLE_MARGIN_NS
        self._windowed[key] = [
            _Watched(s, max(round(s.window_s * NS_PER_S), 1), timeout_ns)
            for s in specs
            if s.window_s is not None
        ]
        plain = [s for s in specs if s.window_s is None]
        if plain:
            spec = self.plan.providers.get(provider)
            self._plain[key] = (plain, StageAccumulator(stage, provider, spec=spec))

    def on_record(self, rec: RequestRecord, in_flight: int, origin_ns: int) -> str | None:
        if rec.error_class in LENS_SIDE:
            return None  # cut off by lens: in no window's denominator
        if rec.phase != "measure" and rec.stage not in self.pooled:
            return None
        key = (rec.stage, rec.provider)
        if key not in self._seen:
            self._open(key)
        plain = self._plain.get(key)
        if plain is not None:
            plain[1].add(rec)
        watched = self._windowed[key]
        if not watched or rec.t_dispatch is None:
            return None
        scalars = request_metrics(rec)
        now = rec.t_end if rec.t_end is not None else rec.t_dispatch
        for w in watched:
            expr = w.spec.expr
            values: Sequence[float]
            if expr.metric in SERIES:
                series = itl_values if expr.metric == "itl" else icl_values
                values = series(rec) if rec.ok and len(rec.chunk_times) > 1 else ()
            else:
                one = scalars.get(expr.metric) if expr.stat is not None else None
                values = () if one is None else (one,)
            k = window_index(rec.t_dispatch, origin_ns, w.window_ns)
            w.tallies.setdefault(k, _Tally()).add(rec, values, expr)
            reason = self._look(w, key, now - origin_ns, in_flight)
            if reason is not None:
                return reason
        return None

    def _look(self, w: _Watched, key: StageKey, elapsed_ns: int, in_flight: int) -> str | None:
        """Judge the windows of ``w`` that have closed (``elapsed_ns`` past the origin)."""
        for k, tally in w.tallies.items():
            if k in w.done or (k + 1) * w.window_ns > elapsed_ns:
                continue
            if fails_whatever_comes(tally, w.spec.expr, in_flight):
                w.failed.add(k)
                w.done.add(k)
            elif (k + 1) * w.window_ns + w.timeout_ns <= elapsed_ns:
                w.done.add(k)  # all its requests have ended: left to the unit's end
        if len(w.failed) > w.spec.allow:
            return self._stopped(w.spec, key, self._window_reason(w))
        return None

    def _window_reason(self, w: _Watched) -> str:
        assert w.spec.window_s is not None
        shown = ", ".join(
            f"#{k} [{k * w.spec.window_s:g}s-{(k + 1) * w.spec.window_s:g}s]"
            for k in sorted(w.failed)
        )
        return (
            f"{len(w.failed)} windows of {w.spec.window_s:g}s failed (allow {w.spec.allow}): "
            f"{shown}"
        )

    def _stopped(self, spec: SlaSpec, key: StageKey, why: str) -> str:
        self.stopped_by = (spec, *key)
        where = f" ({spec.where})" if spec.where else ""
        return f"{spec.expr.text}{where} failed on stage={key[0]} provider={key[1]}: {why}"

    def on_unit_end(self, window: StageWindow) -> str | None:
        """The unit is over and nothing of it is in flight: every window, and every plain
        assertion, is final now."""
        key = (window.stage, window.provider)
        if key not in self._seen:
            self._open(key)
        for w in self._windowed[key]:
            w.done = set(w.failed)
            reason = self._look(w, key, 2**62, 0)
            if reason is not None:
                return reason
        plain = self._plain.get(key)
        if plain is None:
            return None
        specs, acc = plain
        span = (
            (window.t_start, window.t_end)
            if window.stage in self.pooled
            else window.span("measure")
        )
        summary = acc.summary(span)
        for spec in specs:
            verdict = judge_one(spec, summary)
            if verdict.outcome == "fail":
                return self._stopped(spec, key, verdict.reason)
        return None

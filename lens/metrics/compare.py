"""Baseline vs current: is a statistic measurably worse, better, the same, or unknown?

Pure functions on plain values (no I/O): ``lens.export.comparison`` turns two results
files into ``Side`` values and calls ``compare_sides``; ``lens.compare`` is the public
entry point.  The method, and why:

* **Percentiles and means from records**: a percentile bootstrap of the *difference*,
  ``resamples`` (default 1000) replicates with a fixed seed, so the same two files
  always give the same answer.  The unit resampled is the **request** (a cluster
  bootstrap): a replicate draws as many requests as the side measured, with
  replacement, and takes the statistic over all their values.  For one-value-per-request
  metrics (TTFT, E2E, tokens/s, cost) that is the ordinary bootstrap; for ITL it keeps
  the gaps of one response together, since they are not independent of each other (one
  slow stream has many slow gaps), and treating them as independent would make the
  interval far too narrow.  Both sides are resampled independently, replicate ``b`` of
  the difference is ``stat(current*_b) - stat(baseline*_b)`` (and the ratio minus 1 for
  the relative change), and the interval is the ``(1 - confidence) / 2`` and
  ``(1 + confidence) / 2`` nearest-rank quantiles of those replicates.  Percentiles are
  nearest-rank, as in summaries, so the point values equal the summary's.  A bootstrap
  resting on very few requests is overconfident, hence ``MIN_BOOTSTRAP_REQUESTS``.
  Chosen over an exact order-statistic interval per side because that one assumes
  independent values (wrong for ITL) and, combined conservatively across two sides, is
  about 1.4 times wider than needed.  Pure Python (numpy is not a dependency), made cheap
  by two exact shortcuts: a percentile of one-value-per-request metrics takes one Beta
  draw per replicate (the r-th smallest of n uniforms), and the clustered ITL bootstrap
  scans only a band of the pooled values around where a pilot's replicates landed (a
  replicate outside it is computed in full).  1000 resamples of 10 000 requests take
  milliseconds per percentile; ITL of 2000 responses of 64 tokens about a second.
* **Without records** (results written without them, or percentiles that are t-digest
  estimates): a distribution-free order-statistic interval per side, from the ranks a
  Binomial(n, q) gives at confidence ``sqrt(confidence)`` (so both sides together hold
  with at least ``confidence``), mapped to values by interpolating the summary's
  percentiles (min, p50, p90, p95, p99, max), and widened by ``TDIGEST_RANK_ERROR`` in
  quantile when the percentile is a t-digest estimate.  The difference's interval is
  ``[cur_lo - base_hi, cur_hi - base_lo]``.  A mean gets Hoeffding's bound over the
  observed range.  Each check says which method it used.
* **error_rate / success_rate**: Newcombe's hybrid score interval (method 10) for a
  difference of two proportions, from the Wilson interval of each side.

Every interval assumes the requests of a side are independent draws from one unchanging
server (the same assumption as any percentile SLA); drift within a run, or queueing that
couples neighbouring requests, makes the intervals too narrow.

Verdicts, against a threshold ``t`` on the change (relative, ``+10%``, or absolute,
``+50ms``; for rates ``+0.5%`` is absolute percentage points), with the change signed so
that positive is worse: the whole interval above ``+t`` is **regressed**; the whole
interval below ``-t`` is **improved**; the whole interval within ``[-t, +t]`` is
**unchanged**; an interval that straddles ``+t`` or ``-t`` is **inconclusive**, never a
pass.  Too few samples on either side (``lens.metric_catalog.MIN_SAMPLES``, as SLA
verdicts) is inconclusive with that reason.
"""

from __future__ import annotations

import math
import random
import statistics
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import accumulate, pairwise
from typing import Any, Literal

from lens import exitcodes
from lens.metric_catalog import MIN_SAMPLES, REQUEST_METRICS, STAGE_METRICS
from lens.metrics._results_config import RESULTS_VALUE
from lens.metrics.repetitions import Spread, spread_half_width
from lens.metrics.sketch import nearest_rank
from lens.metrics.summary import MetricStats
from lens.scenario.thresholds import (
    BETTER,
    PROPORTIONS,
    Better,
    Threshold,
    check_label,
)

Outcome = Literal["regressed", "improved", "unchanged", "inconclusive"]
OUTCOMES: tuple[Outcome, ...] = ("regressed", "improved", "unchanged", "inconclusive")

PERCENTILE_Q: dict[str, float] = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}
# Exact fractions, so ranks are those of nearest_rank (0.95 * 20 is 19, never 19.000001).
_FRACTIONS: dict[str, Fraction] = {s: Fraction(repr(q)) for s, q in PERCENTILE_Q.items()}

DEFAULT_CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0
# Below this many requests on a side a bootstrap interval is too narrow to trust (it
# cannot see values it never drew), whatever the statistic's own minimum.
MIN_BOOTSTRAP_REQUESTS = 10
# How far (in quantile) a t-digest percentile of lens's sketches may be from the exact
# one: generous for 1000 centroids, whose rank error is well under 0.1 % in practice.
TDIGEST_RANK_ERROR = 0.005


# --- what each side holds --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Side:
    """One stage x provider of one results file, as the comparison needs it.

    ``requests``/``errors`` as in the summary (cancelled and drained requests excluded);
    ``stats`` the summary's per-metric statistics; ``values`` per metric the values of
    each counted request that has any (one for TTFT, every gap for ITL), or ``None``
    when the results hold no records.
    """

    stage: str
    provider: str
    requests: int
    errors: int
    stats: Mapping[str, MetricStats]
    values: Mapping[str, Sequence[Sequence[float]]] | None = None
    model: str = ""
    # A repeated stage (``repeat: N``; its pooled summary): each statistic's run-to-run
    # spread across the repetitions, by label (``ttft.p50``); empty for a stage run once.
    spread: Mapping[str, Spread] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.stage}/{self.provider}"


# --- what a comparison says ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check:
    """One statistic of one stage x provider, baseline against current.

    ``change`` is ``current - baseline`` in the metric's unit (ms, tokens/s, USD, a ratio),
    ``relative_change`` is ``current / baseline - 1``; ``interval`` and
    ``relative_interval`` are their confidence intervals (``None`` where undefined).  The
    verdict reads the one the threshold is written in.
    """

    __pydantic_config__ = RESULTS_VALUE

    stage: str
    provider: str
    statistic: str
    unit: str
    better: Better
    baseline: float | None
    current: float | None
    n_baseline: int
    n_current: int
    change: float | None
    relative_change: float | None
    interval: tuple[float, float] | None
    relative_interval: tuple[float, float] | None
    threshold: Threshold
    outcome: Outcome
    reason: str
    method: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "provider": self.provider,
            "statistic": self.statistic,
            "unit": self.unit,
            "better": self.better,
            "baseline": self.baseline,
            "current": self.current,
            "n_baseline": self.n_baseline,
            "n_current": self.n_current,
            "change": self.change,
            "relative_change": self.relative_change,
            "interval": None if self.interval is None else list(self.interval),
            "relative_interval": None
            if self.relative_interval is None
            else list(self.relative_interval),
            "threshold": {
                "text": self.threshold.text,
                "value": self.threshold.value,
                "relative": self.threshold.relative,
            },
            "outcome": self.outcome,
            "reason": self.reason,
            "method": self.method,
        }


@dataclass(frozen=True, slots=True)
class Comparison:
    """Every check of a comparison, and what could not be compared.

    ``exit_code``: 0 nothing regressed, 1 something regressed, 3 nothing regressed but
    something was inconclusive (``lens.exitcodes``).
    """

    __pydantic_config__ = RESULTS_VALUE

    baseline: str
    current: str
    checks: tuple[Check, ...]
    only_in_baseline: tuple[str, ...] = ()
    only_in_current: tuple[str, ...] = ()
    not_compared: tuple[str, ...] = ()  # "cost.mean [stage/provider]": measured on neither
    confidence: float = DEFAULT_CONFIDENCE
    resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED
    notes: tuple[str, ...] = ()

    def count(self, outcome: Outcome) -> int:
        return sum(c.outcome == outcome for c in self.checks)

    @property
    def regressed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.outcome == "regressed")

    @property
    def exit_code(self) -> int:
        if self.count("regressed"):
            return exitcodes.REGRESSED
        if self.count("inconclusive"):
            return exitcodes.COMPARE_INCONCLUSIVE
        return exitcodes.OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "current": self.current,
            "exit_code": self.exit_code,
            "counts": {o: self.count(o) for o in OUTCOMES},
            "confidence": self.confidence,
            "resamples": self.resamples,
            "seed": self.seed,
            "only_in_baseline": list(self.only_in_baseline),
            "only_in_current": list(self.only_in_current),
            "not_compared": list(self.not_compared),
            "notes": list(self.notes),
            "checks": [c.to_dict() for c in self.checks],
        }


# --- the statistics ----------------------------------------------------------------------


def _stat_of_sorted(values: Sequence[float], stat: str) -> float:
    if stat == "mean":
        return math.fsum(values) / len(values)
    return nearest_rank(list(values), PERCENTILE_Q[stat])


# Replicates computed in full before the band of the clustered bootstrap is chosen.
_PILOT = 25


@dataclass(slots=True)
class _Resampler:
    """Bootstrap replicates of statistics of one metric of one side (cluster = request).

    Each statistic gets its own generator (seeded with ``seed`` and the statistic), so a
    check's interval does not depend on which other checks were asked for."""

    clusters: Sequence[Sequence[float]]
    seed: str
    resamples: int
    _cache: dict[str, list[float]] = field(default_factory=dict)

    def point(self, stat: str) -> float:
        pooled = sorted(v for c in self.clusters for v in c)
        return _stat_of_sorted(pooled, stat)

    def replicates(self, stat: str) -> list[float]:
        if stat not in self._cache:
            rng = random.Random(f"{self.seed}:{stat}")
            if all(len(c) == 1 for c in self.clusters):
                self._cache[stat] = self._scalar(stat, rng)
            else:
                self._cache[stat] = self._clustered(stat, rng)
        return self._cache[stat]

    def _scalar(self, stat: str, rng: random.Random) -> list[float]:
        flat = sorted(c[0] for c in self.clusters)
        k = len(flat)
        if stat == "mean":
            rnd = rng.random
            return [
                math.fsum([flat[int(rnd() * k)] for _ in flat]) / k for _ in range(self.resamples)
            ]
        # The r-th smallest of k values drawn with replacement from the sorted values is
        # flat[floor(U * k)] with U the r-th smallest of k uniforms, which is
        # Beta(r, k - r + 1): one draw per replicate, exactly the bootstrap distribution.
        r = max(1, math.ceil(_FRACTIONS[stat] * k))
        beta = rng.betavariate
        return [flat[min(k - 1, int(beta(r, k - r + 1) * k))] for _ in range(self.resamples)]

    def _clustered(self, stat: str, rng: random.Random) -> list[float]:
        k = len(self.clusters)
        rnd = rng.random
        sizes = [len(c) for c in self.clusters]

        def counts() -> list[int]:
            m = [0] * k
            for _ in sizes:
                m[int(rnd() * k)] += 1
            return m

        if stat == "mean":
            sums = [math.fsum(c) for c in self.clusters]
            out: list[float] = []
            for _ in range(self.resamples):
                m = counts()
                total = sum(map(int.__mul__, m, sizes))
                out.append(math.fsum(map(float.__mul__, sums, map(float, m))) / total)
            return out
        pairs = sorted((v, i) for i, c in enumerate(self.clusters) for v in c)
        vals = [v for v, _ in pairs]
        owner = [i for _, i in pairs]
        q = _FRACTIONS[stat]

        def full(m: list[int]) -> int:
            # Weight of each pooled value = how often its request was drawn.
            cum = list(accumulate(map(m.__getitem__, owner)))
            return bisect_left(cum, max(1, math.ceil(q * cum[-1])))

        # Most replicates land near each other: after a pilot, only a band of the pooled
        # values is scanned, the weight below it summed per request.  A replicate outside
        # the band is computed in full, so the result is exact either way.
        found = [full(counts()) for _ in range(min(_PILOT, self.resamples))]
        spread = max(found) - min(found) + 1
        lo, hi = max(0, min(found) - 2 * spread), min(len(vals), max(found) + 2 * spread + 1)
        below = [0] * k
        for i in owner[:lo]:
            below[i] += 1
        band = owner[lo:hi]
        for _ in range(self.resamples - len(found)):
            m = counts()
            rank = max(1, math.ceil(q * sum(map(int.__mul__, m, sizes))))
            base = sum(map(int.__mul__, m, below))
            if rank > base:
                cum = list(accumulate(map(m.__getitem__, band), initial=base))
                if cum[-1] >= rank:
                    found.append(lo + bisect_left(cum, rank) - 1)
                    continue
            found.append(full(m))
        return [vals[i] for i in found]


def _quantile_interval(sorted_reps: Sequence[float], confidence: float) -> tuple[float, float]:
    b = len(sorted_reps)
    alpha = (1.0 - confidence) / 2.0
    lo = sorted_reps[max(0, math.floor(alpha * b))]
    hi = sorted_reps[min(b - 1, math.ceil((1.0 - alpha) * b) - 1)]
    return lo, hi


def wilson(x: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval of a proportion ``x / n``."""
    p = x / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(x1: int, n1: int, x0: int, n0: int, confidence: float) -> tuple[float, float]:
    """Newcombe's hybrid score interval (method 10) of ``x1/n1 - x0/n0``."""
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    p1, p0 = x1 / n1, x0 / n0
    l1, u1 = wilson(x1, n1, z)
    l0, u0 = wilson(x0, n0, z)
    d = p1 - p0
    return d - math.hypot(p1 - l1, u0 - p0), d + math.hypot(u1 - p1, p0 - l0)


def _binomial_ranks(n: int, q: float, confidence: float) -> tuple[int, int]:
    """1-based ranks ``(l, u)`` with ``P(x_(l) <= xi_q <= x_(u)) >= confidence`` for
    ``n`` independent values (distribution-free); 0 / n + 1 when the bound is open."""
    tail = (1.0 - confidence) / 2.0
    if n > 2000:  # normal approximation of Binomial(n, q), with continuity margin
        z = statistics.NormalDist().inv_cdf(1 - tail)
        spread = z * math.sqrt(n * q * (1 - q))
        return max(0, math.floor(n * q - spread)), min(n + 1, math.ceil(n * q + spread) + 1)
    # pmf by recurrence in log space: P(B = i) for B ~ Binomial(n, q).
    logs = [
        math.lgamma(n + 1)
        - math.lgamma(i + 1)
        - math.lgamma(n - i + 1)
        + i * math.log(q)
        + (n - i) * math.log1p(-q)
        for i in range(n + 1)
    ]
    pmf = [math.exp(v) for v in logs]
    cdf = list(accumulate(pmf))
    # l: the largest rank with P(B < l) <= tail, i.e. P(B <= l - 1) <= tail.
    low = 0
    for rank in range(1, n + 1):
        if cdf[rank - 1] <= tail:
            low = rank
        else:
            break
    # u: the smallest rank with P(B >= u) <= tail, i.e. 1 - P(B <= u - 1) <= tail.
    high = n + 1
    for rank in range(n, 0, -1):
        if 1.0 - cdf[rank - 1] <= tail:
            high = rank
        else:
            break
    return low, high


def _summary_level_value(stats: MetricStats, level: float) -> float | None:
    """The value at quantile ``level`` by linear interpolation of the known percentiles."""
    knots = [
        (0.0, stats.min),
        (0.5, stats.p50),
        (0.9, stats.p90),
        (0.95, stats.p95),
        (0.99, stats.p99),
        (1.0, stats.max),
    ]
    points = [(q, v) for q, v in knots if v is not None]
    if len(points) < 2:
        return None
    level = min(1.0, max(0.0, level))
    for (q0, v0), (q1, v1) in pairwise(points):
        if q0 <= level <= q1:
            return v0 if q1 == q0 else v0 + (v1 - v0) * (level - q0) / (q1 - q0)
    return points[-1][1]


def _summary_interval(
    stats: MetricStats, stat: str, confidence: float
) -> tuple[float, float] | None:
    """Interval of one side's statistic from its summary alone (see the module doc)."""
    n = stats.n
    if stat == "mean":
        if stats.mean is None or stats.min is None or stats.max is None:
            return None
        half = (stats.max - stats.min) * math.sqrt(math.log(2 / (1 - confidence)) / (2 * n))
        return stats.mean - half, stats.mean + half
    q = PERCENTILE_Q[stat]
    low, high = _binomial_ranks(n, q, confidence)
    slack = 0.0 if stats.exact else TDIGEST_RANK_ERROR
    lo = _summary_level_value(stats, low / n - slack if low >= 1 else 0.0)
    hi = _summary_level_value(stats, high / n + slack if high <= n else 1.0)
    if lo is None or hi is None:
        return None
    return lo, hi


# --- judging -------------------------------------------------------------------------------


def judge_interval(
    interval: tuple[float, float], limit: float, better: Better
) -> tuple[Outcome, str]:
    """The verdict for a change's interval against ``±limit`` (see the module doc)."""
    lo, hi = interval
    worse_lo, worse_hi = (lo, hi) if better == "lower" else (-hi, -lo)
    if worse_lo > limit:
        return "regressed", "the whole interval is beyond the threshold, the worse way"
    if worse_hi < -limit:
        return "improved", "the whole interval is beyond the threshold, the better way"
    if worse_lo >= -limit and worse_hi <= limit:
        return "unchanged", "the whole interval is within the threshold"
    return "inconclusive", "the interval straddles the threshold"


def _unit(metric: str) -> str:
    info = REQUEST_METRICS.get(metric) or STAGE_METRICS[metric]
    return info.unit


def min_samples(stat: str | None) -> int:
    """The samples a statistic needs on each side, as SLA verdicts (at least 2)."""
    return max(2, MIN_SAMPLES.get(stat or "", 2))


@dataclass(frozen=True, slots=True)
class Options:
    confidence: float = DEFAULT_CONFIDENCE
    resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED


def unmeasured(base: Side, cur: Side, label: str) -> bool:
    """Whether ``label`` was measured on neither side (no price, no streaming): nothing to
    compare, so no check at all rather than an inconclusive one."""
    metric = label.partition(".")[0]
    if metric in PROPORTIONS:
        return False
    return all((side.stats.get(metric) or MetricStats(0)).n == 0 for side in (base, cur))


def compare_sides(
    base: Side,
    cur: Side,
    checks: Sequence[tuple[str, Threshold]],
    options: Options | None = None,
) -> list[Check]:
    """One ``Check`` per (statistic, threshold), baseline ``base`` against ``cur``; none
    for a statistic measured on neither side (``unmeasured``)."""
    options = options or Options()
    resamplers: dict[tuple[str, str], _Resampler] = {}

    def resampler(side: Side, which: str, metric: str) -> _Resampler:
        key = (which, metric)
        if key not in resamplers:
            assert side.values is not None
            seed = f"{options.seed}:{base.stage}:{base.provider}:{metric}:{which}"
            resamplers[key] = _Resampler(side.values.get(metric, ()), seed, options.resamples)
        return resamplers[key]

    out: list[Check] = []
    for label, threshold in checks:
        metric, stat = check_label(label)
        if unmeasured(base, cur, label):
            continue
        if metric in PROPORTIONS:
            out.append(_proportion_check(base, cur, label, metric, threshold, options))
        else:
            assert stat is not None
            out.append(_metric_check(base, cur, label, metric, stat, threshold, options, resampler))
    return out


def _proportion_check(
    base: Side, cur: Side, label: str, metric: str, threshold: Threshold, options: Options
) -> Check:
    def count(side: Side) -> int:
        return side.errors if metric == "error_rate" else side.requests - side.errors

    n0, n1 = base.requests, cur.requests
    b = count(base) / n0 if n0 else None
    c = count(cur) / n1 if n1 else None
    change = None if b is None or c is None else c - b
    relative = None if change is None or not b else change / b
    interval = None
    if n0 and n1:
        interval = newcombe(count(cur), n1, count(base), n0, options.confidence)
    return _finish(
        base,
        label,
        metric,
        threshold,
        _Estimate(b, c, n0, n1, change, relative, interval, None, "newcombe"),
        too_few=None if (n0 and n1) else "no requests were started on one side",
        spread=_spread_width(base, cur, label, options),
    )


def _spread_width(base: Side, cur: Side, label: str, options: Options) -> float | None:
    """How far either way of the change the runs' run-to-run spread reaches (see
    ``lens.metrics.repetitions.spread_half_width``); None without repetitions."""
    return spread_half_width(base.spread.get(label), cur.spread.get(label), options.confidence)


def _metric_check(
    base: Side,
    cur: Side,
    label: str,
    metric: str,
    stat: str,
    threshold: Threshold,
    options: Options,
    resampler: Any,
) -> Check:
    bs, cs = base.stats.get(metric), cur.stats.get(metric)
    n0 = bs.n if bs is not None else 0
    n1 = cs.n if cs is not None else 0
    need = min_samples(stat)
    too_few = None
    if n0 < need or n1 < need:
        which = "baseline" if n0 < need else "current"
        got = n0 if n0 < need else n1
        too_few = f"{stat} needs >= {need} samples, the {which} has {got}"
    records = base.values is not None and cur.values is not None
    if records and too_few is None:
        r0, r1 = resampler(base, "baseline", metric), resampler(cur, "current", metric)
        k0, k1 = len(r0.clusters), len(r1.clusters)
        if min(k0, k1) < MIN_BOOTSTRAP_REQUESTS:
            too_few = (
                f"the bootstrap needs >= {MIN_BOOTSTRAP_REQUESTS} requests with {metric} on "
                f"each side, the {'baseline' if k0 <= k1 else 'current'} has {min(k0, k1)}"
            )
        else:
            point0, point1 = r0.point(stat), r1.point(stat)
            diffs = sorted(
                y - x for x, y in zip(r0.replicates(stat), r1.replicates(stat), strict=True)
            )
            ratios = sorted(
                y / x - 1
                for x, y in zip(r0.replicates(stat), r1.replicates(stat), strict=True)
                if x > 0
            )
            ci = _quantile_interval(diffs, options.confidence)
            rel_ci = (
                _quantile_interval(ratios, options.confidence)
                if len(ratios) == len(diffs)
                else None
            )
            relative = (point1 / point0 - 1) if point0 > 0 else None
            estimate = _Estimate(
                point0, point1, n0, n1, point1 - point0, relative, ci, rel_ci, "bootstrap"
            )
            return _finish(
                base,
                label,
                metric,
                threshold,
                estimate,
                spread=_spread_width(base, cur, label, options),
            )
    b = bs.get(stat) if bs is not None else None
    c = cs.get(stat) if cs is not None else None
    change = None if b is None or c is None else c - b
    relative = None if b is None or c is None or b <= 0 else c / b - 1
    interval: tuple[float, float] | None = None
    rel_interval: tuple[float, float] | None = None
    method = "summary"
    if too_few is None and bs is not None and cs is not None:
        side_conf = math.sqrt(options.confidence)
        i0, i1 = _summary_interval(bs, stat, side_conf), _summary_interval(cs, stat, side_conf)
        method = "summary hoeffding" if stat == "mean" else "summary order statistics"
        if i0 is None or i1 is None:
            too_few = f"the summaries hold too little to bound {label} (no records)"
        else:
            interval = (i1[0] - i0[1], i1[1] - i0[0])
            if i0[0] > 0:
                rel_interval = (i1[0] / i0[1] - 1, i1[1] / i0[0] - 1)
    return _finish(
        base,
        label,
        metric,
        threshold,
        _Estimate(b, c, n0, n1, change, relative, interval, rel_interval, method),
        too_few=too_few,
        spread=_spread_width(base, cur, label, options),
    )


def _widened(
    b: float | None,
    change: float | None,
    interval: tuple[float, float] | None,
    rel_interval: tuple[float, float] | None,
    spread: float | None,
) -> tuple[tuple[float, float] | None, tuple[float, float] | None, bool]:
    """The intervals made at least as wide as the run-to-run spread implies: each the
    union of the within-run interval and ``change +- spread`` (relative: over the
    baseline).  The spread's interval already holds the within-run noise of each run, so
    the wider of the two stands, never their sum.  Also whether anything changed."""
    if spread is None or change is None or interval is None:
        return interval, rel_interval, False
    wide = (min(interval[0], change - spread), max(interval[1], change + spread))
    if wide == interval:
        return interval, rel_interval, False
    if rel_interval is not None and b is not None and b > 0:
        rel_interval = (
            min(rel_interval[0], (change - spread) / b),
            max(rel_interval[1], (change + spread) / b),
        )
    return wide, rel_interval, True


@dataclass(frozen=True, slots=True)
class _Estimate:
    """One check's figures before it is judged: each side's value and count, the change
    and its confidence intervals (absolute, relative), and how they were worked out."""

    baseline: float | None
    current: float | None
    n_baseline: int
    n_current: int
    change: float | None
    relative: float | None
    interval: tuple[float, float] | None
    rel_interval: tuple[float, float] | None
    method: str


def _finish(
    base: Side,
    label: str,
    metric: str,
    threshold: Threshold,
    estimate: _Estimate,
    too_few: str | None = None,
    spread: float | None = None,
) -> Check:
    b, change = estimate.baseline, estimate.change
    interval, rel_interval, method = estimate.interval, estimate.rel_interval, estimate.method
    better = BETTER[metric]
    widened = False
    if too_few is None:
        interval, rel_interval, widened = _widened(b, change, interval, rel_interval, spread)
        if widened:
            method += " + run-to-run spread"
    judged = rel_interval if threshold.relative else interval
    if too_few is not None:
        outcome: Outcome = "inconclusive"
        reason = too_few
    elif judged is None and interval == (0.0, 0.0):
        # No replicate changed at all (a free model's cost): no relative change exists,
        # and none is needed.
        outcome, reason = "unchanged", "no change in any resample"
    elif judged is None:
        outcome = "inconclusive"
        reason = (
            f"{label}: no relative change from a baseline of {b}"
            if threshold.relative and interval is not None
            else f"{label} was not measured on both sides"
        )
    else:
        outcome, reason = judge_interval(judged, threshold.value, better)
        if widened:
            reason += " (widened to the runs' run-to-run spread, which is larger)"
    return Check(
        stage=base.stage,
        provider=base.provider,
        statistic=label,
        unit=_unit(metric),
        better=better,
        baseline=b,
        current=estimate.current,
        n_baseline=estimate.n_baseline,
        n_current=estimate.n_current,
        change=change,
        relative_change=estimate.relative,
        interval=interval,
        relative_interval=rel_interval,
        threshold=threshold,
        outcome=outcome,
        reason=reason,
        method=method,
    )

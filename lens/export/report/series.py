"""What the report's charts show, read from a Results document; no drawing here.

Only successful requests give latencies (as in every summary): a failed request is counted
in the tables, never plotted as a latency.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from lens.export.results import RecordOut, Results, SummaryOut, SweepOut, SweepStepOut
from lens.metrics.request import itl_gaps
from lens.pricing.money import usd_text

LatencyMetric = Literal["ttft", "itl", "e2e"]

# A CDF line needs no more points than the eye can tell apart; runs can have 10^5 values.
CDF_POINTS = 400
BIN_S = 1.0  # throughput over time: rates per bin of this many seconds


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    provider: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    stage: str | None = None  # None: a series of the whole run (one per provider)


@dataclass(frozen=True, slots=True)
class StageMark:
    stage: str
    provider: str
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class StagePoint:
    """One stage that is no step of a series (a burst, an idle probe, a constant rate):
    its latency at the throughput it achieved, a point on its own."""

    stage: str
    pattern: str | None  # from the plan: "burst", "idle-probe", ...; None when not recorded
    rps: float
    ttft_p50: float | None
    ttft_p95: float | None
    e2e_p95: float | None


@dataclass(frozen=True, slots=True)
class CostPoint:
    stage: str
    provider: str
    per_1m_output_usd: Decimal | None
    per_request_usd: Decimal | None
    ttft_p95: float | None


def usd(amount: Decimal) -> str:
    """Dollars to the cent from $1 up; below, three significant digits ($0.000243), never
    in exponent notation (``lens.pricing.money``)."""
    return usd_text(amount)


def unit_label(stage: str, provider: str) -> str:
    return f"{stage} / {provider}"


def providers(results: Results) -> list[str]:
    """Provider ids in the order they first ran, so colours are stable across charts."""
    seen = dict.fromkeys(s.provider for s in results.summaries)
    seen.update(dict.fromkeys(r.provider for r in results.records))
    return list(seen)


def _ok(results: Results) -> list[RecordOut]:
    return [r for r in results.records if r.status == "ok"]


def request_values(rec: RecordOut, metric: LatencyMetric) -> list[float]:
    if metric == "itl":
        return itl_gaps(rec.chunk_offsets, rec.chunk_tokens)
    value = rec.ttft if metric == "ttft" else rec.e2e
    return [] if value is None else [value]


def ecdf(values: Iterable[float], max_points: int = CDF_POINTS) -> tuple[list[float], list[float]]:
    """Sorted values and the fraction of values <= each, thinned to ``max_points``."""
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        return [], []
    keep = range(n) if n <= max_points else _spread(n, max_points)
    return [xs[i] for i in keep], [(i + 1) / n for i in keep]


def _spread(n: int, k: int) -> list[int]:
    """``k`` indices evenly over ``0..n-1``, both ends included (the extremes matter)."""
    return sorted({round(j * (n - 1) / (k - 1)) for j in range(k)})


def latency_cdfs(results: Results, metric: LatencyMetric) -> list[Series]:
    """One CDF per stage x provider, in the order the summaries list them."""
    values: dict[tuple[str, str], list[float]] = {
        (s.stage, s.provider): [] for s in results.summaries
    }
    for rec in _ok(results):
        values.setdefault((rec.stage, rec.provider), []).extend(request_values(rec, metric))
    out = []
    for (stage, provider), vals in values.items():
        x, y = ecdf(vals)
        if x:
            out.append(Series(unit_label(stage, provider), provider, tuple(x), tuple(y), stage))
    return out


def latency_over_time(results: Results, metric: Literal["ttft", "e2e"]) -> list[Series]:
    """Per provider: each request's latency against its dispatch time (s since run start)."""
    points: dict[str, list[tuple[float, float]]] = {p: [] for p in providers(results)}
    for rec in _ok(results):
        value = rec.ttft if metric == "ttft" else rec.e2e
        if value is not None:
            points[rec.provider].append((rec.t_dispatch / 1000, value))
    return [
        Series(p, p, tuple(x for x, _ in pts), tuple(y for _, y in pts))
        for p, pts in points.items()
        if pts
    ]


def throughput_over_time(
    results: Results, bin_s: float = BIN_S
) -> tuple[list[Series], list[Series]]:
    """Per provider, in ``bin_s`` bins from the run's start: output tokens/s (each chunk's
    tokens at its arrival) and completed requests/s (at their end), successful ones only."""
    ok = _ok(results)
    if not ok:
        return [], []
    bins = max(1, math.ceil(max(r.t_end for r in ok) / 1000 / bin_s))
    tokens = {p: [0.0] * bins for p in providers(results)}
    done = {p: [0.0] * bins for p in providers(results)}

    def slot(t_ms: float) -> int:
        return min(bins - 1, max(0, int(t_ms / 1000 / bin_s)))

    for rec in ok:
        done[rec.provider][slot(rec.t_end)] += 1 / bin_s
        for offset, n in zip(rec.chunk_offsets, rec.chunk_tokens, strict=False):
            tokens[rec.provider][slot(rec.t_dispatch + offset)] += n / bin_s
    starts = tuple(i * bin_s for i in range(bins))
    windows: dict[str, list[tuple[float, float]]] = {}
    for w in results.stages:
        windows.setdefault(w.provider, []).append((w.start_ms / 1000, w.end_ms / 1000))

    def series(p: str, values: list[float]) -> Series:
        """Gaps (NaN) where the provider had nothing scheduled, rather than a line at 0
        through every other provider's stages."""
        spans = windows.get(p)
        return Series(
            p,
            p,
            starts,
            tuple(
                math.nan
                if spans and v == 0 and not any(a < t + bin_s and b > t for a, b in spans)
                else v
                for t, v in zip(starts, values, strict=True)
            ),
        )

    active = {r.provider for r in ok}
    return (
        [series(p, v) for p, v in tokens.items() if p in active],
        [series(p, v) for p, v in done.items() if p in active],
    )


def stage_marks(results: Results) -> list[StageMark]:
    return [
        StageMark(w.stage, w.provider, w.start_ms / 1000, w.end_ms / 1000) for w in results.stages
    ]


def _stat(s: SummaryOut, metric: str, stat: str) -> float | None:
    stats = s.metrics.get(metric)
    value: float | None = getattr(stats, stat) if stats is not None else None
    return value


def _patterns(results: Results) -> dict[tuple[str, str], str]:
    """Each stage x provider's load pattern, as the plan in the results recorded it."""
    out: dict[tuple[str, str], str] = {}
    stages = results.plan.get("stages")
    for entry in stages if isinstance(stages, tuple) else ():  # the frozen plan's arrays
        if isinstance(entry, Mapping) and isinstance(entry.get("pattern"), str):
            out[(str(entry.get("stage")), str(entry.get("provider")))] = entry["pattern"]
    return out


def lone_stages(results: Results) -> dict[str, list[StagePoint]]:
    """Latency against achieved req/s of the stages that are no step of a sweep, per
    provider that ran 2+ of them, by req/s.  Each is a point of its own: a burst, an idle
    probe and a constant-rate stage are no series, so nothing joins them (sweep steps have
    charts of their own, see ``sweep_runs``)."""
    steps = {(w.stage, w.provider) for w in results.stages if w.sweep is not None}
    patterns = _patterns(results)
    points: dict[str, list[StagePoint]] = {}
    for s in results.summaries:
        if s.rps is not None and s.ok and (s.stage, s.provider) not in steps:
            points.setdefault(s.provider, []).append(
                StagePoint(
                    s.stage,
                    patterns.get((s.stage, s.provider)),
                    s.rps,
                    _stat(s, "ttft", "p50"),
                    _stat(s, "ttft", "p95"),
                    _stat(s, "e2e", "p95"),
                )
            )
    return {p: sorted(pts, key=lambda q: q.rps) for p, pts in points.items() if len(pts) >= 2}


def _usd(value: str | int | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def cost_points(summaries: Sequence[SummaryOut]) -> list[CostPoint]:
    return [
        CostPoint(
            s.stage,
            s.provider,
            _usd(s.cost.get("per_1m_output_tokens_usd")),
            _usd(s.cost.get("per_request_usd")),
            _stat(s, "ttft", "p95"),
        )
        for s in summaries
        if s.cost is not None
    ]


@dataclass(frozen=True, slots=True)
class SweepStep:
    """One step of a sweep for one provider: where it was set and what it achieved."""

    stage: str
    label: str  # the step's setting: "80/s" or "c16"
    rate_per_s: float | None
    concurrency: int | None
    rps: float | None  # achieved (successful requests per second); None: nothing succeeded
    ttft_p50: float | None
    ttft_p95: float | None
    e2e_p95: float | None
    held: bool | None  # the controller's judgement (adaptive sweeps); None: a fixed sweep


@dataclass(frozen=True, slots=True)
class SweepRun:
    """A sweep's steps for one provider, in order of load, and what the sweep found."""

    sweep: str
    provider: str
    steps: tuple[SweepStep, ...]
    outcome: SweepOut | None  # None: a fixed sweep, or results from before adaptive sweeps

    def step_at_rate(self, rate: float | None) -> SweepStep | None:
        return next((s for s in self.steps if rate is not None and s.rate_per_s == rate), None)

    def step_at_concurrency(self, concurrency: float | None) -> SweepStep | None:
        return next(
            (s for s in self.steps if concurrency is not None and s.concurrency == concurrency),
            None,
        )

    @property
    def searched(self) -> bool:
        """A search for the most load meeting every SLA (find_max_rate, find_max_concurrency):
        each step passed or failed."""
        return self.outcome is not None and self.outcome.kind.startswith("find_max")

    def step_at_load(self, load: float | None) -> SweepStep | None:
        """The step set to ``load``: a concurrency in a find_max_concurrency, else a rate."""
        if self.outcome is not None and self.outcome.kind == "find_max_concurrency":
            return self.step_at_concurrency(load)
        return self.step_at_rate(load)


def step_label(rate_per_s: float | None, concurrency: int | None) -> str:
    if rate_per_s is not None:
        return f"{rate_per_s:g}/s"
    return f"c{concurrency}" if concurrency is not None else "?"


def _load_order(steps: Sequence[SweepStep]) -> list[SweepStep]:
    """By rate, or by concurrency; a mix (auto: c1, rates, saturation) by what it achieved."""
    if all(s.rate_per_s is not None for s in steps):
        return sorted(steps, key=lambda s: s.rate_per_s or 0.0)
    if all(s.concurrency is not None for s in steps):
        return sorted(steps, key=lambda s: s.concurrency or 0)
    return sorted(steps, key=lambda s: s.rps if s.rps is not None else math.inf)


def sweep_runs(results: Results) -> dict[str, list[SweepRun]]:
    """Per sweep id (in the order they ran), one run per provider: every step's measured
    latencies at the throughput it achieved, with the sweep's own account when it has one."""
    measured = {(s.stage, s.provider): s for s in results.summaries}
    outcomes = {(o.id, o.provider): o for o in results.sweeps}
    held: dict[tuple[str, str], bool] = {
        (p.stage, o.provider): p.held for o in results.sweeps for p in o.probes
    }
    grouped: dict[str, dict[str, list[tuple[str, SweepStepOut]]]] = {}
    for w in results.stages:
        if w.sweep is not None:
            by_provider = grouped.setdefault(w.sweep.sweep, {})
            by_provider.setdefault(w.provider, []).append((w.stage, w.sweep))
    for o in results.sweeps:  # a sweep whose windows are missing still has its account
        grouped.setdefault(o.id, {}).setdefault(o.provider, [])
    out: dict[str, list[SweepRun]] = {}
    for sweep_id, by_provider in grouped.items():
        for provider, windows in by_provider.items():
            steps = []
            for stage, pos in windows:
                s = measured.get((stage, provider))
                steps.append(
                    SweepStep(
                        stage,
                        step_label(pos.rate_per_s, pos.concurrency),
                        pos.rate_per_s,
                        pos.concurrency,
                        s.rps if s is not None and s.ok else None,
                        None if s is None else _stat(s, "ttft", "p50"),
                        None if s is None else _stat(s, "ttft", "p95"),
                        None if s is None else _stat(s, "e2e", "p95"),
                        held.get((stage, provider)),
                    )
                )
            out.setdefault(sweep_id, []).append(
                SweepRun(
                    sweep_id,
                    provider,
                    tuple(_load_order(steps)),
                    outcomes.get((sweep_id, provider)),
                )
            )
    return out

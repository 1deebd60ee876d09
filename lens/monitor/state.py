"""What the monitor knows between cycles, and the ``/metrics`` text drawn from it.

Pure and synchronous: the service feeds it each cycle's ``CycleDigest`` (``digest_cycle``
turns a cycle's records into one) and asks it for families; time comes in as arguments
(wall-clock seconds), so tests need no clock.  The families are the contract of
docs/monitoring.md: names, types, units and labels change only with it.

Memory is bounded: the cumulative counters and histograms are a fixed number of numbers
per stage x provider; the windows keep one small digest per cycle x stage x provider for
the cycles within the longest window, dropped as they age out.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from lens.export.facts import ERROR_CLASSES
from lens.export.prometheus import Family, Labels, render
from lens.export.prometheus import families as run_families
from lens.export.results import Results
from lens.metrics.cost import record_cost
from lens.metrics.request import FORMULAS, itl_values
from lens.metrics.sketch import MetricSketch
from lens.plan.model import ProviderSpec
from lens.records import LENS_SIDE, RequestRecord

# Fixed buckets (upper bounds, seconds), so every instance's histograms add up in
# Prometheus (histogram_quantile over sum by (le)).  Changing them is a contract change.
TTFT_BUCKETS: tuple[float, ...] = (
    0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120,
)  # fmt: skip
E2E_BUCKETS = TTFT_BUCKETS
ITL_BUCKETS: tuple[float, ...] = (
    0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5,
)  # fmt: skip
CYCLE_BUCKETS: tuple[float, ...] = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
WINDOW_QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99)
LATENCIES: tuple[str, ...] = ("ttft", "e2e", "itl")
OUTCOMES: tuple[str, ...] = (
    "pass",
    "sla_failed",
    "inconclusive",
    "deadline",
    "interrupted",
    "lens_failed",
)
STATUSES: tuple[str, ...] = ("ok", "error", "cancelled")
# A cycle's sketches: exact for a probe's few values, a small digest beyond (a window
# merges hundreds of them).
CYCLE_EXACT_LIMIT = 256
CYCLE_CENTROIDS = 200
WINDOW_KIND = "lens.monitor_window"
WINDOW_VERSION = 1

# (stage, provider, model): the identity of one series of request families.
Key = tuple[str, str, str]


def window_label(seconds: float) -> str:
    """``3600`` -> ``1h``, ``86400`` -> ``24h``, ``1800`` -> ``30m``, ``90`` -> ``90s``."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


class Histogram:
    """A Prometheus histogram: cumulative bucket counts, sum and count."""

    __slots__ = ("bounds", "buckets", "count", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.buckets = [0] * len(self.bounds)  # per bucket, not cumulative (see samples)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.count += 1
        self.sum += value
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.buckets[i] += 1
                return

    def add_to(self, family: Family, labels: Labels) -> None:
        running = 0
        for bound, n in zip(self.bounds, self.buckets, strict=True):
            running += n
            family.add((*labels, ("le", _le(bound))), running, "_bucket")
        family.add((*labels, ("le", "+Inf")), self.count, "_bucket")
        family.add(labels, self.sum, "_sum")
        family.add(labels, self.count, "_count")


def _le(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else repr(float(bound))


def _cycle_sketch() -> MetricSketch:
    return MetricSketch(CYCLE_EXACT_LIMIT, max_centroids=CYCLE_CENTROIDS)


@dataclass(slots=True)
class WindowPart:
    """One cycle's share of a window, for one stage x provider."""

    ttft: MetricSketch = field(default_factory=_cycle_sketch)
    e2e: MetricSketch = field(default_factory=_cycle_sketch)
    itl: MetricSketch = field(default_factory=_cycle_sketch)
    requests: int = 0  # ok + error: lens's own cut-offs (cancelled) stay out
    errors: int = 0

    def sketch(self, latency: str) -> MetricSketch:
        sketch: MetricSketch = getattr(self, latency)
        return sketch

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            **{name: self.sketch(name).to_dict() for name in LATENCIES},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> WindowPart:
        return cls(
            ttft=MetricSketch.from_dict(d["ttft"]),
            e2e=MetricSketch.from_dict(d["e2e"]),
            itl=MetricSketch.from_dict(d["itl"]),
            requests=int(d["requests"]),
            errors=int(d["errors"]),
        )


@dataclass(slots=True)
class SeriesCounts:
    """One cycle's cumulative-family increments for one stage x provider."""

    statuses: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    errors: dict[str, int] = field(default_factory=dict)
    output_tokens: int = 0
    cost_usd: Decimal | None = None
    ttft: list[float] = field(default_factory=list)
    e2e: list[float] = field(default_factory=list)
    itl: list[float] = field(default_factory=list)


@dataclass(slots=True)
class CycleWindow:
    """What the windows keep of one cycle (and what the store writes of it)."""

    ended_at: float  # Unix seconds
    parts: dict[Key, WindowPart]
    succeeded: frozenset[str]  # providers with at least one successful request

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": WINDOW_KIND,
            "v": WINDOW_VERSION,
            "ended_at": self.ended_at,
            "succeeded": sorted(self.succeeded),
            "parts": [
                {"stage": k[0], "provider": k[1], "model": k[2], **part.to_dict()}
                for k, part in self.parts.items()
            ],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CycleWindow:
        if d.get("kind") != WINDOW_KIND or d.get("v") != WINDOW_VERSION:
            raise ValueError(f"not a lens monitor window v{WINDOW_VERSION}")
        parts = {
            (str(p["stage"]), str(p["provider"]), str(p["model"])): WindowPart.from_dict(p)
            for p in d["parts"]
        }
        return cls(float(d["ended_at"]), parts, frozenset(map(str, d["succeeded"])))


@dataclass(slots=True)
class CycleDigest:
    """A cycle's records reduced to what the families need (the records can then go)."""

    window: CycleWindow
    counts: dict[Key, SeriesCounts]


def digest_cycle(
    records: Iterable[RequestRecord], providers: Mapping[str, ProviderSpec], ended_at: float
) -> CycleDigest:
    counts: dict[Key, SeriesCounts] = {}
    parts: dict[Key, WindowPart] = {}
    succeeded: set[str] = set()
    ttft_ms, e2e_ms = FORMULAS["ttft"], FORMULAS["e2e"]
    for rec in records:
        spec = providers.get(rec.provider)
        key = (rec.stage, rec.provider, spec.model if spec is not None else "")
        c = counts.get(key)
        if c is None:
            c = counts[key] = SeriesCounts()
            parts[key] = WindowPart()
        part = parts[key]
        if rec.ok:
            status = "ok"
            succeeded.add(rec.provider)
        elif rec.error_class in LENS_SIDE:
            status = "cancelled"
        else:
            status = "error"
        c.statuses[status] += 1
        if status != "cancelled":
            part.requests += 1
        if status == "error":
            part.errors += 1
        if rec.error_class is not None:
            cls = rec.error_class.value
            c.errors[cls] = c.errors.get(cls, 0) + 1
        if rec.output_tokens is not None:
            c.output_tokens += rec.output_tokens
        if spec is not None and (cost := record_cost(rec, spec)) is not None:
            c.cost_usd = (c.cost_usd or Decimal(0)) + cost.total
        if not rec.ok:
            continue
        for name, formula, sink in (("ttft", ttft_ms, c.ttft), ("e2e", e2e_ms, c.e2e)):
            value = formula(rec)
            if value is not None:
                sink.append(value / 1e3)
                part.sketch(name).add(value / 1e3)
        gaps = [g / 1e3 for g in itl_values(rec)]
        if gaps:
            c.itl.extend(gaps)
            part.itl.add_many(gaps)
    return CycleDigest(CycleWindow(ended_at, parts, frozenset(succeeded)), counts)


@dataclass(slots=True)
class Series:
    """Cumulative families of one stage x provider since the process started."""

    statuses: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ERROR_CLASSES, 0))
    output_tokens: int = 0
    cost_usd: Decimal | None = None
    ttft: Histogram = field(default_factory=lambda: Histogram(TTFT_BUCKETS))
    e2e: Histogram = field(default_factory=lambda: Histogram(E2E_BUCKETS))
    itl: Histogram = field(default_factory=lambda: Histogram(ITL_BUCKETS))

    def add(self, c: SeriesCounts) -> None:
        for status, n in c.statuses.items():
            self.statuses[status] += n
        for cls, n in c.errors.items():
            self.errors[cls] = self.errors.get(cls, 0) + n
        self.output_tokens += c.output_tokens
        if c.cost_usd is not None:
            self.cost_usd = (self.cost_usd or Decimal(0)) + c.cost_usd
        for values, hist in ((c.ttft, self.ttft), (c.e2e, self.e2e), (c.itl, self.itl)):
            for v in values:
                hist.observe(v)


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    reason: str


class MonitorState:
    def __init__(
        self,
        scenario: str,
        *,
        every_s: float,
        deadline_s: float,
        windows_s: Sequence[float],
        started_at: float,
    ) -> None:
        self.scenario = scenario
        self.every_s = every_s
        self.deadline_s = deadline_s
        self.windows_s = tuple(sorted(windows_s))
        self.started_at = started_at
        self.cycles_by_outcome: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self.cycle_number = 0  # the last cycle's (continued from the store on restart)
        self.skipped = 0
        self.overruns = 0
        self.cycle_durations = Histogram(CYCLE_BUCKETS)
        self.last_cycle_at: float | None = None
        self.last_cycle_duration: float | None = None
        self.last_exit_code: int | None = None
        self.last_outcome: str | None = None
        self.last_success: dict[str, float] = {}
        self.export_failures: dict[str, int] = {}
        self.series: dict[Key, Series] = {}
        self.cycles: deque[CycleWindow] = deque()
        self.last_results: Results | None = None
        self.last_results_json: bytes | None = None
        self._run_families: list[Family] = []

    # -- feeding ---------------------------------------------------------------------

    def add_cycle(
        self,
        digest: CycleDigest | None,
        *,
        outcome: str,
        duration_s: float,
        ended_at: float,
        exit_code: int,
        results: Results | None,
    ) -> None:
        """One finished cycle.  ``digest``/``results`` are None when lens failed before it
        measured anything."""
        self.cycle_number += 1
        self.cycles_by_outcome[outcome] += 1
        self.cycle_durations.observe(duration_s)
        self.last_cycle_at = ended_at
        self.last_cycle_duration = duration_s
        self.last_exit_code = exit_code
        self.last_outcome = outcome
        if digest is not None:
            for key, counts in digest.counts.items():
                self.series.setdefault(key, Series()).add(counts)
            self.add_window(digest.window)
        if results is not None:
            self.set_results(results)
        self.expire(ended_at)

    def add_window(self, window: CycleWindow) -> None:
        self.cycles.append(window)
        for provider in window.succeeded:
            if window.ended_at > self.last_success.get(provider, -math.inf):
                self.last_success[provider] = window.ended_at

    def set_results(self, results: Results, text: bytes | None = None) -> None:
        self.last_results = results
        self.last_results_json = text if text is not None else results.to_json().encode()
        # Drawn once per cycle, not per scrape: the last cycle's families do not change.
        self._run_families = run_families(results)

    def expire(self, now: float) -> None:
        longest = self.windows_s[-1]
        while self.cycles and self.cycles[0].ended_at < now - longest:
            self.cycles.popleft()

    # -- health ----------------------------------------------------------------------

    def stale_after_s(self) -> float:
        return 2 * self.every_s + self.deadline_s

    def health(self, now: float) -> Health:
        limit = self.stale_after_s()
        # A cycle reloaded from the store ended before this process started: the time
        # to the first cycle counts from the start.
        fresh = self.last_cycle_at is not None and self.last_cycle_at >= self.started_at
        since = self.last_cycle_at if fresh and self.last_cycle_at is not None else self.started_at
        if now - since <= limit:
            return Health(True, "ok")
        if not fresh:
            return Health(
                False,
                f"no cycle finished in the {_span(now - since)} since the start "
                f"(stale after {_span(limit)})",
            )
        return Health(
            False,
            f"no cycle finished in the last {_span(limit)}: the last one ended "
            f"{_span(now - since)} ago",
        )

    # -- families --------------------------------------------------------------------

    def families(self, now: float) -> list[Family]:
        self.expire(now)
        scen: Labels = (("scenario", self.scenario),)
        out = self._monitor_families(scen, now)
        out += self._series_families(scen)
        out += self._window_families(scen, now)
        return out + self._run_families

    def exposition(self, now: float) -> str:
        return render(self.families(now))

    def _monitor_families(self, scen: Labels, now: float) -> list[Family]:
        cycles = Family("lens_monitor_cycles_total", "counter", "cycles finished, by outcome")
        for outcome, n in self.cycles_by_outcome.items():
            cycles.add((*scen, ("outcome", outcome)), n)
        skipped = Family(
            "lens_monitor_cycles_skipped_total",
            "counter",
            "cycle slots not run because a cycle overran past them",
        )
        skipped.add(scen, self.skipped)
        overruns = Family(
            "lens_monitor_cycle_overruns_total",
            "counter",
            "cycles that ended after the next slot's start",
        )
        overruns.add(scen, self.overruns)
        duration = Family(
            "lens_monitor_cycle_duration_seconds", "histogram", "wall time of each cycle"
        )
        self.cycle_durations.add_to(duration, scen)
        gauges: list[tuple[str, str, float | None]] = [
            (
                "lens_monitor_last_cycle_timestamp_seconds",
                "Unix time the last cycle ended",
                self.last_cycle_at,
            ),
            (
                "lens_monitor_last_cycle_duration_seconds",
                "wall time of the last cycle",
                self.last_cycle_duration,
            ),
            (
                "lens_monitor_last_cycle_exit_code",
                "the last cycle's exit code (0 pass, 1 SLA failed, 3 inconclusive, 5 lens failed)",
                self.last_exit_code,
            ),
            (
                "lens_monitor_healthy",
                "1 while /healthz answers 200 (a cycle ended on time), else 0",
                1.0 if self.health(now).ok else 0.0,
            ),
            ("lens_monitor_interval_seconds", "the configured interval (every)", self.every_s),
            (
                "lens_monitor_cycle_deadline_seconds",
                "the configured cycle deadline",
                self.deadline_s,
            ),
            (
                "lens_monitor_start_timestamp_seconds",
                "Unix time the monitor process started (counters restart from 0 then)",
                self.started_at,
            ),
        ]
        out = [cycles, skipped, overruns, duration]
        for name, text, value in gauges:
            fam = Family(name, "gauge", text)
            if value is not None:
                fam.add(scen, value)
            out.append(fam)
        success = Family(
            "lens_monitor_last_success_timestamp_seconds",
            "gauge",
            "Unix time of the end of the last cycle in which the provider answered a "
            "request successfully",
        )
        for provider, at in sorted(self.last_success.items()):
            success.add((*scen, ("provider", provider)), at)
        exports = Family(
            "lens_monitor_export_failures_total", "counter", "pushes after a cycle that failed"
        )
        for kind, n in sorted(self.export_failures.items()):
            exports.add((*scen, ("kind", kind)), n)
        return [*out, success, exports]

    def _series_families(self, scen: Labels) -> list[Family]:
        requests = Family(
            "lens_monitor_requests_total",
            "counter",
            "requests finished, by status (cancelled: cut off by lens, in no error ratio)",
        )
        errors = Family(
            "lens_monitor_request_errors_total", "counter", "failed requests by error class"
        )
        tokens = Family("lens_monitor_output_tokens_total", "counter", "output tokens received")
        cost = Family("lens_monitor_cost_usd_total", "counter", "what the requests cost, USD")
        hists = {
            "ttft": Family(
                "lens_monitor_ttft_seconds",
                "histogram",
                "time to first token of successful requests",
            ),
            "e2e": Family(
                "lens_monitor_e2e_seconds", "histogram", "dispatch to end of successful requests"
            ),
            "itl": Family(
                "lens_monitor_itl_seconds",
                "histogram",
                "inter-token latencies of successful requests",
            ),
        }
        for key in sorted(self.series):
            s = self.series[key]
            base = _labels(scen, key)
            for status, n in s.statuses.items():
                requests.add((*base, ("status", status)), n)
            for cls, n in s.errors.items():
                errors.add((*base, ("error_class", cls)), n)
            tokens.add(base, s.output_tokens)
            if s.cost_usd is not None:
                cost.add(base, float(s.cost_usd))
            s.ttft.add_to(hists["ttft"], base)
            s.e2e.add_to(hists["e2e"], base)
            s.itl.add_to(hists["itl"], base)
        return [requests, errors, tokens, cost, *hists.values()]

    def window_view(self, now: float) -> dict[str, dict[Key, WindowPart]]:
        """Each window's cycles merged per stage x provider, keyed by the window's label."""
        self.expire(now)
        view: dict[str, dict[Key, WindowPart]] = {}
        for length in self.windows_s:
            merged: dict[Key, WindowPart] = {}
            for cycle in self.cycles:
                if cycle.ended_at < now - length:
                    continue
                for key, part in cycle.parts.items():
                    into = merged.get(key)
                    if into is None:
                        # A window's merge may hold many cycles: the full sketch, not the
                        # per-cycle one.
                        into = merged[key] = WindowPart(
                            MetricSketch(), MetricSketch(), MetricSketch()
                        )
                    into.requests += part.requests
                    into.errors += part.errors
                    for name in LATENCIES:
                        into.sketch(name).merge(part.sketch(name))
            view[window_label(length)] = merged
        return view

    def window_cycles(self, now: float) -> dict[str, int]:
        return {
            window_label(length): sum(1 for c in self.cycles if c.ended_at >= now - length)
            for length in self.windows_s
        }

    def _window_families(self, scen: Labels, now: float) -> list[Family]:
        latency = {
            name: Family(
                f"lens_monitor_window_{name}_seconds",
                "gauge",
                f"{name} percentile over the window's cycles (successful requests)",
            )
            for name in LATENCIES
        }
        requests = Family(
            "lens_monitor_window_requests", "gauge", "requests in the window (cancelled left out)"
        )
        errors = Family("lens_monitor_window_errors", "gauge", "failed requests in the window")
        ratio = Family("lens_monitor_window_error_ratio", "gauge", "errors / requests in window")
        cycles = Family("lens_monitor_window_cycles", "gauge", "cycles in the window")
        for label, n in self.window_cycles(now).items():
            cycles.add((*scen, ("window", label)), n)
        for label, merged in self.window_view(now).items():
            for key in sorted(merged):
                part = merged[key]
                base = (*_labels(scen, key), ("window", label))
                requests.add(base, part.requests)
                errors.add(base, part.errors)
                if part.requests:
                    ratio.add(base, part.errors / part.requests)
                for name in LATENCIES:
                    sketch = part.sketch(name)
                    for q in WINDOW_QUANTILES:
                        value = sketch.quantile(q)
                        if value is not None:
                            latency[name].add((*base, ("quantile", f"{q:g}")), value)
        return [*latency.values(), requests, errors, ratio, cycles]

    def windows_json(self, now: float) -> dict[str, Any]:
        """``/results/windows``: each window's percentiles and error ratio, per series."""
        out: dict[str, Any] = {"scenario": self.scenario, "windows": {}}
        counts = self.window_cycles(now)
        for label, merged in self.window_view(now).items():
            rows = []
            for key in sorted(merged):
                part = merged[key]
                row: dict[str, Any] = {
                    "stage": key[0],
                    "provider": key[1],
                    "model": key[2],
                    "requests": part.requests,
                    "errors": part.errors,
                    "error_ratio": part.errors / part.requests if part.requests else None,
                }
                for name in LATENCIES:
                    sketch = part.sketch(name)
                    row[f"{name}_s"] = {
                        f"p{round(q * 100)}": sketch.quantile(q) for q in WINDOW_QUANTILES
                    } | {"count": sketch.count, "exact": sketch.exact}
                rows.append(row)
            out["windows"][label] = {"cycles": counts[label], "series": rows}
        return out


def _labels(scen: Labels, key: Key) -> Labels:
    return (*scen, ("stage", key[0]), ("provider", key[1]), ("model", key[2]))


def _span(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 600:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"

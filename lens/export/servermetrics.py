"""What the exporters and the report share about ``server_metrics`` (the engines' own
Prometheus metrics scraped during the run): each gauge's statistics within each stage
window, and label sets as text."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from lens.export.results import GaugeSeriesOut, Results, ServerMetricsOut, StageWindowOut


@dataclass(frozen=True, slots=True)
class StageGauge:
    """One gauge sample's values within one stage x provider window."""

    metrics: ServerMetricsOut
    window: StageWindowOut
    gauge: GaugeSeriesOut
    points: int
    mean: float
    max: float
    min: float
    last: float


def labels_text(labels: Mapping[str, str]) -> str:
    """``{a="1",b="2"}`` (empty for no labels), as Prometheus writes a label set."""
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def windows_of(results: Results, provider: str) -> list[StageWindowOut]:
    return [w for w in results.stages if w.provider == provider]


def stage_gauges(results: Results) -> Iterator[StageGauge]:
    """Every gauge's statistics in every window of its provider (its points from the
    window's start to its end; a window with none is left out)."""
    for sm in results.server_metrics:
        windows = windows_of(results, sm.provider)
        for gauge in sm.gauges:
            for w in windows:
                values = [v for t, v in gauge.points if w.start_ms <= t <= w.end_ms]
                if not values:
                    continue
                yield StageGauge(
                    metrics=sm,
                    window=w,
                    gauge=gauge,
                    points=len(values),
                    mean=sum(values) / len(values),
                    max=max(values),
                    min=min(values),
                    last=values[-1],
                )


def stage_of(results: Results, provider: str, t_ms: float) -> str | None:
    """The stage whose window (of ``provider``) holds ``t_ms``; None between stages."""
    for w in windows_of(results, provider):
        if w.start_ms <= t_ms <= w.end_ms:
            return w.stage
    return None

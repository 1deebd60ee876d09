"""What every exporter derives from a ``Results`` the same way: model names, wall-clock
timestamps and the stable order of metrics, statistics, error classes and cost fields."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from lens.export.results import RecordOut, Results, SummaryOut
from lens.metric_catalog import ENGINE_METRICS, REQUEST_METRICS, REQUEST_STATS, SCALAR_METRICS
from lens.metric_catalog import METRICS as CATALOGUE
from lens.metrics.pacing import Pacing
from lens.records import ErrorClass

METRICS: tuple[str, ...] = tuple(REQUEST_METRICS)
STATS: tuple[str, ...] = REQUEST_STATS
ERROR_CLASSES: tuple[str, ...] = tuple(c.value for c in ErrorClass)
COST_FIELDS: tuple[str, ...] = (
    "total_usd",
    "per_request_usd",
    "per_1k_successful_usd",
    "per_1m_output_tokens_usd",
    "per_sla_conforming_usd",
)
# Per-request values every per-request export carries: the request's metrics in ms (as
# request_metrics computes them, in the order of the record's fields), then token counts.
# The engine's figures come apart, in RECORD_ENGINE, after every column of a fixed order.
RECORD_TIMES_MS: tuple[str, ...] = tuple(
    f
    for f in RecordOut.model_fields
    if f in SCALAR_METRICS and CATALOGUE[f].unit == "ms" and f not in ENGINE_METRICS
)
# The engine's own account of each request (RecordOut.engine), flattened, then what lens
# derives from it (ENGINE_METRICS, ms).
RECORD_ENGINE: tuple[str, ...] = (
    "engine_prompt_ms",
    "engine_prompt_tokens",
    "engine_cached_tokens",
    "engine_decode_ms",
    "engine_decode_tokens",
    "engine_per_token_ms",
    "ttft_overhead_ms",
)


def engine_cells(rec: RecordOut) -> list[float | int | None]:
    """The values of RECORD_ENGINE for one record (None where unreported)."""
    e = rec.engine
    if e is None:
        return [None] * 6 + [rec.ttft_overhead]
    return [
        e.prompt_ms,
        e.prompt_tokens,
        e.cached_tokens,
        e.decode_ms,
        e.decode_tokens,
        e.per_token_ms,
        rec.ttft_overhead,
    ]


RECORD_TOKENS: tuple[str, ...] = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
# How closely an open-loop schedule was kept (Pacing), in field order.
PACING_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Pacing))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NS_PER_MS = 1_000_000


def models(results: Results) -> dict[str, str]:
    """Provider id -> model name, from the plan (a provider with no summary has one too)."""
    found = {str(p["id"]): str(p.get("model", "")) for p in results.plan.get("providers", [])}
    found.update((s.provider, s.model) for s in results.summaries if s.model)
    return found


def run_start_ns(results: Results) -> int:
    """The run's start, ns since the Unix epoch, exactly (no float on the way)."""
    started = datetime.fromisoformat(results.environment.started_at)
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    delta = started - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1_000


def wall_ns(results: Results, offset_ms: float) -> int:
    """Wall clock of a run offset: ``environment.started_at`` + the offset (ms)."""
    return run_start_ns(results) + round(offset_ms * NS_PER_MS)


def stage_end_ms(results: Results, summary: SummaryOut) -> float:
    """When the stage x provider unit of a summary ended (ms after the run start); for a
    warmup summary, when its warmup ended (the measured phase began)."""
    if summary.repeated:  # a repeated stage's pooled summary: when its last run ended
        ends = [
            w.end_ms
            for w in results.stages
            if w.provider == summary.provider
            and w.repetition is not None
            and w.repetition.stage == summary.stage
        ]
        if ends:
            return max(ends)
    for window in results.stages:
        if (window.stage, window.provider) == (summary.stage, summary.provider):
            if summary.phase == "warmup" and window.measure_start_ms is not None:
                return window.measure_start_ms
            return window.end_ms
    return max((w.end_ms for w in results.stages), default=0.0)


def repetition_label(summary: SummaryOut) -> str | None:
    """The ``repetition`` label (Prometheus) or tag (Influx) of a repeated stage's
    summaries: ``1`` .. ``N`` for its runs, ``pooled`` for the pooled one, which holds the
    same requests again (sum counters with ``repetition!="pooled"``); None (no label) for a
    stage run once."""
    if summary.repetition is not None:
        return str(summary.repetition.index)
    return "pooled" if summary.repeated else None

"""CSV: one row per request, and a summary CSV per stage x provider written next to it.

``out/requests.csv`` also writes ``out/requests.summary.csv``, and, when a provider's
``server_metrics:`` was scraped, ``out/requests.server-metrics.csv``: one row per counter
sample per stage (``kind`` counter/histogram/summary; ``before``, ``after``, ``delta``,
``reset``) and one per gauge value scraped (``kind`` gauge; ``t_ms``, ``value``, ``stage``
the window it fell in, empty between stages); ``labels`` is the engine's label set as
Prometheus writes it.  Columns keep a fixed order
whatever the run measured (every metric, statistic and error class of the catalogue), and a
value that was not measured is an empty cell, never 0.  ``t_*`` columns are ms after the
start of the run; metric columns carry their unit in the name.

Columns added later are appended, so the position of every earlier column never moves:

* requests: ... ``error_message``, then ``phase`` (warmup, measure, cooldown) and ``cold``
  (``true``/``false``: the first request to its provider, or sent after an idle gap; empty
  when unknown), ``session``, ``turn``, ``inputs``, then the engine's own timings
  ``engine_*`` and ``ttft_overhead_ms``;
* summary: ... ``cost_*``, then ``phase``, ``drained``, ``sla_conforming`` and the open-loop
  pacing ``pacing_sent``, ``pacing_planned_rate_per_s``, ``pacing_achieved_rate_per_s``,
  ``pacing_rate_error`` (achieved / planned - 1), ``pacing_lag_{p50,p99,max}_ms``, then
  ``goodput_*``, ``inputs``, ``inputs_per_s``, ``ended_early`` and the statistics of the
  engine metrics (``engine_prefill_*``,
  ``ttft_overhead_*``, ``engine_tpot_*``).  The judged (``measure``) rows come first, then
  one row per warmup/cooldown phase summary.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path

from lens.export.facts import (
    COST_FIELDS,
    ERROR_CLASSES,
    METRICS,
    PACING_FIELDS,
    RECORD_ENGINE,
    RECORD_TIMES_MS,
    RECORD_TOKENS,
    STATS,
    engine_cells,
    models,
)
from lens.export.results import RecordOut, Results, SummaryOut
from lens.export.servermetrics import labels_text, stage_of
from lens.export.sink import write_atomic
from lens.metric_catalog import ENGINE_METRICS, REQUEST_METRICS
from lens.targets import ExportTarget

Cell = str | int | float | None

_REQUEST_TIMES = (
    "t_intended",
    "t_dispatch",
    "t_headers",
    "t_first_chunk",
    "t_first_token",
    "t_first_visible",
    "t_last_token",
    "t_end",
)
REQUEST_COLUMNS: tuple[str, ...] = (
    "stage",
    "provider",
    "model",
    "prompt",
    "index",
    "attempt",
    "status",
    "error_class",
    "http_status",
    *(f"{t}_ms" for t in _REQUEST_TIMES),
    *(f"{m}_ms" for m in RECORD_TIMES_MS),
    "output_tokens_per_s",
    *RECORD_TOKENS,
    "token_source",
    "chunks",
    "cost_usd",
    "request_id",
    "error_message",
    "phase",
    "cold",
    "session",
    "turn",
    "inputs",
    "prefix_group",
    *RECORD_ENGINE,
)


# The engine's metrics came later: their columns follow every earlier one.
_METRICS_BEFORE = tuple(m for m in METRICS if m not in ENGINE_METRICS)


def _unit_suffix(metric: str, stat: str) -> str:
    return "_ms" if stat != "n" and REQUEST_METRICS[metric].unit == "ms" else ""


SUMMARY_COLUMNS: tuple[str, ...] = (
    "stage",
    "provider",
    "model",
    "requests",
    "ok",
    "errors",
    "error_rate",
    "success_rate",
    "rps",
    "throughput_tokens_per_s",
    "duration_s",
    "output_tokens",
    "planned_requests",
    *(f"errors_{c}" for c in ERROR_CLASSES),
    *(f"{m}_{s}{_unit_suffix(m, s)}" for m in _METRICS_BEFORE for s in STATS),
    *(f"cost_{c}" for c in COST_FIELDS),
    "phase",
    "drained",
    "sla_conforming",
    *(f"pacing_{p}" for p in PACING_FIELDS),
    "goodput_per_s",
    "goodput_ratio",
    "inputs",
    "inputs_per_s",
    "ended_early",
    *(f"{m}_{s}{_unit_suffix(m, s)}" for m in ENGINE_METRICS for s in STATS),
)


def summary_path(path: Path) -> Path:
    """``requests.csv`` -> ``requests.summary.csv`` (same directory)."""
    suffix = path.suffix or ".csv"
    return path.with_name(f"{path.stem if path.suffix else path.name}.summary{suffix}")


def request_row(rec: RecordOut, model: str) -> list[Cell]:
    return [
        rec.stage,
        rec.provider,
        model,
        rec.prompt,
        rec.index,
        rec.attempt,
        rec.status,
        rec.error_class,
        rec.http_status,
        *(getattr(rec, t) for t in _REQUEST_TIMES),
        *(getattr(rec, m) for m in RECORD_TIMES_MS),
        rec.output_tokens_per_s,
        *(getattr(rec, t) for t in RECORD_TOKENS),
        rec.token_source,
        rec.chunks,
        rec.cost_usd,
        rec.request_id,
        rec.error_message,
        rec.phase,
        None if rec.cold is None else str(rec.cold).lower(),
        rec.session,
        rec.turn,
        rec.inputs,
        rec.prefix_group,
        *engine_cells(rec),
    ]


def summary_row(s: SummaryOut) -> list[Cell]:
    cost = s.cost or {}
    row: list[Cell] = [
        s.stage,
        s.provider,
        s.model,
        s.requests,
        s.ok,
        s.errors,
        s.error_rate,
        s.success_rate,
        s.rps,
        s.throughput,
        s.duration_s,
        s.output_tokens,
        s.planned_requests,
        *(s.error_counts.get(c, 0) for c in ERROR_CLASSES),
    ]
    row += _stats(s, _METRICS_BEFORE)
    row += [cost.get(c) for c in COST_FIELDS]
    row += [s.phase, s.drained, s.sla_conforming]
    row += [None if s.pacing is None else getattr(s.pacing, p) for p in PACING_FIELDS]
    row += [s.goodput, s.goodput_ratio]
    row += [s.inputs, s.inputs_per_s, s.ended_early]
    row += _stats(s, ENGINE_METRICS)
    return row


def _stats(s: SummaryOut, metrics: Iterable[str]) -> list[Cell]:
    cells: list[Cell] = []
    for metric in metrics:
        stats = s.metrics.get(metric)
        cells += [None if stats is None else getattr(stats, stat) for stat in STATS]
    return cells


def to_csv(columns: Sequence[str], rows: Iterable[Sequence[Cell]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return buf.getvalue()


def requests_csv(results: Results) -> str:
    model = models(results)
    rows = (request_row(r, model.get(r.provider, "")) for r in results.records)
    return to_csv(REQUEST_COLUMNS, rows)


def summary_csv(results: Results) -> str:
    rows = (summary_row(s) for s in (*results.summaries, *results.phase_summaries))
    return to_csv(SUMMARY_COLUMNS, rows)


SERVER_METRICS_COLUMNS = (
    "provider", "stage", "kind", "metric", "labels", "t_ms", "value", "before", "after",
    "delta", "reset",
)  # fmt: skip


def server_metrics_path(path: Path) -> Path:
    """``requests.csv`` -> ``requests.server-metrics.csv`` (same directory)."""
    suffix = path.suffix or ".csv"
    return path.with_name(f"{path.stem if path.suffix else path.name}.server-metrics{suffix}")


def server_metrics_csv(results: Results) -> str:
    rows: list[list[Cell]] = []
    for sm in results.server_metrics:
        for stage in sm.stages:
            rows.extend(
                [
                    sm.provider,
                    stage.stage,
                    c.kind,
                    c.name,
                    labels_text(c.labels),
                    stage.after_ms,
                    None,
                    c.before,
                    c.after,
                    c.delta,
                    str(c.reset).lower(),
                ]
                for c in stage.counters
            )
        for g in sm.gauges:
            rows.extend(
                [
                    sm.provider,
                    stage_of(results, sm.provider, t),
                    "gauge",
                    g.name,
                    labels_text(g.labels),
                    t,
                    value,
                    None,
                    None,
                    None,
                    None,
                ]
                for t, value in g.points
            )
    return to_csv(SERVER_METRICS_COLUMNS, rows)


def export_csv(results: Results, target: ExportTarget) -> None:
    path = Path(target.dest)
    write_atomic(path, requests_csv(results))
    write_atomic(summary_path(path), summary_csv(results))
    if results.server_metrics:
        write_atomic(server_metrics_path(path), server_metrics_csv(results))

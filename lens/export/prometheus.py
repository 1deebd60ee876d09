"""Prometheus text exposition format 0.0.4, pushed to a Pushgateway or written for
node_exporter's textfile collector.

Families are in base units (``_seconds``, ``_total``, ``_usd``) and labelled ``scenario``,
``stage``, ``provider``, ``model``.  Per-request metrics are summaries: the 0.5/0.9/0.95/0.99
quantiles of the stage's statistics plus ``_count`` and ``_sum`` (mean x count).  A metric
that was never measured is left out rather than written as 0.  A repeated stage's series
also carry ``repetition``: ``1`` .. ``N`` for its runs (stage ``<id>#<k>``), ``pooled`` for
the pooled summary (stage ``<id>``), which counts the same requests again: sum counters
with ``repetition!="pooled"``.

``lens_sla_verdict`` is 1 for pass, 0 for fail and -1 for inconclusive, so
``lens_sla_verdict < 1`` is every assertion that did not pass and ``== 0`` the failures.

What lens knows about its own measurements: ``lens_requests_drained_total``; open-loop
pacing (``lens_pacing_{planned,achieved}_rate_requests_per_second``,
``lens_pacing_rate_error_ratio`` = achieved / planned - 1, and
``lens_pacing_dispatch_lag_seconds{quantile="0.5"|"0.99"|"1"}``, 1 being the maximum); the
harness self-check, labelled ``scenario`` only (``lens_harness_overloaded`` 0/1,
``lens_harness_loop_lag_seconds{quantile=...}``, ``lens_harness_cpu_ratio``); and
``lens_cold_start_penalty_seconds`` per provider (``scenario``, ``provider``, ``model``).

Adaptive sweeps (``scenario``, ``sweep``, ``provider``, ``model``): ``lens_sweep_cut_short``
and ``lens_sweep_distrusted`` (0/1) for each, for find_max_rate
``lens_sweep_max_rate_requests_per_second`` and for find_max_concurrency
``lens_sweep_max_concurrency``, only when it has an answer to trust: absent when no step
passed, when the run stopped before the sweep ended, and when the client was overloaded
(the 0/1 families say which).

The engines' own metrics (a provider's ``server_metrics:``), labelled ``scenario``,
``provider``, ``model`` (and ``stage``, ``metric``: the engine's sample name, with its own
labels prefixed ``engine_``): ``lens_server_counter_delta`` (how much each counter, or a
histogram's or summary's ``_count``/``_sum``, grew over the stage),
``lens_server_counter_reset`` (1: it was reset during the stage), ``lens_server_gauge``
with ``stat="mean"|"max"|"min"|"last"`` over the scrapes within the stage window, and
``lens_server_scrapes_total`` / ``lens_server_scrapes_failed_total`` per provider.

Push: ``PUT {url}/metrics/job/<job>{/<label>/<value>}``.  PUT replaces the whole group, so a
re-push never leaves series of a previous run behind.  ``job`` (default ``lens``) and any
other query option of the destination URL (``?job=lens&instance=ci``) form the grouping key;
a value with ``/`` or an empty one uses the ``@base64`` form.  A ``token`` option is sent as
``Authorization: Bearer``; ``user:password@`` as basic auth.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

from lens.export.facts import ERROR_CLASSES, METRICS, models, repetition_label, run_start_ns
from lens.export.results import Results, SummaryOut
from lens.export.servermetrics import stage_gauges
from lens.export.sink import send, write_atomic
from lens.metric_catalog import REQUEST_METRICS
from lens.targets import ExportTarget, is_url

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DEFAULT_JOB = "lens"
QUANTILES: tuple[tuple[str, str], ...] = (
    ("0.5", "p50"),
    ("0.9", "p90"),
    ("0.95", "p95"),
    ("0.99", "p99"),
)
VERDICT_VALUE = {"pass": 1.0, "fail": 0.0, "inconclusive": -1.0}
_COST_HELP = {
    "per_request_usd": "cost per priced request",
    "per_1k_successful_usd": "cost per 1000 successful requests",
    "per_1m_output_tokens_usd": "cost per million output tokens",
    "per_sla_conforming_usd": "cost per request that met every per-request SLA",
}

Labels = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class Family:
    name: str
    type: str  # counter, gauge, summary
    help: str
    samples: list[tuple[str, Labels, float]] = field(default_factory=list)

    def add(self, labels: Labels, value: float, suffix: str = "") -> None:
        self.samples.append((self.name + suffix, labels, value))


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render(families: Iterable[Family]) -> str:
    lines: list[str] = []
    for fam in families:
        if not fam.samples:
            continue
        lines.append(f"# HELP {fam.name} {escape_help(fam.help)}")
        lines.append(f"# TYPE {fam.name} {fam.type}")
        for name, labels, value in fam.samples:
            pairs = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels)
            head = f"{name}{{{pairs}}}" if pairs else name
            lines.append(f"{head} {format_value(value)}")
    return "\n".join(lines) + "\n" if lines else ""


def _summary_name(metric: str) -> tuple[str, float, str]:
    """Family name, scale into base units, and unit words for HELP."""
    unit = REQUEST_METRICS[metric].unit
    if unit == "ms":
        return f"lens_{metric}_seconds", 1e-3, "seconds"
    if metric == "output_tokens_per_s":
        return "lens_request_output_tokens_per_second", 1.0, "tokens per second"
    return f"lens_request_{metric}", 1.0, "tokens"


def _base(results: Results, s: SummaryOut, model: str) -> Labels:
    labels: Labels = (
        ("scenario", results.scenario),
        ("stage", s.stage),
        ("provider", s.provider),
        ("model", model),
    )
    run = repetition_label(s)
    return labels if run is None else (*labels, ("repetition", run))


# The quantile label of gauges that carry a p50, p99 and maximum (quantile 1).
_LAG_QUANTILES: tuple[tuple[str, str], ...] = (("0.5", "p50"), ("0.99", "p99"), ("1", "max"))


def _pacing_families(results: Results) -> list[Family]:
    planned = Family(
        "lens_pacing_planned_rate_requests_per_second",
        "gauge",
        "open loop: the rate the arrivals sent were scheduled at",
    )
    achieved = Family(
        "lens_pacing_achieved_rate_requests_per_second",
        "gauge",
        "open loop: the rate the arrivals were dispatched at",
    )
    error = Family(
        "lens_pacing_rate_error_ratio", "gauge", "open loop: achieved / planned rate - 1"
    )
    lag = Family(
        "lens_pacing_dispatch_lag_seconds",
        "gauge",
        "open loop: dispatch - intended send time of first attempts (quantile 1: maximum)",
    )
    model = models(results)
    for s in results.summaries:
        if s.pacing is None:
            continue
        base = _base(results, s, model.get(s.provider, s.model))
        paced = s.pacing
        for fam, value in (
            (planned, paced.planned_rate_per_s),
            (achieved, paced.achieved_rate_per_s),
            (error, paced.rate_error),
        ):
            if value is not None:
                fam.add(base, value)
        for q, stat in _LAG_QUANTILES:
            lag.add((*base, ("quantile", q)), getattr(paced, f"lag_{stat}_ms") * 1e-3)
    return [planned, achieved, error, lag]


def _integrity_families(results: Results) -> list[Family]:
    run: Labels = (("scenario", results.scenario),)
    overloaded = Family(
        "lens_harness_overloaded", "gauge", "1 when lens itself was the bottleneck (harness)"
    )
    loop_lag = Family(
        "lens_harness_loop_lag_seconds",
        "gauge",
        "lateness of the client's event-loop wake-ups (quantile 1: maximum)",
    )
    cpu = Family("lens_harness_cpu_ratio", "gauge", "client CPU seconds per wall second")
    penalty = Family(
        "lens_cold_start_penalty_seconds",
        "gauge",
        "TTFT p50 of cold requests (first, or after an idle gap) - that of warm ones",
    )
    integrity = results.integrity
    if integrity is None:
        return [overloaded, loop_lag, cpu, penalty]
    if (h := integrity.harness) is not None:
        overloaded.add(run, 1 if h.status == "overloaded" else 0)
        for q, stat in _LAG_QUANTILES:
            value = getattr(h, f"loop_lag_{stat}_ms")
            if value is not None:
                loop_lag.add((*run, ("quantile", q)), value * 1e-3)
        if h.cpu is not None:
            cpu.add(run, h.cpu)
    model = models(results)
    for c in integrity.cold_start:
        if c.penalty_ms is not None:
            labels = (*run, ("provider", c.provider), ("model", model.get(c.provider, "")))
            penalty.add(labels, c.penalty_ms * 1e-3)
    return [overloaded, loop_lag, cpu, penalty]


def _sweep_families(results: Results) -> list[Family]:
    max_rate = Family(
        "lens_sweep_max_rate_requests_per_second",
        "gauge",
        "find_max_rate: the highest rate meeting every SLA, when trustworthy",
    )
    max_concurrency = Family(
        "lens_sweep_max_concurrency",
        "gauge",
        "find_max_concurrency: the highest concurrency meeting every SLA, when trustworthy",
    )
    cut_short = Family(
        "lens_sweep_cut_short", "gauge", "1 when the run stopped before the sweep ended"
    )
    distrusted = Family(
        "lens_sweep_distrusted", "gauge", "1 when the client was overloaded during the sweep"
    )
    model = models(results)
    for sw in results.sweeps:
        labels: Labels = (
            ("scenario", results.scenario),
            ("sweep", sw.id),
            ("provider", sw.provider),
            ("model", model.get(sw.provider, "")),
        )
        cut_short.add(labels, 1 if sw.cut_short else 0)
        distrusted.add(labels, 1 if sw.distrusted else 0)
        trusted = not (sw.cut_short or sw.distrusted)
        if sw.kind == "find_max_rate" and sw.max_rate_per_s is not None and trusted:
            max_rate.add(labels, sw.max_rate_per_s)
        if sw.kind == "find_max_concurrency" and sw.max_concurrency is not None and trusted:
            max_concurrency.add(labels, sw.max_concurrency)
    return [max_rate, max_concurrency, cut_short, distrusted]


def _unit_families(results: Results) -> list[Family]:
    requests = Family("lens_requests_total", "counter", "requests started")
    errors = Family("lens_request_errors_total", "counter", "failed requests by error class")
    tokens = Family("lens_output_tokens_total", "counter", "output tokens received")
    drained = Family(
        "lens_requests_drained_total",
        "counter",
        "requests in flight at the stage's cutoff and cut off (not in lens_requests_total)",
    )
    duration = Family("lens_stage_duration_seconds", "gauge", "wall time of the stage")
    rps = Family("lens_requests_per_second", "gauge", "successful requests per second of stage")
    tps = Family("lens_output_tokens_per_second", "gauge", "output tokens per second of stage")
    error_ratio = Family("lens_error_ratio", "gauge", "failed / started requests")
    goodput = Family(
        "lens_goodput_requests_per_second",
        "gauge",
        "SLA-conforming requests per second of stage (rps when no per-request SLA)",
    )
    goodput_ratio = Family("lens_goodput_ratio", "gauge", "SLA-conforming / started requests")
    cost_total = Family("lens_cost_usd_total", "counter", "what the run cost, USD")
    cost_rates = {c: Family(f"lens_cost_{c}", "gauge", h) for c, h in _COST_HELP.items()}
    summaries: dict[str, Family] = {}
    for metric in METRICS:
        name, _, unit = _summary_name(metric)
        summaries[metric] = Family(name, "summary", f"{metric} per request ({unit})")
    model = models(results)
    for s in results.summaries:
        base = _base(results, s, model.get(s.provider, s.model))
        requests.add(base, s.requests)
        for cls in ERROR_CLASSES:
            errors.add((*base, ("error_class", cls)), s.error_counts.get(cls, 0))
        tokens.add(base, s.output_tokens)
        drained.add(base, s.drained)
        gauges = (
            (duration, s.duration_s),
            (rps, s.rps),
            (tps, s.throughput),
            (goodput, s.goodput),
            (goodput_ratio, s.goodput_ratio),
        )
        for fam, value in gauges:
            if value is not None:
                fam.add(base, value)
        if s.error_rate is not None:
            error_ratio.add(base, s.error_rate)
        if s.cost is not None:
            cost_total.add(base, float(str(s.cost["total_usd"])))
            for c, fam in cost_rates.items():
                if s.cost.get(c) is not None:
                    fam.add(base, float(str(s.cost[c])))
        for metric, fam in summaries.items():
            stats = s.metrics.get(metric)
            if stats is None or stats.n == 0:
                continue
            _, scale, _ = _summary_name(metric)
            for q, stat in QUANTILES:
                value = getattr(stats, stat)
                if value is not None:
                    fam.add((*base, ("quantile", q)), value * scale)
            fam.add(base, (stats.mean or 0.0) * stats.n * scale, "_sum")
            fam.add(base, stats.n, "_count")
    return [
        requests,
        errors,
        drained,
        tokens,
        duration,
        rps,
        tps,
        error_ratio,
        goodput,
        goodput_ratio,
        *summaries.values(),
        cost_total,
        *cost_rates.values(),
    ]


def _engine_labels(labels: Mapping[str, str]) -> Labels:
    return tuple((f"engine_{_label_name(k)}", v) for k, v in sorted(labels.items()))


def _label_name(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)


def _server_families(results: Results) -> list[Family]:
    delta = Family(
        "lens_server_counter_delta",
        "gauge",
        "engine counter growth over the stage (server_metrics; a reset counts from 0)",
    )
    reset = Family("lens_server_counter_reset", "gauge", "1 when the engine counter was reset")
    gauge = Family(
        "lens_server_gauge", "gauge", "engine gauge over the scrapes within the stage window"
    )
    scrapes = Family("lens_server_scrapes_total", "counter", "scrapes of the metrics endpoint")
    failed = Family(
        "lens_server_scrapes_failed_total", "counter", "scrapes that failed or timed out"
    )
    model = models(results)
    for sm in results.server_metrics:
        base: Labels = (
            ("scenario", results.scenario),
            ("provider", sm.provider),
            ("model", model.get(sm.provider, "")),
        )
        scrapes.add(base, sm.scrapes)
        failed.add(base, sm.failed_scrapes)
        for stage in sm.stages:
            for c in stage.counters:
                labels = (*base, ("stage", stage.stage), ("metric", c.name))
                labels = (*labels, *_engine_labels(c.labels))
                delta.add(labels, c.delta)
                reset.add(labels, 1 if c.reset else 0)
    for g in stage_gauges(results):
        labels = (
            ("scenario", results.scenario),
            ("provider", g.metrics.provider),
            ("model", model.get(g.metrics.provider, "")),
            ("stage", g.window.stage),
            ("metric", g.gauge.name),
            *_engine_labels(g.gauge.labels),
        )
        for stat in ("mean", "max", "min", "last"):
            gauge.add((*labels, ("stat", stat)), getattr(g, stat))
    return [delta, reset, gauge, scrapes, failed]


def families(results: Results) -> list[Family]:
    model = models(results)
    verdicts = Family(
        "lens_sla_verdict", "gauge", "SLA assertion outcome: 1 pass, 0 fail, -1 inconclusive"
    )
    for v in results.verdicts:
        labels: Labels = (
            ("scenario", results.scenario),
            ("stage", v.stage or ""),
            ("provider", v.provider or ""),
            ("model", model.get(v.provider or "", "")),
            ("sla", v.sla),
        )
        verdicts.add(labels, VERDICT_VALUE[v.outcome])
    run: Labels = (("scenario", results.scenario),)
    exit_code = Family("lens_run_exit_code", "gauge", "0 pass, 1 SLA failed, 3 inconclusive")
    exit_code.add(run, results.exit_code)
    partial = Family("lens_run_partial", "gauge", "1 when the run was interrupted")
    partial.add(run, 1 if results.partial else 0)
    started = Family("lens_run_start_timestamp_seconds", "gauge", "wall clock of the run start")
    started.add(run, run_start_ns(results) / 1e9)
    return [
        *_unit_families(results),
        *_pacing_families(results),
        verdicts,
        exit_code,
        partial,
        started,
        *_integrity_families(results),
        *_sweep_families(results),
        *_server_families(results),
    ]


def exposition(results: Results) -> str:
    return render(families(results))


def _segment(name: str, value: str) -> str:
    if value and "/" not in value:
        return f"/{name}/{quote(value, safe='')}"
    encoded = base64.urlsafe_b64encode(value.encode()).decode() or "="
    return f"/{name}@base64/{encoded}"


def push_url(dest: str) -> tuple[str, dict[str, str]]:
    """The Pushgateway group URL for ``dest`` and the headers its options ask for."""
    parts = urlsplit(dest)
    options = parse_qsl(parts.query, keep_blank_values=True)
    headers = {"Content-Type": CONTENT_TYPE}
    job = DEFAULT_JOB
    grouping: list[tuple[str, str]] = []
    for key, value in options:
        if key == "token":
            headers["Authorization"] = f"Bearer {value}"
        elif key == "job":
            job = value
        else:
            grouping.append((key, value))
    path = parts.path.rstrip("/") + "/metrics" + _segment("job", job)
    path += "".join(_segment(k, v) for k, v in grouping)
    return parts._replace(path=path, query="").geturl(), headers


def export_prometheus(results: Results, target: ExportTarget) -> None:
    text = exposition(results)
    if not is_url(target.dest):
        write_atomic(Path(target.dest), text)
        return
    url, headers = push_url(target.dest)
    send(target, "PUT", url, content=text.encode(), headers=headers)

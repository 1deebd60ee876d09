"""Prometheus text exposition format 0.0.4, pushed to a Pushgateway or written for
node_exporter's textfile collector.

Families are in base units (``_seconds``, ``_total``, ``_usd``) and labelled ``scenario``,
``stage``, ``provider``, ``model``.  Per-request metrics are summaries: the 0.5/0.9/0.95/0.99
quantiles of the stage's statistics plus ``_count`` and ``_sum`` (mean x count).  A metric
that was never measured is left out rather than written as 0.

``lens_sla_verdict`` is 1 for pass, 0 for fail and -1 for inconclusive, so
``lens_sla_verdict < 1`` is every assertion that did not pass and ``== 0`` the failures.

Push: ``PUT {url}/metrics/job/<job>{/<label>/<value>}``.  PUT replaces the whole group, so a
re-push never leaves series of a previous run behind.  ``job`` (default ``lens``) and any
other query option of the destination URL (``?job=lens&instance=ci``) form the grouping key;
a value with ``/`` or an empty one uses the ``@base64`` form.  A ``token`` option is sent as
``Authorization: Bearer``; ``user:password@`` as basic auth.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

from lens.catalog import REQUEST_METRICS
from lens.export.facts import ERROR_CLASSES, METRICS, models, run_start_ns
from lens.export.results import Results, SummaryOut
from lens.export.sink import send, write_atomic
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
    return (
        ("scenario", results.scenario),
        ("stage", s.stage),
        ("provider", s.provider),
        ("model", model),
    )


def _unit_families(results: Results) -> list[Family]:
    requests = Family("lens_requests_total", "counter", "requests started")
    errors = Family("lens_request_errors_total", "counter", "failed requests by error class")
    tokens = Family("lens_output_tokens_total", "counter", "output tokens received")
    duration = Family("lens_stage_duration_seconds", "gauge", "wall time of the stage")
    rps = Family("lens_requests_per_second", "gauge", "successful requests per second of stage")
    tps = Family("lens_output_tokens_per_second", "gauge", "output tokens per second of stage")
    error_ratio = Family("lens_error_ratio", "gauge", "failed / started requests")
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
        for fam, value in ((duration, s.duration_s), (rps, s.rps), (tps, s.throughput)):
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
        tokens,
        duration,
        rps,
        tps,
        error_ratio,
        *summaries.values(),
        cost_total,
        *cost_rates.values(),
    ]


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
    return [*_unit_families(results), verdicts, exit_code, partial, started]


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

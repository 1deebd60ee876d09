"""InfluxDB line protocol: per-request and per-stage points, written over HTTP.

Measurements (tags: ``scenario``, ``stage``, ``provider``, ``model``):

* ``lens_request``: one point per request, also tagged ``prompt``, ``phase``, ``status``
  and ``error_class``; fields are the record's metrics (``*_ms``), token counts, ``index``,
  ``attempt``, ``http_status``, ``chunks``, ``cold`` (boolean), ``cost_usd`` and
  ``error_message``.  Its timestamp is the
  wall clock of the dispatch: ``environment.started_at`` + ``t_dispatch`` (ns).  Requests of
  one series dispatched in the same nanosecond are moved 1 ns apart, since InfluxDB keeps
  only the last point of a series per timestamp.
* ``lens_summary``: one point per stage x provider and ``phase`` (a tag: ``measure`` for
  the judged summaries, ``warmup``/``cooldown`` for those summarised apart) at the end of
  its phase; fields ``requests``, ``ok``, ``errors``, ``error_rate``, ``rps``,
  ``throughput``, ``drained``, ``sla_conforming``, ``goodput``, ``goodput_ratio`` (when
  measured), ``<metric>_<stat>`` (ms for times),
  ``errors_<class>``, ``cost_<...>_usd`` and, for open-loop stages, ``pacing_<field>``
  (``sent``, ``planned_rate_per_s``, ``achieved_rate_per_s``, ``rate_error``,
  ``lag_p50_ms``, ``lag_p99_ms``, ``lag_max_ms``).  A repeated stage's points also carry a
  ``repetition`` tag: ``1`` .. ``N`` for its runs, ``pooled`` for the pooled summary (at
  the end of its last run), which counts the same requests again.
* ``lens_sweep``: one point per adaptive sweep x provider (tags ``sweep``, ``kind``,
  ``provider``, ``model``) at the end of its last step; fields ``steps``, ``cut_short``,
  ``distrusted`` (booleans), ``reason``, ``max_rate_per_s``, ``max_concurrency`` (an
  integer), ``bracket_passing``, ``bracket_failing`` (floats for rates and concurrencies
  alike: one field has one type), ``sync_rps``, ``saturated_rps`` (each when known).
* ``lens_harness``: the client's self-check, one point at the end of the run: ``status``
  (string), ``overloaded`` (boolean), ``samples``, ``loop_lag_{p50,p99,max}_ms``, ``cpu``,
  the limits ``max_loop_lag_ms`` and ``max_cpu``, and ``reasons`` ("; "-joined).

Destinations: ``/write?db=...`` (InfluxDB 1.x, VictoriaMetrics) or
``/api/v2/write?org=...&bucket=...`` (InfluxDB 2.x and 3.x; ``precision=ns`` is added).  A
``token`` option of the URL, else ``$INFLUX_TOKEN``, is sent as ``Authorization: Token``
and never as part of the URL.  Lines go in batches of ``BATCH_LINES`` per POST.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit

from lens.export.facts import (
    ERROR_CLASSES,
    METRICS,
    PACING_FIELDS,
    RECORD_TIMES_MS,
    RECORD_TOKENS,
    STATS,
    models,
    repetition_label,
    stage_end_ms,
    wall_ns,
)
from lens.export.lineproto import FieldValue, batches, line
from lens.export.results import RecordOut, Results, SummaryOut, SweepOut
from lens.export.sink import send
from lens.targets import ExportTarget

BATCH_LINES = 5000
AUTH_VARIABLE = "INFLUX_TOKEN"


def _money(value: str | int | None) -> float | None:
    return None if value is None else float(value)


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


def request_point(results: Results, rec: RecordOut, model: str, ts: int) -> str | None:
    tags = {
        "scenario": results.scenario,
        "stage": rec.stage,
        "provider": rec.provider,
        "model": model,
        "prompt": rec.prompt,
        "phase": rec.phase,
        "status": rec.status,
        "error_class": rec.error_class,
    }
    fields: dict[str, FieldValue] = {f"{m}_ms": getattr(rec, m) for m in RECORD_TIMES_MS}
    fields["output_tokens_per_s"] = rec.output_tokens_per_s
    fields.update((t, getattr(rec, t)) for t in RECORD_TOKENS)
    fields.update(
        index=rec.index,
        attempt=rec.attempt,
        http_status=rec.http_status,
        chunks=rec.chunks,
        cold=rec.cold,
        cost_usd=_money(rec.cost_usd),
        error_message=rec.error_message,
        session=rec.session,
        turn=rec.turn,
    )
    return line("lens_request", tags, fields, ts)


def summary_point(results: Results, s: SummaryOut, model: str) -> str | None:
    tags = {
        "scenario": results.scenario,
        "stage": s.stage,
        "provider": s.provider,
        "model": model,
        "phase": s.phase,
    }
    run = repetition_label(s)
    if run is not None:
        tags["repetition"] = run
    fields: dict[str, FieldValue] = {
        "requests": s.requests,
        "ok": s.ok,
        "errors": s.errors,
        "error_rate": s.error_rate,
        "success_rate": s.success_rate,
        "rps": s.rps,
        "throughput": s.throughput,
        "duration_s": s.duration_s,
        "output_tokens": s.output_tokens,
        "planned_requests": s.planned_requests,
        "drained": s.drained,
        "sla_conforming": s.sla_conforming,
        "goodput": s.goodput,
        "goodput_ratio": s.goodput_ratio,
    }
    if s.pacing is not None:
        fields.update((f"pacing_{p}", getattr(s.pacing, p)) for p in PACING_FIELDS)
    fields.update((f"errors_{c}", s.error_counts.get(c, 0)) for c in ERROR_CLASSES)
    for metric in METRICS:
        stats = s.metrics.get(metric)
        if stats is not None:
            fields.update((f"{metric}_{stat}", getattr(stats, stat)) for stat in STATS)
    if s.cost is not None:
        fields.update((f"cost_{k}", _money(v)) for k, v in s.cost.items() if k.endswith("_usd"))
    return line("lens_summary", tags, fields, wall_ns(results, stage_end_ms(results, s)))


def sweep_point(results: Results, sw: SweepOut, model: str) -> str | None:
    tags = {
        "scenario": results.scenario,
        "sweep": sw.id,
        "kind": sw.kind,
        "provider": sw.provider,
        "model": model,
    }
    # Floats for both kinds of search: InfluxDB rejects a field whose type changes.
    passing, failing = (_float(end) for end in sw.bracket or (None, None))
    fields: dict[str, FieldValue] = {
        "steps": len(sw.probes),
        "cut_short": sw.cut_short,
        "distrusted": sw.distrusted,
        "reason": sw.reason,
        "max_rate_per_s": sw.max_rate_per_s,
        "max_concurrency": sw.max_concurrency,
        "bracket_passing": passing,
        "bracket_failing": failing,
        "sync_rps": sw.sync_rps,
        "saturated_rps": sw.saturated_rps,
    }
    ran = {p.stage for p in sw.probes}
    ends = [w.end_ms for w in results.stages if w.provider == sw.provider and w.stage in ran]
    return line(
        "lens_sweep", tags, fields, wall_ns(results, max(ends, default=_run_end_ms(results)))
    )


def harness_point(results: Results) -> str | None:
    h = results.integrity.harness if results.integrity is not None else None
    if h is None:
        return None
    fields: dict[str, FieldValue] = {
        "status": h.status,
        "overloaded": h.status == "overloaded",
        "samples": h.samples,
        "loop_lag_p50_ms": h.loop_lag_p50_ms,
        "loop_lag_p99_ms": h.loop_lag_p99_ms,
        "loop_lag_max_ms": h.loop_lag_max_ms,
        "cpu": h.cpu,
        "max_loop_lag_ms": h.max_loop_lag_ms,
        "max_cpu": h.max_cpu,
        "reasons": "; ".join(h.reasons) or None,
    }
    ts = wall_ns(results, _run_end_ms(results))
    return line("lens_harness", {"scenario": results.scenario}, fields, ts)


def _run_end_ms(results: Results) -> float:
    return max((w.end_ms for w in results.stages), default=0.0)


def points(results: Results) -> Iterator[str]:
    model = models(results)
    taken: set[tuple[str, ...]] = set()
    for rec in results.records:
        series = (rec.stage, rec.provider, rec.prompt, rec.phase, rec.status, rec.error_class or "")
        ts = wall_ns(results, rec.t_dispatch)
        while (*series, str(ts)) in taken:
            ts += 1
        taken.add((*series, str(ts)))
        if (text := request_point(results, rec, model.get(rec.provider, ""), ts)) is not None:
            yield text
    for s in (*results.summaries, *results.phase_summaries):
        if (text := summary_point(results, s, model.get(s.provider, s.model))) is not None:
            yield text
    for sw in results.sweeps:
        if (text := sweep_point(results, sw, model.get(sw.provider, ""))) is not None:
            yield text
    if (text := harness_point(results)) is not None:
        yield text


def write_url(dest: str, env: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """The URL to POST to (credential options removed) and its headers."""
    parts = urlsplit(dest)
    options = parse_qsl(parts.query, keep_blank_values=True)
    token = next((v for k, v in options if k == "token"), None) or env.get(AUTH_VARIABLE)
    kept = [(k, v) for k, v in options if k not in ("token", "precision")]
    if parts.path.rstrip("/").endswith("/api/v2/write"):
        kept.append(("precision", "ns"))
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if token:
        headers["Authorization"] = f"Token {token}"
    return parts._replace(query=urlencode(kept)).geturl(), headers


def export_influx(results: Results, target: ExportTarget) -> None:
    url, headers = write_url(target.dest, os.environ)
    for body in batches(points(results), BATCH_LINES):
        send(target, "POST", url, content=body.encode(), headers=headers)

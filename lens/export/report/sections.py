"""The report's sections on what a run carries beyond its summaries: sweeps and what they
found, pacing and phases, lens's checks of its own measurements, and the recommendation.

Each function returns an HTML fragment; every string from a scenario, a server or the
results goes through ``html.escape`` (``markup`` does it for table cells).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

from lens.export.report.markup import in_ms, num, para, pct, subhead, table
from lens.export.report.series import SweepRun, SweepStep, step_label, sweep_runs
from lens.export.results import (
    IntegrityOut,
    RecommendationOut,
    Results,
    SummaryOut,
    SweepOut,
)
from lens.export.servermetrics import labels_text
from lens.export.table import exclusion_text, recommendation_rows, summary_rows
from lens.metrics.judge import Verdict

# Streams are checked per stage x provider: past this many rows the table folds away.
_FOLD_ABOVE = 8


def sweep_key(index: int) -> str:
    """The chart key of the ``index``-th sweep of ``sweep_runs``."""
    return f"sweep-{index}"


def _rate(value: float | None) -> str:
    return "?" if value is None else f"{value:g}/s"


def _concurrency(value: float | None) -> str:
    return "?" if value is None else f"c{value:g}"


def _search_words(o: SweepOut) -> str:
    """What a find_max_rate or find_max_concurrency sweep found, and how sure it is."""
    rates = o.kind == "find_max_rate"
    load, show = ("rate", _rate) if rates else ("concurrency", _concurrency)
    best = o.max_rate_per_s if rates else o.max_concurrency
    low, high = o.bracket or (None, None)
    if o.cut_short:
        return "cut short (budget or signal) before it found an answer"
    if best is None:
        return (
            f"no {load} met every SLA: even the lowest tried, {show(high)}, failed "
            "(the bracket is open below)"
        )
    if high is None:
        return (
            f"max {load} {show(best)}, but the bracket is open above: even the highest "
            f"{load} tried passed, so the real limit may be higher"
        )
    return (
        f"max {load} {show(best)}, the highest {load} meeting every SLA; the limit lies in "
        f"the bracket [{show(low)}, {show(high)})"
    )


def sweep_words(run: SweepRun) -> str:
    """What the sweep found for one provider, in a sentence or two."""
    o = run.outcome
    if o is None:
        return f"{run.provider}: {len(run.steps)} fixed steps."
    head = f"{run.provider} ({o.kind}): "
    if run.searched:
        return head + _search_words(o) + f", after {len(o.probes)} steps."
    if o.kind == "stop_when":
        stop = next((p for p in o.probes if p.held), None)
        if stop is None:
            return f"{head}every step ran; the stop condition never held."
        label = step_label(stop.rate_per_s, stop.concurrency)
        skipped = f" Not run: {', '.join(o.not_run)}." if o.not_run else ""
        return (
            f"{head}stopped at {stop.stage} ({label}), the first step where the stop "
            f"condition held ({stop.detail}).{skipped}"
        )
    sync = "?" if o.sync_rps is None else f"{o.sync_rps:.3g} req/s"
    saturated = "?" if o.saturated_rps is None else f"{o.saturated_rps:.3g} req/s"
    rates = sum(1 for st in run.steps if st.rate_per_s is not None)
    return (
        f"{head}measured a synchronous throughput of {sync} (one request at a time) and a "
        f"saturated throughput of {saturated}, then {rates} constant-rate steps between them."
    )


def _decision(run: SweepRun, step: SweepStep, o: SweepOut) -> str:
    """What an adaptive sweep made of one of its steps."""
    if run.searched:
        return "-" if step.held is None else ("pass" if step.held else "fail")
    if o.kind == "stop_when":
        return "stop condition held" if step.held else "continued"
    if step.concurrency == 1:
        return "synchronous"
    return "saturation" if step.concurrency is not None else "rate step"


def _sla_result(verdicts: Sequence[Verdict]) -> str:
    """The step's SLA verdicts in one word, the worst first: a fail, else an inconclusive."""
    outcomes = {v.outcome for v in verdicts}
    for outcome in ("fail", "inconclusive", "pass"):
        if outcome in outcomes:
            return outcome
    return "no SLA"


def _verdict_words(verdicts: Sequence[Verdict]) -> str:
    """The step's verdicts, the worst first: each fail and inconclusive with its reason
    (which has the measured value), then the assertions that passed."""
    failed = [f"fail: {v.reason}" for v in verdicts if v.outcome == "fail"]
    unsure = [
        f"inconclusive: {v.sla} ({v.reason})" for v in verdicts if v.outcome == "inconclusive"
    ]
    passed = [v.sla for v in verdicts if v.outcome == "pass"]
    return "; ".join([*failed, *unsure, *(["pass: " + ", ".join(passed)] if passed else [])])


def _sweep_table(runs: Sequence[SweepRun], verdicts: Sequence[Verdict]) -> str:
    """A row per step and provider: what it achieved, what the scenario's SLAs made of it
    (the verdicts on the step's stage), and, for an adaptive sweep, its own decision."""
    by_unit: dict[tuple[str | None, str | None], list[Verdict]] = {}
    for v in verdicts:
        by_unit.setdefault((v.stage, v.provider), []).append(v)
    adaptive = any(run.outcome is not None for run in runs)
    rows: list[list[str]] = []
    classes: list[str] = []
    for run in runs:
        o = run.outcome
        details = {p.stage: p.detail for p in (o.probes if o else [])}
        for st in run.steps:
            judged = by_unit.get((st.stage, run.provider), [])
            row = [
                run.provider,
                st.stage,
                st.label,
                num(st.rps, 2),
                num(st.ttft_p50),
                num(st.ttft_p95),
                num(st.e2e_p95),
            ]
            if adaptive:
                row.append(
                    "" if o is None else f"{_decision(run, st, o)}: {details.get(st.stage) or '-'}"
                )
            rows.append([*row, _sla_result(judged), _verdict_words(judged)])
            classes.append(_sla_result(judged).replace(" ", "-"))
        for stage in o.not_run if o else ():
            rows.append(
                [run.provider, stage, "-", "-", "-", "-", "-"]
                + (["not run"] if adaptive else [])
                + ["-", ""]
            )
            classes.append("")
    headers = [
        "provider",
        "step",
        "set to",
        "achieved req/s",
        "TTFT p50 ms",
        "TTFT p95 ms",
        "E2E p95 ms",
        *(["sweep decision"] if adaptive else []),
        "SLA result",
        "SLA verdicts",
    ]
    text = (0, 1, *range(len(headers) - (3 if adaptive else 2), len(headers)))
    return table(headers, rows, text_cols=text, row_classes=classes, css="steps")


def sweeps_section(results: Results, figure: Callable[[str], str]) -> str:
    """Per sweep: what it found in words, its chart, and a row per step."""
    out = []
    for i, (sweep_id, runs) in enumerate(sweep_runs(results).items()):
        words = "".join(f"<li>{escape(sweep_words(run))}</li>" for run in runs)
        out.append(
            subhead(f"Sweep {sweep_id}")
            + f'<ul class="found">{words}</ul>'
            + figure(sweep_key(i))
            + _sweep_table(runs, results.verdicts)
        )
    return "".join(out)


def engine_section(results: Results) -> str:
    """TTFT split at the engine's own prefill time (llama.cpp ``timings``), and lens's TPOT
    beside the engine's; empty when no response carried the engine's timings."""

    def stat(s: SummaryOut, metric: str, name: str) -> float | None:
        stats = s.metrics.get(metric)
        return None if stats is None else getattr(stats, name)

    rows = [
        [
            s.stage,
            s.provider,
            str(stat(s, "engine_prefill", "n") or stat(s, "engine_tpot", "n") or 0),
            num(stat(s, "ttft", "p50")),
            num(stat(s, "engine_prefill", "p50")),
            num(stat(s, "ttft_overhead", "p50")),
            num(stat(s, "ttft_overhead", "p95")),
            num(stat(s, "tpot", "p50"), 2),
            num(stat(s, "engine_tpot", "p50"), 2),
        ]
        for s in results.summaries
        if stat(s, "engine_prefill", "n") or stat(s, "engine_tpot", "n")
    ]
    if not rows:
        return ""
    headers = [
        "stage",
        "provider",
        "with timings",
        "TTFT p50",
        "prefill p50 (engine)",
        "TTFT - prefill p50",
        "TTFT - prefill p95",
        "TPOT p50",
        "TPOT p50 (engine)",
    ]
    return table(headers, rows, text_cols=(0, 1)) + para(
        "Times in ms. The engine reported its own timings with each response (llama.cpp "
        "timings): prefill is its prompt processing; TTFT - prefill is what lens saw beyond "
        "it: network, the wait for a free slot, HTTP and the stream's framing. Medians are "
        "taken per column, so they need not add up."
    )


def drained_table(results: Results) -> str:
    rows = [
        [s.stage, s.provider, str(s.drained), str(s.requests)]
        for s in results.summaries
        if s.drained
    ]
    if not rows:
        return ""
    return (
        subhead("Cut off at the stage's end")
        + table(["stage", "provider", "drained", "counted requests"], rows, text_cols=(0, 1))
        + para(
            "In flight when the stage ended and cut off (drain: cancel): never a success, and "
            "left out of reqs, err% and the success rate, since the server did nothing wrong."
        )
    )


def pacing_section(results: Results) -> str:
    rows = []
    for s in results.summaries:
        p = s.pacing
        if p is None:
            continue
        error = "-" if p.rate_error is None else f"{p.rate_error * 100:+.2f}%"
        rows.append(
            [
                s.stage,
                s.provider,
                str(p.sent),
                num(p.planned_rate_per_s, 2),
                num(p.achieved_rate_per_s, 2),
                error,
                num(p.lag_p50_ms, 2),
                num(p.lag_p99_ms, 2),
                num(p.lag_max_ms, 2),
            ]
        )
    out = []
    if rows:
        headers = [
            "stage",
            "provider",
            "sent",
            "planned /s",
            "achieved /s",
            "rate error",
            "lag p50 ms",
            "lag p99 ms",
            "lag max ms",
        ]
        out.append(
            subhead("Pacing of open-loop stages")
            + table(headers, rows, text_cols=(0, 1))
            + para(
                "How closely each arrival schedule was kept, over every phase: planned and "
                "achieved dispatch rate, and dispatch lag (sent minus due). A burst has no "
                "rate, only lag."
            )
        )
    if results.phase_summaries:
        headers, phase_rows = summary_rows(results.phase_summaries)
        out.append(
            subhead("Warmup and cooldown (not judged)")
            + table(in_ms(headers), phase_rows, text_cols=(0, 1))
            + para(
                "Sent on the same schedule and measured as usual, but summarised apart: no SLA "
                "is judged on these rows. Latencies in ms."
            )
        )
    return "".join(out)


def warnings_banner(results: Results) -> str:
    if results.integrity is None or not results.integrity.warnings:
        return ""
    items = "".join(f"<li>{escape(w)}</li>" for w in results.integrity.warnings)
    return (
        '<div class="banner warn" role="alert"><strong>Measurement warnings: read the numbers '
        f"below with these in mind</strong><ul>{items}</ul></div>"
    )


def _harness(integrity: IntegrityOut) -> str:
    h = integrity.harness
    if h is None:
        return para("The client was not sampled in this run.", "empty")
    status = "ok" if h.status == "ok" else "overloaded: " + "; ".join(h.reasons)
    row = [
        status,
        str(h.samples),
        num(h.loop_lag_p50_ms, 2),
        num(h.loop_lag_p99_ms, 2),
        num(h.loop_lag_max_ms, 2),
        num(h.max_loop_lag_ms, 0),
        pct(h.cpu, 0),
        pct(h.max_cpu, 0),
    ]
    headers = [
        "status",
        "samples",
        "loop lag p50 ms",
        "loop lag p99 ms",
        "loop lag max ms",
        "lag limit ms",
        "CPU",
        "CPU limit",
    ]
    css = "pass" if h.status == "ok" else "fail"
    return table(headers, [row], text_cols=(0,), row_classes=[css]) + para(
        "The client's own event loop (how late its timers fired) and CPU (process seconds per "
        "wall second): past a limit, lens itself may have delayed requests and readings."
    )


def _streams(integrity: IntegrityOut) -> str:
    if not integrity.streams:
        return para("No stream had enough chunks to judge its delivery.", "empty")
    rows = [
        [
            s.stage,
            s.provider,
            str(s.requests),
            num(s.chunks_per_read, 2),
            pct(s.zero_gap_share, 0),
            "BUFFERED" if s.buffered else "no",
        ]
        for s in integrity.streams
    ]
    headers = ["stage", "provider", "requests", "chunks per read", "same-read share", "buffered"]
    grid = table(
        headers,
        rows,
        text_cols=(0, 1, 5),
        row_classes=["buffered" if s.buffered else "" for s in integrity.streams],
    )
    buffered = sum(s.buffered for s in integrity.streams)
    line = para(
        f"{buffered} of {len(integrity.streams)} stage x provider streams look buffered (many "
        "chunks arriving in the same network read: a proxy, or a client reading too slowly; "
        "then ITL is not the model's)."
    )
    if len(rows) > _FOLD_ABOVE:
        grid = f"<details><summary>every stage x provider ({len(rows)})</summary>{grid}</details>"
    return line + grid


def _cold_start(integrity: IntegrityOut) -> str:
    if not integrity.cold_start:
        return para("No provider had both cold and warm requests to compare.", "empty")
    rows = [
        [
            c.provider,
            str(c.cold_requests),
            str(c.warm_requests),
            num(c.cold_ttft_p50_ms),
            num(c.warm_ttft_p50_ms),
            num(c.warm_ttft_p90_ms),
            "-" if c.ratio is None else f"{c.ratio:.2f}x",
            num(c.penalty_ms),
            "yes" if c.significant else "no",
        ]
        for c in integrity.cold_start
    ]
    headers = [
        "provider",
        "cold",
        "warm",
        "cold TTFT p50 ms",
        "warm TTFT p50 ms",
        "warm TTFT p90 ms",
        "ratio",
        "penalty ms",
        "significant",
    ]
    return table(headers, rows, text_cols=(0,)) + para(
        "Cold: a provider's first request, or one sent after an idle gap longer than "
        "integrity.cold_after."
    )


def _idle_probes(results: Results) -> str:
    rows = [
        [
            p.stage,
            p.provider,
            f"#{probe.index}",
            "first" if probe.idle_s is None else f"{probe.idle_s:.3f}",
            num(probe.ttft_ms),
            num(probe.e2e_ms),
            ("ok" if probe.ok else "error") + (", cold" if probe.cold else ""),
        ]
        for p in results.idle_probes
        for probe in p.probes
    ]
    headers = ["stage", "provider", "probe", "idle before (s)", "TTFT ms", "E2E ms", "status"]
    return table(headers, rows, text_cols=(0, 1, 6))


def integrity_section(results: Results) -> str:
    integrity = results.integrity
    if integrity is None and not results.idle_probes:
        return para("Not recorded: these results predate lens's integrity checks.", "empty")
    out = []
    if integrity is not None:
        out.append(
            subhead("Harness")
            + _harness(integrity)
            + subhead("Stream delivery")
            + _streams(integrity)
            + subhead("Cold and warm TTFT")
            + _cold_start(integrity)
        )
    if results.idle_probes:
        out.append(subhead("Idle probes: latency after idle time") + _idle_probes(results))
    return "".join(out)


def recommendation_section(rec: RecommendationOut) -> str:
    best = next((c for c in rec.candidates if c.provider == rec.best), None)
    scope = f" (stages: {', '.join(rec.stages)})" if rec.stages is not None else ""
    eligible = sum(c.eligible for c in rec.candidates)
    headline = (
        f"Recommended{scope}: {best.provider}"
        + (f" ({best.model})" if best.model else "")
        + f", the cheapest per SLA-conforming request of {eligible} meeting every SLA."
        if best is not None
        else f"No provider meets every SLA at a known cost{scope}."
    )
    headers, rows = recommendation_rows(rec)
    rows = [[*r[:-1], "Pareto" if r[-1] else ""] for r in rows]
    grid = table(
        headers,
        rows,
        text_cols=(1, 2, 7),
        row_classes=["pass" if c.eligible else "fail" for c in rec.candidates],
    )
    excluded = [c for c in rec.candidates if not c.eligible]
    why = ""
    if excluded:
        items = "".join(
            f"<li><strong>{escape(c.provider)}</strong><ul>"
            + "".join(f"<li>{escape(exclusion_text(e))}</li>" for e in c.excluded_because)
            + "</ul></li>"
            for c in excluded
        )
        why = subhead("Excluded, and why") + f'<ul class="why">{items}</ul>'
    return (
        f'<p class="headline">{escape(headline)}</p>'
        + grid
        + para(
            "Ranked by cost per SLA-conforming request, each provider's stages pooled. Pareto: "
            "on the frontier of TTFT p95 against cost per 1M output tokens (no other provider "
            "is both faster and cheaper)."
        )
        + why
    )


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4g}"


def server_metrics_section(results: Results) -> str:
    """What each provider's metrics endpoint said: how its scrapes went, and how much each
    counter grew in each stage (the gauges are charts, drawn after this)."""
    parts = []
    for sm in results.server_metrics:
        status = (
            f"{sm.scrapes} scrapes of {sm.url} every {sm.every_s:g}s, {sm.failed_scrapes} failed"
            + (f" (last: {sm.last_error})" if sm.last_error else "")
            + (f"; scraped by {sm.scraped_by}" if sm.scraped_by else "")
        )
        parts.append(f"<h3>{escape(sm.provider)}</h3><p>{escape(status)}.</p>")
        rows = [
            [
                st.stage,
                c.name + labels_text(c.labels),
                _number(c.before),
                _number(c.after),
                _number(c.delta),
                "reset" if c.reset else "",
            ]
            for st in sm.stages
            for c in st.counters
        ]
        if rows:
            headers = ["stage", "counter", "before", "after", "delta", ""]
            parts.append(table(headers, rows, text_cols=(0, 1, 5)))
    return "".join(parts)

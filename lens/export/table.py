"""Console and markdown tables of summaries, verdicts and recommendations (tabulate)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from tabulate import tabulate

from lens.export.comparison import render_markdown as render_comparison_markdown
from lens.export.comparison import render_table as render_comparison_table
from lens.export.results import (
    CandidateOut,
    ExclusionOut,
    RecommendationOut,
    RepetitionsOut,
    Results,
    SummaryOut,
    SweepOut,
)
from lens.metrics.idle import IdleProbes
from lens.metrics.integrity import ColdStart
from lens.metrics.judge import Verdict, measured_text

_COLUMNS: tuple[tuple[str, str, str], ...] = (
    # header, metric, stat
    ("TTFT p50", "ttft", "p50"),
    ("TTFT p95", "ttft", "p95"),
    ("TTFT p99", "ttft", "p99"),
    ("ITL p50", "itl", "p50"),
    ("ITL p95", "itl", "p95"),
    ("TPOT p50", "tpot", "p50"),
    ("E2E p50", "e2e", "p50"),
    ("E2E p99", "e2e", "p99"),
)

_MARK = {"pass": "PASS", "fail": "FAIL", "inconclusive": "INCONCLUSIVE"}


def _num(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.1f}%"


def summary_rows(summaries: Sequence[SummaryOut]) -> tuple[list[str], list[list[str]]]:
    headers = ["stage", "provider", "reqs", "ok", "err%", "req/s", "good/s", "tok/s"]
    headers += [h + " ms" for h, _, _ in _COLUMNS]
    # Embeddings: inputs/s, only when a stage sent batches (other tables stay as they were).
    embeddings = any(s.inputs_per_s is not None for s in summaries)
    if embeddings:
        headers.insert(8, "in/s")
    rows = []
    for s in _display_order(summaries):
        row = [
            _stage_cell(s),
            s.provider,
            str(s.requests),
            str(s.ok),
            _pct(s.error_rate),
            _num(s.rps, 2),
            _num(s.goodput, 2),
            _num(s.throughput, 0),
        ]
        if embeddings:
            row.append(_num(s.inputs_per_s, 1))
        for _, metric, stat in _COLUMNS:
            stats = s.metrics.get(metric)
            row.append(_num(getattr(stats, stat) if stats else None))
        rows.append(row)
    return headers, rows


def _stage_cell(s: SummaryOut) -> str:
    """The stage column: a repetition and a repeated stage's pooled row are marked."""
    name = s.stage
    if s.repetition is not None:
        name = f"{s.stage} (run {s.repetition.index}/{s.repetition.count})"
    elif s.repeated:
        name = f"{s.stage} (pooled {s.repeated} runs)"
    return name if s.phase == "measure" else f"{name} [{s.phase}]"


def _display_order(summaries: Sequence[SummaryOut]) -> list[SummaryOut]:
    """Run order, except that a repeated stage shows provider by provider: each one's
    repetitions, then its pooled row (run order interleaves the providers)."""
    pooled = {(s.stage, s.provider, s.phase): s for s in summaries if s.repeated}
    if not pooled:
        return list(summaries)
    reps: dict[tuple[str, str, str], list[SummaryOut]] = {}
    for s in summaries:
        if s.repetition is not None and (s.repetition.stage, s.provider, s.phase) in pooled:
            reps.setdefault((s.repetition.stage, s.provider, s.phase), []).append(s)
    grouped = {id(r) for group in reps.values() for r in group}
    out: list[SummaryOut] = []
    for s in summaries:
        if id(s) in grouped:
            continue
        key = (s.stage, s.provider, s.phase)
        out.extend(reps.get(key, []) if s.repeated else [])
        out.append(s)
    return out


def _spread_lines(r: RepetitionsOut) -> list[str]:
    """A repeated stage x provider's run-to-run spread: each statistic's range across the
    repetitions and its standard deviation."""
    parts = []
    for name, spread in r.spread.items():
        if spread.min is None or spread.max is None:
            continue
        unit = _spread_unit(name)
        sd = "" if spread.stdev is None else f", sd {_spread_num(spread.stdev, unit)}"
        parts.append(f"{name} {_spread_num(spread.min, unit)}-{_spread_num(spread.max, unit)}{sd}")
    head = f"  {r.stage}/{r.provider} ({len(r.stages)} of {r.count} runs): "
    return [head + "; ".join(parts)] if parts else [head + "nothing measured"]


def _spread_unit(name: str) -> str:
    metric = name.partition(".")[0]
    if metric in ("error_rate",):
        return "%"
    if metric == "cost":
        return "$"
    if metric in ("rps", "throughput", "output_tokens_per_s"):
        return "/s"
    return "ms"


def _spread_num(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value * 100:.1f}%"
    if unit == "$":
        return f"${value:.3g}"
    if unit == "/s":
        return f"{value:.3g}/s"
    return f"{value:.1f} ms"


def verdict_rows(verdicts: Sequence[Verdict]) -> tuple[list[str], list[list[str]]]:
    headers = ["verdict", "assertion", "scope", "measured", "n", "reason"]
    rows = []
    for v in verdicts:
        scope = " ".join(
            p
            for p in (
                f"provider={v.provider}" if v.provider else "",
                f"stage={v.stage}" if v.stage else "",
            )
            if p
        )
        measured = measured_text(v.label, v.value)
        sla = v.sla if v.window is None else f"{v.sla} [{v.window.seconds:g}s windows]"
        reason = f"{v.reason}; stopped the run" if v.stopped_run else v.reason
        rows.append([_MARK[v.outcome], sla, scope or "all", measured, str(v.n), reason])
    return headers, rows


def _money(value: str | int | None) -> str:
    return "-" if value is None else f"${Decimal(str(value)):.6f}"


def _price(value: str | None) -> str:
    """Four significant digits (at least cents), never in exponent form: per-request
    prices are tiny."""
    if value is None:
        return "-"
    d = Decimal(value)
    if d == 0:
        return "$0"
    return f"${d.quantize(Decimal(1).scaleb(min(d.adjusted() - 3, -2))).normalize():f}"


def exclusion_text(e: ExclusionOut) -> str:
    if e.sla is None:
        return e.reason
    where = f" [stage {e.stage}]" if e.stage is not None else ""
    return f"{e.sla}{where} {e.outcome}: {e.reason}"


def _ranked(c: CandidateOut) -> str:
    return f"{c.provider} ({c.model})" if c.model else c.provider


def recommendation_rows(rec: RecommendationOut) -> tuple[list[str], list[list[str]]]:
    headers = [
        "rank",
        "provider",
        "model",
        "$ / SLA-conforming req",
        "$ / 1M output tokens",
        "TTFT p95 ms",
        "conforming",
        "Pareto",
    ]
    rows = [
        [
            str(c.rank) if c.rank is not None else "-",
            c.provider,
            c.model,
            _price(c.per_sla_conforming_usd),
            _price(c.per_1m_output_tokens_usd),
            _num(c.ttft_p95_ms),
            f"{c.sla_conforming}/{c.requests}",
            "*" if c.pareto else "",
        ]
        for c in rec.candidates
    ]
    return headers, rows


def render_recommendation(rec: RecommendationOut, fmt: str = "simple") -> str:
    """The ``lens recommend`` report: every candidate, then why each excluded one is out."""
    scope = f" (stages: {', '.join(rec.stages)})" if rec.stages is not None else ""
    best = next((c for c in rec.candidates if c.provider == rec.best), None)
    out = [
        f"recommended{scope}: {_ranked(best)}, the cheapest per SLA-conforming request of "
        f"{sum(c.eligible for c in rec.candidates)} meeting every SLA"
        if best is not None
        else f"no provider meets every SLA at a known cost{scope}",
        "",
    ]
    headers, rows = recommendation_rows(rec)
    out.append(tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True))
    out.append("* on the Pareto frontier of TTFT p95 vs cost per 1M output tokens")
    excluded = [c for c in rec.candidates if not c.eligible]
    if excluded:
        out += ["", "excluded:"]
        for c in excluded:
            out += [f"  {c.provider}:", *(f"    {exclusion_text(e)}" for e in c.excluded_because)]
    return "\n".join(out) + "\n"


def _recommendation_block(rec: RecommendationOut | None) -> list[str]:
    """A few lines for the run table, when there is a choice to make and a price to go by."""
    if rec is None or len(rec.candidates) < 2:
        return []
    if all(c.total_usd is None for c in rec.candidates):
        return []
    eligible = [c for c in rec.candidates if c.eligible]
    out = [f"recommendation: none of {len(rec.candidates)} providers meets every SLA"]
    if eligible:
        best, *others = eligible
        assert best.per_sla_conforming_usd is not None  # eligible candidates are costed
        out = [
            f"recommendation: {_ranked(best)}, {_price(best.per_sla_conforming_usd)} per "
            f"SLA-conforming request, the cheapest of {len(eligible)} meeting every SLA"
        ]
        for c in others:
            assert c.per_sla_conforming_usd is not None
            ratio = Decimal(c.per_sla_conforming_usd) / Decimal(best.per_sla_conforming_usd)
            out.append(f"  then {c.provider}: {_price(c.per_sla_conforming_usd)} ({ratio:.1f}x)")
    for c in rec.candidates:
        if not c.eligible:
            why = "; ".join(
                f"{e.sla} ({e.outcome})" if e.sla else e.reason for e in c.excluded_because
            )
            out.append(f"  excluded {c.provider}: {why}")
    return out


def _cost_line(s: SummaryOut) -> str | None:
    if s.cost is None:
        return None
    c = s.cost
    unpriced = f" ({c['unpriced_requests']} without usage)" if c["unpriced_requests"] else ""
    return (
        f"  {s.stage}/{s.provider}: total {_money(c['total_usd'])}, "
        f"{_money(c['per_request_usd'])} per request, "
        f"{_money(c['per_1m_output_tokens_usd'])} per 1M output tokens, "
        f"{_money(c['per_sla_conforming_usd'])} per SLA-conforming request{unpriced}"
    )


def _errors_line(s: SummaryOut) -> str | None:
    # Drained requests are not errors of the server: they have lines of their own.
    parts = [f"{k}={n}" for k, n in s.error_counts.items() if n and k != "drained"]
    return f"  {s.stage}/{s.provider}: " + ", ".join(parts) if parts else None


def _drained_line(s: SummaryOut) -> str | None:
    if not s.drained:
        return None
    return (
        f"  {s.stage}/{s.provider}: {s.drained} in flight at the stage's cutoff, cut off "
        "(drain: cancel; not counted in err%)"
    )


def _engine_line(s: SummaryOut) -> str | None:
    """TTFT split at the engine's own prefill time, and TPOT beside the engine's, where the
    responses carried the engine's timings (llama.cpp ``timings``)."""

    def p50(metric: str) -> float | None:
        stats = s.metrics.get(metric)
        return None if stats is None else stats.p50

    prefill, overhead, engine_tpot = p50("engine_prefill"), p50("ttft_overhead"), p50("engine_tpot")
    if prefill is None and engine_tpot is None:
        return None
    parts = []
    if prefill is not None:
        parts.append(
            f"TTFT p50 {_num(p50('ttft'))} ms: prefill {_num(prefill)} ms (engine), the rest "
            f"{_num(overhead)} ms (network, queueing)"
        )
    if engine_tpot is not None:
        parts.append(f"TPOT p50 {_num(p50('tpot'), 2)} ms, engine {_num(engine_tpot, 2)} ms")
    return f"  {s.stage}/{s.provider}: " + "; ".join(parts)


def _pacing_line(s: SummaryOut) -> str | None:
    p = s.pacing
    if p is None:
        return None
    rate = ""
    if p.planned_rate_per_s is not None and p.achieved_rate_per_s is not None:
        error = f" ({p.rate_error * 100:+.2f}%)" if p.rate_error is not None else ""
        rate = (
            f"planned {p.planned_rate_per_s:.2f}/s, achieved {p.achieved_rate_per_s:.2f}/s{error}, "
        )
    return (
        f"  {s.stage}/{s.provider}: {rate}dispatch lag p50 {p.lag_p50_ms:.2f} ms, "
        f"p99 {p.lag_p99_ms:.2f} ms, max {p.lag_max_ms:.2f} ms"
    )


def _turns_line(s: SummaryOut) -> str | None:
    """A stage of conversations: requests and TTFT p50 by turn, and the turns left unsent."""
    if s.turns is None:
        return None
    parts = []
    for label, turn in s.turns.items():
        ttft = turn.metrics["ttft"].p50
        shown = "-" if ttft is None else f"{ttft:.1f} ms"
        parts.append(f"turn {label}: {turn.requests} reqs, TTFT p50 {shown}")
    abandoned = f"; {s.abandoned_turns} turns not sent" if s.abandoned_turns else ""
    return f"  {s.stage}/{s.provider}: " + "; ".join(parts) + abandoned


def _probe_lines(p: IdleProbes) -> list[str]:
    out = [f"  {p.stage}/{p.provider}:"]
    for probe in p.probes:
        idle = "first" if probe.idle_s is None else f"after {probe.idle_s:.3f}s idle"
        state = ("ok" if probe.ok else "error") + (", cold" if probe.cold else "")
        out.append(
            f"    #{probe.index} {idle}: TTFT {_num(probe.ttft_ms)} ms, E2E "
            f"{_num(probe.e2e_ms)} ms ({state})"
        )
    return out


def _cold_line(c: ColdStart) -> str:
    if c.cold_ttft_p50_ms is None:
        # stream: false and embeddings time no token: their requests have no TTFT
        return f"  {c.provider}: no successful cold request with a TTFT"
    head = f"  {c.provider}: {c.cold_requests} cold, TTFT p50 {_num(c.cold_ttft_p50_ms)} ms"
    if c.warm_ttft_p50_ms is None:
        return f"{head}; {c.compared_with()}"
    ratio = "" if c.ratio is None else f", {c.ratio:.2f}x"
    flag = ", significant" if c.significant else ""
    return (
        f"{head} vs warm p50 {_num(c.warm_ttft_p50_ms)} ms, p90 {_num(c.warm_ttft_p90_ms)} ms"
        f"{ratio}{flag}; {c.compared_with()}"
    )


def sweep_lines(sweep: SweepOut) -> list[str]:
    """What an adaptive sweep found, for the run table."""
    flags = (("cut short", sweep.cut_short), ("DISTRUSTED", sweep.distrusted))
    kind = ", ".join([sweep.kind, *(name for name, on in flags if on)])
    head = f"  {sweep.id}/{sweep.provider} ({kind}): "
    if sweep.kind in ("find_max_rate", "find_max_concurrency"):
        rates = sweep.kind == "find_max_rate"
        # Rates carry their unit on each value; concurrencies once, after the bracket.
        show = _rate if rates else _count
        low, high = sweep.bracket or (None, None)
        bracket = f"bracket [{show(low, 'open')}, {show(high, 'open')})" + (
            "" if rates else " in flight"
        )
        if sweep.cut_short:
            found = "no answer"
        elif rates and sweep.max_rate_per_s is not None:
            found = f"max rate {sweep.max_rate_per_s:g}/s, {bracket}"
        elif not rates and sweep.max_concurrency is not None:
            found = f"max concurrency {sweep.max_concurrency}, {bracket}"
        else:
            found = f"no {'rate' if rates else 'concurrency'} passed, {bracket}"
        lines = [f"{head}{found}, {len(sweep.probes)} steps"]
        lines.append(f"    {sweep.reason}")
        lines += [f"    {'pass' if p.held else 'fail'} {p.stage}: {p.detail}" for p in sweep.probes]
        return lines
    lines = [head + sweep.reason]
    if sweep.not_run:
        lines.append(f"    not run: {', '.join(sweep.not_run)}")
    return lines


def _rate(value: float | None, missing: str) -> str:
    return missing if value is None else f"{value:g}/s"


def _count(value: float | None, missing: str) -> str:
    return missing if value is None else f"{value:g}"


def render(results: Results, fmt: str = "simple") -> str:
    """``fmt`` is a tabulate format: ``simple`` for consoles, ``github`` for markdown."""
    out: list[str] = []
    md = fmt == "github"
    stopped = f"stopped by {results.interrupted_by}" if results.interrupted_by else "interrupted"
    title = f"lens: {results.scenario}" + (f" (PARTIAL: {stopped})" if results.partial else "")
    out.append(f"## {title}" if md else title)
    out.append("")
    headers, rows = summary_rows(results.summaries)
    out.append(tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True))
    if results.phase_summaries:
        out += ["", "warmup and cooldown (summarised apart, not judged):"]
        headers, rows = summary_rows(results.phase_summaries)
        out.append(tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True))

    if results.repetitions:
        out += ["", "run-to-run spread of repeated stages (min-max across runs, sd):"]
        out += [line for r in results.repetitions for line in _spread_lines(r)]
    if results.sweeps:
        out += ["", "sweeps:", *(line for sw in results.sweeps for line in sweep_lines(sw))]
    errs = [line for s in results.summaries if (line := _errors_line(s))]
    if errs:
        out += ["", "errors by class:", *errs]
    drained = [line for s in results.summaries if (line := _drained_line(s))]
    if drained:
        out += ["", "drained:", *drained]
    turns = [line for s in results.summaries if (line := _turns_line(s))]
    if turns:
        out += ["", "conversations (by turn):", *turns]
    paced = [line for s in results.summaries if (line := _pacing_line(s))]
    if paced:
        out += ["", "pacing (open loop, every phase):", *paced]
    if results.idle_probes:
        out += ["", "idle probes (idle time before each probe):"]
        out += [line for p in results.idle_probes for line in _probe_lines(p)]
    engine = [line for s in results.summaries if (line := _engine_line(s))]
    if engine:
        out += ["", "engine timings (p50 of the engine's own figures per request):", *engine]
    colds = results.integrity.cold_start if results.integrity is not None else []
    if colds:
        out += ["", "cold start (TTFT of cold requests vs warm ones):"]
        out += [_cold_line(c) for c in colds]
    costs = [line for s in results.summaries if (line := _cost_line(s))]
    if costs:
        out += ["", "cost (prices: see plan.providers[].price):", *costs]
    if results.verdicts:
        out.append("")
        out.append("### SLA" if md else "SLA")
        headers, rows = verdict_rows(results.verdicts)
        out.append(tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True))
    block = _recommendation_block(results.recommendation)
    if block:
        out += ["", *block]
    if results.regressions is not None:
        out.append("")
        out.append(
            render_comparison_markdown(results.regressions).rstrip("\n")
            if md
            else render_comparison_table(results.regressions).rstrip("\n")
        )
    counts = {k: sum(1 for v in results.verdicts if v.outcome == k) for k in _MARK}
    out.append("")
    judged = (
        f"SLA: {counts['pass']} passed, {counts['fail']} failed, "
        f"{counts['inconclusive']} inconclusive"
    )
    if results.regressions is not None:
        c = results.regressions
        judged += (
            f"; baseline: {c.count('regressed')} regressed, {c.count('inconclusive')} "
            f"inconclusive, {c.count('improved')} improved, {c.count('unchanged')} unchanged"
        )
    out.append(f"{judged} (exit code {results.exit_code})")
    return "\n".join(out) + "\n"

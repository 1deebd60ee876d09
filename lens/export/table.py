"""Console and markdown tables of summaries and verdicts (tabulate)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from tabulate import tabulate

from lens.export.results import Results, SummaryOut, VerdictOut

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
    headers = ["stage", "provider", "reqs", "ok", "err%", "req/s", "tok/s"]
    headers += [h + " ms" for h, _, _ in _COLUMNS]
    rows = []
    for s in summaries:
        row = [
            s.stage,
            s.provider,
            str(s.requests),
            str(s.ok),
            _pct(s.error_rate),
            _num(s.rps, 2),
            _num(s.throughput, 0),
        ]
        for _, metric, stat in _COLUMNS:
            stats = s.metrics.get(metric)
            row.append(_num(getattr(stats, stat) if stats else None))
        rows.append(row)
    return headers, rows


def verdict_rows(verdicts: Sequence[VerdictOut]) -> tuple[list[str], list[list[str]]]:
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
        rows.append([_MARK[v.outcome], v.sla, scope or "all", _num(v.value, 2), str(v.n), v.reason])
    return headers, rows


def _money(value: str | int | None) -> str:
    return "-" if value is None else f"${Decimal(str(value)):.6f}"


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
    parts = [f"{k}={n}" for k, n in s.error_counts.items() if n]
    return f"  {s.stage}/{s.provider}: " + ", ".join(parts) if parts else None


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
    errs = [line for s in results.summaries if (line := _errors_line(s))]
    if errs:
        out += ["", "errors by class:", *errs]
    costs = [line for s in results.summaries if (line := _cost_line(s))]
    if costs:
        out += ["", "cost (prices: see plan.providers[].price):", *costs]
    if results.verdicts:
        out.append("")
        out.append("### SLA" if md else "SLA")
        headers, rows = verdict_rows(results.verdicts)
        out.append(tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True))
    counts = {k: sum(1 for v in results.verdicts if v.outcome == k) for k in _MARK}
    out.append("")
    out.append(
        f"SLA: {counts['pass']} passed, {counts['fail']} failed, "
        f"{counts['inconclusive']} inconclusive (exit code {results.exit_code})"
    )
    return "\n".join(out) + "\n"

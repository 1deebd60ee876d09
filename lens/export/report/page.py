"""The report page: one self-contained HTML document around the charts.

Nothing is fetched: styles and the one script are inline, charts are inline SVG, and a
Content-Security-Policy forbids any load from elsewhere.  Every string that came from a
scenario or a server goes through ``html.escape``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from html import escape

from lens._version import __version__
from lens.export.report.charts import Chart, server_gauge_keys
from lens.export.report.markup import in_ms, table
from lens.export.report.sections import (
    drained_table,
    engine_section,
    integrity_section,
    pacing_section,
    recommendation_section,
    server_metrics_section,
    sweeps_section,
    warnings_banner,
)
from lens.export.report.series import usd
from lens.export.results import Results, SummaryOut
from lens.export.table import summary_rows, verdict_rows

_VERDICT = {0: ("PASS", "pass"), 1: ("FAIL", "fail"), 3: ("INCONCLUSIVE", "inconclusive")}
_MESSAGE_CHARS = 160

_CSS = """
:root { --fg: #1d2330; --muted: #5b6472; --line: #dde1e7; --pass: #1a7f37; --fail: #c62828;
  --inc: #9a6700; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
  color: var(--fg); margin: 0; background: #f6f7f9; }
main { max-width: 1360px; margin: 0 auto; padding: 20px 28px 64px; }
h1 { font-size: 26px; margin: 8px 0 4px; word-break: break-word; }
h2 { font-size: 19px; margin: 36px 0 10px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
.meta { color: var(--muted); margin: 0 0 16px; }
.meta span + span::before { content: " · "; }
.verdict { display: inline-block; padding: 6px 14px; border-radius: 6px; font-weight: 700;
  color: #fff; font-size: 17px; }
.verdict.pass { background: var(--pass); } .verdict.fail { background: var(--fail); }
.verdict.inconclusive { background: var(--inc); }
.banner { background: #fff4ce; border: 1px solid #e0c36b; border-radius: 6px; padding: 10px 14px;
  margin: 12px 0; font-weight: 600; }
table { border-collapse: collapse; background: #fff; font-size: 13px; margin: 6px 0 8px; }
th, td { border: 1px solid var(--line); padding: 4px 7px; text-align: right; white-space: nowrap; }
/* Headers and text wrap, numbers never: a wide table fits the page (1280 px and up) rather
   than scroll sideways; the scroll box is a last resort for a narrower window. */
th { background: #eef1f5; font-weight: 600; white-space: normal; vertical-align: bottom; }
td.text, th.text { text-align: left; white-space: normal; overflow-wrap: break-word; }
.scroll { overflow-x: auto; }
table.steps tr td:first-child { color: inherit; font-weight: 400; }
table.steps tr.fail td:nth-last-child(2) { color: var(--fail); font-weight: 700; }
table.steps tr.inconclusive td:nth-last-child(2) { color: var(--inc); font-weight: 700; }
table.steps tr.pass td:nth-last-child(2) { color: var(--pass); font-weight: 700; }
tr.pass td:first-child { color: var(--pass); font-weight: 700; }
tr.fail td:first-child { color: var(--fail); font-weight: 700; }
tr.inconclusive td:first-child { color: var(--inc); font-weight: 700; }
figure { background: #fff; border: 1px solid var(--line); border-radius: 6px; margin: 14px 0;
  padding: 10px; }
figure svg { display: block; width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.empty { color: var(--muted); font-style: italic; }
h3 { font-size: 16px; margin: 22px 0 6px; }
.banner.warn { background: #fdecea; border-color: #e5a29b; }
.banner ul, ul.found, ul.why { margin: 6px 0 0; padding-left: 22px; }
.banner li { font-weight: 400; }
ul.found li { margin: 2px 0; }
.headline { font-weight: 600; }
tr.buffered td:last-child { color: var(--fail); font-weight: 700; }
details > summary { cursor: pointer; color: var(--muted); margin: 4px 0; }
footer { color: var(--muted); font-size: 12.5px; margin-top: 40px; }
"""

# Records on <body> what a headless browser saw: charts laid out with a size, script errors.
_SCRIPT = """
(function () {
  var errors = 0;
  window.addEventListener("error", function () { errors += 1; });
  window.addEventListener("load", function () {
    var drawn = 0;
    document.querySelectorAll("figure > svg").forEach(function (svg) {
      var box = svg.getBoundingClientRect();
      if (box.width > 0 && box.height > 0) { drawn += 1; }
    });
    document.body.setAttribute("data-charts-drawn", String(drawn));
    document.body.setAttribute("data-errors", String(errors));
  });
})();
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


def _when(iso: str) -> str:
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso  # shown as written rather than not at all
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(start: str, end: str) -> str:
    try:
        seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except (TypeError, ValueError):
        return "for an unknown time"
    return f"for {seconds:.1f} s"


def _header(results: Results) -> str:
    env = results.environment
    word, css = _VERDICT.get(results.exit_code, (f"EXIT {results.exit_code}", "fail"))
    counts = {
        k: sum(1 for v in results.verdicts if v.outcome == k)
        for k in ("pass", "fail", "inconclusive")
    }
    sla = (
        f"{counts['pass']} passed, {counts['fail']} failed, {counts['inconclusive']} inconclusive"
        if results.verdicts
        else "no SLA asserted"
    )
    meta = [
        f"started {_when(env.started_at)}",
        f"ran {_duration(env.started_at, env.finished_at)}",
        f"lens {env.lens_version}",
        f"Python {env.python} on {env.os} ({env.hostname})",
    ]
    banner = ""
    if results.partial:
        by = f" by {results.interrupted_by}" if results.interrupted_by else ""
        banner = (
            f'<p class="banner">Partial results: the run was interrupted{escape(by)}; '
            f"{len(results.records)} requests were measured before it stopped.</p>"
        )
    return (
        f"<h1>lens report: {escape(results.scenario)}</h1>"
        f'<p class="meta">{"".join(f"<span>{escape(m)}</span>" for m in meta)}</p>'
        f"{banner}"
        f'<p><span class="verdict {css}">{word}</span> SLA: {sla} '
        f"(exit code {results.exit_code})</p>"
    )


def _summary(results: Results) -> str:
    if not results.summaries:
        return '<p class="empty">No stage ran.</p>'
    headers, rows = summary_rows(results.summaries)
    return table(in_ms(headers), rows, text_cols=(0, 1)) + (
        '<p class="meta">Latencies in ms, from successful requests only; failed requests '
        "count in reqs and err%. req/s and tok/s are over each stage's wall time.</p>"
    )


def _verdicts(results: Results) -> str:
    if not results.verdicts:
        return '<p class="empty">The scenario asserts no SLA.</p>'
    headers, rows = verdict_rows(results.verdicts)
    return table(
        headers, rows, text_cols=(0, 1, 2, 5), row_classes=[v.outcome for v in results.verdicts]
    )


def _errors(results: Results) -> str:
    example: dict[tuple[str, str, str], str] = {}
    for rec in results.records:
        if rec.error_class and rec.error_message:
            example.setdefault((rec.stage, rec.provider, rec.error_class), rec.error_message)
    rows = [
        [
            s.stage,
            s.provider,
            cls,
            str(n),
            f"{n / s.requests:.1%}" if s.requests else "-",
            _clip(example.get((s.stage, s.provider, cls), "")),
        ]
        for s in results.summaries
        for cls, n in s.error_counts.items()
        if n
    ]
    if not rows:
        return '<p class="empty">No request failed.</p>'
    headers = ["stage", "provider", "error class", "count", "of requests", "first message"]
    return table(headers, rows, text_cols=(0, 1, 2, 5))


def _clip(text: str) -> str:
    return text if len(text) <= _MESSAGE_CHARS else text[: _MESSAGE_CHARS - 1] + "…"


def _usd(value: str | int | None) -> str:
    if value is None:
        return "-"
    return usd(Decimal(str(value)))


def _cost_row(s: SummaryOut) -> list[str]:
    if s.cost is None:
        return [s.stage, s.provider, "no price known", "no price known", "no price known", "-"]
    c = s.cost
    return [
        s.stage,
        s.provider,
        _usd(c.get("total_usd")),
        _usd(c.get("per_request_usd")),
        _usd(c.get("per_1m_output_tokens_usd")),
        str(c.get("unpriced_requests") or 0),
    ]


def _costs(results: Results) -> str:
    if all(s.cost is None for s in results.summaries):
        return (
            '<p class="empty">No price known for any provider: cost is unknown, not $0 '
            "(give simulated and self-hosted providers a price: in the scenario).</p>"
        )
    headers = [
        "stage",
        "provider",
        "total",
        "per request",
        "per 1M output tokens",
        "unpriced requests",
    ]
    note = (
        '<p class="meta">At the price the plan resolved for each provider (its price:, the '
        "scenario's pricing: entries, or the catalog's list price); \"no price known\" means "
        "none of these had one, not that it was free. Unpriced requests reported no token "
        "counts.</p>"
    )
    return table(headers, [_cost_row(s) for s in results.summaries], text_cols=(0, 1)) + note


def _figure(chart: Chart) -> str:
    if chart.svg is None:
        return f'<p class="empty">{escape(chart.title)}: {escape(chart.note)}.</p>'
    return f"<figure>{chart.svg}<figcaption>{escape(chart.note)}</figcaption></figure>"


def _section(title: str, body: str) -> str:
    return f"<section><h2>{escape(title)}</h2>{body}</section>"


def assemble(results: Results, charts: Sequence[Chart]) -> str:
    by_key = {c.key: c for c in charts}

    def figures(*keys: str) -> str:
        return "".join(_figure(by_key[k]) for k in keys if k in by_key)

    sections = [
        _section("Summary", _summary(results) + drained_table(results)),
        _section("SLA verdicts", _verdicts(results)),
    ]
    rec = results.recommendation
    if rec is not None and rec.candidates:
        sections.append(_section("Recommendation", recommendation_section(rec)))
    engine = engine_section(results)
    if engine:
        sections.append(_section("Engine timings", engine))
    sections += [
        _section("Errors by class", _errors(results)),
        _section("Latency distributions", figures("cdf-ttft", "cdf-itl", "cdf-e2e")),
        _section("Over time", figures("latency-time", "throughput-time")),
    ]
    swept = sweeps_section(results, figures)
    if swept or "stages" in by_key:
        plain = figures("stages")
        if swept and plain:
            plain = "<h3>Stages that are not sweep steps</h3>" + plain
        sections.append(_section("Load sweep", swept + plain))
    paced = pacing_section(results)
    if paced:
        sections.append(_section("Pacing and phases", paced))
    if results.server_metrics:
        gauges = figures(*(key for key, _, _ in server_gauge_keys(results)))
        sections.append(_section("Server metrics", server_metrics_section(results) + gauges))
    sections += [
        _section("Measurement integrity", integrity_section(results)),
        _section("Cost", _costs(results) + figures("cost")),
    ]
    drawn = sum(1 for c in charts if c.svg is not None)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>lens report: {escape(results.scenario)}</title>"
        f"<style>{_CSS}</style><script>{_SCRIPT}</script></head>"
        f'<body data-charts="{drawn}" data-errors="0"><main>'
        + _header(results)
        + warnings_banner(results)
        + "".join(sections)
        + f"<footer>{escape(results.schema_version)} · report drawn by lens {__version__} · "
        "self-contained: works offline</footer>" + "</main></body></html>\n"
    )

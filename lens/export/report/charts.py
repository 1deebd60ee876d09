"""The report's charts: matplotlib figures rendered to inline SVG.

matplotlib is the optional extra ``lens[report]``, imported only when a report is drawn,
so the rest of lens never pays for it.  Figures are built with ``Figure`` directly (no
pyplot: no global state, no GUI backend).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from lens.errors import ExportError
from lens.export.report.series import (
    BIN_S,
    CostPoint,
    LatencyMetric,
    Series,
    StageMark,
    SweepPoint,
    SweepRun,
    cost_points,
    latency_cdfs,
    latency_over_time,
    providers,
    stage_marks,
    sweep,
    sweep_runs,
    throughput_over_time,
    unit_label,
    usd,
)
from lens.export.results import Results

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MISSING_MATPLOTLIB = "the HTML report needs matplotlib: pip install 'lens[report]'"

_NO_METADATA: dict[str, Any] = {"Date": None, "Creator": None, "Format": None, "Type": None}
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
_DASHES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_WIDTH_IN = 11.0
# Past this many points a scatter is embedded as one bitmap; thousands of SVG circles
# make a heavy page for no visible gain.
_RASTER_ABOVE = 3000
_LEGEND_ROWS = 30
_CDF_TITLES: dict[LatencyMetric, str] = {
    "ttft": "Time to first token (TTFT)",
    "itl": "Inter-token latency (ITL)",
    "e2e": "End-to-end latency (E2E)",
}


@dataclass(frozen=True, slots=True)
class Chart:
    key: str
    title: str
    svg: str | None  # None: nothing measured to draw; ``note`` says why
    note: str  # how to read the chart, or why there is none


def draw_charts(results: Results) -> list[Chart]:
    """Every chart the results support, in page order; raises ExportError without
    matplotlib."""
    with _matplotlib():
        colors = {p: _PALETTE[i % len(_PALETTE)] for i, p in enumerate(providers(results))}
        charts = [_cdf_chart(results, metric, colors) for metric in ("ttft", "itl", "e2e")]
        charts += [_latency_time_chart(results, colors), _throughput_chart(results, colors)]
        for i, (sweep_id, runs) in enumerate(sweep_runs(results).items()):
            charts.append(_sweep_run_chart(f"sweep-{i}", sweep_id, runs, colors))
        sweeps = sweep(results)
        if sweeps:
            charts.append(_sweep_chart(sweeps, colors))
        costs = [c for c in cost_points(results.summaries) if c.per_1m_output_usd is not None]
        if costs:
            charts.append(_cost_chart(costs, colors))
        return charts


@contextmanager
def _matplotlib() -> Iterator[None]:
    try:
        import matplotlib  # noqa: PLC0415  (optional extra: only the report needs it)
    except ImportError as exc:
        raise ExportError(MISSING_MATPLOTLIB) from exc
    # A literal here: newer matplotlib types each rc key, an annotated dict would not do.
    with matplotlib.rc_context(
        {
            "svg.fonttype": "none",  # real text: small, selectable, and the browser's font
            "svg.hashsalt": "lens",  # same results, same bytes
            "text.parse_math": False,  # a '$' in a stage or provider id is text, not TeX
            "font.size": 10,
            "axes.titlesize": 12,
            "axes.titleweight": "bold",
            "axes.labelsize": 10,
            "legend.fontsize": 9,
            "axes.grid": True,
            "grid.alpha": 0.35,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    ):
        yield


def _figure(height_in: float) -> Figure:
    from matplotlib.figure import Figure  # noqa: PLC0415

    return Figure(figsize=(_WIDTH_IN, height_in), layout="constrained")


_ID = re.compile(r'(\sid=")([^"]+)"')
_REF = re.compile(r'(xlink:href="#|url\(#)([^")]+)')


def _svg(fig: Figure, key: str) -> str:
    """The figure as an ``<svg>`` element whose ids cannot clash with another chart's."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata=_NO_METADATA)
    text = buf.getvalue()
    text = text[text.index("<svg") :]  # no XML prolog or DOCTYPE inside HTML
    text = _ID.sub(lambda m: f'{m[1]}{key}-{m[2]}"', text)
    return _REF.sub(lambda m: f"{m[1]}{key}-{m[2]}", text)


def _plain(value: float) -> str:
    return f"{value:g}"


def _log_if_wide(
    ax: Axes, values: Sequence[float], axis: str, label: Callable[[float], str] = _plain
) -> None:
    """Log scale when the positive values span a decade or more."""
    positive = [v for v in values if v > 0]
    if not positive or max(positive) < 10 * min(positive):
        return
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    # Plain numbers ("200", "1000"), and minor labels only at 2x and 5x, which stay apart.
    scale = ax.xaxis if axis == "x" else ax.yaxis
    scale.set_major_formatter(lambda v, _pos: label(v))
    scale.set_minor_formatter(lambda v, _pos: label(v) if f"{v:e}"[0] in "25" else "")


def _shade(color: str, step: int) -> str:
    """The provider's colour, paler for each later stage."""
    from matplotlib.colors import to_hex, to_rgb  # noqa: PLC0415

    mix = min(0.6, 0.2 * step)
    r, g, b = to_rgb(color)
    return to_hex((r + (1 - r) * mix, g + (1 - g) * mix, b + (1 - b) * mix))


def _cdf_chart(results: Results, metric: LatencyMetric, colors: dict[str, str]) -> Chart:
    title = _CDF_TITLES[metric]
    key = f"cdf-{metric}"
    lines = latency_cdfs(results, metric)
    if not lines:
        return Chart(key, title, None, f"no successful request measured {metric.upper()}")
    # Tall enough for one legend line per stage / provider (two columns past _LEGEND_ROWS).
    cols = 1 if len(lines) <= _LEGEND_ROWS else 2
    fig = _figure(max(4.2, 0.2 * math.ceil(len(lines) / cols) + 1.0))
    ax = fig.add_subplot()
    step: dict[str, int] = {}
    for s in lines:
        k = step[s.provider] = step.get(s.provider, -1) + 1
        ax.step(
            s.x,
            s.y,
            where="post",
            label=s.label,
            color=_shade(colors[s.provider], k),
            linestyle=_DASHES[k % len(_DASHES)],
            linewidth=1.8,
        )
    _log_if_wide(ax, [v for s in lines for v in s.x], "x")
    for q in (0.5, 0.95):
        ax.axhline(q, color="0.45", linewidth=0.8, linestyle=(0, (2, 3)))
        ax.annotate(
            f"p{q * 100:.0f}",
            (1.0, q),
            xycoords=("axes fraction", "data"),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
            color="0.35",
        )
    ax.set_ylim(0, 1.02)
    ax.yaxis.set_major_formatter(lambda y, _pos: f"{y:.0%}")
    ax.set_title(f"{title}: cumulative distribution")
    ax.set_xlabel(f"{metric.upper()} (ms{', log scale' if ax.get_xscale() == 'log' else ''})")
    ax.set_ylabel("requests at or below (%)" if metric != "itl" else "token gaps at or below (%)")
    ax.legend(title="stage / provider", loc="upper left", bbox_to_anchor=(1.04, 1.0), ncols=cols)
    note = (
        "One line per stage / provider: read across at p50 and p95. Successful requests only."
        if metric != "itl"
        else "Every gap between output tokens (a chunk of k tokens after a gap g counts as k "
        "gaps of g/k). One line per stage / provider; successful requests only."
    )
    return Chart(key, title, _svg(fig, key), note)


def _mark_stages(axes: Sequence[Axes], marks: Sequence[StageMark], x_max: float) -> None:
    """Shade every other stage window, and name each above the top panel where it fits."""
    for ax in axes:
        ax.set_xlim(0, x_max)
        for i, m in enumerate(marks):
            if i % 2 == 0:
                ax.axvspan(m.start_s, m.end_s, color="0.92", zorder=0, linewidth=0)
            ax.axvline(m.start_s, color="0.55", linewidth=0.8, linestyle="--", zorder=1)
    top = axes[0]
    width_pt = _WIDTH_IN * 72 * 0.8  # about the plotting width, legend and labels aside
    for m in marks:
        span_pt = (m.end_s - m.start_s) / x_max * width_pt
        if span_pt < 6 * max(len(m.stage), len(m.provider)):
            continue  # too narrow to name without overprinting a neighbour; still shaded
        top.text(
            (m.start_s + m.end_s) / 2,
            1.02,
            f"{m.stage}\n{m.provider}",
            transform=top.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=8,
            color="0.25",
        )


def _x_max(results: Results, series: Sequence[Series]) -> float:
    ends = [m.end_s for m in stage_marks(results)] + [x for s in series for x in s.x]
    return max(ends, default=1.0) * 1.01 or 1.0


def _latency_time_chart(results: Results, colors: dict[str, str]) -> Chart:
    title = "Latency over time"
    key = "latency-time"
    panels = [
        ("TTFT", latency_over_time(results, "ttft")),
        ("E2E", latency_over_time(results, "e2e")),
    ]
    if not any(series for _, series in panels):
        return Chart(key, title, None, "no successful request to plot")
    fig = _figure(6.2)
    axes = fig.subplots(2, 1, sharex=True)
    x_max = _x_max(results, [s for _, series in panels for s in series])
    for ax, (name, series) in zip(axes, panels, strict=True):
        for s in series:
            ax.scatter(
                s.x,
                s.y,
                s=9,
                alpha=0.65,
                color=colors[s.provider],
                label=s.provider,
                linewidths=0,
                rasterized=len(s.x) > _RASTER_ABOVE,
            )
        _log_if_wide(ax, [v for s in series for v in s.y], "y")
        scale = ", log scale" if ax.get_yscale() == "log" else ""
        ax.set_ylabel(f"{name} (ms{scale})")
    _mark_stages(axes, stage_marks(results), x_max)
    axes[0].set_title("Latency of each request, by when it was sent", pad=36)
    axes[1].set_xlabel("dispatch time since run start (s)")
    fig.legend(
        *axes[0].get_legend_handles_labels(),
        title="provider",
        loc="outside right upper",
        markerscale=2,
    )
    note = "One dot per successful request. Shaded bands and dashed lines mark each stage."
    return Chart(key, title, _svg(fig, key), note)


def _throughput_chart(results: Results, colors: dict[str, str]) -> Chart:
    title = "Throughput over time"
    key = "throughput-time"
    tokens, requests = throughput_over_time(results)
    if not tokens:
        return Chart(key, title, None, "no successful request to plot")
    fig = _figure(5.6)
    axes = fig.subplots(2, 1, sharex=True)
    panels = [("output tokens/s", tokens), ("completed requests/s", requests)]
    for ax, (name, series) in zip(axes, panels, strict=True):
        for s in series:
            ax.step(  # the last bin repeated at its end, or it would draw as no width
                [*s.x, s.x[-1] + BIN_S],
                [*s.y, s.y[-1]],
                where="post",
                color=colors[s.provider],
                label=s.provider,
                linewidth=1.6,
            )
        ax.set_ylabel(name)
        ax.set_ylim(bottom=0)
    _mark_stages(axes, stage_marks(results), _x_max(results, tokens) + BIN_S)
    axes[0].set_title("Successful output, in 1 s bins", pad=36)
    axes[1].set_xlabel("time since run start (s)")
    fig.legend(*axes[0].get_legend_handles_labels(), title="provider", loc="outside right upper")
    note = "Tokens counted when their chunk arrived, requests when they ended."
    return Chart(key, title, _svg(fig, key), note)


def _sweep_chart(sweeps: dict[str, list[SweepPoint]], colors: dict[str, str]) -> Chart:
    title = "Latency against throughput"
    key = "sweep"
    fig = _figure(4.6)
    ax_ttft, ax_e2e = fig.subplots(1, 2)
    panels: list[tuple[Axes, str, str, str, str]] = [
        (ax_ttft, "ttft_p50", "TTFT p50", "-", "o"),
        (ax_ttft, "ttft_p95", "TTFT p95", "--", "s"),
        (ax_e2e, "e2e_p95", "E2E p95", "-", "^"),
    ]
    for ax, field, name, dash, marker in panels:
        for provider, pts in sweeps.items():
            known = [(p.rps, v, p.stage) for p in pts if (v := getattr(p, field)) is not None]
            if not known:
                continue
            ax.plot(
                [k[0] for k in known],
                [k[1] for k in known],
                dash,
                marker=marker,
                color=colors[provider],
                label=f"{provider} {name}",
                linewidth=1.6,
            )
            if field != "ttft_p50":  # one set of stage names per panel is enough
                for x, y, stage in known:
                    ax.annotate(
                        stage,
                        (x, y),
                        xytext=(5, 5),
                        textcoords="offset points",
                        fontsize=8,
                        color="0.25",
                    )
    for ax, name in ((ax_ttft, "TTFT"), (ax_e2e, "E2E")):
        ax.set_title(f"{name} against achieved throughput")
        ax.set_xlabel("achieved throughput (requests/s)")
        ax.set_ylabel(f"{name} (ms)")
        ax.set_ylim(bottom=0)
        ax.margins(x=0.12, y=0.15)
    handles, labels = ax_ttft.get_legend_handles_labels()
    more_handles, more_labels = ax_e2e.get_legend_handles_labels()
    fig.legend(
        handles + more_handles,
        labels + more_labels,
        loc="outside lower center",
        ncols=min(6, len(labels) + len(more_labels)),
    )
    note = (
        "One point per stage, at the throughput it achieved; where latency turns up while "
        "throughput stops growing is the knee: the load the provider can sustain."
    )
    return Chart(key, title, _svg(fig, key), note)


_STEP_PANELS: tuple[tuple[str, str, str, str, int], ...] = (
    # field, legend name, line style, marker, panel
    ("ttft_p50", "TTFT p50", "-", "o", 0),
    ("ttft_p95", "TTFT p95", "--", "s", 0),
    ("e2e_p95", "E2E p95", "-", "^", 1),
)


def _sweep_run_chart(
    key: str, sweep_id: str, runs: Sequence[SweepRun], colors: dict[str, str]
) -> Chart:
    """One sweep: each provider's steps as latency against achieved throughput, with what
    an adaptive sweep found drawn on top (max rate and bracket, stop, auto's bounds)."""
    title = f"Sweep {sweep_id}"
    if not any(st.rps is not None for run in runs for st in run.steps):
        return Chart(key, title, None, "no step had a successful request to plot")
    fig = _figure(4.8)
    axes = fig.subplots(1, 2)
    failed_shown = False
    for n, run in enumerate(runs):
        color = colors[run.provider]
        for field, name, dash, marker, panel in _STEP_PANELS:
            ax = axes[panel]
            known = [
                (st.rps, v, st)
                for st in run.steps
                if st.rps is not None and (v := getattr(st, field)) is not None
            ]
            if not known:
                continue
            ax.plot(
                [k[0] for k in known],
                [k[1] for k in known],
                dash,
                marker=marker,
                color=color,
                label=f"{run.provider} {name}",
                linewidth=1.6,
            )
            if field == "ttft_p50":
                continue  # one set of step labels per panel is enough
            for x, y, st in known:
                ax.annotate(
                    st.label,
                    (x, y),
                    # providers alternate above and below: steps at one rate do not overprint
                    xytext=(5, 5) if n % 2 == 0 else (5, -13),
                    textcoords="offset points",
                    fontsize=8,
                    color=color,
                )
            searched = run.outcome is not None and run.outcome.kind == "find_max_rate"
            fails = [(x, y) for x, y, st in known if searched and st.held is False]
            if fails:
                ax.scatter(
                    [f[0] for f in fails],
                    [f[1] for f in fails],
                    s=150,
                    facecolors="none",
                    edgecolors="#c62828",
                    linewidths=1.4,
                    zorder=3,
                    label=None if failed_shown else "step failed the SLA",
                )
                failed_shown = True
        _mark_sweep_outcome(axes, run, color)
    for ax, name in zip(axes, ("TTFT", "E2E"), strict=True):
        ax.set_title(f"{name} against achieved throughput")
        ax.set_xlabel("achieved throughput (successful requests/s)")
        ax.set_ylabel(f"{name} (ms)")
        ax.set_ylim(bottom=0)
        ax.margins(x=0.12, y=0.15)
    handles, labels = axes[0].get_legend_handles_labels()
    more_handles, more_labels = axes[1].get_legend_handles_labels()
    seen = set(labels)
    for h, lab in zip(more_handles, more_labels, strict=True):
        if lab not in seen:
            handles.append(h)
            labels.append(lab)
            seen.add(lab)
    fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)))
    note = (
        "One point per step (labelled with its rate or concurrency) at the throughput it "
        "achieved: where latency turns up while throughput stops growing is the knee."
    )
    return Chart(key, title, _svg(fig, key), note)


def _mark_sweep_outcome(axes: Sequence[Axes], run: SweepRun, color: str) -> None:
    """What an adaptive sweep found, as vertical lines at throughputs and a shaded bracket."""
    o = run.outcome
    if o is None:
        return
    lines: list[tuple[float, str, Any]] = []
    if o.kind == "find_max_rate":
        best = run.step_at_rate(o.max_rate_per_s)
        if best is not None and best.rps is not None:
            lines.append((best.rps, f"{run.provider}: max rate {best.label}", (0, (4, 2))))
        low, high = o.bracket or (None, None)
        lo_step, hi_step = run.step_at_rate(low), run.step_at_rate(high)
        if lo_step is not None and hi_step is not None and lo_step.rps and hi_step.rps:
            for i, ax in enumerate(axes):
                ax.axvspan(
                    min(lo_step.rps, hi_step.rps),
                    max(lo_step.rps, hi_step.rps),
                    color=color,
                    alpha=0.1,
                    linewidth=0,
                    zorder=0,
                    label=f"{run.provider}: bracket [{lo_step.label}, {hi_step.label})"
                    if i == 0
                    else None,
                )
    elif o.kind == "stop_when":
        stop = next((st for st in run.steps if st.held), None)
        if stop is not None and stop.rps is not None:
            lines.append((stop.rps, f"{run.provider}: stopped at {stop.label}", (0, (1, 2))))
    else:
        if o.sync_rps is not None:
            lines.append((o.sync_rps, f"{run.provider}: synchronous {o.sync_rps:.3g} req/s", ":"))
        if o.saturated_rps is not None:
            lines.append(
                (o.saturated_rps, f"{run.provider}: saturated {o.saturated_rps:.3g} req/s", "-.")
            )
    for x, label, style in lines:
        for i, ax in enumerate(axes):
            ax.axvline(
                x, color=color, linestyle=style, linewidth=1.3, label=label if i == 0 else None
            )


def _cost_chart(costs: Sequence[CostPoint], colors: dict[str, str]) -> Chart:
    title = "Cost"
    key = "cost"
    fig = _figure(max(3.2, 0.45 * len(costs) + 1.6))
    ax_bar, ax_scatter = fig.subplots(1, 2)
    labels = [unit_label(c.stage, c.provider) for c in costs]
    amounts = [c.per_1m_output_usd or Decimal(0) for c in costs]
    bars = ax_bar.barh(
        labels, [float(a) for a in amounts], color=[colors[c.provider] for c in costs]
    )
    ax_bar.bar_label(bars, labels=[usd(a) for a in amounts], padding=3, fontsize=8)
    ax_bar.invert_yaxis()
    ax_bar.margins(x=0.2)
    ax_bar.set_title("Cost per 1M output tokens")
    ax_bar.set_xlabel("USD per 1M output tokens")
    # Close points would overprint text labels: the colour names the provider, the marker
    # the stage, and one legend says which is which.
    stages = list(dict.fromkeys(c.stage for c in costs))
    points = [
        (c, c.ttft_p95, float(c.per_request_usd))
        for c in costs
        if c.ttft_p95 is not None and c.per_request_usd is not None
    ]
    for c, ttft, per_request in points:
        ax_scatter.scatter(
            [ttft],
            [per_request],
            s=55,
            color=colors[c.provider],
            marker=_MARKERS[stages.index(c.stage) % len(_MARKERS)],
            label=unit_label(c.stage, c.provider),
        )
    _log_if_wide(ax_scatter, [p for _, _, p in points], "y", lambda v: usd(Decimal(f"{v:.3g}")))
    if points:
        ax_scatter.legend(title="stage / provider", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    ax_scatter.set_title("Cost per request against TTFT p95")
    ax_scatter.set_xlabel("TTFT p95 (ms)")
    ax_scatter.set_ylabel("USD per request")
    ax_scatter.margins(x=0.15, y=0.15)
    note = "Only stages whose provider has a known price are shown."
    return Chart(key, title, _svg(fig, key), note)

"""The report's charts: matplotlib figures rendered to inline SVG.

matplotlib is the optional extra ``llm-latency-lens[report]``, imported only when a report
is drawn, so the rest of lens never pays for it.  Figures are built with ``Figure`` directly (no
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
from typing import TYPE_CHECKING, Any, Literal

from lens.errors import ExportError
from lens.export.report.series import (
    BIN_S,
    CostPoint,
    LatencyMetric,
    Series,
    StageMark,
    StagePoint,
    SweepRun,
    cost_points,
    latency_cdfs,
    latency_over_time,
    lone_stages,
    providers,
    stage_marks,
    sweep_runs,
    throughput_over_time,
    unit_label,
    usd,
)
from lens.export.results import Results
from lens.export.servermetrics import labels_text

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.backend_bases import RendererBase
    from matplotlib.figure import Figure
    from matplotlib.text import Annotation
    from matplotlib.transforms import Bbox

MISSING_MATPLOTLIB = "the HTML report needs matplotlib: pip install 'llm-latency-lens[report]'"

_NO_METADATA: dict[str, Any] = {"Date": None, "Creator": None, "Format": None, "Type": None}
# Okabe and Ito's qualitative palette, told apart with colour-blindness too (its yellow left
# out: unreadable on white), then tab10's other hues.  Past these, lines repeat a colour
# with another dash.
_PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#000000",
    "#8c564b",
    "#7f7f7f",
    "#bcbd22",
)
_DASHES = ("-", "--", ":", "-.")
# Where a CDF line is named, in order of preference: near its median, else up or down it.
_LABEL_QUANTILES = (0.5, 0.62, 0.38, 0.74, 0.26, 0.86, 0.14, 0.95, 0.05)
_LABEL_FONT = 8
_LABEL_GAP_PX = 3.0  # the least room between two labels drawn by lens
_STAGE_ROW_PT = 11.0  # one line of a stage label above the over-time charts
_MARKER_PT = 4.0  # half a marker's width (points): where a label may not cover it
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
        charts = [_cdf_chart(results, metric) for metric in ("ttft", "itl", "e2e")]
        charts += [_latency_time_chart(results, colors), _throughput_chart(results, colors)]
        for i, (sweep_id, runs) in enumerate(sweep_runs(results).items()):
            charts.append(_sweep_run_chart(f"sweep-{i}", sweep_id, runs, colors))
        lone = lone_stages(results)
        if lone:
            charts.append(_lone_stage_chart(lone, colors))
        costs = [c for c in cost_points(results.summaries) if c.per_1m_output_usd is not None]
        if costs:
            charts.append(_cost_chart(costs, colors))
        charts += _server_gauge_charts(results)
        return charts


# At most this many server-gauge charts (one per provider x gauge); a vLLM endpoint has
# dozens of families, and the page names the ones left out.
MAX_SERVER_GAUGE_CHARTS = 24


def server_gauge_keys(results: Results) -> list[tuple[str, str, str]]:
    """(chart key, provider, gauge name) of each server-gauge chart, in page order."""
    out: list[tuple[str, str, str]] = []
    for sm in results.server_metrics:
        for name in dict.fromkeys(g.name for g in sm.gauges):
            out.append((f"server-gauge-{len(out)}", sm.provider, name))
    return out[:MAX_SERVER_GAUGE_CHARTS]


def _server_gauge_charts(results: Results) -> list[Chart]:
    """One chart per engine gauge (server_metrics) over the run, a line per label set,
    the provider's stage windows marked."""
    charts = []
    by_provider = {sm.provider: sm for sm in results.server_metrics}
    for key, provider, name in server_gauge_keys(results):
        series = [g for g in by_provider[provider].gauges if g.name == name]
        title = f"{name} ({provider})"
        fig = _figure(3.4)
        ax = fig.subplots(1, 1)
        for i, g in enumerate(series):
            color, dash = _line_style(i)
            label = labels_text(g.labels) or name
            xs = [t / 1000 for t, _ in g.points]
            ax.step(
                xs,
                [v for _, v in g.points],
                where="post",
                color=color,
                linestyle=dash,
                linewidth=1.4,
                label=label,
                marker="o",
                markersize=2.5,
            )
        ax.set_ylabel(name if len(name) <= 32 else "value")
        ax.set_xlabel("time since run start (s)")
        if all(v >= 0 for g in series for _, v in g.points):
            _from_zero(ax, 0.1)
        if len(series) > 1:
            fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=7)
        marks = [m for m in stage_marks(results) if m.provider == provider]
        x_max = (
            max(
                [m.end_s for m in marks] + [t / 1000 for g in series for t, _ in g.points],
                default=1.0,
            )
            * 1.01
            or 1.0
        )
        _name_stages(fig, [ax], marks, x_max, f"{name}, as {provider}'s server reported it")
        note = (
            f"Scraped from {by_provider[provider].url} every "
            f"{by_provider[provider].every_s:g}s while a stage ran, and before and after each; "
            "a dot per scrape. Shaded bands and dashed lines mark the stages."
        )
        charts.append(Chart(key, title, _svg(fig, key), note))
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
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    fig = Figure(figsize=(_WIDTH_IN, height_in), layout="constrained")
    FigureCanvasAgg(fig)  # a renderer to measure labels with (see _renderer); SVG all the same
    return fig


def _renderer(fig: Figure) -> RendererBase:
    """The figure laid out as it will be saved, and the renderer that measured it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415

    fig.draw_without_rendering()
    canvas = fig.canvas
    assert isinstance(canvas, FigureCanvasAgg)
    renderer: RendererBase = canvas.get_renderer()  # type: ignore[no-untyped-call]
    return renderer


def _text_box(label: Annotation, renderer: RendererBase) -> Bbox:
    """Where a label's text lies on the figure (pixels), its connector left out."""
    from matplotlib.text import Text  # noqa: PLC0415
    from matplotlib.transforms import Bbox  # noqa: PLC0415

    label.update_positions(renderer)
    box = Text.get_window_extent(label, renderer)
    # The page draws the text in the browser's font, whose metrics differ from matplotlib's
    # by a few per cent: room in proportion to the text, so that placed names stay apart
    # in the browser too (a fixed gap alone let two names touch there on a loaded CI run).
    dx = _LABEL_GAP_PX / 2 + 0.04 * box.width
    dy = _LABEL_GAP_PX / 2 + 0.1 * box.height
    return Bbox.from_extents(box.x0 - dx, box.y0 - dy, box.x1 + dx, box.y1 + dy)


# A place to try for a label: the point it names, the text's offset from it (points), and
# the text's horizontal and vertical alignment.
_Spot = tuple[
    tuple[float, float],
    tuple[float, float],
    Literal["left", "center", "right"],
    Literal["bottom", "center", "top"],
]


def _place_labels(
    fig: Figure,
    labels: Sequence[tuple[Annotation, Sequence[_Spot]]],
    within: Bbox | None,
    markers: Sequence[tuple[Axes, float, float]] = (),
) -> bool:
    """Each label at the first of its spots where it covers no label placed before it and
    no marker (axes, x, y in data), and lies ``within`` the box (pixels; None: anywhere);
    a label no spot suits stays at its first.  True when every label found a spot."""
    from matplotlib.transforms import Bbox  # noqa: PLC0415

    renderer = _renderer(fig)
    reach = _MARKER_PT * fig.dpi / 72
    taken = [
        Bbox.from_extents(px - reach, py - reach, px + reach, py + reach)
        for ax, x, y in markers
        for px, py in [ax.transData.transform((x, y))]
    ]
    every = True
    for label, spots in labels:
        for xy, offset, ha, va in [*spots, spots[0]]:
            label.xy = xy
            label.set_position(offset)
            label.set_horizontalalignment(ha)
            label.set_verticalalignment(va)
            box = _text_box(label, renderer)
            inside = within is None or (
                box.x0 >= within.x0
                and box.x1 <= within.x1
                and box.y0 >= within.y0
                and box.y1 <= within.y1
            )
            if inside and not any(box.overlaps(t) for t in taken):
                break
        else:  # no spot suited: back at the first, the last one tried
            every = False
        taken.append(box)
    return every


def _from_zero(ax: Axes, headroom: float = 0.18) -> None:
    """The y axis from 0 to above the highest point, with room there for its name."""
    top = ax.dataLim.y1
    if math.isfinite(top) and top > 0:
        ax.set_ylim(0, top * (1 + headroom))
    else:
        ax.set_ylim(bottom=0)


def _point_spots(xy: tuple[float, float], far: bool = False) -> list[_Spot]:
    """Around a marker: up right first, then below, then to its left; ``far``: then
    further up and down, for a label tied to its marker by a leader line."""
    spots: list[_Spot] = [
        (xy, (6, 4), "left", "bottom"),
        (xy, (6, -4), "left", "top"),
        (xy, (-6, 4), "right", "bottom"),
        (xy, (-6, -4), "right", "top"),
        (xy, (0, 8), "center", "bottom"),
        (xy, (0, -8), "center", "top"),
    ]
    for rise in (16, 28, 40, 52) if far else (14,):
        spots += [
            (xy, (8, rise), "left", "bottom"),
            (xy, (8, -rise), "left", "top"),
            (xy, (-8, rise), "right", "bottom"),
            (xy, (-8, -rise), "right", "top"),
        ]
    return spots


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


def _line_style(i: int) -> tuple[str, str]:
    """The ``i``-th series' colour, and a dash once the palette has gone round."""
    n = len(_PALETTE)
    return _PALETTE[i % n], _DASHES[(i // n) % len(_DASHES)]


def _quantile_x(s: Series, q: float) -> float:
    """The line's value at cumulative fraction ``q`` (its first point at or above it)."""
    return next((x for x, y in zip(s.x, s.y, strict=True) if y >= q), s.x[-1])


def _cdf_chart(results: Results, metric: LatencyMetric) -> Chart:
    title = _CDF_TITLES[metric]
    key = f"cdf-{metric}"
    lines = latency_cdfs(results, metric)
    if not lines:
        return Chart(key, title, None, f"no successful request measured {metric.upper()}")
    one_provider = len({s.provider for s in lines}) == 1
    names = [s.stage if one_provider and s.stage is not None else s.label for s in lines]
    # Tall enough for one legend line per series, should the lines not name themselves.
    cols = 1 if len(lines) <= _LEGEND_ROWS else 2
    fig = _figure(max(4.2, 0.2 * math.ceil(len(lines) / cols) + 1.0))
    ax = fig.add_subplot()
    colors = []
    for i, (s, name) in enumerate(zip(lines, names, strict=True)):
        color, dash = _line_style(i)
        colors.append(color)
        ax.step(s.x, s.y, where="post", label=name, color=color, linestyle=dash, linewidth=1.8)
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
    legend_title = "stage" if one_provider else "stage / provider"
    if not _name_lines(fig, ax, lines, names, colors, key):
        ax.legend(title=legend_title, loc="upper left", bbox_to_anchor=(1.04, 1.0), ncols=cols)
    unit = "stage" if one_provider else "stage / provider"
    note = (
        f"One line per {unit}, named in its colour: read across at p50 and p95. Successful "
        "requests only."
        if metric != "itl"
        else "Every gap between output tokens (a chunk of k tokens after a gap g counts as k "
        f"gaps of g/k). One line per {unit}, named in its colour; successful requests only."
    )
    return Chart(key, title, _svg(fig, key), note)


def _name_lines(
    fig: Figure,
    ax: Axes,
    lines: Sequence[Series],
    names: Sequence[str],
    colors: Sequence[str],
    key: str,
) -> bool:
    """Each CDF line's name beside it, in its colour, where no other name is: near its
    median, else further up or down.  False (and no names drawn) when some line has no
    free spot: the caller draws a legend instead."""
    labels = []
    for i, (s, name, color) in enumerate(zip(lines, names, colors, strict=True)):
        spots: list[_Spot] = [
            ((_quantile_x(s, q), q), (5, 0), "left", "center") for q in _LABEL_QUANTILES
        ]
        label = ax.annotate(
            name,
            spots[0][0],
            xytext=spots[0][1],
            textcoords="offset points",
            fontsize=_LABEL_FONT,
            color=color,
            fontweight="bold",
            bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "alpha": 0.8, "lw": 0},
            gid=f"line-name-{i}",
        )
        labels.append((label, spots))
    if _place_labels(fig, labels, ax.get_window_extent()):
        for (label, _), color in zip(labels, colors, strict=True):
            x, y = label.xy  # a dot where the name points: on which line, among close ones
            ax.plot([x], [y], "o", markersize=3.5, color=color, zorder=4)
        return True
    for label, _ in labels:
        label.remove()
    return False


def _mark_stages(
    fig: Figure, axes: Sequence[Axes], marks: Sequence[StageMark], x_max: float
) -> int:
    """Shade every other stage window, and name every one above the top panel: each name
    over its window (tied to it by a tick), in the lowest row where it overprints no other.
    Returns the rows used."""
    for ax in axes:
        ax.set_xlim(0, x_max)
        for i, m in enumerate(marks):
            if i % 2 == 0:
                ax.axvspan(m.start_s, m.end_s, color="0.92", zorder=0, linewidth=0)
            ax.axvline(m.start_s, color="0.55", linewidth=0.8, linestyle="--", zorder=1)
    if not marks:
        return 0
    top = axes[0]
    one_provider = len({m.provider for m in marks}) == 1
    labels = [
        top.annotate(
            m.stage if one_provider else f"{m.stage} / {m.provider}",
            ((m.start_s + m.end_s) / 2, 1.0),
            xycoords=top.get_xaxis_transform(),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=_LABEL_FONT,
            color="0.2",
            annotation_clip=False,
            arrowprops={
                "arrowstyle": "-",
                "color": "0.6",
                "linewidth": 0.6,
                "shrinkA": 0,
                "shrinkB": 0,
            },
            gid=f"stage-name-{i}",
        )
        for i, m in enumerate(marks)
    ]
    renderer = _renderer(fig)
    frame = top.get_window_extent()
    px_per_pt = fig.dpi / 72
    rows: list[list[tuple[Bbox, float]]] = []  # per row: each name's box, its tick's x
    for label in labels:
        box = _text_box(label, renderer)
        tick = (box.x0 + box.x1) / 2  # the window's middle, where the tick meets the chart
        # A name wider than the room left of (or right of) its window stays on the chart.
        shift = max(0.0, frame.x0 - box.x0) - max(0.0, box.x1 - frame.x1)
        box = box.translated(shift, 0)
        row = _stage_row(rows, box, tick)
        if row == len(rows):
            rows.append([])
        rows[row].append((box, tick))
        label.set_position((shift / px_per_pt, 3 + row * _STAGE_ROW_PT))
    return len(rows)


def _stage_row(rows: Sequence[Sequence[tuple[Bbox, float]]], box: Bbox, tick: float) -> int:
    """The lowest row where a name (``box``) overprints no other name, and where neither its
    tick crosses a name below it nor it lies across the tick of a name above; failing the
    ticks, the lowest free row."""

    def free(r: int) -> bool:
        return r == len(rows) or not any(box.x0 < b.x1 and b.x0 < box.x1 for b, _ in rows[r])

    def clear(r: int) -> bool:
        under = any(b.x0 <= tick <= b.x1 for row in rows[:r] for b, _ in row)
        over = any(box.x0 <= t <= box.x1 for row in rows[r + 1 :] for _, t in row)
        return not under and not over

    candidates = [r for r in range(len(rows) + 1) if free(r)]  # the last is a new row
    return next((r for r in candidates if clear(r)), candidates[0])


def _name_stages(
    fig: Figure, axes: Sequence[Axes], marks: Sequence[StageMark], x_max: float, title: str
) -> None:
    """Stage windows marked and named, the title above their names, the figure taller by
    the rows of names it took."""
    rows = _mark_stages(fig, axes, marks, x_max)
    axes[0].set_title(title, pad=8 + rows * _STAGE_ROW_PT)
    fig.set_figheight(fig.get_figheight() + rows * _STAGE_ROW_PT / 72)


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
    axes[1].set_xlabel("dispatch time since run start (s)")
    fig.legend(
        *axes[0].get_legend_handles_labels(),
        title="provider",
        loc="outside right upper",
        markerscale=2,
    )
    _name_stages(
        fig, axes, stage_marks(results), x_max, "Latency of each request, by when it was sent"
    )
    note = (
        "One dot per successful request. Shaded bands and dashed lines mark each stage, "
        "named above the chart with a tick at its window."
    )
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
    axes[1].set_xlabel("time since run start (s)")
    fig.legend(*axes[0].get_legend_handles_labels(), title="provider", loc="outside right upper")
    x_max = _x_max(results, tokens) + BIN_S
    _name_stages(fig, axes, stage_marks(results), x_max, "Successful output, in 1 s bins")
    note = (
        "Tokens counted when their chunk arrived, requests when they ended. Each stage is "
        "named above the chart with a tick at its window."
    )
    return Chart(key, title, _svg(fig, key), note)


def _lone_stage_chart(stages: dict[str, list[StagePoint]], colors: dict[str, str]) -> Chart:
    """Stages that are no series (a burst, an idle probe, a constant rate): each a point of
    its own at the throughput it achieved, named in its provider's colour, and never joined
    to another."""
    title = "Latency against throughput, stage by stage"
    key = "stages"
    fig = _figure(4.8)
    ax_ttft, ax_e2e = fig.subplots(1, 2)
    panels: list[tuple[Axes, str, str, str]] = [
        (ax_ttft, "ttft_p50", "TTFT p50", "o"),
        (ax_ttft, "ttft_p95", "TTFT p95", "s"),
        (ax_e2e, "e2e_p95", "E2E p95", "^"),
    ]
    names: dict[Axes, list[tuple[Annotation, Sequence[_Spot]]]] = {ax_ttft: [], ax_e2e: []}
    markers: list[tuple[Axes, float, float]] = []
    for ax, field, name, marker in panels:
        for provider, pts in stages.items():
            known = [(p.rps, v, p) for p in pts if (v := getattr(p, field)) is not None]
            if not known:
                continue
            ax.scatter(
                [k[0] for k in known],
                [k[1] for k in known],
                marker=marker,
                s=36,
                color=colors[provider],
                facecolors="none" if field == "ttft_p50" else colors[provider],
                label=f"{provider} {name}",
                zorder=3,
            )
            markers += [(ax, x, y) for x, y, _ in known]
            if field == "ttft_p50":
                continue  # one name per stage and panel, by its p95
            for x, y, point in known:
                spots = _point_spots((x, y), far=True)
                text = ax.annotate(
                    point.stage if point.pattern is None else f"{point.stage} ({point.pattern})",
                    spots[0][0],
                    xytext=spots[0][1],
                    textcoords="offset points",
                    fontsize=_LABEL_FONT,
                    color=colors[provider],
                    arrowprops={
                        "arrowstyle": "-",
                        "color": colors[provider],
                        "linewidth": 0.6,
                        "shrinkA": 1,
                        "shrinkB": 4,
                    },
                    gid=f"point-name-{field}-{len(names[ax])}",
                )
                names[ax].append((text, spots))
    for ax, name in ((ax_ttft, "TTFT"), (ax_e2e, "E2E")):
        ax.set_title(f"{name} of each stage against its throughput")
        ax.set_xlabel("achieved throughput (successful requests/s)")
        ax.set_ylabel(f"{name} (ms)")
        ax.margins(x=0.2)
        _from_zero(ax, headroom=0.3)
    handles, labels = ax_ttft.get_legend_handles_labels()
    more_handles, more_labels = ax_e2e.get_legend_handles_labels()
    fig.legend(
        handles + more_handles,
        labels + more_labels,
        loc="outside lower center",
        ncols=3,
    )
    for ax, placed in names.items():
        _place_labels(fig, placed, ax.get_window_extent(), markers)
    note = (
        "One point per stage that is no step of a sweep (a burst, an idle probe, a "
        "constant-rate or closed-loop stage), at the throughput it achieved, named in its "
        "provider's colour. They are no series: nothing joins them, and no knee can be read "
        "from them; a sweep's steps are charted above."
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
    names: list[list[tuple[Annotation, Sequence[_Spot]]]] = [[], []]
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
                spots = _point_spots((x, y))
                if n % 2:  # providers alternate above and below: fewer moves to make
                    spots = spots[1::2] + spots[::2]
                text = ax.annotate(
                    st.label,
                    spots[0][0],
                    xytext=spots[0][1],
                    textcoords="offset points",
                    fontsize=_LABEL_FONT,
                    color=color,
                    gid=f"step-name-{panel}-{len(names[panel])}",
                )
                names[panel].append((text, spots))
            fails = [(x, y) for x, y, st in known if run.searched and st.held is False]
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
        ax.margins(x=0.12)
        _from_zero(ax)
    handles, labels = axes[0].get_legend_handles_labels()
    more_handles, more_labels = axes[1].get_legend_handles_labels()
    seen = set(labels)
    for h, lab in zip(more_handles, more_labels, strict=True):
        if lab not in seen:
            handles.append(h)
            labels.append(lab)
            seen.add(lab)
    fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)))
    steps = [  # the steps' markers (the max rate and other vertical lines aside)
        (ax, float(line_x), float(line_y))
        for ax in axes
        for line in ax.get_lines()
        if line.get_transform() is ax.transData
        for line_x, line_y in line.get_xydata()
    ]
    for ax, placed in zip(axes, names, strict=True):
        _place_labels(fig, placed, ax.get_window_extent(), steps)
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
    if run.searched:
        rates = o.kind == "find_max_rate"
        best = run.step_at_load(o.max_rate_per_s if rates else o.max_concurrency)
        if best is not None and best.rps is not None:
            what = "max rate" if rates else "max concurrency"
            lines.append((best.rps, f"{run.provider}: {what} {best.label}", (0, (4, 2))))
        low, high = o.bracket or (None, None)
        lo_step, hi_step = run.step_at_load(low), run.step_at_load(high)
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

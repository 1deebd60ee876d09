"""The report's charts and tables read at a glance: what joins points, what names series and
stage windows, what a sweep step's SLAs made of it, and measured values in their unit.

The figures are caught on their way to SVG (``charts._svg``), so the tests look at what was
drawn (lines, texts, colours, where each text lies) rather than at SVG markup.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from lens.export.report import charts, render_html
from lens.export.report.sections import sweep_words
from lens.export.report.series import sweep_runs
from lens.export.results import (
    Results,
    SweepOut,
    SweepStepOut,
    load_results,
    write_results,
)
from lens.metrics.judge import Verdict
from lens.metrics.sweep_outcomes import SweepProbe
from lens.records import RequestRecord
from tests.export._report_results import make_results
from tests.metrics._factory import ns, record

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.text import Annotation
    from matplotlib.transforms import Bbox


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Figure]]:
    """Every figure the next render draws, by chart key, laid out as it would be saved."""
    drawn: dict[str, Figure] = {}

    def keep(fig: Figure, key: str) -> str:
        fig.draw_without_rendering()
        drawn[key] = fig
        return f"<svg><!-- {key} --></svg>"

    monkeypatch.setattr(charts, "_svg", keep)
    yield drawn
    drawn.clear()


def at(
    stage: str, start_ms: float, *, provider: str = "a", index: int = 0, ttft_ms: float = 200
) -> RequestRecord:
    """A successful 4-token request of ``stage`` sent at ``start_ms``: the factory's
    record moved in time, its first token ``ttft_ms`` after it was sent."""
    t0, first = start_ms, start_ms + ttft_ms
    return record(
        provider=provider,
        stage=stage,
        index=index,
        t_dispatch=ns(t0),
        t_headers=ns(t0 + 50),
        t_first_chunk=ns(first),
        t_first_token=ns(first),
        t_first_visible=ns(first),
        chunk_times=tuple(ns(first + 10 * k) for k in range(4)),
        t_last_token=ns(first + 30),
        t_end=ns(first + 40),
    )


def named(fig: Figure, kind: str) -> list[Annotation]:
    """The names lens placed on a chart (``gid`` ``<kind>-name-...``), every axes."""
    from matplotlib.text import Annotation  # noqa: PLC0415

    return [
        t
        for ax in fig.axes
        for t in ax.texts
        if isinstance(t, Annotation)
        and (t.get_gid() or "").startswith(f"{kind}-name-")
        and t.get_visible()
    ]


def box(label: Annotation) -> Bbox:
    """Where the label's text lies (pixels), as laid out when the figure was saved."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.text import Text  # noqa: PLC0415

    canvas = label.get_figure(root=True).canvas  # type: ignore[union-attr]
    assert isinstance(canvas, FigureCanvasAgg)
    renderer = canvas.get_renderer()  # type: ignore[no-untyped-call]
    label.update_positions(renderer)
    return Text.get_window_extent(label, renderer)


def assert_apart(labels: list[Annotation]) -> None:
    for a, b in itertools.combinations(labels, 2):
        assert not box(a).overlaps(box(b)), (a.get_text(), b.get_text())


# A run of seven stages one after another, some of them a sliver of its 20 s.
TIMELINE = [
    ("warm", 0.0),
    ("conc.c1", 300.0),
    ("conc.c2", 9_000.0),
    ("conc.c4", 9_300.0),
    ("conc.c8", 9_600.0),
    ("idle", 9_900.0),
    ("steady", 10_200.0),
]


def timeline(tmp_path: Path) -> Results:
    records = [at(stage, start, index=0) for stage, start in TIMELINE]
    records += [at("conc.c1", 8_700.0, index=1), at("steady", 19_700.0, index=1)]
    return make_results(tmp_path, records)


@pytest.mark.parametrize("key", ["latency-time", "throughput-time"])
def test_every_stage_window_is_named_and_no_name_overprints_another(
    tmp_path: Path, figures: dict[str, Figure], key: str
) -> None:
    render_html(timeline(tmp_path))
    fig = figures[key]
    names = named(fig, "stage")
    assert sorted(t.get_text() for t in names) == sorted(stage for stage, _ in TIMELINE)
    assert_apart(names)
    frame = fig.bbox
    for t in names:  # on the figure, not cut off at an edge
        assert frame.x0 <= box(t).x0
        assert box(t).x1 <= frame.x1
    # the five slivers in the middle cannot share one row: the names are staggered
    rows = {round(t.get_position()[1]) for t in names}
    assert len(rows) >= 2


def test_stage_windows_of_several_providers_name_both(
    tmp_path: Path, figures: dict[str, Figure]
) -> None:
    records = [at("s1", 0.0, provider="a"), at("s1", 400.0, provider="b")]
    render_html(make_results(tmp_path, records))
    names = named(figures["latency-time"], "stage")
    assert sorted(t.get_text() for t in names) == ["s1 / a", "s1 / b"]


def seven_stages(tmp_path: Path) -> Results:
    """Seven stages of one provider, each with its own latency: seven CDF lines."""
    records = [
        at(stage, start + 10 * i, index=i, ttft_ms=100 + 60 * k + 7 * i)
        for k, (stage, start) in enumerate(TIMELINE)
        for i in range(5)
    ]
    return make_results(tmp_path, records)


@pytest.mark.parametrize("key", ["cdf-ttft", "cdf-e2e"])
def test_cdf_lines_have_their_own_colours_and_names(
    tmp_path: Path, figures: dict[str, Figure], key: str
) -> None:
    render_html(seven_stages(tmp_path))
    fig = figures[key]
    (ax,) = fig.axes
    lines = {label: ln for ln in ax.get_lines() if (label := str(ln.get_label()))[0] != "_"}
    assert sorted(lines) == sorted(stage for stage, _ in TIMELINE)
    colors = {ln.get_color() for ln in lines.values()}
    assert len(colors) == 7  # seven hues, not one blue in seven dash styles
    assert {ln.get_linestyle() for ln in lines.values()} == {"-"}
    names = named(fig, "line")
    assert sorted(t.get_text() for t in names) == sorted(lines)
    for t in names:  # each name in its line's colour, beside it, inside the plot
        assert t.get_color() == lines[t.get_text()].get_color()
        assert ax.get_window_extent().contains(*box(t).p0)
    assert_apart(names)
    assert ax.get_legend() is None  # named in place: no legend to look up


def test_cdf_lines_crowded_past_naming_get_a_legend(
    tmp_path: Path, figures: dict[str, Figure]
) -> None:
    # 12 stages with the very same latencies: no room to name each line beside it
    records = [at(f"stage-{k:02}", 300.0 * k, index=k) for k in range(12)]
    render_html(make_results(tmp_path, records))
    (ax,) = figures["cdf-ttft"].axes
    assert named(figures["cdf-ttft"], "line") == []
    legend = ax.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == [f"stage-{k:02}" for k in range(12)]
    lines = [ln for ln in ax.get_lines() if str(ln.get_label())[0] != "_"]
    # ten hues, then the palette again with a dash: still no two lines alike
    assert len({ln.get_color() for ln in lines}) == 10
    assert len({(ln.get_color(), ln.get_linestyle()) for ln in lines}) == 12


def as_fixed_sweep(results: Results, stages: set[str]) -> Results:
    """``stages``, in order, made into the steps c1, c2, ... of a fixed sweep ``s``."""
    steps = [w for w in results.stages if w.stage in stages]
    windows = [
        w.model_copy(
            update={
                "sweep": SweepStepOut(
                    sweep="s",
                    step=steps.index(w),
                    steps=len(steps),
                    rate_per_s=None,
                    concurrency=2 ** steps.index(w),
                )
            }
        )
        if w in steps
        else w
        for w in results.stages
    ]
    return results.model_copy(update={"stages": tuple(windows)})


def lone_and_swept(tmp_path: Path) -> Results:
    """Provider a: bursts s1 and s2 on their own, and a fixed sweep of t1, t2."""
    records = [
        at("s1", 0.0),
        at("s1", 20.0, index=1),
        at("s2", 1_000.0, ttft_ms=400),
        at("t1", 2_000.0),
        at("t2", 3_000.0, ttft_ms=300),
    ]
    return as_fixed_sweep(make_results(tmp_path, records), {"t1", "t2"})


def test_stages_that_are_no_series_are_points_never_joined(
    tmp_path: Path, figures: dict[str, Figure]
) -> None:
    html = render_html(lone_and_swept(tmp_path))
    lone = figures["stages"]
    assert all(ax.get_lines() == [] for ax in lone.axes)  # scattered points, no line
    assert sorted(t.get_text() for t in named(lone, "point")) == [
        "s1 (burst)",  # the plan's pattern, so a reader knows what the point was
        "s1 (burst)",
        "s2 (burst)",
        "s2 (burst)",
    ]
    # the sweep's steps are a series: joined, and read for a knee
    swept = figures["sweep-0"]
    assert any(ax.get_lines() for ax in swept.axes)
    plain = html[html.index("<h3>Stages that are not sweep steps</h3>") :]
    assert "the knee" not in plain
    assert "nothing joins them" in plain
    assert "is the knee" in html[: html.index("<h3>Stages that are not sweep steps</h3>")]


def test_a_sweep_step_that_failed_its_sla_says_so(tmp_path: Path) -> None:
    # t2's first tokens come after 1.5 s: the scenario's ttft.p50 < 1s fails on that step
    records = [at("t1", 0.0), at("t1", 10.0, index=1)]
    records += [at("t2", 1_000.0, ttft_ms=1_500), at("t2", 1_010.0, index=1, ttft_ms=1_500)]
    path = tmp_path / "results.json"
    write_results(as_fixed_sweep(make_results(tmp_path, records), {"t1", "t2"}), path)
    results = load_results(path)
    (failing,) = [v for v in results.verdicts if v.outcome == "fail"]
    assert failing.stage == "t2"
    html = render_html(results)
    grid = html[html.index("<h3>Sweep s</h3>") :]
    assert "<th>sweep decision</th>" not in grid  # a fixed sweep decides nothing itself
    assert '<tr class="pass"><td class="text">a</td><td class="text">t1</td><td>c1</td>' in grid
    assert '<td class="text">pass</td><td class="text">pass: ttft.p50 &lt; 1s</td>' in grid
    assert '<tr class="fail"><td class="text">a</td><td class="text">t2</td><td>c2</td>' in grid
    assert f'<td class="text">fail</td><td class="text">fail: {escape(failing.reason)}</td>' in grid
    assert "1500 ms" in failing.reason or "1.5 s" in failing.reason


def test_sweep_steps_without_an_sla_say_so(tmp_path: Path) -> None:
    results = lone_and_swept(tmp_path).model_copy(update={"verdicts": []})
    grid = render_html(results)
    grid = grid[grid.index("<h3>Sweep s</h3>") :]
    assert grid.count('<td class="text">no SLA</td><td class="text"></td>') == 2


def verdict(label: str, sla: str, value: float, reason: str) -> Verdict:
    return Verdict(
        sla=sla,
        label=label,
        op="<",
        threshold=0.0,
        provider="a",
        stage="s1",
        outcome="fail",
        value=value,
        n=5,
        reason=reason,
        exact=True,
        where="s.yaml:9:5",
    )


def test_sla_table_shows_measured_values_in_the_assertions_unit(tmp_path: Path) -> None:
    results = make_results(tmp_path, [at("s1", 0.0)])
    verdicts = [
        verdict("error_rate", "error_rate < 10%", 0.2, "error_rate = 20%, not < 10%"),
        verdict("cost.mean", "cost.mean < $0.00001", 0.0000274, "cost.mean = $0.0000274"),
        verdict("ttft.p95", "ttft.p95 < 100ms", 159.326, "ttft.p95 = 159.326 ms"),
    ]
    html = render_html(results.model_copy(update={"verdicts": verdicts}))
    grid = html[html.index("<h2>SLA verdicts</h2>") : html.index("<h2>Errors by class</h2>")]
    assert '<td class="text">provider=a stage=s1</td><td>20%</td><td>5</td>' in grid
    assert "<td>$0.0000274</td>" in grid
    assert "<td>159.326 ms</td>" in grid
    assert "<td>0.20</td>" not in grid
    assert "<td>0.00</td>" not in grid


def searched(results: Results, **found: object) -> Results:
    """``results`` (its sweep s over c1, c2) as a find_max_concurrency that passed c1 and
    failed c2, with ``found`` as its answer."""
    probes = [
        SweepProbe(
            stage=w.stage,
            rate_per_s=None,
            concurrency=w.sweep.concurrency,
            held=w.sweep.concurrency == 1,
            rps=None,
            detail=f"ttft.p95 at c{w.sweep.concurrency}",
        )
        for w in results.stages
        if w.sweep is not None
    ]
    outcome = SweepOut.model_validate(
        {
            "id": "s",
            "provider": "a",
            "kind": "find_max_concurrency",
            "reason": "r",
            "probes": probes,
            "not_run": [],
            **found,
        }
    )
    return results.model_copy(update={"sweeps": (outcome,)})


def test_a_concurrency_search_is_drawn_and_told_like_a_rate_search(tmp_path: Path) -> None:
    results = searched(lone_and_swept(tmp_path), max_concurrency=1, bracket=(1, 2))
    ((run,),) = sweep_runs(results).values()
    assert run.searched
    assert run.step_at_load(2) is run.steps[1]
    assert sweep_words(run) == (
        "a (find_max_concurrency): max concurrency c1, the highest concurrency meeting every "
        "SLA; the limit lies in the bracket [c1, c2), after 2 steps."
    )
    html = render_html(results)
    assert ">a: max concurrency c1</text>" in html
    assert ">a: bracket [c1, c2)</text>" in html
    assert ">step failed the SLA</text>" in html
    grid = html[html.index("<h3>Sweep s</h3>") :]
    assert '<th class="text">sweep decision</th>' in grid
    assert '<td class="text">pass: ttft.p95 at c1</td>' in grid
    assert '<td class="text">fail: ttft.p95 at c2</td>' in grid


@pytest.mark.parametrize(
    ("found", "words"),
    [
        (
            {"max_concurrency": None, "bracket": (None, 1)},
            "no concurrency met every SLA: even the lowest tried, c1, failed (the bracket is "
            "open below)",
        ),
        (
            {"max_concurrency": 2, "bracket": (2, None)},
            "max concurrency c2, but the bracket is open above: even the highest concurrency "
            "tried passed, so the real limit may be higher",
        ),
        (
            {"cut_short": True, "bracket": None},
            "cut short (budget or signal) before it found an answer",
        ),
    ],
)
def test_what_a_concurrency_search_found_in_words(
    tmp_path: Path, found: dict[str, object], words: str
) -> None:
    ((run,),) = sweep_runs(searched(lone_and_swept(tmp_path), **found)).values()
    assert sweep_words(run) == f"a (find_max_concurrency): {words}, after 2 steps."

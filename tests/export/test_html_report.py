"""``lens report``: the self-contained HTML report, from real and hand-made results."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from html import escape
from pathlib import Path
from typing import Any, Literal

import pytest

from lens.cli import main
from lens.errors import ExportError
from lens.export.registry import EXPORTERS, export_all
from lens.export.report import MISSING_MATPLOTLIB, export_html, render_html, write_html
from lens.export.report.sections import sweep_words
from lens.export.report.series import (
    SweepRun,
    SweepStep,
    ecdf,
    latency_cdfs,
    lone_stages,
    sweep_runs,
    throughput_over_time,
)
from lens.export.results import (
    HarnessOut,
    Results,
    SweepOut,
    SweepStepOut,
    load_results,
)
from lens.metrics.integrity import StreamDelivery
from lens.metrics.sweep_outcomes import SweepProbe
from lens.records import ErrorClass
from lens.targets import parse_target
from tests.export._report_results import make_results, with_costs
from tests.metrics._factory import failed, ns, record

REAL_SCENARIO = """\
version: 1
name: report-itest
integrity: {max_cpu: 100%, max_loop_lag: 10s}  # judged even on a busy test machine
providers:
  quick: {type: simulated, ttft: 15ms, itl: 2ms, output_tokens: 8}
  flaky:
    type: simulated
    ttft: 60ms
    itl: 3ms
    output_tokens: 8
    errors: {rate_500: 30%}
    seed: 3
prompts:
  - id: q
    messages: [{role: user, content: "hello"}]
load:
  - {id: burst, pattern: burst, requests: 6}
  - {id: closed, pattern: concurrency, concurrency: 3, requests: 9}
sla:
  - ttft.p50 < 1s
  - error_rate < 50%
"""

# Every chart of a run without prices: 3 CDFs, latency and throughput over time, the sweep.
REAL_CHARTS = 6
HOSTILE = "<script>alert(1)</script>"

# A server that streams 4 responses at once (about 80 req/s): a knee for the three adaptive
# sweeps to find, a plain stage with warmup and cooldown on two priced providers (big fails
# its TTFT SLA, so the recommendation excludes it), and idle probes.
SWEEP_SCENARIO = """\
version: 1
name: report-sweeps
defaults: {timeout: 10s}
integrity: {cold_after: 100ms, max_cpu: 100%, max_loop_lag: 10s}  # judged on a busy machine too
providers:
  sim: {type: simulated, ttft: 20ms, itl: 2ms, output_tokens: 16, capacity: 4,
        price: {input: 1, output: 2}}
  big: {type: simulated, ttft: 60ms, itl: 2ms, output_tokens: 16, price: {input: 5, output: 10}}
prompts:
  - id: q
    messages: [{role: user, content: "hello"}]
load:
  - {id: steady, pattern: constant-rate, rate: 60/s, duration: 0.5s, warmup: 3 requests,
     cooldown: 3 requests}
  - {id: search, pattern: sweep, providers: [sim], rates: {from: 40/s, to: 160/s},
     duration: 0.6s, find_max_rate: "ttft.p95 < 150ms", precision: 60/s}
  - {id: ladder, pattern: sweep, providers: [sim], rates: [30/s, 160/s, 200/s],
     duration: 0.5s, stop_when: "ttft.p95 > 100ms"}
  - {id: auto, pattern: sweep, providers: [sim], auto: {steps: 1, saturation: 8},
     duration: 0.4s}
  - {id: idle, pattern: idle-probe, providers: [sim], gaps: [0s, 150ms]}
sla:
  - error_rate < 1%
  - {assert: "ttft.p95 < 40ms", stage: steady}
"""
# 3 CDFs, 2 over time, one chart per sweep (3), the plain stages of sim (steady, idle), cost.
SWEEP_CHARTS = 10


@pytest.fixture(scope="module")
def real_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """results.json of a real run against two simulated providers, one failing at times."""
    tmp = tmp_path_factory.mktemp("real")
    scenario, out = tmp / "s.yaml", tmp / "results.json"
    scenario.write_text(REAL_SCENARIO)
    main(["run", "--quiet", str(scenario), "-o", str(out)])
    return out


@pytest.fixture(scope="module")
def real_html(real_results: Path) -> str:
    return render_html(load_results(real_results))


@pytest.fixture(scope="module")
def sweep_results(tmp_path_factory: pytest.TempPathFactory) -> Results:
    """A real run of SWEEP_SCENARIO (about 8 s)."""
    tmp = tmp_path_factory.mktemp("sweeps")
    scenario, out = tmp / "s.yaml", tmp / "results.json"
    scenario.write_text(SWEEP_SCENARIO)
    main(["run", "--quiet", str(scenario), "-o", str(out)])
    return load_results(out)


@pytest.fixture(scope="module")
def sweep_html(sweep_results: Results) -> str:
    return render_html(sweep_results)


def svg_count(html: str) -> int:
    return html.count("<svg")


def body_attrs(html: str) -> dict[str, str]:
    body = re.search(r"<body([^>]*)>", html)
    assert body is not None
    return dict(re.findall(r'([\w-]+)="([^"]*)"', body[1]))


def test_real_run_report_has_every_section_and_chart(real_results: Path, real_html: str) -> None:
    results = load_results(real_results)
    for section in (
        "Summary",
        "SLA verdicts",
        "Errors by class",
        "Latency distributions",
        "Over time",
        "Load sweep",
        "Cost",
    ):
        assert f"<h2>{section}</h2>" in real_html
    assert svg_count(real_html) == REAL_CHARTS
    assert body_attrs(real_html)["data-charts"] == str(REAL_CHARTS)
    assert "<h1>lens report: report-itest</h1>" in real_html
    assert "No price known for any provider" in real_html
    assert "$0" not in real_html.replace("not $0", "")
    for s in results.summaries:
        ttft = s.metrics["ttft"].p50
        assert ttft is not None
        assert f"<td>{ttft:.1f}</td>" in real_html
        assert f"<td>{s.requests}</td>" in real_html
    errors = {cls: n for s in results.summaries for cls, n in s.error_counts.items() if n}
    assert errors.get("http_5xx", 0) > 0  # the seed makes the flaky provider fail
    assert '<td class="text">http_5xx</td>' in real_html
    verdict = {0: "PASS", 1: "FAIL", 3: "INCONCLUSIVE"}[results.exit_code]
    assert f'">{verdict}</span>' in real_html
    assert f"(exit code {results.exit_code})" in real_html


def test_report_is_self_contained_with_unique_ids(real_html: str) -> None:
    targets = re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]*)""", real_html)
    assert targets  # the SVG's internal references, at least
    assert [t for t in targets if not t.startswith(("#", "data:"))] == []
    assert "@import" not in real_html
    assert "url(http" not in real_html
    assert "default-src 'none'" in real_html  # the browser itself refuses any fetch
    ids = re.findall(r'\sid="([^"]+)"', real_html)
    assert len(ids) == len(set(ids)) > 0
    refs = set(re.findall(r'(?:href="#|url\(#)([^")]+)', real_html))
    assert refs <= set(ids)
    assert "<?xml" not in real_html


def test_rendering_is_deterministic(real_results: Path, real_html: str) -> None:
    assert render_html(load_results(real_results)) == real_html


def test_hostile_strings_are_escaped(tmp_path: Path) -> None:
    rec = failed(provider="a", stage="s1", error_message=f"bad {HOSTILE} & 'quote'")
    results = make_results(tmp_path, [record(provider="a", stage="s1"), rec])
    html = render_html(results.model_copy(update={"scenario": HOSTILE}))
    assert HOSTILE not in html
    assert "lens report: &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "bad &lt;script&gt;alert(1)&lt;/script&gt; &amp; &#x27;quote&#x27;" in html
    assert html.count("<script") == 1  # the report's own


def test_every_request_failed(tmp_path: Path) -> None:
    records = [
        failed(provider="a", stage="s1", index=i, t_dispatch=ns(10 * i)) for i in range(4)
    ] + [failed(ErrorClass.TIMEOUT, provider="b", stage="s1", error_message=None)]
    html = render_html(make_results(tmp_path, records))
    assert svg_count(html) == 0
    assert body_attrs(html)["data-charts"] == "0"
    assert "no successful request measured TTFT" in html
    assert "no successful request measured ITL" in html
    assert "Throughput over time: no successful request to plot" in html
    assert "<h2>Load sweep</h2>" not in html
    assert '<td class="text">http_5xx</td><td>4</td><td>100.0%</td>' in html
    assert '<td class="text">timeout</td><td>1</td><td>100.0%</td><td class="text"></td>' in html
    assert ">INCONCLUSIVE</span>" in html


def one_stage_run(tmp_path: Path, interrupted_by: str | None = None) -> Results:
    records = [
        record(provider=p, stage="s1", index=i, t_dispatch=ns(10 + i), t_end=ns(250 + i))
        for p in ("a", "b")
        for i in range(3)
    ]
    return make_results(tmp_path, records, interrupted_by=interrupted_by)


def all_failed(tmp_path: Path, interrupted_by: str | None = None) -> Results:
    """Cheap to render: nothing to chart."""
    records = [failed(provider="a", stage="s1", index=i) for i in range(2)]
    return make_results(tmp_path, records, interrupted_by=interrupted_by)


def test_partial_run_has_a_banner_and_cannot_pass(tmp_path: Path) -> None:
    html = render_html(all_failed(tmp_path, interrupted_by="SIGINT"))
    assert "Partial results: the run was interrupted by SIGINT; 2 requests" in html
    assert ">INCONCLUSIVE</span>" in html
    assert "(exit code 3)" in html
    assert "started 2026-01-02 03:04:05 UTC" in html
    assert "ran for 2.5 s" in html


def test_complete_run_has_no_banner(tmp_path: Path) -> None:
    html = render_html(one_stage_run(tmp_path))
    assert "Partial results" not in html
    assert ">PASS</span>" in html
    assert "<h2>Load sweep</h2>" not in html  # one stage per provider: no curve to draw
    assert "No request failed." in html


def test_costs_where_known_and_no_price_where_not(tmp_path: Path) -> None:
    html = render_html(with_costs(one_stage_run(tmp_path), {"a": "2.5"}))
    # provider a: 3 requests x 4 tokens at $2.5 per 1M
    row_a = "<td>$0.00003</td><td>$0.00001</td><td>$2.50</td><td>0</td>"
    assert row_a in html
    assert '<td class="text">b</td><td>no price known</td>' in html
    assert svg_count(html) == 6  # 3 CDFs, 2 over time, the cost chart
    assert "Cost per 1M output tokens" in html


def test_an_empty_run_with_odd_values_still_renders(tmp_path: Path) -> None:
    results = make_results(tmp_path, [])
    env = results.environment.model_copy(update={"started_at": "yesterday"})
    html = render_html(results.model_copy(update={"verdicts": [], "environment": env}))
    assert "No stage ran." in html
    assert "The scenario asserts no SLA." in html
    assert "SLA: no SLA asserted (exit code" in html
    assert "started yesterday" in html
    assert "ran for an unknown time" in html
    assert svg_count(html) == 0


def test_long_messages_are_clipped_and_unknown_amounts_shown_as_dashes(tmp_path: Path) -> None:
    records = [
        record(provider="a", stage="s1"),
        failed(provider="a", stage="s1", error_message="x" * 500),
    ]
    results = with_costs(make_results(tmp_path, records), {"a": "1"})
    (summary,) = results.summaries
    assert summary.cost is not None
    cost = {**summary.cost, "per_1m_output_tokens_usd": None}
    results = results.model_copy(update={"summaries": [summary.model_copy(update={"cost": cost})]})
    html = render_html(results)
    assert "x" * 159 + "…" in html
    assert "x" * 160 not in html
    assert "<td>$0.000004</td><td>$0.000002</td><td>-</td>" in html  # 4 tokens at $1 per 1M
    assert "Cost per 1M output tokens" not in html  # nothing to draw without the rate


def test_costs_spanning_decades_are_on_a_log_axis_in_dollars(tmp_path: Path) -> None:
    html = render_html(with_costs(one_stage_run(tmp_path), {"a": "0.5", "b": "50"}))
    assert "<td>$50.00</td>" in html
    assert "<td>$0.50</td>" not in html  # below $1: three significant digits
    assert "<td>$0.5</td>" in html
    assert ">$0.0001</text>" in html  # a tick label of the log axis


def test_latency_spanning_decades_is_on_a_log_axis(tmp_path: Path) -> None:
    fast = record(provider="a", stage="s1", t_first_token=ns(12), t_first_visible=ns(12))
    html = render_html(make_results(tmp_path, [fast, record(provider="a", stage="s1")]))
    assert "TTFT (ms, log scale)" in html
    assert "E2E (ms)" in html  # 240 ms and 240 ms: one decade it is not


def test_itl_follows_the_summary_rule(tmp_path: Path) -> None:
    # chunks at 210, 220 and 250 ms carrying 1, 1 and 3 tokens: gaps 10, then 3 x 10
    rec = record(
        provider="a",
        stage="s1",
        chunk_times=(ns(210), ns(220), ns(250)),
        chunk_tokens=(1, 1, 3),
        output_tokens=5,
        t_last_token=ns(250),
        t_end=ns(260),
    )
    results = make_results(tmp_path, [rec])
    (line,) = latency_cdfs(results, "itl")
    assert line.x == (10.0, 10.0, 10.0, 10.0)
    assert line.y == (0.25, 0.5, 0.75, 1.0)
    assert results.summaries[0].metrics["itl"].n == 4


def test_ecdf_thins_long_series_but_keeps_both_ends() -> None:
    x, y = ecdf(float(v) for v in range(1000, 0, -1))
    assert len(x) == 400
    assert (x[0], y[0]) == (1.0, 0.001)
    assert (x[-1], y[-1]) == (1000.0, 1.0)
    assert x == sorted(x)
    assert ecdf([]) == ([], [])


def test_throughput_leaves_gaps_outside_a_providers_stages(tmp_path: Path) -> None:
    a = record(provider="a", stage="s1", t_end=ns(900))
    b = record(
        provider="b",
        stage="s1",
        t_dispatch=ns(3010),
        t_first_token=ns(3210),
        t_last_token=ns(3240),
        chunk_times=(ns(3210), ns(3220), ns(3230), ns(3240)),
        t_end=ns(3250),
    )
    tokens, done = throughput_over_time(make_results(tmp_path, [a, b]))
    by = {s.provider: s.y for s in tokens}
    assert by["a"][0] == 4.0
    assert all(math.isnan(v) for v in by["a"][1:])  # a ran only in the first second
    assert [math.isnan(v) for v in by["b"]] == [True, True, True, False]
    assert {s.provider: s.y[0] for s in done}["a"] == 1.0


def test_sweep_orders_each_providers_stages_by_throughput(real_results: Path) -> None:
    points = lone_stages(load_results(real_results))
    assert set(points) == {"quick", "flaky"}
    for pts in points.values():
        assert {p.stage for p in pts} == {"burst", "closed"}
        assert [p.rps for p in pts] == sorted(p.rps for p in pts)


def test_cli_writes_the_report(real_results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(real_results)]) == 0
    dest = real_results.with_suffix(".html")
    assert capsys.readouterr().out == f"wrote {dest}\n"
    assert svg_count(dest.read_text(encoding="utf-8")) == REAL_CHARTS


def test_export_html_is_the_registered_html_exporter(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "report.html"
    assert EXPORTERS["html"] is export_html
    assert export_all(all_failed(tmp_path), [parse_target(f"html={dest}")]) == []
    assert dest.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_unwritable_destination_is_an_export_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ExportError, match="cannot write the HTML report"):
        write_html(all_failed(tmp_path), blocker / "report.html")


def test_without_matplotlib_the_cli_says_how_to_install_it(
    real_results: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    dest = tmp_path / "r.html"
    assert main(["report", str(real_results), "-o", str(dest)]) == 2
    assert capsys.readouterr().err == f"error: {MISSING_MATPLOTLIB}\n"
    assert MISSING_MATPLOTLIB == (
        "the HTML report needs matplotlib: pip install 'llm-latency-lens[report]'"
    )
    assert not dest.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such results file"),
        (b"{not json", ":1:2: not JSON"),
        (b"\xff\xfe", "not a JSON file"),
        (b"[1, 2]", "not a lens results file (schema_version None"),
        (b'{"schema_version": "lens.results/v0"}', "not a lens results file"),
        (b'{"schema_version": "lens.results/v1", "scenario": 3}', "scenario: Input should be"),
    ],
)
def test_a_bad_results_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, message: str
) -> None:
    path = tmp_path / "results.json"
    if content is not None:
        path.write_bytes(content)
    assert main(["report", str(path), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}")
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "r.html").exists()


def test_many_validation_problems_are_summarised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"schema_version": "lens.results/v1"}))
    assert main(["report", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 7  # what the file is not, five problems, and how many more
    assert lines[0].endswith("not a lens results file (lens.results/v1):")
    assert lines[-1].endswith("more problems")


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed")
@pytest.mark.parametrize(
    ("html_fixture", "charts"), [("real_html", REAL_CHARTS), ("sweep_html", SWEEP_CHARTS)]
)
def test_headless_chromium_draws_every_chart_without_errors(
    request: pytest.FixtureRequest, html_fixture: str, charts: int, tmp_path: Path
) -> None:
    html: str = request.getfixturevalue(html_fixture)
    page = tmp_path / "report.html"
    page.write_text(html, encoding="utf-8")
    browser = chromium()
    assert browser is not None
    dom = subprocess.run(
        [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    attrs = body_attrs(dom)
    assert attrs["data-errors"] == "0"
    assert attrs["data-charts-drawn"] == attrs["data-charts"] == str(charts)


def section(html: str, title: str) -> str:
    """The HTML of one <section>, by its heading."""
    start = html.index(f"<section><h2>{title}</h2>")
    return html[start : html.index("</section>", start)]


def by_sweep(results: Results, kind: str) -> SweepOut:
    (found,) = [o for o in results.sweeps if o.kind == kind]
    return found


@pytest.mark.slow
def test_each_sweep_has_its_chart_and_says_what_it_found(
    sweep_results: Results, sweep_html: str
) -> None:
    html = section(sweep_html, "Load sweep")
    for sweep_id in ("search", "ladder", "auto"):
        assert f"<h3>Sweep {sweep_id}</h3>" in html
    assert svg_count(sweep_html) == SWEEP_CHARTS
    assert body_attrs(sweep_html)["data-charts"] == str(SWEEP_CHARTS)
    assert "<h3>Stages that are not sweep steps</h3>" in html

    search = by_sweep(sweep_results, "find_max_rate")
    assert search.max_rate_per_s is not None
    assert search.bracket is not None
    low, high = search.bracket
    assert low == search.max_rate_per_s
    assert high is not None  # the capacity is well under the top rate
    assert (
        f"max rate {low:g}/s, the highest rate meeting every SLA; the limit lies in the "
        f"bracket [{low:g}/s, {high:g}/s), after {len(search.probes)} steps." in html
    )
    # drawn: the max rate, the bracket, rings on the steps that failed
    assert f">sim: max rate {low:g}/s</text>" in html
    assert f">sim: bracket [{low:g}/s, {high:g}/s)</text>" in html
    assert ">step failed the SLA</text>" in html
    for probe in search.probes:
        verdict = "pass" if probe.held else "fail"
        detail = escape(probe.detail)
        # the sweep's own decision, then the scenario's SLAs on the step (error_rate < 1%)
        sla = next(v for v in sweep_results.verdicts if v.stage == probe.stage)
        assert (
            f'<td class="text">{verdict}: {detail}</td><td class="text">{sla.outcome}</td>' in html
        )

    ladder = by_sweep(sweep_results, "stop_when")
    stop = next(p for p in ladder.probes if p.held)
    assert ladder.not_run == ("ladder.200rps",)
    assert f"stopped at {stop.stage} ({stop.rate_per_s:g}/s), the first step where" in html
    assert "Not run: ladder.200rps." in html
    assert f">sim: stopped at {stop.rate_per_s:g}/s</text>" in html
    assert '<td class="text">ladder.200rps</td><td>-</td>' in html
    assert '<td class="text">not run</td>' in html

    auto = by_sweep(sweep_results, "auto")
    assert auto.sync_rps is not None
    assert auto.saturated_rps is not None
    assert (
        f"a synchronous throughput of {auto.sync_rps:.3g} req/s (one request at a time) and a "
        f"saturated throughput of {auto.saturated_rps:.3g} req/s, then 1 constant-rate" in html
    )
    assert f">sim: synchronous {auto.sync_rps:.3g} req/s</text>" in html
    assert f">sim: saturated {auto.saturated_rps:.3g} req/s</text>" in html
    # every step's achieved throughput and latency, as its summary says
    steps = {w.stage for w in sweep_results.stages if w.sweep is not None}
    assert len(steps) == len(search.probes) + len(ladder.probes) + len(auto.probes)
    for s in sweep_results.summaries:
        if s.stage in steps:
            assert s.rps is not None
            p95 = s.metrics["ttft"].p95
            assert p95 is not None
            assert f'<td class="text">{s.stage}</td>' in html
            assert f"<td>{s.rps:.2f}</td>" in html
            assert f"<td>{p95:.1f}</td>" in html


@pytest.mark.slow
def test_sweep_runs_group_steps_by_sweep_in_order_of_load(sweep_results: Results) -> None:
    runs = sweep_runs(sweep_results)
    assert list(runs) == ["search", "ladder", "auto"]
    assert all([r.provider for r in group] == ["sim"] for group in runs.values())
    (search,) = runs["search"]
    rates = [st.rate_per_s for st in search.steps]
    assert rates == sorted(r for r in rates if r is not None)
    assert search.outcome is not None
    assert search.outcome == by_sweep(sweep_results, "find_max_rate")
    held = {p.stage: p.held for p in search.outcome.probes}
    assert {st.stage: st.held for st in search.steps} == held
    assert search.step_at_rate(40.0) is search.steps[0]
    assert search.step_at_rate(None) is None
    (auto,) = runs["auto"]
    assert (auto.steps[0].label, auto.steps[-1].label) == ("c1", "c8")  # by what they achieved
    # the plain-stage chart leaves sweep steps to the sweep charts
    plain = lone_stages(sweep_results)
    assert {p: {q.stage for q in pts} for p, pts in plain.items()} == {"sim": {"steady", "idle"}}


@pytest.mark.slow
def test_pacing_phases_and_recommendation(sweep_results: Results, sweep_html: str) -> None:
    html = section(sweep_html, "Pacing and phases")
    paced = [s for s in sweep_results.summaries if s.pacing is not None]
    assert {s.stage for s in paced} >= {"steady", "search.40rps", "ladder.30rps"}
    for s in paced:
        p = s.pacing
        assert p is not None
        assert p.planned_rate_per_s is not None
        assert p.rate_error is not None
        assert (
            f'<td class="text">{s.stage}</td><td class="text">{s.provider}</td><td>{p.sent}</td>'
            f"<td>{p.planned_rate_per_s:.2f}</td><td>{p.achieved_rate_per_s:.2f}</td>"
            f"<td>{p.rate_error * 100:+.2f}%</td><td>{p.lag_p50_ms:.2f}</td>"
            f"<td>{p.lag_p99_ms:.2f}</td><td>{p.lag_max_ms:.2f}</td>" in html
        )
    assert "<h3>Warmup and cooldown (not judged)</h3>" in html
    assert {(s.stage, s.phase) for s in sweep_results.phase_summaries} == {
        ("steady", "warmup"),
        ("steady", "cooldown"),
    }
    for phase in ("warmup", "cooldown"):
        assert html.count(f'<td class="text">steady [{phase}]</td>') == 2  # sim and big
    assert "[warmup]" not in section(sweep_html, "Summary")

    rec = section(sweep_html, "Recommendation")
    assert sweep_results.recommendation is not None
    assert sweep_results.recommendation.best == "sim"
    assert (
        "Recommended: sim (lens-sim), the cheapest per SLA-conforming request of 1 meeting "
        "every SLA." in rec
    )
    assert '<tr class="pass"><td>1</td><td class="text">sim</td>' in rec
    assert '<tr class="fail"><td>-</td><td class="text">big</td>' in rec
    assert "<h3>Excluded, and why</h3>" in rec
    assert "<li><strong>big</strong><ul><li>ttft.p95 &lt; 40ms [stage steady] fail: " in rec
    pareto = sum(c.pareto for c in sweep_results.recommendation.candidates)
    assert rec.count('<td class="text">Pareto</td>') == pareto >= 1
    # the page's order: verdicts, then the recommendation, then errors
    assert sweep_html.index("<h2>SLA verdicts</h2>") < sweep_html.index("<h2>Recommendation")
    assert sweep_html.index("<h2>Recommendation") < sweep_html.index("<h2>Errors by class")


@pytest.mark.slow
def test_integrity_of_a_real_run(sweep_results: Results, sweep_html: str) -> None:
    html = section(sweep_html, "Measurement integrity")
    integrity = sweep_results.integrity
    assert integrity is not None
    h = integrity.harness
    assert h is not None
    # A busy machine can overload the client: the row says which, whatever it was.
    status, css = ("ok", "pass") if h.status == "ok" else ("overloaded: ", "fail")
    assert f'<tr class="{css}"><td class="text">{status}' in html
    assert (
        f"</td><td>{h.samples}</td>"
        f"<td>{h.loop_lag_p50_ms:.2f}</td><td>{h.loop_lag_p99_ms:.2f}</td>"
        f"<td>{h.loop_lag_max_ms:.2f}</td><td>{h.max_loop_lag_ms:.0f}</td>" in html
    )
    streams = len(integrity.streams)
    assert streams > 8  # folded away under a summary line
    assert f"<details><summary>every stage x provider ({streams})</summary>" in html
    buffered = sum(s.buffered for s in integrity.streams)  # none, unless the machine is busy
    assert f"{buffered} of {streams} stage x provider streams look buffered" in html
    for c in integrity.cold_start:
        assert f'<td class="text">{c.provider}</td><td>{c.cold_requests}</td>' in html
    (probes,) = sweep_results.idle_probes
    assert [p.idle_s is None for p in probes.probes] == [True, False, False]
    assert "<td>#0</td><td>first</td>" in html
    for p in probes.probes[1:]:
        assert p.idle_s is not None
        assert f"<td>#{p.index}</td><td>{p.idle_s:.3f}</td><td>{p.ttft_ms:.1f}</td>" in html
    # no warning in a calm run; whatever there were, each is in the banner
    assert ("Measurement warnings" in sweep_html) == bool(integrity.warnings)
    for warning in integrity.warnings:
        assert f"<li>{escape(warning)}</li>" in sweep_html


def two_stage_run(tmp_path: Path, *, ok: bool = True) -> Results:
    """Provider a ran stages s1 and s2; made, below, into the steps of one sweep."""
    make = record if ok else failed
    records = [
        make(provider="a", stage=st, index=i)
        for k, st in enumerate(("s1", "s2"))
        for i in range(3 * (k + 1))  # s2 twice the requests in the same time: twice the req/s
    ]
    return make_results(tmp_path, records)


def as_fixed_sweep(results: Results, sweep_id: str) -> Results:
    stages = [
        w.model_copy(
            update={
                "sweep": SweepStepOut(
                    sweep=sweep_id, step=i, steps=2, rate_per_s=None, concurrency=2**i
                )
            }
        )
        for i, w in enumerate(results.stages)
    ]
    return results.model_copy(update={"stages": tuple(stages)})


def test_a_fixed_sweep_is_charted_by_concurrency_and_its_id_escaped(tmp_path: Path) -> None:
    html = render_html(as_fixed_sweep(two_stage_run(tmp_path), HOSTILE))
    assert HOSTILE not in html
    assert "<h3>Sweep &lt;script&gt;alert(1)&lt;/script&gt;</h3>" in html
    assert "<li>a: 2 fixed steps.</li>" in html
    assert '<td class="text">s1</td><td>c1</td>' in html
    assert '<td class="text">s2</td><td>c2</td>' in html
    assert ">c2</text>" in html  # the step's label on the chart
    assert "<h3>Stages that are not sweep steps</h3>" not in html
    assert svg_count(html) == 6  # 3 CDFs, 2 over time, the sweep


def test_a_sweep_with_no_success_has_no_chart(tmp_path: Path) -> None:
    html = render_html(as_fixed_sweep(two_stage_run(tmp_path, ok=False), "s"))
    assert "Sweep s: no step had a successful request to plot." in html
    assert svg_count(html) == 0


def run_of(steps: list[tuple[float, bool]], outcome: SweepOut) -> SweepRun:
    return SweepRun(
        "s",
        "a",
        tuple(
            SweepStep(f"s.{r:g}rps", f"{r:g}/s", r, None, r, 10, 20, 30, held) for r, held in steps
        ),
        outcome,
    )


def outcome(kind: Literal["stop_when", "find_max_rate", "auto"], **fields: Any) -> SweepOut:
    return SweepOut(
        **{
            "id": "s",
            "provider": "a",
            "kind": kind,
            "reason": "r",
            "probes": [],
            "not_run": [],
            **fields,
        }
    )


@pytest.mark.parametrize(
    ("run", "words"),
    [
        (
            run_of(
                [(10, False), (40, False)],
                outcome("find_max_rate", max_rate_per_s=None, bracket=(None, 10.0)),
            ),
            "a (find_max_rate): no rate met every SLA: even the lowest tried, 10/s, failed "
            "(the bracket is open below), after 0 steps.",
        ),
        (
            run_of(
                [(10, True), (40, True)],
                outcome("find_max_rate", max_rate_per_s=40.0, bracket=(40.0, None)),
            ),
            "a (find_max_rate): max rate 40/s, but the bracket is open above: even the highest "
            "rate tried passed, so the real limit may be higher, after 0 steps.",
        ),
        (
            run_of([(10, False), (40, False)], outcome("stop_when")),
            "a (stop_when): every step ran; the stop condition never held.",
        ),
        (
            run_of([(10, False)], outcome("auto")),
            "a (auto): measured a synchronous throughput of ? (one request at a time) and a "
            "saturated throughput of ?, then 1 constant-rate steps between them.",
        ),
    ],
)
def test_sweep_outcomes_in_words(run: SweepRun, words: str) -> None:
    assert sweep_words(run) == words


def test_an_open_bracket_draws_no_span(tmp_path: Path) -> None:
    results = two_stage_run(tmp_path)
    stages = [
        w.model_copy(
            update={
                "sweep": SweepStepOut(
                    sweep="s", step=i, steps=None, rate_per_s=10.0 * (i + 1), concurrency=None
                )
            }
        )
        for i, w in enumerate(results.stages)
    ]
    found = outcome(
        "find_max_rate",
        max_rate_per_s=20.0,
        bracket=(20.0, None),
        probes=[
            SweepProbe(
                stage=w.stage,
                rate_per_s=10.0 * (i + 1),
                concurrency=None,
                held=True,
                rps=None,
                detail="ok",
            )
            for i, w in enumerate(results.stages)
        ],
    )
    html = render_html(results.model_copy(update={"stages": stages, "sweeps": [found]}))
    assert ">a: max rate 20/s</text>" in html
    assert "bracket [" not in html.replace("the bracket is open above", "")
    assert ">step failed the SLA</text>" not in html
    assert html.count('<td class="text">pass</td>') == 2


def test_integrity_warnings_make_a_banner_and_an_overloaded_harness(tmp_path: Path) -> None:
    results = one_stage_run(tmp_path)
    assert results.integrity is not None
    harness = HarnessOut(
        status="overloaded",
        reasons=(f"loop lag p99 80 ms > 25 ms {HOSTILE}",),
        samples=40,
        loop_lag_p50_ms=3.0,
        loop_lag_p99_ms=80.0,
        loop_lag_max_ms=120.5,
        cpu=0.97,
        max_loop_lag_ms=25.0,
        max_cpu=0.9,
    )
    stream = StreamDelivery(
        stage="s1",
        provider="a",
        requests=3,
        chunks_per_read=4.0,
        zero_gap_share=0.75,
        buffered=True,
    )
    integrity = results.integrity.model_copy(
        update={
            "harness": harness,
            "streams": [stream],
            "warnings": [f"harness overloaded: {HOSTILE}", "stream_buffered: s1/a: 75%"],
        }
    )
    html = render_html(results.model_copy(update={"integrity": integrity}))
    assert HOSTILE not in html
    banner = html.index('<div class="banner warn" role="alert">')
    assert banner < html.index("<h2>Summary</h2>")  # near the top, before any number
    assert (
        "<li>harness overloaded: &lt;script&gt;alert(1)&lt;/script&gt;</li>"
        "<li>stream_buffered: s1/a: 75%</li></ul></div>" in html
    )
    assert (
        '<tr class="fail"><td class="text">overloaded: loop lag p99 80 ms &gt; 25 ms '
        "&lt;script&gt;alert(1)&lt;/script&gt;</td><td>40</td><td>3.00</td><td>80.00</td>"
        "<td>120.50</td><td>25</td><td>97%</td><td>90%</td></tr>" in html
    )
    assert (
        '<tr class="buffered"><td class="text">s1</td><td class="text">a</td><td>3</td>'
        '<td>4.00</td><td>75%</td><td class="text">BUFFERED</td></tr>' in html
    )
    assert "1 of 1 stage x provider streams look buffered" in html
    assert "<details>" not in html


def test_results_without_integrity_say_so(tmp_path: Path) -> None:
    results = one_stage_run(tmp_path)
    html = render_html(results.model_copy(update={"integrity": None}))
    assert "Not recorded: these results predate lens&#x27;s integrity checks." in html
    assert "Measurement warnings" not in html
    assert "<h2>Pacing and phases</h2>" not in html  # bursts are not paced by a rate...
    bare = results.integrity
    assert bare is not None
    html = render_html(
        results.model_copy(
            update={
                "integrity": bare.model_copy(
                    update={"harness": None, "streams": [], "cold_start": []}
                )
            }
        )
    )
    assert "The client was not sampled in this run." in html
    assert "No stream had enough chunks to judge its delivery." in html
    assert "No provider had both cold and warm requests to compare." in html


def test_drained_requests_are_listed_when_there_are_any(tmp_path: Path) -> None:
    results = one_stage_run(tmp_path)
    assert "Cut off at the stage" not in render_html(results)
    first, *rest = results.summaries
    drained = results.model_copy(
        update={"summaries": [first.model_copy(update={"drained": 2}), *rest]}
    )
    html = section(render_html(drained), "Summary")
    assert "<h3>Cut off at the stage&#x27;s end</h3>" in html
    assert '<td class="text">s1</td><td class="text">a</td><td>2</td><td>3</td>' in html
    assert html.count('<td class="text">s1</td><td class="text">b</td><td>') == 1  # summary only

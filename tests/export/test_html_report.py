"""``lens report``: the self-contained HTML report, from real and hand-made results."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lens.cli import main
from lens.errors import ExportError
from lens.export.registry import EXPORTERS, export_all
from lens.export.report import MISSING_MATPLOTLIB, export_html, render_html, write_html
from lens.export.report.series import ecdf, latency_cdfs, sweep, throughput_over_time
from lens.export.results import Results, load_results
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
    points = sweep(load_results(real_results))
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
    assert MISSING_MATPLOTLIB == "the HTML report needs matplotlib: pip install 'lens[report]'"
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
def test_headless_chromium_draws_every_chart_without_errors(real_html: str, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(real_html, encoding="utf-8")
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
    assert attrs["data-charts-drawn"] == attrs["data-charts"] == str(REAL_CHARTS)

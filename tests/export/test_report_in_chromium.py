"""The report of a real run as a reader sees it: Chromium at 1280 px wide.

A probe script, added to the page for the test only, records what the browser laid out:
whether anything is wider than the window (the page, a table in its scroll box), and every
text of every chart with its box, so the test can tell that each series and each stage
window is named where it can be read, and that no two names lens placed overprint.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from lens.cli import main
from lens.export.report import render_html
from lens.export.report.series import lone_stages, sweep_runs
from lens.export.results import Results, load_results

WIDTH = 1280

# The engine profile on the simulator (4 slots), with a second provider so names
# are long and every chart has more than one of everything: a warm burst, a closed-loop
# sweep over concurrencies 1/2/4/8 with warmup, an idle probe and a constant-rate stage.
# ttft.max < 100ms fails at c8, where requests queue for a slot.
ENGINE = """\
version: 1
name: engine-profile-llama-cpp-4-slots
defaults: {timeout: 10s}
integrity: {max_cpu: 100%, max_loop_lag: 10s}  # judged on a busy test machine too
providers:
  llama-cpp-4-slots: {type: simulated, ttft: 30ms, itl: 4ms, output_tokens: 24, capacity: 4,
                      price: {gpu_hour: 2.50}}
  reference-engine: {type: simulated, ttft: 45ms, itl: 3ms, output_tokens: 24,
                     price: {input: 1, output: 2}}
prompts:
  - id: q
    messages: [{role: user, content: "hello"}]
load:
  - {id: warm, pattern: burst, requests: 4}
  - {id: conc, pattern: sweep, providers: [llama-cpp-4-slots], concurrencies: [1, 2, 4, 8],
     requests: 12, warmup: 2 requests}
  - {id: idle, pattern: idle-probe, providers: [llama-cpp-4-slots], gaps: [0s, 200ms]}
  - {id: steady, pattern: constant-rate, rate: 20/s, duration: 0.6s}
sla:
  - error_rate < 1%
  - {assert: "ttft.max < 100ms", stage: conc.c8}
  - cost.mean < $1
"""

PROBE = """
window.addEventListener("load", function () {
  var root = document.documentElement;
  var width = root.clientWidth;
  var out = {viewport: window.innerWidth, width: width, page: root.scrollWidth,
             height: root.scrollHeight, wide: [], scrolling: [], charts: {}};
  function box(r) { return [r.left, r.top, r.right, r.bottom]; }
  document.querySelectorAll("body *").forEach(function (el) {
    if (el.closest("svg") !== null && el.tagName !== "svg") { return; }
    var r = el.getBoundingClientRect();
    if (r.width > 0 && (r.right > width + 0.5 || r.left < -0.5)) {
      out.wide.push(el.tagName + " " + (el.className || "") + " " + r.width);
    }
  });
  document.querySelectorAll(".scroll").forEach(function (el) {
    if (el.scrollWidth > el.clientWidth) {
      out.scrolling.push(el.textContent.slice(0, 60));
    }
  });
  document.querySelectorAll("figure > svg").forEach(function (svg) {
    var first = svg.querySelector("g[id$='-figure_1']");
    var key = first ? first.id.replace(/-figure_1$/, "") : "?";
    var frame = svg.getBoundingClientRect();
    var chart = {texts: [], named: [], outside: []};
    svg.querySelectorAll("text").forEach(function (t) {
      var r = t.getBoundingClientRect();
      var text = t.textContent.trim();
      var shown = r.width > 0 && r.height > 0
        && window.getComputedStyle(t).visibility !== "hidden";
      var inside = r.left >= frame.left - 1 && r.right <= frame.right + 1
        && r.top >= frame.top - 1 && r.bottom <= frame.bottom + 1;
      if (shown && inside) { chart.texts.push(text); } else { chart.outside.push(text); }
      var group = t.closest("g[id*='-name-']");
      if (group !== null) { chart.named.push({text: text, box: box(r)}); }
    });
    out.charts[key] = chart;
  });
  document.body.setAttribute("data-layout", JSON.stringify(out));
});
"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium() is None, reason="chromium is not installed"),
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Results:
    """A real run of ENGINE (about 6 s)."""
    tmp = tmp_path_factory.mktemp("engine")
    scenario, out = tmp / "engine.yaml", tmp / "results.json"
    scenario.write_text(ENGINE)
    assert main(["run", "--quiet", str(scenario), "-o", str(out)]) == 1  # c8 fails its SLA
    return load_results(out)


def browse(page: Path, *flags: str) -> str:
    browser = chromium()
    assert browser is not None
    return subprocess.run(
        [browser, "--headless=new", "--no-sandbox", "--disable-gpu", *flags, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    ).stdout


@pytest.fixture(scope="module")
def layout(engine: Results, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What Chromium laid out at 1280 px; a full-page screenshot is left beside the page."""
    tmp = tmp_path_factory.mktemp("chromium")
    html = render_html(engine)
    page = tmp / "report.html"
    page.write_text(html.replace("</head>", f"<script>{PROBE}</script></head>", 1))
    dom = browse(page, f"--window-size={WIDTH},900", "--dump-dom")
    found = re.search(r'data-layout="([^"]*)"', dom)
    assert found is not None, "the probe did not run"
    seen: dict[str, Any] = json.loads(unescape(found[1]))
    shot = tmp / "report.png"
    height = min(int(seen["height"]), 16_000)
    browse(page, f"--window-size={WIDTH},{height}", "--hide-scrollbars", f"--screenshot={shot}")
    seen["screenshot"] = str(shot)
    return seen


def test_the_page_fits_1280_px_without_scrolling_sideways(layout: dict[str, Any]) -> None:
    assert layout["viewport"] == WIDTH
    assert layout["page"] <= layout["width"]
    assert layout["wide"] == []  # no element sticks out of the window
    assert layout["scrolling"] == []  # and no table scrolls in its box (the summary's did)


def test_the_screenshot_is_the_whole_page_at_1280_px(layout: dict[str, Any]) -> None:
    from PIL import Image  # noqa: PLC0415  (matplotlib's own dependency)

    with Image.open(layout["screenshot"]) as shot:
        assert shot.width == WIDTH
        assert shot.height >= min(layout["height"], 16_000)
        darkest, lightest = shot.convert("L").getextrema()
        assert isinstance(darkest, int)
        assert isinstance(lightest, int)
        assert darkest < 64 < 192 < lightest  # drawn: dark text on a light page


def expected_names(results: Results) -> dict[str, set[str]]:
    """Per chart, the name of every series and stage window it must show."""
    units = [(s.stage, s.provider) for s in results.summaries if s.ok]
    lines = {f"{stage} / {provider}" for stage, provider in units}
    windows = {f"{w.stage} / {w.provider}" for w in results.stages}
    (steps,) = sweep_runs(results).values()
    points = {f"{p.stage} ({p.pattern})" for pts in lone_stages(results).values() for p in pts}
    return {
        "cdf-ttft": lines,
        "cdf-itl": lines,
        "cdf-e2e": lines,
        "latency-time": windows,
        "throughput-time": windows,
        "sweep-0": {st.label for run in steps for st in run.steps},
        "stages": points,
        "cost": lines,
    }


def test_every_series_and_stage_is_named_where_it_can_be_read(
    engine: Results, layout: dict[str, Any]
) -> None:
    charts = layout["charts"]
    expected = expected_names(engine)
    assert set(charts) == set(expected)
    assert len(expected["cdf-ttft"]) == 9  # 7 stages of one provider, 2 of the other
    assert len(expected["latency-time"]) == 9
    assert expected["sweep-0"] == {"c1", "c2", "c4", "c8"}
    assert expected["stages"] == {"warm (burst)", "idle (idle-probe)", "steady (constant-rate)"}
    for key, names in expected.items():
        visible = set(charts[key]["texts"])
        assert names <= visible, (key, names - visible, charts[key]["outside"])


def test_no_two_names_overprint(layout: dict[str, Any]) -> None:
    placed = 0
    for key, chart in layout["charts"].items():
        for a, b in itertools.combinations(chart["named"], 2):
            (al, at, ar, ab), (bl, bt, br, bb) = a["box"], b["box"]
            apart = ar <= bl or br <= al or ab <= bt or bb <= at
            assert apart, (key, a["text"], b["text"])
        placed += len(chart["named"])
    assert placed >= 9 + 9 + 4  # stage windows on both over-time charts, sweep steps


def test_the_failing_step_is_marked_in_the_sweep_table(engine: Results) -> None:
    (failing,) = [v for v in engine.verdicts if v.outcome == "fail"]
    assert failing.stage == "conc.c8"
    html = render_html(engine)
    assert (
        '<tr class="fail"><td class="text">llama-cpp-4-slots</td>'
        '<td class="text">conc.c8</td><td>c8</td>' in html
    )
    assert '<td class="text">fail</td><td class="text">fail: ttft.max = ' in html

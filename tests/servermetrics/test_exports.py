"""The engines' metrics in every output: Prometheus, InfluxDB line protocol, CSV, the HTML
report, lens merge and lens plan.  One real run against the simulator feeds them all."""

from __future__ import annotations

import csv
import io
from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lens.api import describe_plan
from lens.export.csvfile import server_metrics_csv, server_metrics_path
from lens.export.influx import points
from lens.export.merge import merge_results
from lens.export.plan_view import plan_text
from lens.export.prometheus import exposition
from lens.export.results import Results
from lens.pipeline import run_plan, shard_results
from lens.plan.compile import compile_plan
from lens.plan.split import Shard
from lens.redact import Redactor
from lens.scenario import parse_scenario
from tests.export.lineparse import parse

SCENARIO = """\
version: 1
name: smx
providers:
  sim:
    type: simulated
    ttft: 40ms
    itl: 10ms
    output_tokens: 10
    capacity: 2
    server_metrics: {every: 100ms}
prompts:
  - id: a
    messages: [{role: user, content: "What is the capital of France?"}]
load:
  - {id: conc, pattern: concurrency, concurrency: 4, requests: 12}
  - {id: wave, pattern: burst, requests: 4}
"""


@pytest.fixture(scope="module")
def results() -> Results:
    plan = compile_plan(parse_scenario(SCENARIO, file="smx.yaml"), env={})
    report = run_plan(plan, handle_signals=False)
    assert report.failure is None
    assert report.results.server_metrics
    return report.results


def _delta(results: Results, stage: str, name: str) -> float:
    (sm,) = results.server_metrics
    (st,) = [s for s in sm.stages if s.stage == stage]
    (c,) = [c for c in st.counters if c.name == name]
    return c.delta


def test_prometheus_carries_deltas_gauge_stats_and_scrape_counts(results: Results) -> None:
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(exposition(results))
        for s in fam.samples
        if s.name.startswith("lens_server_")
    }
    base = (("model", "lens-sim"), ("provider", "sim"), ("scenario", "smx"))

    def key(name: str, *extra: tuple[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
        return (name, tuple(sorted((*base, *extra))))

    for stage in ("conc", "wave"):
        metric = "llamacpp:tokens_predicted_total"
        got = samples[key("lens_server_counter_delta", ("stage", stage), ("metric", metric))]
        assert got == _delta(results, stage, metric)
    running = samples[
        key(
            "lens_server_gauge",
            ("stage", "conc"),
            ("metric", "llamacpp:requests_processing"),
            ("stat", "max"),
        )
    ]
    assert running == 2
    (sm,) = results.server_metrics
    assert samples[key("lens_server_scrapes_total")] == sm.scrapes
    assert samples[key("lens_server_scrapes_failed_total")] == 0


def test_influx_has_every_gauge_value_and_every_counter(results: Results) -> None:
    got = [parse(p) for p in points(results)]
    (sm,) = results.server_metrics
    kinds = Counter(p.measurement for p in got if p.measurement.startswith("lens_server"))
    assert kinds["lens_server_gauge"] == sum(len(g.points) for g in sm.gauges)
    assert kinds["lens_server_counter"] == sum(len(s.counters) for s in sm.stages)
    assert kinds["lens_server_scrapes"] == 1
    (wave,) = [
        p
        for p in got
        if p.measurement == "lens_server_counter"
        and p.tags["stage"] == "wave"
        and p.tags["metric"] == "llamacpp:tokens_predicted_total"
    ]
    assert wave.fields["delta"] == _delta(results, "wave", "llamacpp:tokens_predicted_total")
    assert wave.fields["reset"] is False
    # A gauge value scraped during a stage is tagged with it; before the first, none.
    gauges = [p for p in got if p.measurement == "lens_server_gauge"]
    assert "stage" not in gauges[0].tags
    assert {p.tags.get("stage") for p in gauges} >= {"conc", "wave"}


def test_csv_lists_counters_per_stage_and_gauge_values(results: Results) -> None:
    rows = list(csv.DictReader(io.StringIO(server_metrics_csv(results))))
    (sm,) = results.server_metrics
    assert Counter(r["kind"] for r in rows)["gauge"] == sum(len(g.points) for g in sm.gauges)
    (row,) = [
        r for r in rows if r["stage"] == "conc" and r["metric"] == "llamacpp:tokens_predicted_total"
    ]
    assert float(row["delta"]) == _delta(results, "conc", "llamacpp:tokens_predicted_total")
    assert row["reset"] == "false"
    from pathlib import Path  # noqa: PLC0415

    assert server_metrics_path(Path("out/r.csv")) == Path("out/r.server-metrics.csv")


def test_report_draws_a_chart_per_gauge_with_the_stages_marked(results: Results) -> None:
    pytest.importorskip("matplotlib")
    from lens.export.report import render_html  # noqa: PLC0415

    html = render_html(results)
    assert "<h2>Server metrics</h2>" in html
    (sm,) = results.server_metrics
    names = {g.name for g in sm.gauges}
    for i in range(len(names)):
        # A chart per gauge, each with both stages named over their windows.
        assert f'id="server-gauge-{i}-figure_1"' in html
        assert f'id="server-gauge-{i}-stage-name-1"' in html
    assert f'id="server-gauge-{len(names)}-figure_1"' not in html
    assert f"Scraped from {sm.url} every 0.1s" in html
    # The counters table: each stage's tokens_predicted delta.
    assert "llamacpp:tokens_predicted_total" in html


def test_merge_keeps_each_shards_scrapes(results: Results) -> None:
    plan = compile_plan(parse_scenario(SCENARIO, file="smx.yaml"), env={})
    redact = Redactor()
    shards = [shard_results(results, plan, Shard(k, 2), None, redact) for k in range(2)]
    assert [s.server_metrics[0].scraped_by for s in shards] == ["shard 0", "shard 1"]
    merged = merge_results(shards)
    assert [m.scraped_by for m in merged.server_metrics] == ["shard 0", "shard 1"]


def test_plan_shows_the_endpoint_with_credentials_masked() -> None:
    text = SCENARIO.replace(
        "server_metrics: {every: 100ms}",
        "server_metrics: {url: 'http://u:hunter2@10.0.0.5:8080/metrics?token=abc', every: 2s, "
        "names: ['llamacpp:*']}",
    )
    doc = describe_plan(compile_plan(parse_scenario(text, file="smx.yaml"), env={}), env={})
    shown = plan_text(doc)
    assert (
        "server metrics of sim: http://***:***@10.0.0.5:8080/metrics?token=*** every 2s "
        "(timeout 2s), families: llamacpp:*"
    ) in shown
    assert "hunter2" not in shown
    assert "abc" not in str(doc)

"""Every exporter takes a repeated stage's results: repetition rows (``steady#k``) and the
pooled row (``steady``) side by side, never colliding, and the table marks both."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from lens.export.csvfile import summary_path
from lens.export.influx import points
from lens.export.prometheus import exposition
from lens.export.registry import export_all
from lens.export.table import render
from lens.targets import parse_target
from tests.export._repeat_results import repeat_results
from tests.export.lineparse import parse
from tests.export.test_prometheus import samples


def test_prometheus_series_of_runs_and_the_pooled_row_do_not_collide() -> None:
    text = exposition(repeat_results())
    found = samples(text)
    base = 'scenario="golden-repeat",stage="{}",provider="a",model="m"'
    runs = [
        found[f'lens_requests_total{{{base.format(f"steady#{k}")},repetition="{k}"}}']
        for k in (1, 2, 3)
    ]
    pooled = found[f'lens_requests_total{{{base.format("steady")},repetition="pooled"}}']
    assert runs == [2, 2, 2]
    assert pooled == 6
    # A stage run once has no repetition label at all.
    assert found[f"lens_requests_total{{{base.format('once')}}}"] == 1
    # Every sample line is unique: no two series share name and labels.
    keys = [line.rpartition(" ")[0] for line in text.splitlines() if not line.startswith("#")]
    assert [k for k, n in Counter(keys).items() if n > 1] == []


def test_influx_summary_points_are_tagged_by_repetition() -> None:
    parsed = [parse(p) for p in points(repeat_results())]
    summaries = [p for p in parsed if p.measurement == "lens_summary"]
    tags = [(p.tags["stage"], p.tags["provider"], p.tags.get("repetition")) for p in summaries]
    assert tags[:2] == [("steady#1", "a", "1"), ("steady#1", "b", "1")]
    assert ("steady", "a", "pooled") in tags
    assert ("once", "a", None) in tags
    series = [(p.measurement, tuple(sorted(p.tags.items())), p.timestamp) for p in summaries]
    assert len(set(series)) == len(series)
    # The pooled point sits at the end of its provider's last run.
    results = repeat_results()
    (last_a,) = [w for w in results.stages if (w.stage, w.provider) == ("steady#3", "a")]
    (pooled_a,) = [
        p for p in summaries if p.tags.get("repetition") == "pooled" and p.tags["provider"] == "a"
    ]
    runs_a = [p for p in summaries if p.tags["stage"] == "steady#3" and p.tags["provider"] == "a"]
    assert pooled_a.timestamp == runs_a[0].timestamp
    assert last_a.end_ms > 0


def test_csv_markdown_and_junit_take_repetition_stage_ids(tmp_path: Path) -> None:
    results = repeat_results()
    targets = [
        parse_target(f"csv={tmp_path / 'r.csv'}"),
        parse_target(f"junit={tmp_path / 'sla.xml'}"),
        parse_target(f"markdown={tmp_path / 'summary.md'}"),
    ]
    assert export_all(results, targets) == []
    with summary_path(tmp_path / "r.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["stage"], r["provider"], r["requests"]) for r in rows][5:9] == [
        ("steady#3", "b", "2"), ("steady", "a", "6"), ("steady", "b", "7"), ("once", "a", "1"),
    ]  # fmt: skip
    with (tmp_path / "r.csv").open(newline="", encoding="utf-8") as f:
        assert {r["stage"] for r in csv.DictReader(f)} == {
            "steady#1", "steady#2", "steady#3", "once",
        }  # fmt: skip
    cases = ET.parse(tmp_path / "sla.xml").getroot().iter("testcase")
    # Judged pooled: one case per SLA x pooled stage x provider, none per repetition.
    assert [c.get("classname") for c in cases] == [
        "golden-repeat.steady.a", "golden-repeat.steady.b", "golden-repeat.once.a",
        "golden-repeat.steady.a", "golden-repeat.steady.b",
    ]  # fmt: skip
    assert render(results, "github") in (tmp_path / "summary.md").read_text()


def test_the_table_shows_each_providers_runs_above_its_pooled_row() -> None:
    text = render(repeat_results())
    rows = [line.split("  ")[0] for line in text.splitlines()[4:13]]
    assert rows == [
        "steady#1 (run 1/3)", "steady#2 (run 2/3)", "steady#3 (run 3/3)",
        "steady (pooled 3 runs)",
        "steady#1 (run 1/3)", "steady#2 (run 2/3)", "steady#3 (run 3/3)",
        "steady (pooled 3 runs)",
        "once",
    ]  # fmt: skip
    assert "run-to-run spread of repeated stages" in text
    assert "steady/a (3 of 3 runs): ttft.p50 90.0 ms-110.0 ms, sd 10.0 ms;" in text

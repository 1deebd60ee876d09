"""The file exporters: CSV (requests and summary), JUnit XML, markdown."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lens.errors import ExportError
from lens.export.csvfile import REQUEST_COLUMNS, SUMMARY_COLUMNS, summary_path
from lens.export.registry import EXPORTERS, export_all
from lens.export.table import render
from lens.targets import parse_target
from tests.export._results import ERROR_MESSAGE, SCENARIO_NAME, hand_results, rich_results


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def test_summary_path_sits_next_to_the_requests_file() -> None:
    assert summary_path(Path("out/requests.csv")) == Path("out/requests.summary.csv")
    assert summary_path(Path("out/requests")) == Path("out/requests.summary.csv")


def test_csv_rows_columns_and_empty_cells(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "requests.csv"
    assert export_all(hand_results(), [parse_target(f"csv={dest}")]) == []
    columns, rows = read_csv(dest)
    assert tuple(columns) == REQUEST_COLUMNS
    assert len(rows) == 5
    first, _, failure, gpt, _ = rows
    assert (first["stage"], first["provider"], first["model"], first["prompt"]) == (
        "warm",
        "sim",
        "lens-sim",
        "q",
    )
    assert first["t_dispatch_ms"] == "10.0"
    assert first["ttft_ms"] == "200.0"
    assert first["cost_usd"] == ""  # simulated: no price, an empty cell, not 0
    assert failure["status"] == "error"
    assert failure["error_class"] == "http_5xx"
    assert failure["ttft_ms"] == ""
    assert failure["error_message"] == ERROR_MESSAGE  # quoted by csv, newline kept
    assert gpt["cost_usd"] == "0.0000042"
    columns, summaries = read_csv(summary_path(dest))
    assert tuple(columns) == SUMMARY_COLUMNS
    sim = summaries[0]
    assert (sim["requests"], sim["errors"], sim["errors_http_5xx"]) == ("3", "1", "1")
    assert sim["ttft_p50_ms"] == "190.0"
    assert sim["ttft_n"] == "2"
    assert sim["ttfot_p50_ms"] == "190.0"
    assert sim["cost_total_usd"] == ""
    assert summaries[1]["cost_total_usd"] == "0.0000084"


def test_new_columns_are_appended_and_phase_summaries_follow(tmp_path: Path) -> None:
    # Appended: every earlier column keeps its position.
    assert REQUEST_COLUMNS[REQUEST_COLUMNS.index("error_message") + 1 :] == (
        "phase",
        "cold",
        "session",
        "turn",
        "inputs",
        "prefix_group",
        "engine_prompt_ms",
        "engine_prompt_tokens",
        "engine_cached_tokens",
        "engine_decode_ms",
        "engine_decode_tokens",
        "engine_per_token_ms",
        "ttft_overhead_ms",
    )
    engine_stats = tuple(
        f"{m}_{s}{'' if s == 'n' else '_ms'}"
        for m in ("engine_prefill", "ttft_overhead", "engine_tpot")
        for s in ("n", "min", "mean", "p50", "p90", "p95", "p99", "max")
    )
    assert SUMMARY_COLUMNS[SUMMARY_COLUMNS.index("cost_per_sla_conforming_usd") + 1 :] == (
        "phase",
        "drained",
        "sla_conforming",
        "pacing_sent",
        "pacing_planned_rate_per_s",
        "pacing_achieved_rate_per_s",
        "pacing_rate_error",
        "pacing_lag_p50_ms",
        "pacing_lag_p99_ms",
        "pacing_lag_max_ms",
        "goodput_per_s",
        "goodput_ratio",
        "inputs",
        "inputs_per_s",
        "ended_early",
        *engine_stats,
    )
    dest = tmp_path / "requests.csv"
    assert export_all(rich_results(), [parse_target(f"csv={dest}")]) == []
    _, rows = read_csv(dest)
    assert [(r["provider"], r["phase"], r["cold"]) for r in rows[:3]] == [
        ("gpt", "warmup", "true"),  # the first request to gpt
        ("sim", "measure", "true"),
        ("sim", "measure", "false"),
    ]
    _, summaries = read_csv(summary_path(dest))
    assert [(s["provider"], s["phase"]) for s in summaries] == [
        ("sim", "measure"),
        ("gpt", "measure"),
        ("gpt", "warmup"),
    ]
    sim, gpt, warmup = summaries
    # sim went out 6, 8 and 4 ms late: planned 2 / 22 ms, achieved 2 / 20 ms.
    assert float(sim["pacing_planned_rate_per_s"]) == pytest.approx(90.909, rel=1e-4)
    assert float(sim["pacing_achieved_rate_per_s"]) == 100.0
    assert float(sim["pacing_rate_error"]) == pytest.approx(0.1)
    assert (sim["pacing_sent"], sim["pacing_lag_p50_ms"], sim["pacing_lag_max_ms"]) == (
        "3",
        "6.0",
        "8.0",
    )
    assert (sim["drained"], sim["sla_conforming"]) == ("0", "2")
    assert float(sim["goodput_ratio"]) == pytest.approx(2 / int(sim["requests"]))
    assert float(sim["goodput_per_s"]) == pytest.approx(2 / float(sim["duration_s"]))
    assert (gpt["drained"], gpt["requests"]) == ("1", "2")  # drained: not a request
    assert gpt["pacing_rate_error"] == ""  # closed loop: no pacing, an empty cell, not 0
    assert (warmup["requests"], warmup["pacing_sent"]) == ("1", "")


def test_junit_has_one_testcase_per_verdict(tmp_path: Path) -> None:
    dest = tmp_path / "sla.xml"
    assert export_all(hand_results(), [parse_target(f"junit={dest}")]) == []
    root = ET.parse(dest).getroot()
    (suite,) = root.findall("testsuite")
    for node in (root, suite):
        assert (node.get("tests"), node.get("failures"), node.get("skipped")) == ("6", "1", "2")
    cases = suite.findall("testcase")
    assert len(cases) == 6
    (failed,) = [c for c in cases if c.find("failure") is not None]
    assert failed.get("name") == "error_rate < 1% [stage=warm provider=sim]"
    assert failed.get("classname") == f"{SCENARIO_NAME}.warm.sim"
    failure = failed.find("failure")
    assert failure is not None
    assert failure.get("message") == "error_rate = 33.333%, not < 1%"
    assert "measured error_rate = 33.333%; threshold < 1%" in (failure.text or "")
    skipped = [c.find("skipped") for c in cases if c.find("skipped") is not None]
    assert all(s is not None and "p99" in (s.get("message") or "") for s in skipped)


def test_markdown_appends(tmp_path: Path) -> None:
    dest = tmp_path / "summary.md"
    dest.write_text("# earlier step\n")
    results = hand_results()
    assert export_all(results, [parse_target(f"markdown={dest}")] * 2) == []
    text = dest.read_text()
    assert text.startswith("# earlier step\n")
    assert text.count(render(results, "github")) == 2


def test_one_failing_export_does_not_stop_the_others(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    targets = [
        parse_target(f"junit={blocker}/sla.xml"),  # a file where a directory should be
        parse_target(f"csv={tmp_path / 'r.csv'}"),
    ]
    (failure,) = export_all(hand_results(), targets)
    assert failure.target.kind == "junit"
    assert str(failure).startswith(f"export junit to {blocker}/sla.xml: ")
    assert (tmp_path / "r.csv").exists()


def test_export_error_reasons_are_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def refuse(*_: object) -> None:
        raise ExportError("refused")

    monkeypatch.setitem(EXPORTERS, "csv", refuse)
    (failure,) = export_all(hand_results(), [parse_target(f"csv={tmp_path / 'x.csv'}")])
    assert failure.reason == "refused"

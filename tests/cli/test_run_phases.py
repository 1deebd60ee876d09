"""Warmup, drain, pacing and idle probes end to end against the simulated server, over real
sockets: loose bounds only, since the machine may be loaded."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from lens.cli import main
from lens.export.results import results_json_schema

pytestmark = pytest.mark.slow


def run(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[dict[str, Any], str]:
    out = tmp_path / "r.json"
    code = main(["run", str(path), "-o", str(out), "--format", "table"])
    text = capsys.readouterr().out
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, results_json_schema())
    assert code == doc["exit_code"]
    return doc, text


def test_warmup_is_summarised_apart_and_not_judged(
    write_scenario: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_scenario(
        load="  - {id: s, pattern: constant-rate, rate: 20/s, requests: 12,"
        " warmup: 4 requests, cooldown: 2 requests}",
        sla="  - requests <= 6",
    )
    assert main(["plan", str(path)]) == 0
    assert "warmup #0-3, cooldown #10+" in capsys.readouterr().out
    doc, text = run(path, tmp_path, capsys)
    assert doc["exit_code"] == 0  # only the 6 measured requests are judged
    (main_summary,) = doc["summaries"]
    assert main_summary["requests"] == 6
    phases = {(s["phase"], s["requests"]) for s in doc["phase_summaries"]}
    assert phases == {("warmup", 4), ("cooldown", 2)}
    assert [r["phase"] for r in sorted(doc["records"], key=lambda r: r["index"])] == (
        ["warmup"] * 4 + ["measure"] * 6 + ["cooldown"] * 2
    )
    assert "s [warmup]" in text
    assert "s [cooldown]" in text


def test_pacing_of_a_modest_rate_is_reported(
    write_scenario: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_scenario(load="  - {id: r, pattern: constant-rate, rate: 50/s, duration: 1s}")
    doc, text = run(path, tmp_path, capsys)
    (summary,) = doc["summaries"]
    pacing = summary["pacing"]
    assert pacing["sent"] == 50
    assert pacing["planned_rate_per_s"] == pytest.approx(50.0)
    # Loose on purpose (a shared machine): the bench has the tight figures.
    assert abs(pacing["rate_error"]) < 0.05
    assert 0 <= pacing["lag_p50_ms"] <= pacing["lag_p99_ms"] <= pacing["lag_max_ms"] < 60
    assert "r/sim: planned 50.00/s, achieved" in text


def test_drain_cancel_cuts_off_slow_requests_at_the_duration(
    write_scenario: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Each response takes about 300 ms; the stage ends at 400 ms: the later ones are cut off.
    path = write_scenario(
        ttft="300ms",
        tokens=1,
        load="  - {id: d, pattern: constant-rate, rate: 10/s, duration: 400ms, drain: cancel}",
    )
    doc, text = run(path, tmp_path, capsys)
    (summary,) = doc["summaries"]
    assert summary["drained"] >= 2
    assert summary["requests"] + summary["drained"] == 4
    assert summary["error_rate"] == 0.0
    assert doc["exit_code"] == 0
    (window,) = doc["stages"]
    assert window["end_ms"] - window["start_ms"] < 400 + 100
    assert "in flight at the stage's cutoff" in text


def test_idle_probe_reports_each_probe_against_its_gap(
    write_scenario: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_scenario(
        load="  - {id: idle, pattern: idle-probe, gaps: [0s, 100ms, 400ms]}", integrity=""
    )
    path.write_text(path.read_text() + "integrity: {cold_after: 250ms}\n")
    assert main(["plan", str(path)]) == 0
    assert "probes after idle 0s, 0.1s, 0.4s" in capsys.readouterr().out
    doc, text = run(path, tmp_path, capsys)
    (probed,) = doc["idle_probes"]
    probes = probed["probes"]
    assert [p["index"] for p in probes] == [0, 1, 2, 3]
    assert probes[0]["idle_s"] is None
    for probe, gap in zip(probes[1:], (0.0, 0.1, 0.4), strict=True):
        assert gap <= probe["idle_s"] < gap + 0.1
        assert probe["ok"]
        assert probe["ttft_ms"] >= 20
    assert [p["cold"] for p in probes] == [True, False, False, True]
    assert "idle probes" in text

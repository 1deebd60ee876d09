"""goodput from the command line: in results.json, the table, and as SLAs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from lens.cli import main


def test_goodput_slas_judge_the_run_and_the_table_shows_it(
    write_scenario: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_scenario(
        ttft="20ms",
        sla="  - ttft.max < 5s\n  - goodput_ratio > 95%\n  - goodput > 0.01/s\n"
        "  - goodput > 100000/s",
    )
    out = tmp_path / "r.json"
    assert main(["run", "--quiet", "--format", "table", str(path), "-o", str(out)]) == 1
    doc = json.loads(out.read_text())
    (s,) = doc["summaries"]
    assert s["sla_conforming"] == s["ok"] == 4
    assert s["goodput_ratio"] == 1.0
    assert s["goodput"] == pytest.approx(4 / s["duration_s"])
    assert [v["outcome"] for v in doc["verdicts"]] == ["pass", "pass", "pass", "fail"]
    table = capsys.readouterr().out
    assert "good/s" in table

"""stop_on_fail from the command line: the run ends early, partial results, exit 1."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from lens.cli import main


def test_a_failed_windowed_assertion_stops_the_run_with_exit_1(
    write_scenario: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every TTFT is about 50 ms: the first 500 ms window fails ttft.p50 < 5ms, and the
    # run stops there instead of sending 80 requests over 4 s and then a later stage.
    path = write_scenario(
        ttft="50ms",
        load="  - {id: c, pattern: constant-rate, rate: 20/s, duration: 4s}\n"
        "  - {id: later, pattern: burst, requests: 3}",
        sla='  - {assert: "ttft.p50 < 5ms", window: 500ms, stop_on_fail: true}\n'
        "  - error_rate < 1%",
    )
    out = tmp_path / "r.json"
    assert main(["run", "--quiet", str(path), "-o", str(out)]) == 1
    doc = json.loads(out.read_text())
    assert doc["partial"] is True
    assert doc["interrupted_by"] == "sla"
    assert {s["stage"] for s in doc["summaries"]} == {"c"}
    assert len(doc["records"]) < 60  # well short of the planned 80
    (summary,) = doc["summaries"]
    # No request met its own ttft < 5ms: nothing conformed, a measured zero.
    assert (summary["sla_conforming"], summary["goodput"], summary["goodput_ratio"]) == (0, 0, 0)
    stopper, errors = doc["verdicts"]
    assert (stopper["outcome"], stopper["stopped_run"]) == ("fail", True)
    assert stopper["window"]["failed"] >= 1
    assert stopper["window"]["windows"][0]["outcome"] == "fail"
    assert errors["stopped_run"] is False
    err = capsys.readouterr().err
    assert "stopped early (stop_on_fail): ttft.p50 < 5ms (" in err
    assert "s.yaml:17:5) failed" in err
    assert "failed on stage=c provider=sim: 1 windows of 0.5s failed (allow 0): #0 [0s-0.5s]" in err

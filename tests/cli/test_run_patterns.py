"""Each load pattern end to end against the simulated server, over real sockets: the sends
follow the planned schedule within scheduling tolerance, and results carry the sweep."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from lens.cli import main
from lens.export.results import results_json_schema

pytestmark = pytest.mark.slow

# How late a send may be on a loaded 2-core machine; the plan itself is exact.
# Real sockets on a loaded 2-core CI machine: a single send can be held up by a scheduler
# stall (105 ms was seen with the machine at load 4), so each send is only held to being on
# time within a stall; the typical send (the median) is held to the tighter bound.  Exact
# pacing is asserted under MockClock (tests/run) and measured by make bench.
LATE_MS = 60.0
STALL_MS = 300.0


def run(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """The results document, and the planned offsets (ms) of each open-loop stage."""
    assert main(["plan", str(path), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    planned = {
        s["stage"]: [t * 1e3 for t in s["arrival_offsets_s"]]
        for s in plan["stages"]
        if "arrival_offsets_s" in s
    }
    out = tmp_path / "r.json"
    assert main(["run", "--quiet", str(path), "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, results_json_schema())
    return doc, planned


def assert_followed(doc: dict[str, Any], stage: str, planned: list[float]) -> None:
    """Every planned arrival was sent, at its planned offset from the stage's start."""
    (window,) = [w for w in doc["stages"] if w["stage"] == stage]
    recs = sorted((r for r in doc["records"] if r["stage"] == stage), key=lambda r: r["index"])
    assert len(recs) == len(planned)
    lags = []
    for rec, offset in zip(recs, planned, strict=True):
        assert rec["status"] == "ok"
        assert rec["t_intended"] - window["start_ms"] == pytest.approx(offset, abs=1e-3)
        lags.append(rec["t_dispatch"] - rec["t_intended"])
        assert 0 <= lags[-1] < STALL_MS  # never early, never a schedule gone astray
    assert statistics.median(lags) < LATE_MS


def test_burst_waves(
    write_scenario: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_scenario(
        load="  - {id: w, pattern: burst, requests: 3, waves: 3, interval: 400ms}"
    )
    doc, planned = run(path, tmp_path, capsys)
    assert planned["w"] == [0, 0, 0, 400, 400, 400, 800, 800, 800]
    assert_followed(doc, "w", planned["w"])


def test_poisson_and_gamma_arrivals(
    write_scenario: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_scenario(
        load="  - {id: p, pattern: constant-rate, rate: 25/s, duration: 1s, arrival: poisson}\n"
        "  - {id: g, pattern: constant-rate, rate: 25/s, requests: 20, arrival: gamma,"
        " burstiness: 0.5, seed: 7}"
    )
    doc, planned = run(path, tmp_path, capsys)
    assert planned["p"] != [i * 40 for i in range(len(planned["p"]))]  # not uniform
    assert_followed(doc, "p", planned["p"])
    assert_followed(doc, "g", planned["g"])
    assert len(planned["g"]) == 20


def test_ramp(
    write_scenario: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_scenario(
        load="  - {id: up, pattern: ramp, from: 5/s, to: 35/s, duration: 1.5s}\n"
        "  - {id: down, pattern: ramp, from: 30/s, to: 0/s, duration: 1s, steps: 3,"
        " arrival: poisson}"
    )
    doc, planned = run(path, tmp_path, capsys)
    assert len(planned["up"]) == 30  # (5 + 35) / 2 * 1.5
    gaps = [b - a for a, b in zip(planned["up"], planned["up"][1:], strict=False)]
    assert gaps[0] > 3 * gaps[-1]  # it speeds up
    assert_followed(doc, "up", planned["up"])
    assert all(t < 2000 / 3 for t in planned["down"])  # nothing in the 0/s step
    assert_followed(doc, "down", planned["down"])


def test_sweeps_over_rates_and_concurrencies(
    write_scenario: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_scenario(
        ttft="50ms",
        itl="5ms",
        tokens=4,
        load="  - {id: ladder, pattern: sweep, rates: [10/s, 20/s], duration: 500ms,"
        " pause: 300ms}\n"
        "  - {id: clients, pattern: sweep, concurrencies: [1, 4], requests: 8}",
        sla='  - {assert: "requests >= 5", stage: ladder}',
    )
    doc, planned = run(path, tmp_path, capsys)
    assert_followed(doc, "ladder.10rps", planned["ladder.10rps"])
    assert_followed(doc, "ladder.20rps", planned["ladder.20rps"])
    windows = {w["stage"]: w for w in doc["stages"]}
    assert list(windows) == ["ladder.10rps", "ladder.20rps", "clients.c1", "clients.c4"]
    assert windows["ladder.20rps"]["sweep"] == {
        "sweep": "ladder",
        "step": 1,
        "steps": 2,
        "rate_per_s": 20.0,
        "concurrency": None,
    }
    pause = windows["ladder.20rps"]["start_ms"] - windows["ladder.10rps"]["end_ms"]
    assert 300 <= pause < 300 + 150  # the pause, plus building the next step's transports
    assert windows["clients.c4"]["sweep"]["concurrency"] == 4
    # 8 requests of ~65 ms: one at a time, then four at a time.
    c1 = windows["clients.c1"]["end_ms"] - windows["clients.c1"]["start_ms"]
    c4 = windows["clients.c4"]["end_ms"] - windows["clients.c4"]["start_ms"]
    assert c1 > 2.5 * c4
    # One SLA scoped to the sweep: a verdict per step.
    assert [(v["stage"], v["outcome"]) for v in doc["verdicts"]] == [
        ("ladder.10rps", "pass"),
        ("ladder.20rps", "pass"),
    ]

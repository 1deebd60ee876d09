"""Adaptive sweeps end to end against a simulated server with a capacity, over real sockets.

The server streams at most 4 responses at once: 20 ms to the first of 16 tokens 2 ms apart,
50 ms each (a little more in practice: writes, wake-ups), so it completes at most about
4 / 50 ms = 80 requests per second.  Uniform arrivals below that never queue; above it the
queue grows by (rate - capacity) requests per second for as long as the step lasts.  The
request arriving at 95% of a step of D seconds waits about 0.95 D (rate / capacity - 1), so
with D = 1.5 s, TTFT p95 (20 ms + the wait) crosses 150 ms at about capacity x 1.09.
"""

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

CAPACITY = "capacity: 4"


def run(path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    out = tmp_path / "r.json"
    assert main(["run", str(path), "-o", str(out), "--format", "table"]) == 0
    doc: dict[str, Any] = json.loads(out.read_text())
    jsonschema.validate(doc, results_json_schema())
    return doc


def ttft_p95(doc: dict[str, Any], stage: str) -> float:
    (summary,) = [s for s in doc["summaries"] if s["stage"] == stage]
    value: float = summary["metrics"]["ttft"]["p95"]
    return value


def test_ttft_rises_past_the_knee_and_stop_when_ends_the_sweep(
    write_scenario: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_scenario(
        tokens=16,
        extra=CAPACITY,
        load="  - {id: ladder, pattern: sweep, rates: [40/s, 140/s, 200/s], duration: 1s,"
        ' stop_when: "ttft.p95 > 150ms"}',
    )
    doc = run(path, tmp_path, capsys)
    # 40/s never queues (TTFT ~20 ms); at 140/s, 1 s in, the queue holds ~60 requests,
    # 0.75 s of work, so TTFT p95 is several hundred ms.
    assert ttft_p95(doc, "ladder.140rps") > 5 * ttft_p95(doc, "ladder.40rps")
    assert [s["stage"] for s in doc["stages"]] == ["ladder.40rps", "ladder.140rps"]
    (sweep,) = doc["sweeps"]
    assert sweep["kind"] == "stop_when"
    assert sweep["not_run"] == ["ladder.200rps"]
    assert [p["held"] for p in sweep["probes"]] == [False, True]
    table = capsys.readouterr().out
    assert "ladder/sim (stop_when): stopped after ladder.140rps" in table
    assert "not run: ladder.200rps" in table


def test_find_max_rate_lands_within_the_precision_of_the_capacity(
    write_scenario: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    precision = 8.0
    path = write_scenario(
        tokens=16,
        extra=CAPACITY,
        load="  - {id: search, pattern: sweep, rates: {from: 50/s, to: 110/s}, duration: 1.5s,"
        f' find_max_rate: "ttft.p95 < 150ms", precision: {precision:g}/s}}',
    )
    doc = run(path, tmp_path, capsys)
    (sweep,) = doc["sweeps"]
    passing, failing = sweep["bracket"]
    assert failing - passing <= precision
    assert sweep["max_rate_per_s"] == passing
    # The true edge lies between the capacity (about 75-80/s once writes and wake-ups are
    # counted) and capacity x 1.09 (87/s); the answer is at most one precision below it.
    assert 75 - precision <= passing <= 88
    assert 75 <= failing <= 88 + precision
    # Every probe is a stage of its own, with its place in the sweep.
    windows = {w["stage"]: w["sweep"] for w in doc["stages"]}
    assert [p["stage"] for p in sweep["probes"]] == list(windows)
    assert all(w["sweep"] == "search" and w["steps"] is None for w in windows.values())
    table = capsys.readouterr().out
    assert f"search/sim (find_max_rate): max rate {passing:g}/s" in table


def test_find_max_concurrency_finds_where_queueing_starts(
    write_scenario: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 40 ms to the first of 16 tokens 4 ms apart: 100 ms a response.  Up to 4 in flight,
    # every request is admitted at once (TTFT ~40 ms); from 5 on, some wait a whole response
    # for a slot (TTFT ~140 ms), about one in five at 5, so TTFT p95 jumps by 100 ms between
    # 4 and 5.  The SLA sits halfway: the search must land on 4 exactly.
    path = write_scenario(
        ttft="40ms",
        itl="4ms",
        tokens=16,
        extra=CAPACITY,
        load="  - {id: conc, pattern: sweep, concurrencies: {from: 2, to: 12}, requests: 20,"
        ' find_max_concurrency: "ttft.p95 < 90ms"}',
    )
    doc = run(path, tmp_path, capsys)
    (sweep,) = doc["sweeps"]
    assert sweep["kind"] == "find_max_concurrency"
    assert sweep["max_concurrency"] == 4
    assert sweep["bracket"] == [4, 5]
    # 2 and 12, then (2 + 12) // 2 = 7 fails, 4 passes, (4 + 7) // 2 = 5 fails.
    assert [(p["stage"], p["held"]) for p in sweep["probes"]] == [
        ("conc.c2", True),
        ("conc.c12", False),
        ("conc.c7", False),
        ("conc.c4", True),
        ("conc.c5", False),
    ]
    assert ttft_p95(doc, "conc.c5") > ttft_p95(doc, "conc.c4") + 50
    windows = {w["stage"]: w["sweep"] for w in doc["stages"]}
    assert [w["concurrency"] for w in windows.values()] == [2, 12, 7, 4, 5]
    table = capsys.readouterr().out
    assert "conc/sim (find_max_concurrency): max concurrency 4, bracket [4, 5) in flight" in table

"""``lens run --workers 2`` end to end: real worker processes, one simulator, real sockets.

Timing is held only to tests/timing.py's margins; exact schedules are tested under
MockClock with the split itself (tests/run/test_executor_shards.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from lens.metrics.sketch import MetricSketch
from tests.timing import assert_on_time

LENS = (sys.executable, "-m", "lens.cli")

SCENARIO = """\
version: 1
name: workers
providers:
  sim: {type: simulated, ttft: 20ms, itl: 4ms, output_tokens: 5}
prompts:
  - id: a
    messages: [{role: user, content: hi}]
  - id: b
    messages: [{role: user, content: ho}]
load:
  # Lopsided on purpose: worker 0 gets 2 clients, worker 1 one, for 10 requests each, so
  # worker 1 drains this stage ~10 requests' time later (~0.2 s) than worker 0 ...
  - {id: lopsided, pattern: concurrency, concurrency: 3, requests: 20}
  # ... and yet both start this one together (lens.run.gate).
  - {id: rate, pattern: constant-rate, rate: 50/s, requests: 60}
  - {id: conc, pattern: concurrency, concurrency: 5, requests: 31}
  - {id: wave, pattern: burst, requests: 7}
sla:
  - ttft.p50 < 5s
"""

# Long requests (2 s each), so that a stop or a kill always finds requests in flight.
SLOW = """\
version: 1
name: slow
providers:
  sim: {type: simulated, ttft: 50ms, itl: 50ms, output_tokens: 40}
prompts:
  - id: a
    messages: [{role: user, content: hi}]
load:
  - {id: conc, pattern: concurrency, concurrency: 6, requests: 60}
"""


def _run(tmp_path: Path, scenario: str, *extra: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "scenario.yaml"
    path.write_text(scenario, encoding="utf-8")
    return subprocess.run(
        [*LENS, "run", str(path), *extra],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _results(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def test_two_workers_send_every_planned_request_once_and_merge_exactly(tmp_path: Path) -> None:
    out, records = tmp_path / "r.json", tmp_path / "r.jsonl"
    done = _run(tmp_path, SCENARIO, "--workers", "2", "-o", str(out), "--records", str(records))
    assert done.returncode == 0, done.stderr
    assert "running in 2 worker processes" in done.stderr
    doc = _results(out)
    assert not doc["partial"]
    assert [s["index"] for s in doc["shards"]] == [0, 1]
    recs = doc["records"]
    by_stage = Counter(r["stage"] for r in recs)
    assert by_stage == {"lopsided": 20, "rate": 60, "conc": 31, "wave": 7}
    # The open loop keeps the plan's indices: each arrival once, worker k owning k, k+2, ...
    rate = [r for r in recs if r["stage"] == "rate"]
    assert sorted(r["index"] for r in rate) == list(range(60))
    assert all(r["index"] % 2 == r["shard"] for r in rate)
    # ... at its planned offset (20 ms apart) from its worker's stage start.  The workers
    # started the run at one instant and this stage at another, though worker 1 finished
    # the stage before later: their stage starts differ by no more than a loaded machine
    # adds (without the gate, by the ~0.2 s worker 1 took longer).
    starts: dict[int, float] = {}
    for r in rate:
        start = r["t_intended"] - r["index"] * 20.0
        assert starts.setdefault(r["shard"], start) == pytest.approx(start, abs=0.001)
        assert_on_time(r["t_dispatch"] / 1e3, r["t_intended"] / 1e3)
    assert abs(starts[0] - starts[1]) <= 100.0
    # A closed loop's clients split 3 + 2, its 31 requests 16 + 15; a burst wave 4 + 3.
    assert Counter(r["shard"] for r in recs if r["stage"] == "conc") == {0: 16, 1: 15}
    assert Counter(r["shard"] for r in recs if r["stage"] == "wave") == {0: 4, 1: 3}
    assert all(r["status"] == "ok" for r in recs)
    # Merged exact percentiles are those of the pooled records, computed once.
    for summary in doc["summaries"]:
        pooled = MetricSketch()
        pooled.add_many(r["ttft"] for r in recs if r["stage"] == summary["stage"])
        ttft = summary["metrics"]["ttft"]
        assert ttft["exact"]
        assert ttft["n"] == pooled.count
        for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
            assert ttft[name] == pytest.approx(pooled.quantile(q), abs=1e-6)
    # --records: every request once, the worker on each line.
    lines = [json.loads(line) for line in records.read_text(encoding="utf-8").splitlines()]
    keys = Counter((r["stage"], r["shard"], r["index"], r["attempt"]) for r in lines)
    assert len(lines) == len(recs) == 118
    assert max(keys.values()) == 1


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _start_slow(tmp_path: Path) -> tuple[subprocess.Popen[str], Path, Path]:
    path = tmp_path / "slow.yaml"
    path.write_text(SLOW, encoding="utf-8")
    out, records = tmp_path / "r.json", tmp_path / "r.jsonl"
    proc = subprocess.Popen(
        [*LENS, "run", str(path), "--workers=2", "-q", f"--output={out}", f"--records={records}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, out, records


def _wait_for_records(proc: subprocess.Popen[str], records: Path, n: int) -> None:
    """Until the parent has written ``n`` records (the run is well under way)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if records.exists() and len(records.read_bytes().splitlines()) >= n:
            return
        time.sleep(0.05)
    pytest.fail("the run did not get going")


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
def test_the_workers_share_one_simulator_and_sigterm_stops_them_all(tmp_path: Path) -> None:
    proc, out, records = _start_slow(tmp_path)
    try:
        _wait_for_records(proc, records, 6)
        children = [_cmdline(c) for c in _children(proc.pid)]
        assert sum("lens.sim" in c for c in children) == 1, children
        assert sum("spawn_main" in c for c in children) == 2, children
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 3, stderr
    doc = _results(out)
    assert doc["partial"]
    assert "SIGTERM" in doc["interrupted_by"]
    classes = Counter(r["error_class"] for r in doc["records"])
    # Both workers had requests in flight: cut off and recorded, as by SIGTERM in one process.
    assert classes["cancelled"] >= 2
    assert {r["shard"] for r in doc["records"] if r["error_class"] == "cancelled"} == {0, 1}
    assert "lens_lost" not in classes
    assert len(doc["records"]) < 60


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
def test_a_killed_worker_is_reported_and_its_requests_in_flight_recorded_lost(
    tmp_path: Path,
) -> None:
    proc, out, records = _start_slow(tmp_path)
    try:
        _wait_for_records(proc, records, 6)
        workers = [c for c in _children(proc.pid) if "spawn_main" in _cmdline(c)]
        assert len(workers) == 2
        os.kill(workers[1], signal.SIGKILL)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 3, stderr
    doc = _results(out)
    assert doc["partial"]
    assert "killed by SIGKILL" in doc["interrupted_by"]
    recs = doc["records"]
    lost = [r for r in recs if r["error_class"] == "lens_lost"]
    # The dead worker's clients (3) each had a request in flight: named, not dropped.
    assert len(lost) == 3
    assert all("killed by SIGKILL" in r["error_message"] for r in lost)
    assert {r["shard"] for r in lost} == {1}
    # The other worker ran its whole share (30 requests) to the end.
    assert sum(1 for r in recs if r["shard"] == 0 and r["status"] == "ok") == 30
    # Lost requests are lens's doing: out of the error rate, listed apart.
    summary = doc["summaries"][0]
    assert summary["error_counts"]["lens_lost"] == 3
    assert summary["errors"] == 0
    # No key twice: (worker, index) names a request.
    keys = Counter((r["shard"], r["index"]) for r in recs)
    assert max(keys.values()) == 1


def test_workers_with_shard_is_refused(tmp_path: Path) -> None:
    done = _run(tmp_path, SCENARIO, "--workers", "2", "--shard", "0/2")
    assert done.returncode == 2
    assert "--workers 2 with --shard 0/2" in done.stderr


def test_an_idle_probe_cannot_be_split_across_workers(tmp_path: Path) -> None:
    probe = SCENARIO.replace(
        "  - {id: wave, pattern: burst, requests: 7}\n",
        "  - {id: idle, pattern: idle-probe, gaps: [1s]}\n",
    )
    done = _run(tmp_path, probe, "--workers", "2")
    assert done.returncode == 2
    assert "idle-probe" in done.stderr


def test_workers_keep_every_record_for_the_merge_and_list_the_scenarios_sample(
    tmp_path: Path,
) -> None:
    # results: {records: N} applies to the merged run; each worker sends all of its own,
    # since the merge rebuilds the summaries from them.
    out, records = tmp_path / "r.json", tmp_path / "r.jsonl"
    sampled = SCENARIO + "results: {records: 10}\n"
    done = _run(tmp_path, sampled, "--workers", "2", "-o", str(out), "--records", str(records))
    assert done.returncode == 0, done.stderr
    doc = _results(out)
    assert len(doc["records"]) == 10
    assert doc["records_omitted"] == 108
    assert sum(s["requests"] for s in doc["summaries"]) == 118
    assert len(records.read_text(encoding="utf-8").splitlines()) == 118

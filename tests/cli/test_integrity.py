"""lens's self-checks over real sockets: a client starved of CPU does not get a verdict."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lens.cli import main

LOAD = "  - {id: c, pattern: concurrency, concurrency: 1, requests: 12}"


@pytest.fixture
def cpu_hog() -> Iterator[None]:
    """A thread burning CPU in the lens process, holding the GIL for up to 50 ms at a
    time (as a C extension or a long pure-Python loop would), so the event loop wakes
    late however busy the machine is otherwise."""
    stop = threading.Event()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.05)

    def burn() -> None:
        while not stop.is_set():
            sum(range(10_000))

    thread = threading.Thread(target=burn, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)


@pytest.mark.usefixtures("cpu_hog")
def test_an_overloaded_client_is_flagged_and_its_verdicts_are_inconclusive(
    write_scenario: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # long enough (> 1 s of samples) for the harness to judge itself
    long_load = "  - {id: c, pattern: concurrency, concurrency: 1, requests: 40}"
    path = write_scenario(
        ttft="30ms", itl="2ms", load=long_load, sla="  - ttft.p50 < 10s", integrity=""
    )
    out = tmp_path / "r.json"
    assert main(["run", "--quiet", str(path), "-o", str(out)]) == 3
    doc = json.loads(out.read_text())
    harness = doc["integrity"]["harness"]
    assert harness["status"] == "overloaded"
    assert harness["loop_lag_p99_ms"] > 25.0
    assert harness["reasons"][0].startswith("event-loop lag p99")
    (verdict,) = doc["verdicts"]
    assert verdict["outcome"] == "inconclusive"
    assert verdict["reason"].startswith("measurements distorted by the client: event-loop")
    assert "warning: harness overloaded: event-loop lag p99" in capsys.readouterr().err


def test_a_quiet_client_is_ok_and_the_first_request_is_cold(
    write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    # 10 ms between tokens: far apart enough that no read carries two of them
    path = write_scenario(
        ttft="30ms", itl="10ms", load=LOAD, sla="  - ttft.p50 < 10s", integrity=""
    )
    out = tmp_path / "r.json"
    assert main(["run", "--quiet", str(path), "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    integrity = doc["integrity"]
    assert integrity["harness"]["status"] == "ok"
    assert integrity["harness"]["samples"] > 0
    assert integrity["warnings"] == []
    (stream,) = integrity["streams"]
    assert stream["buffered"] is False
    assert stream["zero_gap_share"] < 0.5
    assert [r["cold"] for r in doc["records"]] == [True] + [False] * 11
    (cold,) = integrity["cold_start"]
    assert (cold["cold_requests"], cold["warm_requests"]) == (1, 11)
    assert doc["verdicts"][0]["outcome"] == "pass"


def test_thresholds_come_from_the_scenario(
    write_scenario: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_scenario(load=LOAD, integrity="")
    path.write_text(
        "integrity: {max_loop_lag: 50ms, max_cpu: 100%, cold_after: 1s}\n" + path.read_text()
    )
    assert main(["plan", "--json", str(path)]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["integrity"] == {
        "max_loop_lag_ms": 50.0,
        "max_cpu": 1.0,
        "cold_after_s": 1.0,
        "buffered_share": 0.5,
    }

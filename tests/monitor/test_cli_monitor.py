"""``lens monitor`` as a command: --once, bad input, SIGTERM, and memory over 200 cycles."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lens import exitcodes
from lens.cli import main
from tests.monitor.conftest import scenario_text

LENS = [sys.executable, "-m", "lens.cli"]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.slow
def test_once_runs_one_cycle_and_exits_with_its_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    passing = _write(tmp_path, scenario_text())
    assert main(["monitor", str(passing), "--once"]) == exitcodes.OK
    err = capsys.readouterr().err
    assert re.search(r"cycle 1: pass in [\d.]+s, 4 requests, 0 errors", err)
    assert "listening" not in err  # --once serves nothing
    failing = _write(tmp_path, scenario_text(sla="  - ttft.p50 < 1ms\n"))
    assert main(["monitor", str(failing), "--once"]) == exitcodes.SLA_FAILED


@pytest.mark.slow
def test_monitor_stages_selects_what_each_cycle_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    load = (
        "  - {id: probe, pattern: concurrency, concurrency: 1, requests: 2}\n"
        "  - {id: heavy, pattern: burst, requests: 7}\n"
    )
    text = scenario_text(
        load=load,
        monitor="{stages: [probe]}",
        sla="  - ttft.p50 < 2s\n  - {assert: ttft.p50 < 2s, stage: heavy}\n",
    )
    path = _write(tmp_path, text)
    assert main(["monitor", str(path), "--once"]) == exitcodes.OK
    assert "2 requests" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--every", "soon"], "--every: expected a duration"),
        (["--jitter", "80%"], "--jitter: must be at most 50%"),
        (["--listen", "nowhere"], "--listen: expected HOST:PORT"),
    ],
)
def test_bad_flags_are_input_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    path = _write(tmp_path, scenario_text(monitor="{every: 5s, cycle_deadline: 4s}"))
    assert main(["monitor", str(path), *flags]) == exitcodes.INPUT
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_a_shorter_every_flag_shortens_the_scenarios_deadline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, scenario_text(monitor="{every: 5m, cycle_deadline: 2m}"))
    assert main(["monitor", str(path), "--once", "--every", "1s"]) == exitcodes.OK
    err = capsys.readouterr().err
    assert "monitor.cycle_deadline (120s) is longer than --every 1s" in err
    assert "(0.8s)" in err


def test_a_deadline_longer_than_the_scenarios_interval_is_an_input_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, scenario_text(monitor="{every: 5s, cycle_deadline: 10s}"))
    assert main(["monitor", str(path), "--once"]) == exitcodes.INPUT
    err = capsys.readouterr().err
    assert "cycle_deadline" in err
    assert "Traceback" not in err


def test_an_unknown_monitored_stage_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, scenario_text(monitor="{stages: [probe, nope]}"))
    assert main(["monitor", str(path), "--once"]) == exitcodes.INPUT
    assert "monitor.stages: no stage 'nope' in load: (stages: probe)" in capsys.readouterr().err


def test_a_bad_monitor_section_is_positioned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, scenario_text(monitor="{every: 1m, jitter: 70%}"))
    assert main(["monitor", str(path), "--once"]) == exitcodes.INPUT
    err = capsys.readouterr().err
    assert re.search(r"s\.yaml:\d+:\d+: .*jitter must be at most 50%", err), err


@pytest.mark.slow
def test_an_address_in_use_is_an_input_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, scenario_text())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code = main(["monitor", str(path), "--listen", f"127.0.0.1:{port}"])
    assert code == exitcodes.INPUT
    assert f"--listen 127.0.0.1:{port}: cannot listen there" in capsys.readouterr().err


def _start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*LENS, "monitor", *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )


def _wait_for(proc: subprocess.Popen[str], pattern: str, timeout_s: float = 60) -> list[str]:
    """stderr lines until one matches ``pattern``."""
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if re.search(pattern, line):
            return lines
    proc.kill()
    raise AssertionError(f"no line matching {pattern!r}: {lines}")


@pytest.mark.slow
def test_sigterm_ends_the_current_cycle_and_exits_0_in_bounded_time(tmp_path: Path) -> None:
    # Each cycle takes ~1 s (two rounds of a slow provider), so the signal lands inside one.
    slow = "{type: simulated, ttft: 500ms, itl: 2ms, output_tokens: 4}"
    path = _write(tmp_path, scenario_text(slow, monitor="{every: 3s, jitter: 0%}"))
    with _start([str(path), "--listen", "127.0.0.1:0"]) as proc:
        lines = _wait_for(proc, r"listening on http://127\.0\.0\.1:\d+ ")
        assert re.search(r"listening on http://127\.0\.0\.1:(\d+)", "".join(lines))
        _wait_for(proc, r"cycle 1: pass")
        time.sleep(2.3)  # inside cycle 2
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rest = _wait_for(proc, r"cycle 2: ")
        code = proc.wait(timeout=30)
        took = time.monotonic() - sent
    assert code == exitcodes.OK
    assert took < 10, took  # the cycle is cancelled, not waited for
    text = "".join(rest)
    assert "SIGTERM: stopping after the current cycle's results" in text
    assert "cycle 2: interrupted" in text


@pytest.mark.slow
def test_memory_stays_flat_over_200_cycles(tmp_path: Path) -> None:
    """RSS growth from cycle 20 to cycle 200 of short cycles on the simulator stays under
    10 MB (measured: ~1 MB, the windows' per-cycle sketches; docs/monitoring.md)."""
    text = scenario_text(
        "{type: simulated, ttft: 5ms, itl: 1ms, output_tokens: 8}",
        monitor="{every: 150ms, jitter: 0%}",
    )
    with _start([str(_write(tmp_path, text)), "--listen", "127.0.0.1:0"]) as proc:
        at_20, at_200 = _rss_at(proc, 20, 200)
    assert at_200 - at_20 < 10, (at_20, at_200)


def _rss_at(proc: subprocess.Popen[str], first: int, last: int) -> tuple[float, float]:
    def rss_mb() -> float:
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    try:
        _wait_for(proc, rf"cycle {first}: ", timeout_s=120)
        at_first = rss_mb()
        _wait_for(proc, rf"cycle {last}: ", timeout_s=300)
        return at_first, rss_mb()
    finally:
        proc.terminate()
        proc.wait(timeout=30)

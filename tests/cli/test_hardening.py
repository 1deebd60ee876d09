"""What survives which kind of stop: ``kill -9`` keeps every finished request in --records;
lens failing (a bug) prints one line, writes the traceback to a file, exits 5, and still
writes what it measured; no secret is in any of it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import lens.pipeline
from lens import exitcodes
from lens.cli import main
from lens.run.executor import RunProgress
from tests.hostile.server import HostileServer

pytestmark = pytest.mark.slow

KEY = "sk-boundary-0123456789abcdef"
LENS_RUN = (sys.executable, "-m", "lens.cli", "run", "-q")
FAILED_LINE = re.compile(r"^lens failed: (?P<what>.+) — full traceback in (?P<path>\S+)$")


def failure_line(err: str) -> re.Match[str]:
    """The one line lens prints when it fails (warnings aside), parsed."""
    lines = [line for line in err.splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    found = FAILED_LINE.match(lines[0])
    assert found is not None, lines[0]
    return found


def test_kill_9_leaves_every_finished_request_in_records(
    write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    path = write_scenario(
        ttft="30ms", load="  - {id: r, pattern: constant-rate, rate: 20/s, duration: 60s}"
    )
    recs, out = tmp_path / "r.jsonl", tmp_path / "r.json"
    proc = subprocess.Popen(
        [*LENS_RUN, str(path), "--records", str(recs), "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if recs.exists() and len(recs.read_bytes().splitlines()) >= 10:
                break
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.1)
        else:
            pytest.fail("no records were written while the run went on")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stderr is not None:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()  # nothing ran after the kill: only the records log survives
    lines = recs.read_text().splitlines()
    assert len(lines) >= 10
    indices = []
    for line in lines:
        rec = json.loads(line)  # every line whole: appended and flushed per request
        assert rec["status"] == "ok", rec
        assert rec["t_end"] >= rec["t_dispatch"]
        assert rec["chunks"] == 8
        indices.append(rec["index"])
    assert len(set(indices)) == len(indices)


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """A scenario against the hostile server's well-behaved route, with an api_key."""
    monkeypatch.setenv("BOUNDARY_KEY", KEY)
    with HostileServer() as server:
        path = tmp_path / "s.yaml"
        path.write_text(
            "version: 1\nname: keyed\nproviders:\n"
            f"  p: {{type: openai-compatible, base_url: '{server.base_url('ok')}', model: m, "
            "api_key: '${BOUNDARY_KEY}'}\n"
            "prompts: [{id: q, messages: [{role: user, content: hi}]}]\n"
            "load: [{id: b, pattern: burst, requests: 4}]\n"
            "sla: [error_rate < 1%]\n"
        )
        yield path


def test_a_failure_while_summarising_exits_5_and_keeps_the_measurement(
    keyed: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError(f"summary exploded while holding Bearer {KEY}")

    monkeypatch.setattr(lens.pipeline, "summarise", broken)
    out, recs = tmp_path / "out" / "r.json", tmp_path / "r.jsonl"
    code = main(["run", "-q", str(keyed), "-o", str(out), "--records", str(recs)])
    err = capsys.readouterr().err
    assert code == exitcodes.LENS_FAILED
    found = failure_line(err)
    assert found["what"] == "RuntimeError: summary exploded while holding Bearer ***"
    trace = Path(found["path"])
    assert trace.parent == out.parent  # next to the results
    text = trace.read_text()
    assert "Traceback (most recent call last)" in text
    assert "summary exploded" in text
    assert KEY not in text
    assert KEY not in err
    # what was measured is written: every record, partial, the failure named
    doc = json.loads(out.read_text())
    assert doc["partial"] is True
    assert doc["interrupted_by"] == "lens_failed"
    assert doc["exit_code"] == exitcodes.LENS_FAILED
    assert doc["failure"] == "RuntimeError: summary exploded while holding Bearer ***"
    assert doc["summaries"] == []
    assert [r["status"] for r in doc["records"]] == ["ok"] * 4
    assert len(recs.read_text().splitlines()) == 4


def test_a_failure_mid_run_stops_the_run_and_keeps_what_finished(
    keyed: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real = RunProgress.record
    seen: list[object] = []

    def record(self: RunProgress, rec: object) -> None:
        seen.append(rec)
        if len(seen) == 2:
            raise ZeroDivisionError("progress bug")
        real(self, rec)  # type: ignore[arg-type]

    monkeypatch.setattr(RunProgress, "record", record)
    out, recs = tmp_path / "r.json", tmp_path / "r.jsonl"
    code = main(["run", "-q", str(keyed), "-o", str(out), "--records", str(recs)])
    err = capsys.readouterr().err
    assert code == exitcodes.LENS_FAILED
    assert failure_line(err)["what"] == "ZeroDivisionError: progress bug"
    doc = json.loads(out.read_text())
    assert doc["failure"] == "ZeroDivisionError: progress bug"
    assert doc["interrupted_by"] == "lens_failed"
    assert doc["exit_code"] == exitcodes.LENS_FAILED
    # the summaries still worked: the run is summarised, partial
    assert doc["summaries"][0]["requests"] >= 1
    assert len(recs.read_text().splitlines()) == len(doc["records"]) >= 1


def test_a_failure_outside_run_is_one_line_and_exit_5(
    write_scenario: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        raise KeyError("no such column")

    monkeypatch.setattr("lens.cli.plan_to_dict", broken)
    assert main(["plan", str(write_scenario())]) == exitcodes.LENS_FAILED
    found = failure_line(capsys.readouterr().err)
    assert found["what"] == "KeyError: 'no such column'"
    path = Path(found["path"])
    assert path.name.startswith("lens-failure-")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    path.unlink()


def test_the_failure_line_names_a_real_file_even_in_a_subprocess(
    write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    # No monkeypatching across processes: a results path whose parent is a file makes
    # writing results fail after the run, which is lens failing (an OSError), not input.
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    proc = subprocess.run(
        [*LENS_RUN, str(write_scenario()), "-o", str(blocker / "r.json")],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert proc.returncode == exitcodes.LENS_FAILED, proc.stderr
    found = failure_line(proc.stderr)
    assert found["what"].startswith(("FileExistsError", "NotADirectoryError"))
    assert Path(found["path"]).parent == tmp_path  # the results folder was unusable


def test_an_unwritable_records_path_is_an_input_error_before_anything_is_sent(
    write_scenario: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    code = main(["run", "-q", str(write_scenario()), "--records", str(blocker / "r.jsonl")])
    assert code == exitcodes.INPUT
    assert capsys.readouterr().err.startswith(f"error: --records {blocker / 'r.jsonl'}: ")


def test_a_secret_too_short_to_redact_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SHORT_KEY", "abc")
    with HostileServer() as server:
        path = tmp_path / "s.yaml"
        path.write_text(
            "version: 1\nname: short\nproviders:\n"
            f"  p: {{type: openai-compatible, base_url: '{server.base_url('ok')}', model: m, "
            "api_key: '${SHORT_KEY}'}\n"
            "prompts: [{id: q, messages: [{role: user, content: hi}]}]\n"
            "load: [{id: b, pattern: burst, requests: 1}]\n"
        )
        assert main(["run", "-q", str(path)]) == exitcodes.OK
    assert (
        "warning: api_key of provider p (3 characters) is shorter than 4 characters: "
        "it is not redacted from output" in capsys.readouterr().err
    )

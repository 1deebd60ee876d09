"""Two shards on one --start-at, real processes: the second stage of each starts at the
planned instant (``lens.plan.split.planned_starts``), every arrival of it at its planned
offset from --start-at; a plan whose stage ends after a request count is warned about.
Real sockets: timing held to tests/timing.py's margins."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lens.api import load_results
from lens.plan.compile import compile_plan
from lens.plan.model import OpenLoop
from lens.plan.split import planned_starts
from lens.scenario import parse_scenario
from tests.timing import assert_on_time

SCENARIO = """\
version: 1
name: planned-starts
defaults: {timeout: 2s, drain: cancel, drain_timeout: 200ms}
providers:
  sim: {type: simulated, ttft: 10ms, itl: 2ms, output_tokens: 3}
prompts:
  - id: q
    messages: [{role: user, content: hi}]
load:
  - {id: first, pattern: constant-rate, rate: 20/s, requests: 10}
  - {id: second, pattern: constant-rate, rate: 40/s, requests: 12}
"""
N = 2
LENS = (sys.executable, "-m", "lens.cli")


def _shards(scenario: Path, out: Path, start_at: datetime) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            [
                *LENS,
                "run",
                str(scenario),
                "--shard",
                f"{k}/{N}",
                "--start-at",
                start_at.isoformat().replace("+00:00", "Z"),
                "-q",
                "-o",
                str(out / f"shard-{k}.json"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(N)
    ]


def test_every_shard_starts_the_second_stage_at_its_planned_instant(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    plan = compile_plan(parse_scenario(SCENARIO), env={})
    offset = planned_starts(plan).offsets[1]
    assert offset is not None
    second = plan.stages[1].load
    assert isinstance(second, OpenLoop)
    # Far enough ahead for two interpreters to start on a loaded 2-core machine (three
    # of them have taken more than 11 s there).
    start_at = (datetime.now(UTC) + timedelta(seconds=15)).replace(microsecond=0)
    for proc in _shards(scenario, tmp_path, start_at):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode in (0, 3), err  # 3: the harness may call a loaded CI busy
        assert "warning: stage" not in err  # every stage planned: nothing to warn about
    for k in range(N):
        shard = load_results(tmp_path / f"shard-{k}.json")
        window = next(w for w in shard.stages if w.stage == "second")
        # The first stage ends well before the planned instant: no lateness beyond the
        # wake-up's, and the stage's clock is the planned instant itself.
        assert window.late_ms is not None
        assert_on_time(window.start_ms / 1e3, offset)
        records = [r for r in shard.records if r.stage == "second"]
        assert sorted(r.index for r in records) == list(range(k, 12, N))
        for rec in records:
            # On the run clock, started at --start-at: the planned absolute offset.
            assert rec.t_intended is not None
            due_s = offset + second.arrivals.offsets_s[rec.index]
            assert rec.t_intended / 1e3 == pytest.approx(due_s, abs=1e-6)
            assert_on_time(rec.t_dispatch / 1e3, due_s)


def test_a_stage_bounded_by_requests_is_warned_about(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(
        SCENARIO.replace(
            "{id: first, pattern: constant-rate, rate: 20/s, requests: 10}",
            "{id: first, pattern: concurrency, concurrency: 2, requests: 4}",
        ),
        encoding="utf-8",
    )
    done = subprocess.run(
        [*LENS, "run", str(scenario), "--shard", "0/2", "-q", "-o", str(tmp_path / "s.json")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 3), done.stderr
    assert "warning: stage first ends after its request count" in done.stderr

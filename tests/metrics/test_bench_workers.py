"""The measuring parts of bench/bench_workers.py: a process tree's CPU and the mock's truth."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.bench_workers import CpuSampler, _tree_cpu_s, read_truth

# A child burns 0.3 s of CPU, says so, and waits; its parent (using almost none) reaps it
# when told, says so, and waits in turn: each step is a line on the shared pipes.
CHILD = (
    "import sys, time\n"
    "t = time.process_time()\n"
    "while time.process_time() - t < 0.3: pass\n"
    "print('burnt', flush=True)\n"
    "sys.stdin.readline()\n"
)
PARENT = (
    "import subprocess, sys\n"
    f"subprocess.run([sys.executable, '-c', {CHILD!r}])\n"
    "print('reaped', flush=True)\n"
    "sys.stdin.readline()\n"
)


def test_tree_cpu_counts_live_and_reaped_descendants() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdin is not None
        assert proc.stdout is not None
        try:
            with CpuSampler(period_s=0.02) as sampler:
                sampler.watch("tree", proc.pid)
                assert proc.stdout.readline() == "burnt\n"
                alive = _tree_cpu_s(proc.pid)  # the child's CPU, read from the live child
                proc.stdin.write("\n")
                proc.stdin.flush()
                assert proc.stdout.readline() == "reaped\n"
                reaped = _tree_cpu_s(proc.pid)  # now in the parent's cutime
                proc.stdin.write("\n")
                proc.stdin.flush()
                proc.wait(timeout=30)
        finally:
            proc.kill()
    assert alive is not None
    assert alive >= 0.28
    assert reaped is not None
    assert reaped >= alive - 0.02  # clock ticks of 10 ms, read twice
    assert sampler.samples["tree"]
    assert _tree_cpu_s(proc.pid) is None  # gone


def test_read_truth(tmp_path: Path) -> None:
    log = tmp_path / "truth.jsonl"
    lines = [
        # out of order on purpose: the warm set is by arrival (t0)
        {
            "t0": 10.5,
            "ok": True,
            "n_tokens": 3,
            "chunk_us": [200_000, 220_000, 250_000],
            "ttft_ms": 200.0,
            "itl_mean_ms": 25.0,
        },
        {
            "t0": 10.0,
            "ok": True,
            "n_tokens": 3,
            "chunk_us": [210_000, 230_000, 250_000],
            "ttft_ms": 210.0,
            "itl_mean_ms": 20.0,
        },
        {
            "t0": 11.0,
            "ok": False,
            "n_tokens": 3,
            "chunk_us": [300_000],
            "ttft_ms": 300.0,
            "itl_mean_ms": None,
        },
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in lines))
    t = read_truth(log, streams=1)
    assert (t.served, t.ok, t.tokens) == (3, 2, 6)
    assert t.t_start == 10.0
    assert t.t_end == pytest.approx(11.3)
    assert t.window_s == pytest.approx(1.3)
    assert sorted(t.gaps_ms) == pytest.approx([20.0, 20.0, 20.0, 30.0])
    assert t.warm_ttft_ms == [200.0]  # the first arrival (t0 10.0) and the failed one out
    assert sorted(t.itl_mean_ms) == [20.0, 25.0]


def test_sampler_between_covers_the_window() -> None:
    sampler = CpuSampler()
    sampler.samples["x"] = [(1.0, 0.0), (2.0, 1.0), (3.0, 3.0), (4.0, 6.0)]
    assert sampler.between("x", 2.5, 3.5) == 5.0  # from the sample at 2.0 to the one at 4.0
    assert sampler.between("x", 0.0, 9.0) == 6.0

"""The measuring parts of bench/bench_workers.py: a process tree's CPU and the mock's truth."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.bench_workers import CpuSampler, _tree_cpu_s, read_truth

# A parent that starts a child burning 0.3 s of CPU, then waits for it and lingers: the
# parent itself uses almost none.
BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
PARENT = (
    "import subprocess, sys, time\n"
    f"p = subprocess.Popen([sys.executable, '-c', {BURN + 'time.sleep(1.5)'!r}])\n"
    "p.wait()\n"
    "time.sleep(1.0)\n"
)


def test_tree_cpu_counts_live_and_reaped_descendants() -> None:
    proc = subprocess.Popen([sys.executable, "-c", PARENT])
    try:
        with CpuSampler(period_s=0.02) as sampler:
            sampler.watch("tree", proc.pid)
            proc.wait(timeout=30)
        samples = sampler.samples["tree"]
        assert samples
        # While the child sleeps, alive, its 0.3 s count; once reaped, the parent's
        # cutime carries them: the tree's CPU never drops and ends above 0.3 s.
        cpus = [c for _, c in samples]
        assert cpus == sorted(cpus)
        assert cpus[-1] >= 0.28
        assert sampler.between("tree", samples[0][0], samples[-1][0]) == cpus[-1] - cpus[0]
    finally:
        proc.kill()
        proc.wait()
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

"""Smoke test of bench/bench_sketch.py: it runs and reports one figure per sketch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_sketch.py"


def test_bench_reports_microseconds_per_insert() -> None:
    spec = importlib.util.spec_from_file_location("bench_sketch", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    figures = module.run(n=2_000, n_pure=200)
    assert [label for label, _ in figures] == [
        "fastdigest TDigest.batch_update",
        "fastdigest TDigest.update",
        "tdigest (pure Python) TDigest.update",
        "MetricSketch.add, exact phase",
        "MetricSketch.add, digest phase",
    ]
    assert all(us > 0 for _, us in figures)

"""Smoke test of bench/bench_compare.py's model part: it runs and reports its figures."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lens.metrics.compare import Options

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_compare.py"


def test_bench_reports_false_alarms_and_detection() -> None:
    spec = importlib.util.spec_from_file_location("bench_compare", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lines: list[str] = []
    module.model(lines.append, pairs=4, options=Options(resamples=100))
    assert lines[1].startswith("false alarms, any default check, 4 pairs: ")
    assert [line.split(":")[0] for line in lines[3:]] == [
        "TTFT +5%",
        "TTFT +10%",
        "TTFT +15%",
        "TTFT +20%",
        "TTFT +30%",
    ]
    assert "regressed in ttft.p50 100%" in lines[-1]  # +30 % on 200 requests: always caught

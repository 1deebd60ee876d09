from __future__ import annotations

import re

import pytest

from lens.scenario.sla import SlaSyntaxError, parse_sla


@pytest.mark.parametrize(
    ("text", "metric", "stat", "op", "threshold"),
    [
        ("ttft.p95 < 800ms", "ttft", "p95", "<", 800.0),
        ("ttft.p95<0.8s", "ttft", "p95", "<", 800.0),
        ("e2e.p99 <= 2m", "e2e", "p99", "<=", 120_000.0),
        ("itl.p50 < 40", "itl", "p50", "<", 40.0),  # times default to ms
        ("error_rate < 1%", "error_rate", None, "<", 0.01),
        ("success_rate >= 0.99", "success_rate", None, ">=", 0.99),
        ("rps > 5/s", "rps", None, ">", 5.0),
        ("rps > 300/m", "rps", None, ">", 5.0),
        ("throughput > 100 tokens/s", "throughput", None, ">", 100.0),
        ("output_tokens_per_s.p50 > 30", "output_tokens_per_s", "p50", ">", 30.0),
        ("ttft.n >= 20", "ttft", "n", ">=", 20.0),
        ("input_tokens.max <= 4000", "input_tokens", "max", "<=", 4000.0),
        ("requests >= 100", "requests", None, ">=", 100.0),
        ("  errors < 5  ", "errors", None, "<", 5.0),
    ],
)
def test_parses_into_canonical_units(
    text: str, metric: str, stat: str | None, op: str, threshold: float
) -> None:
    expr = parse_sla(text)
    assert (expr.metric, expr.stat, expr.op) == (metric, stat, op)
    assert expr.threshold == pytest.approx(threshold)
    assert expr.text == text.strip()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fast please", "cannot parse SLA 'fast please'"),
        ("ttft < 1s", "'ttft' is a per-request metric: name a statistic"),
        ("ttft.p42 < 1s", "unknown statistic 'p42'"),
        ("error_rate.p95 < 1%", "'error_rate' is one value per stage and takes no statistic"),
        ("tfft.p95 < 1s", "unknown metric 'tfft' (did you mean 'ttft'?)"),
        ("ttft.p95 < 5%", "ttft is a time: use ms, s or m, not '%'"),
        ("error_rate < 5ms", "error_rate is a ratio: use % or a plain number, not 'ms'"),
        ("rps > 5ms", "rps is a rate per second: use /s, /m or a plain number"),
        ("ttft.n > 5ms", "ttft.n is a count and takes no unit"),
    ],
)
def test_errors_say_what_was_expected(text: str, message: str) -> None:
    with pytest.raises(SlaSyntaxError, match=re.escape(message)):
        parse_sla(text)


@pytest.mark.parametrize(
    ("op", "holds_at", "fails_at"),
    [("<", 9.0, 10.0), ("<=", 10.0, 11.0), (">", 11.0, 10.0), (">=", 10.0, 9.0)],
)
def test_holds(op: str, holds_at: float, fails_at: float) -> None:
    expr = parse_sla(f"ttft.p95 {op} 10ms")
    assert expr.holds(holds_at)
    assert not expr.holds(fails_at)


def test_label_and_min_samples() -> None:
    assert parse_sla("ttft.p99 < 1s").label == "ttft.p99"
    assert parse_sla("ttft.p99 < 1s").min_samples == 100
    assert parse_sla("error_rate < 1%").label == "error_rate"
    assert parse_sla("error_rate < 1%").min_samples == 1

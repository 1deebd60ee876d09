"""The watch's conclusive-failure rule: a window it calls failed fails whatever the
requests still in flight bring (checked against the judge's own statistics)."""

from __future__ import annotations

import math

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lens.metrics.sketch import MetricSketch
from lens.metrics.slawatch import _Tally, fails_whatever_comes
from lens.metrics.summary import MetricStats
from lens.scenario.sla import SlaExpr, parse_sla

STATS = ("n", "min", "mean", "p50", "p90", "p95", "p99", "max")
values_st = st.lists(st.integers(0, 20).map(float), max_size=40)


def tally(values: list[float], expr: SlaExpr, errors: int = 0) -> _Tally:
    t = _Tally(requests=len(values) + errors, ok=len(values))
    for v in values:
        t.n += 1
        t.good += expr.holds(v)
        t.total += v
        t.lo, t.hi = min(t.lo, v), max(t.hi, v)
    return t


def final_fails(values: list[float], expr: SlaExpr) -> bool:
    """What the judge says of the finished window: fail (not pass, not inconclusive)."""
    sketch = MetricSketch(10_000)
    for v in values:
        sketch.add(v)
    stats = MetricStats.from_sketch(sketch)
    assert expr.stat is not None
    value = stats.get(expr.stat)
    if expr.stat != "n" and (not values or len(values) < expr.min_samples):
        return False
    assert value is not None
    return not expr.holds(value)


@settings(max_examples=400, deadline=None)
@given(
    seen=values_st,
    pending=values_st,
    in_flight=st.integers(0, 6),
    stat=st.sampled_from(STATS),
    op=st.sampled_from(["<", "<=", ">", ">="]),
    threshold=st.integers(0, 20),
)
def test_a_conclusive_failure_survives_any_pending_values(
    seen: list[float],
    pending: list[float],
    in_flight: int,
    stat: str,
    op: str,
    threshold: int,
) -> None:
    assume(seen)  # a window is watched from its first request on
    unit = "" if stat == "n" else "ms"
    expr = parse_sla(f"ttft.{stat} {op} {threshold}{unit}")
    t = tally(seen, expr)
    if fails_whatever_comes(t, expr, in_flight):
        # Any of the in-flight requests may bring a value, or none (failed, drained).
        assert final_fails(seen + pending[:in_flight], expr)
    if in_flight == 0:
        # With nothing pending the rule is exact.
        assert fails_whatever_comes(t, expr, 0) == final_fails(seen, expr)


@settings(max_examples=200, deadline=None)
@given(
    ok=st.integers(0, 30),
    errors=st.integers(0, 30),
    in_flight=st.integers(0, 6),
    pending_errors=st.integers(0, 6),
    metric=st.sampled_from(["error_rate", "success_rate"]),
    op=st.sampled_from(["<", ">"]),
    pct=st.integers(0, 100),
)
def test_rates_fail_conclusively_only_when_no_outcome_could_save_them(
    ok: int, errors: int, in_flight: int, pending_errors: int, metric: str, op: str, pct: int
) -> None:
    expr = parse_sla(f"{metric} {op} {pct}%")
    t = tally([1.0] * ok, expr, errors)
    if fails_whatever_comes(t, expr, in_flight):
        bad = min(pending_errors, in_flight)
        good = in_flight - bad
        for extra_ok, extra_err in ((good, bad), (0, 0), (in_flight, 0), (0, in_flight)):
            total = ok + errors + extra_ok + extra_err
            rate = (errors + extra_err if metric == "error_rate" else ok + extra_ok) / total
            assert not expr.holds(rate)
    if in_flight == 0 and ok + errors:
        rate = (errors if metric == "error_rate" else ok) / (ok + errors)
        assert fails_whatever_comes(t, expr, 0) == (not expr.holds(rate))


def test_series_and_cost_never_stop_while_requests_are_in_flight() -> None:
    itl = parse_sla("itl.p50 < 1ms")
    assert not fails_whatever_comes(tally([5.0] * 50, itl), itl, 1)
    assert fails_whatever_comes(tally([5.0] * 50, itl), itl, 0)
    cost = parse_sla("cost.mean < $0.001")
    assert not fails_whatever_comes(tally([1.0] * 50, cost), cost, 0)
    assert math.isinf(_Tally().lo)

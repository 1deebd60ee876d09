from __future__ import annotations

import pytest

from lens.metrics.conformance import request_checks, request_conforms, series_stat
from lens.plan.model import SlaSpec
from lens.scenario.sla import parse_sla


def checks(*texts: str) -> tuple[SlaSpec, ...]:
    return tuple(SlaSpec(parse_sla(t)) for t in texts)


def test_only_per_request_statistics_become_checks() -> None:
    slas = (
        *checks("ttft.p95 < 800ms", "error_rate < 1%", "ttft.n >= 10", "cost.total < $5"),
        SlaSpec(parse_sla("e2e.p99 < 2s"), provider="other"),
        SlaSpec(parse_sla("itl.max < 50ms"), stage="s"),
    )
    found = request_checks(slas, "s", "p")
    assert [e.text for e in found] == ["ttft.p95 < 800ms", "itl.max < 50ms"]


def test_a_request_conforms_when_its_own_values_hold() -> None:
    slas = request_checks(checks("ttft.p95 < 800ms", "e2e.p99 <= 2s"), "s", "p")
    assert request_conforms(True, {"ttft": 799.0, "e2e": 2000.0}, {}, slas)
    assert not request_conforms(True, {"ttft": 800.0, "e2e": 10.0}, {}, slas)
    assert not request_conforms(True, {"ttft": 1.0, "e2e": 2000.1}, {}, slas)


def test_failed_requests_never_conform_and_unmeasured_metrics_are_neutral() -> None:
    slas = request_checks(checks("tpot.p50 < 10ms", "dispatch_lag.p99 < 5ms"), "s", "p")
    assert not request_conforms(False, {}, {}, slas)
    assert request_conforms(True, {"tpot": None, "dispatch_lag": None}, {}, slas)


def test_series_metrics_compare_the_requests_own_statistic() -> None:
    gaps = [10.0] * 18 + [90.0, 95.0]  # its p90 is 10, its p95 is 90
    assert request_conforms(
        True, {}, {"itl": gaps}, request_checks(checks("itl.p90 < 20ms"), "s", "p")
    )
    assert not request_conforms(
        True, {}, {"itl": gaps}, request_checks(checks("itl.p95 < 20ms"), "s", "p")
    )
    # no gaps (a one-chunk answer): nothing to hold against it
    assert request_conforms(True, {}, {}, request_checks(checks("icl.max < 1ms"), "s", "p"))


@pytest.mark.parametrize(
    ("stat", "expected"),
    [("min", 1.0), ("max", 4.0), ("mean", 2.5), ("p50", 2.0), ("p99", 4.0)],
)
def test_series_stat_nearest_rank(stat: str, expected: float) -> None:
    assert series_stat([4.0, 1.0, 3.0, 2.0], stat) == expected


def test_series_stat_of_nothing_is_none() -> None:
    assert series_stat([], "p50") is None

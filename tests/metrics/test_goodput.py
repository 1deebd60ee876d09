"""goodput and goodput_ratio on fixed records: the formula, and as SLA metrics."""

from __future__ import annotations

import pytest

from lens.metrics.judge import judge
from lens.metrics.summary import aggregate
from lens.plan.model import SlaSpec
from lens.records import ErrorClass, RequestRecord
from lens.scenario.sla import SlaSyntaxError, parse_sla
from tests.metrics._factory import failed, ns, record

S = 1_000_000_000
WINDOW = {("s", "p"): (0, 4 * S)}  # a 4 s stage


def specs(*texts: str) -> tuple[SlaSpec, ...]:
    return tuple(SlaSpec(parse_sla(t)) for t in texts)


def records() -> list[RequestRecord]:
    # TTFT 200 ms (the factory's), 500 ms and 900 ms, two failures, one drained.
    return [
        record(index=0),
        record(index=1, t_first_token=ns(510), t_first_visible=ns(510)),
        record(index=2, t_first_token=ns(910), t_first_visible=ns(910)),
        record(index=3, t_first_token=ns(910), t_first_visible=ns(910)),
        failed(index=4),
        failed(index=5, error_class=ErrorClass.TIMEOUT),
        failed(index=6, error_class=ErrorClass.DRAINED),  # lens's cut: in no denominator
    ]


def test_without_per_request_slas_every_successful_request_is_good() -> None:
    (s,) = aggregate(records(), stage_windows=WINDOW, slas=specs("error_rate < 5%"))
    assert (s.requests, s.ok, s.sla_conforming) == (6, 4, 4)
    assert s.goodput == pytest.approx(4 / 4) == s.rps
    assert s.goodput_ratio == pytest.approx(4 / 6)


def test_per_request_slas_decide_which_requests_count() -> None:
    (s,) = aggregate(records(), stage_windows=WINDOW, slas=specs("ttft.p95 < 600ms"))
    assert s.sla_conforming == 2  # 200 and 500 ms; the two 900 ms ones and errors do not
    assert s.goodput == pytest.approx(2 / 4)
    assert s.goodput_ratio == pytest.approx(2 / 6)


def test_not_measurable_is_none_not_zero() -> None:
    (no_window,) = aggregate(records(), stage_windows={})
    assert no_window.goodput is None
    assert no_window.goodput_ratio == pytest.approx(4 / 6)
    (empty,) = aggregate([], stage_windows=WINDOW)
    assert empty.goodput_ratio is None
    assert empty.goodput == 0.0  # a measured 4 s in which nothing conformed


def test_goodput_slas_parse_their_units() -> None:
    assert parse_sla("goodput > 5/s").threshold == 5.0
    assert parse_sla("goodput >= 120/m").threshold == pytest.approx(2.0)
    assert parse_sla("goodput_ratio > 95%").threshold == pytest.approx(0.95)
    with pytest.raises(SlaSyntaxError, match="takes no statistic"):
        parse_sla("goodput.p95 > 5/s")
    with pytest.raises(SlaSyntaxError, match="ratio"):
        parse_sla("goodput_ratio > 5/s")


def test_goodput_slas_pass_fail_and_inconclusive() -> None:
    slas = specs(
        "ttft.p95 < 600ms",
        "goodput >= 0.5/s",
        "goodput > 0.5/s",
        "goodput_ratio > 30%",
        "goodput_ratio > 95%",
    )
    (s,) = aggregate(records(), stage_windows=WINDOW, slas=slas)
    outcomes = [v.outcome for v in judge(slas[1:], [s])]
    assert outcomes == ["pass", "fail", "pass", "fail"]
    (empty,) = aggregate([], stage_windows=WINDOW, slas=slas)
    assert {v.outcome for v in judge(slas[1:], [empty])} == {"inconclusive"}
    (no_window,) = aggregate(records(), stage_windows={}, slas=slas)
    (v,) = judge(slas[1:2], [no_window])
    assert v.outcome == "inconclusive"
    assert "no stage window" in v.reason

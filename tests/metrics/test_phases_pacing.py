"""Warmup/cooldown summaries apart from the measured one, and pacing of open-loop stages."""

from __future__ import annotations

import pytest

from lens.metrics.pacing import pacing
from lens.metrics.summary import SummaryBuilder
from lens.records import RequestRecord

from ._factory import failed, ns, record


def phased(index: int, phase: str, stage: str = "s") -> RequestRecord:
    return record(index=index, phase=phase, stage=stage)


def test_warmup_and_cooldown_are_summarised_apart_over_their_windows() -> None:
    recs = [phased(0, "warmup"), phased(1, "warmup"), phased(2, "measure")]
    recs += [phased(3, "cooldown"), failed(index=4, phase="cooldown")]
    builder = SummaryBuilder()
    builder.add_many(recs)
    (main,) = builder.build({("s", "p"): (ns(0), ns(1000))})
    assert (main.phase, main.requests, main.rps) == ("measure", 1, 1.0)
    warmup, cooldown = builder.build_phases(
        {("s", "p", "warmup"): (ns(0), ns(500)), ("s", "p", "cooldown"): (ns(0), ns(2000))}
    )
    assert (warmup.phase, warmup.requests, warmup.rps) == ("warmup", 2, 4.0)
    assert (cooldown.phase, cooldown.requests, cooldown.errors) == ("cooldown", 2, 1)


def test_a_pooled_stage_judges_warmup_with_the_measured_requests() -> None:
    recs = [phased(0, "warmup"), phased(1, "measure"), phased(0, "warmup", stage="t")]
    builder = SummaryBuilder(pooled_stages=frozenset({"s"}))
    builder.add_many(recs)
    (s,) = builder.build()
    assert (s.stage, s.requests) == ("s", 2)
    (apart,) = builder.build_phases()
    assert (apart.stage, apart.phase, apart.requests) == ("t", "warmup", 1)


def paced(index: int, intended_ms: float, lag_ms: float, **kw: object) -> RequestRecord:
    return record(
        index=index, t_intended=ns(intended_ms), t_dispatch=ns(intended_ms + lag_ms), **kw
    )


def test_pacing_compares_dispatches_with_the_plan() -> None:
    # 11 arrivals 100 ms apart (10/s planned); dispatch lag 1 ms, except the last (21 ms).
    recs = [paced(i, 100 * i, 1.0) for i in range(10)] + [paced(10, 1000, 21.0)]
    recs.append(paced(3, 300, 500.0, attempt=2))  # a retry is off the schedule
    recs.append(record(index=0, stage="closed"))  # closed loop: no intended time
    ((key, p),) = pacing(recs).items()
    assert (key, p.sent) == (("s", "p"), 11)
    assert p.planned_rate_per_s == pytest.approx(10.0)
    assert p.achieved_rate_per_s == pytest.approx(10 / 1.020)
    assert p.rate_error == pytest.approx(1 / 1.02 - 1)
    assert (p.lag_p50_ms, p.lag_p99_ms, p.lag_max_ms) == pytest.approx((1.0, 21.0, 21.0))


def test_a_burst_has_lag_but_no_rate() -> None:
    (p,) = pacing([paced(0, 0, 0.5), paced(1, 0, 2.5)]).values()
    assert (p.planned_rate_per_s, p.achieved_rate_per_s, p.rate_error) == (None, None, None)
    assert (p.lag_p50_ms, p.lag_max_ms) == pytest.approx((0.5, 2.5))

from __future__ import annotations

from dataclasses import replace

import pytest

from lens.metrics.integrity import (
    cold_flags,
    cold_start,
    stream_delivery,
    zero_gap_share,
)
from lens.metrics.judge import Verdict, distrust
from lens.records import RequestRecord

from ._factory import failed, ns, record

S = 1_000_000_000


def stream(times_ms: list[float], reads: int) -> RequestRecord:
    times = tuple(ns(t) for t in times_ms)
    return replace(
        record(),
        chunk_times=times,
        chunk_tokens=(1,) * len(times),
        reads=reads,
        output_tokens=len(times),
    )


def test_zero_gaps_are_chunks_that_came_in_one_read() -> None:
    assert zero_gap_share(stream([10, 10, 10, 20, 30], reads=3)) == 0.5
    assert zero_gap_share(stream([10, 10, 10], reads=1)) is None  # too few to tell


def test_a_typically_buffered_stage_is_flagged() -> None:
    smooth = [stream([10, 20, 30, 40, 50], reads=5) for _ in range(3)]
    lumpy = [stream([10, 10, 10, 10, 50], reads=2) for _ in range(3)]
    fine = stream_delivery([*smooth, failed()])
    (s,) = fine
    assert (s.requests, s.zero_gap_share, s.buffered) == (3, 0.0, False)
    assert s.chunks_per_read == pytest.approx(1.0)
    (b,) = stream_delivery([*lumpy, smooth[0]])
    assert b.zero_gap_share == 0.75
    assert b.buffered
    assert b.chunks_per_read == pytest.approx((2.5 * 3 + 1) / 4)
    (strict,) = stream_delivery(lumpy, buffered_share=0.8)
    assert not strict.buffered


def at(
    dispatch_s: float, end_s: float, ttft_ms: float = 100.0, provider: str = "p"
) -> RequestRecord:
    d = int(dispatch_s * S)
    return replace(
        record(),
        provider=provider,
        t_dispatch=d,
        t_first_token=d + int(ttft_ms * 1e6),
        t_end=int(end_s * S),
    )


def test_first_request_and_requests_after_an_idle_gap_are_cold() -> None:
    recs = [
        at(0, 1),  # first: cold
        at(0.5, 2),  # overlaps: warm
        at(61, 62),  # 59 s after the last end: warm
        at(130, 131),  # 68 s idle: cold
        at(0.2, 0.4, provider="q"),  # another provider's first: cold
    ]
    assert cold_flags(recs, cold_after_s=60) == [True, False, False, True, True]


def test_cold_penalty_significance() -> None:
    recs = [at(0, 1, ttft_ms=900), *[at(1 + i, 2 + i, ttft_ms=100 + i) for i in range(10)]]
    flags = cold_flags(recs, cold_after_s=60)
    (c,) = cold_start(recs, flags)
    assert (c.cold_requests, c.warm_requests) == (1, 10)
    assert c.cold_ttft_p50_ms == pytest.approx(900)
    assert c.warm_ttft_p50_ms == pytest.approx(104)
    assert c.ratio == pytest.approx(900 / 104)
    assert c.penalty_ms == pytest.approx(796)
    assert c.significant
    assert (c.warm_stage, c.same_stage) == ("s", True)
    mild = [at(0, 1, ttft_ms=108), *recs[1:]]
    (m,) = cold_start(mild, cold_flags(mild))
    assert not m.significant


def test_no_warm_requests_means_no_comparison() -> None:
    (c,) = cold_start([at(0, 1)], [True])
    assert (c.ratio, c.penalty_ms, c.significant) == (None, None, False)


def test_distrusted_verdicts_become_inconclusive_with_the_reason() -> None:
    v = Verdict("ttft.p95 < 1s", "ttft.p95", "<", 1000.0, "p", "s", "pass", 10.0, 20, "ok")
    same = replace(v, outcome="inconclusive", reason="few")
    out = distrust([v, same], ["client CPU 95% of a core > 90%"])
    assert [x.outcome for x in out] == ["inconclusive", "inconclusive"]
    assert out[0].reason == (
        "measurements distorted by the client: client CPU 95% of a core > 90% (ok)"
    )
    assert out[0].value == 10.0
    assert out[1].reason == "few"
    assert distrust([v], []) == (v,)


def test_cold_requests_are_compared_with_warm_ones_under_comparable_load() -> None:
    def staged(stage: str, dispatch_s: float, end_s: float, ttft_ms: float) -> RequestRecord:
        return replace(at(dispatch_s, end_s, ttft_ms), stage=stage)

    # A burst of 4: the first is cold (900 ms), the 3 beside it queued (800 ms): too few to
    # compare with.  Then 10 at once, queued (2 s TTFT, 10 in flight), and 10 one after
    # another (100-109 ms, about 0.5 in flight): the cold start is compared with these.
    recs = [staged("burst", 0, 1, 900), *(staged("burst", 0, 1, 800) for _ in range(3))]
    recs += [staged("c8", 2, 4, 2000) for _ in range(10)]
    recs += [staged("c1", 5 + i, 5.5 + i, 100 + i) for i in range(10)]
    (c,) = cold_start(recs, cold_flags(recs))
    assert (c.cold_requests, c.warm_stage, c.same_stage, c.warm_requests) == (1, "c1", False, 10)
    assert c.warm_in_flight == pytest.approx(5 / 9.5)
    assert (c.warm_ttft_p50_ms, c.warm_ttft_p90_ms) == pytest.approx((104, 108))
    assert c.significant  # against all 23 warm requests (p50 800 ms) it would not be
    assert c.compared_with() == (
        "compared with warm requests of stage c1 (the least loaded stage: 10 warm, "
        "0.5 in flight on average)"
    )
    # With 10 warm requests of its own, a stage is its own reference, however loaded.
    more = recs + [staged("burst", 0, 1, 800) for _ in range(7)]
    (own,) = cold_start(more, cold_flags(more))
    assert (own.warm_stage, own.same_stage, own.warm_requests) == ("burst", True, 10)
    assert own.compared_with().startswith(
        "compared with warm requests of stage burst (the cold requests' own stage: 10 warm, "
    )

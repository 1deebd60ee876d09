"""The run fold (lens.metrics.fold) against the batch functions it replaces: the same
records, fed as a run feeds them (starts and records in time order, ties shuffled),
must give exactly what the batch functions give on the list in completion order."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

import pytest

from lens.metrics.fold import (
    ColdFlagger,
    ColdStartAccumulator,
    RecordSample,
    StreamDeliveryAccumulator,
)
from lens.metrics.integrity import cold_flags, cold_start, stream_delivery
from lens.metrics.pacing import PacingAccumulator, pacing
from lens.metrics.summary import aggregate
from lens.metrics.windows import WindowFeed, judge_all
from lens.plan.model import SlaSpec
from lens.records import ErrorClass, Phase, RequestRecord, RequestStart
from lens.scenario.sla import parse_sla
from tests.metrics._factory import record

MS = 1_000_000
PROVIDERS = ("a", "b", "c")
STAGES = ("s1", "s2", "s3")


@dataclass(frozen=True)
class Fed:
    """A synthetic run: records in completion order, and the events a run feeds."""

    records: list[RequestRecord]
    events: list[RequestStart | RequestRecord]


def synthetic_run(seed: int, n: int = 600) -> Fed:
    """``n`` requests over a few seconds with idle gaps (cold starts), ties on a coarse
    clock, errors, retries, stale re-sends, warmup/cooldown, open-loop intended times, a
    few records without a start (never sent) and a few starts without a record."""
    rng = random.Random(seed)
    requests: list[tuple[int, RequestRecord | None, RequestStart | None]] = []
    t = 0
    for i in range(n):
        t += rng.choice([0, 0, 1, 2, 5, 20]) * MS
        if rng.random() < 0.03:
            t += rng.choice([200, 400]) * MS  # idle: longer than cold_after
        provider = rng.choice(PROVIDERS)
        stage = rng.choice(STAGES)
        phase: Phase = rng.choice(["measure", "measure", "measure", "warmup", "cooldown"])
        attempt = 2 if rng.random() < 0.1 else 1
        t_start = t
        never_sent = rng.random() < 0.03
        stale = not never_sent and rng.random() < 0.05
        dispatch = t_start + (rng.choice([10, 30]) * MS if stale else rng.choice([0, 0, MS]))
        duration = 0 if never_sent else rng.choice([0, 1, 3, 10, 50, 150, 300]) * MS
        end = dispatch + duration
        intended = t_start - rng.choice([0, MS, 2 * MS]) if stage != "s3" and attempt == 1 else None
        ok = not never_sent and rng.random() < 0.8
        chunks = rng.randint(0, 8) if ok and duration else 0
        step = duration // (chunks + 1) if chunks else 0
        times = tuple(
            dispatch + step * (k + 1) - (step if rng.random() < 0.4 and k else 0)
            for k in range(chunks)
        )
        common = {
            "provider": provider,
            "stage": stage,
            "index": i,
            "attempt": attempt,
            "phase": phase,
            "t_intended": intended,
            "t_dispatch": dispatch,
            "t_end": end,
            "stale_connection": stale,
            "stale_lost_ns": dispatch - t_start if stale else None,
        }
        if ok:
            first = times[0] if times else None
            rec = record(
                **common,
                t_headers=dispatch,
                t_first_chunk=first,
                t_first_token=first,
                t_first_visible=first,
                t_last_token=times[-1] if times else None,
                chunk_times=times,
                chunk_tokens=(1,) * len(times),
                reads=max(1, len(set(times))),
                output_tokens=len(times),
            )
        else:
            rec = record(
                **common,
                ok=False,
                error_class=ErrorClass.CANCELLED if never_sent else ErrorClass.HTTP_5XX,
                error_message="boom",
                http_status=None if never_sent else 500,
                t_headers=None,
                t_first_chunk=None,
                t_first_token=None,
                t_first_visible=None,
                t_last_token=None,
                chunk_times=(),
                chunk_tokens=(),
                output_tokens=None,
            )
        start = RequestStart(stage, provider, "q", i, attempt, phase, intended, t_start)
        if never_sent:
            # Cut off before it went out: recorded at once, never announced.
            rec = record(**{**common, "t_dispatch": t, "t_end": t}, ok=False)
            requests.append((t, rec, None))
        elif rng.random() < 0.01:
            requests.append((t, None, start))  # announced, its record never came
        else:
            requests.append((t, rec, start))
    keyed: list[tuple[tuple[int, float], RequestStart | RequestRecord]] = []
    for _, done, began in requests:
        r = rng.random()
        if began is not None:
            own_first = done is not None and done.t_end == began.t_start
            keyed.append(((began.t_start, r - 1 if own_first else r), began))
        if done is not None:
            keyed.append(((done.t_end, rng.random()), done))
    keyed.sort(key=lambda kv: kv[0])
    events = [e for _, e in keyed]
    return Fed([e for e in events if isinstance(e, RequestRecord)], events)


SEEDS = range(12)


@pytest.mark.parametrize("seed", SEEDS)
def test_cold_flags_online_equal_the_batch_in_dispatch_order(seed: int) -> None:
    fed = synthetic_run(seed)
    flagger = ColdFlagger(cold_after_s=0.1)
    flags: dict[int, bool] = {}
    seq = 0
    for e in fed.events:
        if isinstance(e, RequestStart):
            flagger.start(e)
        else:
            flagger.add(e, seq)
            seq += 1
        flags.update((item.seq, cold) for item, cold in flagger.take())
    flagger.finish()
    flags.update((item.seq, cold) for item, cold in flagger.take())
    expected = cold_flags(fed.records, cold_after_s=0.1)
    assert [flags[i] for i in range(len(fed.records))] == expected
    assert 3 <= sum(expected) < len(expected)  # the run has cold and warm requests


@pytest.mark.parametrize("seed", SEEDS)
def test_cold_starts_and_streams_online_equal_the_batch(seed: int) -> None:
    fed = synthetic_run(seed)
    flagger, colds = ColdFlagger(cold_after_s=0.1), ColdStartAccumulator()
    streams = StreamDeliveryAccumulator(buffered_share=0.3)
    seq = 0
    for e in fed.events:
        if isinstance(e, RequestStart):
            flagger.start(e)
            continue
        colds.add(e)
        streams.add(e)
        flagger.add(e, seq)
        seq += 1
        for item, cold in flagger.take():
            colds.flag(item, cold)
    flagger.finish()
    for item, cold in flagger.take():
        colds.flag(item, cold)
    flags = cold_flags(fed.records, cold_after_s=0.1)
    assert colds.result() == cold_start(fed.records, flags)
    assert streams.result() == stream_delivery(fed.records, buffered_share=0.3)
    assert any(s.buffered for s in streams.result())


@pytest.mark.parametrize("seed", SEEDS)
def test_pacing_online_equals_the_batch(seed: int) -> None:
    fed = synthetic_run(seed)
    acc = PacingAccumulator()
    for rec in fed.records:
        acc.add(rec)
    assert acc.result() == pacing(fed.records)
    assert list(acc.result()) == list(pacing(fed.records))  # same order


@pytest.mark.parametrize("seed", SEEDS)
def test_windowed_slas_online_equal_the_batch(seed: int) -> None:
    fed = synthetic_run(seed)
    slas = [
        SlaSpec(parse_sla("ttft.p50 < 60ms"), window_s=0.5, allow=1),
        SlaSpec(parse_sla("error_rate < 0.25"), window_s=1.0, stage="s1"),
        SlaSpec(parse_sla("e2e.max < 400ms"), window_s=0.5, provider="b"),
        SlaSpec(parse_sla("ttft.p95 < 1s")),
    ]
    origins = {(st, p): (k * 7 + len(p)) * MS for k, st in enumerate(STAGES) for p in PROVIDERS}
    pooled = frozenset({"s2"})
    summaries = aggregate(fed.records, stage_windows={k: (o, 10**10) for k, o in origins.items()})
    spans = {k: (o, 10**10) for k, o in origins.items()}
    feed = WindowFeed(slas, {}, pooled)
    for rec in fed.records:
        feed.add(rec, origins[(rec.stage, rec.provider)])
    online = feed.judge(slas, summaries, spans)
    assert online == judge_all(slas, summaries, fed.records, spans, pooled=pooled)
    assert {v.outcome for v in online} >= {"pass", "fail"}


def test_windows_cut_from_another_origin_than_the_spans_are_an_error() -> None:
    slas = [SlaSpec(parse_sla("ttft.p50 < 60ms"), window_s=0.5)]
    feed = WindowFeed(slas, {})
    feed.add(record(), 0)
    summaries = aggregate([record()], stage_windows={("s", "p"): (5, 10**10)})
    with pytest.raises(RuntimeError, match="windows of s/p were cut from 0 ns"):
        feed.judge(slas, summaries, {("s", "p"): (5, 10**10)})


def test_the_record_sample_is_evenly_spaced_bounded_and_deterministic() -> None:
    sample = RecordSample(100)
    biggest = 0
    for i in range(100_000):
        sample.add(record(index=i), i)
        biggest = max(biggest, len(sample.kept))
    kept = sample.records()
    assert biggest <= 200
    assert len(kept) == 100
    seqs = [s for s, _ in kept]
    gaps = {b - a for a, b in itertools.pairwise(seqs)}
    assert max(gaps) <= 2 * min(gaps)  # evenly spaced over the whole run
    assert seqs[0] == 0
    assert seqs[-1] > 95_000
    again = RecordSample(100)
    for i in range(100_000):
        again.add(record(index=i), i)
    assert [s for s, _ in again.records()] == seqs


@pytest.mark.parametrize(("limit", "total", "kept"), [(None, 50, 50), (0, 50, 0), (80, 50, 50)])
def test_the_record_sample_keeps_all_none_or_fewer_than_its_limit(
    limit: int | None, total: int, kept: int
) -> None:
    sample = RecordSample(limit)
    for i in range(total):
        sample.add(record(index=i), i)
    assert [s for s, _ in sample.records()] == list(range(total))[:kept]

"""Can the numbers be trusted?  Stream buffering and cold starts, read from the records.

* **Buffered streams.**  lens stamps each network read, so tokens that arrive in the same
  read share a timestamp: an inter-chunk gap of exactly 0.  A buffering proxy (or a
  client too slow to read as fast as the server writes) delivers a stream in a few large
  reads: TTFT goes up and ITL collapses towards zero, which looks like a faster server.
  When, in the typical request, most gaps are zero, the stage x provider is flagged
  ``stream_buffered`` and its ITL figures describe the buffering, not the model.
* **Cold starts.**  The first request to each provider, and any request sent after the
  provider sat idle for longer than ``cold_after`` (nothing in flight, nothing sent), is
  ``cold``.  Comparing cold and warm TTFT shows scale-to-zero or cache-warmup penalties;
  the penalty is called significant when the median cold TTFT is at least 1.5x the warm
  median and above the warm p90.  Warm requests queued behind others say nothing about
  a cold start, so the comparison is with warm requests under comparable load: those of
  the cold requests' own stage when it has ``MIN_WARM`` of them, else those of the least
  loaded stage that has (fewest requests in flight on average, measured: the sum of the
  stage's request durations over its span).  ``ColdStart.warm_stage`` says which.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from lens.metrics._results_config import RESULTS_VALUE
from lens.metrics.request import NS_PER_MS, NS_PER_S
from lens.records import HarnessReport, RequestRecord

DEFAULT_COLD_AFTER_S = 60.0
DEFAULT_BUFFERED_SHARE = 0.5
MIN_CHUNKS_FOR_BUFFERING = 4  # fewer chunks say nothing about how a stream is delivered
COLD_RATIO = 1.5


@dataclass(frozen=True, slots=True)
class StreamDelivery:
    __pydantic_config__ = RESULTS_VALUE

    stage: str
    provider: str
    requests: Annotated[int, Field(description="successful requests with enough chunks to judge")]
    chunks_per_read: float | None  # mean over those requests
    zero_gap_share: Annotated[
        float | None,
        Field(
            description="median share of a stream's chunks that arrived in the same read as "
            "the one before"
        ),
    ]
    buffered: bool


def zero_gap_share(rec: RequestRecord) -> float | None:
    times = rec.chunk_times
    if len(times) < MIN_CHUNKS_FOR_BUFFERING:
        return None
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return sum(1 for g in gaps if g == 0) / len(gaps)


def stream_delivery(
    records: Iterable[RequestRecord], *, buffered_share: float = DEFAULT_BUFFERED_SHARE
) -> tuple[StreamDelivery, ...]:
    groups: dict[tuple[str, str], list[RequestRecord]] = {}
    for rec in records:
        if rec.ok:
            groups.setdefault((rec.stage, rec.provider), []).append(rec)
    out = []
    for (stage, provider), recs in groups.items():
        shares, ratios = [], []
        for rec in recs:
            share = zero_gap_share(rec)
            if share is None:
                continue
            shares.append(share)
            if rec.reads:
                ratios.append(len(rec.chunk_times) / rec.reads)
        median = statistics.median(shares) if shares else None
        out.append(
            StreamDelivery(
                stage=stage,
                provider=provider,
                requests=len(shares),
                chunks_per_read=statistics.fmean(ratios) if ratios else None,
                zero_gap_share=median,
                buffered=median is not None and median > buffered_share,
            )
        )
    return tuple(out)


def cold_flags(
    records: Sequence[RequestRecord], *, cold_after_s: float = DEFAULT_COLD_AFTER_S
) -> list[bool]:
    """For each record (same order), whether it was sent to a cold provider."""
    cold_after_ns = cold_after_s * NS_PER_S
    flags = [False] * len(records)
    busy_until: dict[str, int] = {}  # provider -> latest end (or dispatch) seen so far
    for i in sorted(range(len(records)), key=lambda k: records[k].t_dispatch):
        rec = records[i]
        last = busy_until.get(rec.provider)
        flags[i] = last is None or rec.t_dispatch - last > cold_after_ns
        # Ends of requests still in flight are not known in dispatch order; the dispatch
        # itself proves the provider was not idle from here on.
        busy_until[rec.provider] = max(last or 0, rec.t_dispatch, rec.t_end)
    return flags


@dataclass(frozen=True, slots=True)
class ColdStart:
    __pydantic_config__ = RESULTS_VALUE

    provider: str
    cold_requests: int  # successful cold requests with a TTFT
    warm_requests: int  # those of warm_stage
    cold_ttft_p50_ms: float | None
    warm_ttft_p50_ms: float | None
    warm_ttft_p90_ms: float | None
    ratio: float | None  # cold p50 / warm p50
    penalty_ms: float | None  # cold p50 - warm p50
    significant: bool
    warm_stage: Annotated[
        str | None,
        Field(
            description="the stage whose warm requests the cold ones are compared with: their "
            "own if it has enough, else the least loaded one (fewest requests in flight)",
        ),
    ] = None
    warm_in_flight: Annotated[
        float | None,
        Field(description="mean requests in flight in warm_stage (sum of durations / span)"),
    ] = None
    same_stage: Annotated[bool, Field(description="warm_stage is the cold requests' own stage")] = (
        False
    )

    def compared_with(self) -> str:
        return compared_with(
            self.warm_stage, self.warm_requests, self.warm_in_flight, self.same_stage
        )


def compared_with(stage: str | None, warm: int, load: float | None, same_stage: bool) -> str:
    """Which warm requests a cold start is compared with, in words."""
    if stage is None:
        return "no warm request to compare with"
    why = "the cold requests' own stage" if same_stage else "the least loaded stage"
    in_flight = "" if load is None else f", {load:.1f} in flight on average"
    return f"compared with warm requests of stage {stage} ({why}: {warm} warm{in_flight})"


MIN_WARM = 10  # warm requests a stage needs to be the reference (a p90 of 10 is the 9th)


def _ttft_ms(rec: RequestRecord) -> float | None:
    if not rec.ok or rec.t_first_token is None:
        return None
    return (rec.t_first_token - rec.t_dispatch) / NS_PER_MS


def _p(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)), 1) - 1]


def in_flight(records: Iterable[RequestRecord]) -> float | None:
    """Mean requests in flight over the records' span (Little's law, measured): the sum of
    their durations over first dispatch to last end; None for an empty or instant span."""
    busy = first = last = 0
    seen = False
    for rec in records:
        busy += rec.t_end - rec.t_dispatch
        first = rec.t_dispatch if not seen else min(first, rec.t_dispatch)
        last = rec.t_end if not seen else max(last, rec.t_end)
        seen = True
    return busy / (last - first) if seen and last > first else None


def _reference(
    warm: Mapping[str, int], loads: Mapping[str, float | None], cold_stages: set[str]
) -> str | None:
    """The stage to compare with: the cold requests' own one if it has ``MIN_WARM`` warm
    requests, else the least loaded one that has; if none has, the same preference over
    the stages with any warm request."""
    for need in (MIN_WARM, 1):
        stages = [st for st, n in warm.items() if n >= need]
        if not stages:
            continue
        if len(cold_stages) == 1 and (own := next(iter(cold_stages))) in stages:
            return own

        def load(stage: str) -> float:
            value = loads.get(stage)
            return math.inf if value is None else value

        return min(stages, key=load)
    return None


def cold_start(records: Sequence[RequestRecord], flags: Sequence[bool]) -> tuple[ColdStart, ...]:
    cold_by: dict[str, list[tuple[str, float]]] = {}
    warm_by: dict[str, dict[str, list[float]]] = {}
    by_stage: dict[tuple[str, str], list[RequestRecord]] = {}
    for rec, cold in zip(records, flags, strict=True):
        cold_list = cold_by.setdefault(rec.provider, [])
        warm = warm_by.setdefault(rec.provider, {})
        by_stage.setdefault((rec.provider, rec.stage), []).append(rec)
        ttft = _ttft_ms(rec)
        if ttft is None:
            continue
        if cold:
            cold_list.append((rec.stage, ttft))
        else:
            warm.setdefault(rec.stage, []).append(ttft)
    out = []
    for provider, colds in cold_by.items():
        cold_v = [t for _, t in colds]
        cold_stages = {st for st, _ in colds}
        loads = {st: in_flight(by_stage[(provider, st)]) for st in warm_by[provider]}
        stage = _reference({st: len(v) for st, v in warm_by[provider].items()}, loads, cold_stages)
        warm_v = warm_by[provider][stage] if stage is not None else []
        out.append(
            _cold_start(
                provider,
                cold_v,
                cold_stages,
                stage,
                len(warm_v),
                _p(warm_v, 0.5),
                _p(warm_v, 0.9),
                None if stage is None else loads[stage],
            )
        )
    return tuple(out)


def _cold_start(
    provider: str,
    cold_v: list[float],
    cold_stages: set[str],
    stage: str | None,
    warm_n: int,
    w50: float | None,
    w90: float | None,
    load: float | None,
) -> ColdStart:
    c50 = _p(cold_v, 0.5)
    ratio = c50 / w50 if c50 is not None and w50 else None
    return ColdStart(
        provider=provider,
        cold_requests=len(cold_v),
        warm_requests=warm_n,
        cold_ttft_p50_ms=c50,
        warm_ttft_p50_ms=w50,
        warm_ttft_p90_ms=w90,
        ratio=ratio,
        penalty_ms=c50 - w50 if c50 is not None and w50 is not None else None,
        significant=ratio is not None
        and w90 is not None
        and c50 is not None
        and ratio >= COLD_RATIO
        and c50 > w90,
        warm_stage=stage,
        warm_in_flight=load,
        same_stage=stage is not None and cold_stages == {stage},
    )


@dataclass(frozen=True, slots=True)
class IntegrityReport:
    """lens's checks of its own measurements; ``warnings`` says what to distrust."""

    harness: HarnessReport | None  # None: the run was not sampled
    streams: tuple[StreamDelivery, ...]
    cold_start: tuple[ColdStart, ...]
    warnings: tuple[str, ...]


def integrity_report(
    records: Sequence[RequestRecord],
    colds: Sequence[bool],
    harness: HarnessReport | None,
    *,
    buffered_share: float = DEFAULT_BUFFERED_SHARE,
) -> IntegrityReport:
    """The run's integrity checks (``colds``: the records' cold flags, same order), and a
    warning for each one that failed: an overloaded harness, a buffered stream, a
    significant cold start."""
    early = EndedEarly()
    for rec in records:
        early.add(rec)
    return integrity_of(
        stream_delivery(records, buffered_share=buffered_share),
        cold_start(records, colds),
        harness,
        early,
    )


def integrity_of(
    streams: tuple[StreamDelivery, ...],
    colds_by_provider: tuple[ColdStart, ...],
    harness: HarnessReport | None,
    ended_early: EndedEarly | None = None,
) -> IntegrityReport:
    """The report of checks already made (``integrity_report``, ``lens.metrics.fold``),
    with a warning for each that failed."""
    warnings: list[str] = []
    if harness is not None:
        warnings += [f"harness overloaded: {r}" for r in harness.reasons]
    for st in streams:
        if st.buffered and st.zero_gap_share is not None:
            warnings.append(
                f"stream_buffered: {st.stage}/{st.provider}: in a typical stream "
                f"{st.zero_gap_share:.0%} of chunks arrived in the same read as the one "
                "before (a buffering proxy, or a client reading too slowly): ITL is not "
                "the model's"
            )
    for c in colds_by_provider:
        if c.significant:
            warnings.append(
                f"cold_start: {c.provider}: cold TTFT p50 {c.cold_ttft_p50_ms:.0f} ms vs "
                f"warm {c.warm_ttft_p50_ms:.0f} ms ({c.ratio:.1f}x), {c.compared_with()}"
            )
    if ended_early is not None:
        warnings += ended_early.warnings()
    return IntegrityReport(harness, streams, colds_by_provider, tuple(warnings))


class EndedEarly:
    """Counts, per stage x provider, the successful outputs that stopped on their own before
    the max_tokens they asked for (``extra.ended_early``, set by lens.run.request): their
    TPOT and tokens/s describe shorter outputs than the plan's.  Fed one record at a time
    (lens.metrics.fold), it keeps two counters a unit."""

    __slots__ = ("early", "ok")

    def __init__(self) -> None:
        self.early: dict[tuple[str, str], int] = {}
        self.ok: dict[tuple[str, str], int] = {}

    def add(self, rec: RequestRecord) -> None:
        if not rec.ok:
            return
        key = (rec.stage, rec.provider)
        self.ok[key] = self.ok.get(key, 0) + 1
        if "ended_early" in rec.extra:
            self.early[key] = self.early.get(key, 0) + 1

    def warnings(self) -> list[str]:
        return [
            f"ended_early: {stage}/{provider}: {n} of {self.ok[stage, provider]} outputs "
            "stopped before their max_tokens (finish reason stop): TPOT and tokens/s cover "
            "shorter outputs than planned; output_tokens: exact asks vLLM-style servers for "
            "the full length"
            for (stage, provider), n in self.early.items()
        ]

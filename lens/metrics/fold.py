"""Every analysis of a run, fed one record at a time: ``RunFold``.

A long run cannot keep its records until it ends (an hour at 1,000 req/s is 3.6M of
them), so what the batch functions of ``lens.metrics`` read from the whole list is built
here as each record finishes, in completion order, in memory bounded by other things
than the run's length: the stage x provider units, the SLA windows, the requests in
flight, the sketches (each exact up to ``DEFAULT_EXACT_LIMIT`` values, a t-digest
beyond).  ``RunFold`` owns the accumulators, one per analysis:

* ``summaries``: the stage summaries (``SummaryBuilder``);
* ``pacing``: how closely each open-loop schedule was kept (``PacingAccumulator``);
* ``colds``: the cold-start flags, in dispatch order (``ColdFlagger``), feeding
  ``cold_starts`` (``ColdStartAccumulator``) and the flags of the records kept;
* ``streams``: buffered-stream detection (``StreamDeliveryAccumulator``);
* ``windows``: windowed SLA assertions (``lens.metrics.windows.WindowFeed``);
* the records of idle-probe stages (a few probes each), for ``idle_probes``;
* ``kept``: the records results.json lists (``RecordSample``).

Each gives exactly what its batch function gives on the same records (tests feed both),
except percentiles past a sketch's exact limit, which carry the sketch's documented error
(``lens.metrics.sketch``).  Not folded, so ``lens.pipeline`` keeps every record for them:
GPU-hour prices (a record's share of its unit's bill needs every busy time of the unit)
and adaptive sweeps (their SLA scopes are widened once the steps are known).
"""

from __future__ import annotations

import heapq
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from lens.metrics.analysis import RunAnalysis
from lens.metrics.cost import RunBill, record_price
from lens.metrics.idle import idle_probes
from lens.metrics.integrity import (
    DEFAULT_BUFFERED_SHARE,
    DEFAULT_COLD_AFTER_S,
    ColdStart,
    EndedEarly,
    IntegrityReport,
    StreamDelivery,
    _cold_start,
    _reference,
    integrity_of,
    zero_gap_share,
)
from lens.metrics.judge import Verdict, run_exit_code
from lens.metrics.pacing import PacingAccumulator
from lens.metrics.recommend import recommend
from lens.metrics.request import NS_PER_MS, NS_PER_S
from lens.metrics.sketch import MetricSketch
from lens.metrics.summary import Summary, SummaryBuilder
from lens.metrics.windows import WindowFeed
from lens.plan.model import IdleProbe, Plan, SlaSpec
from lens.records import HarnessReport, RequestRecord, RequestStart, RunOutcome

# The attempt a start and its record share: stage, provider, index, attempt.
AttemptKey = tuple[str, str, int, int]


def _ttft_ms(rec: RequestRecord) -> float | None:
    if not rec.ok or rec.t_first_token is None:
        return None
    return (rec.t_first_token - rec.t_dispatch) / NS_PER_MS


@dataclass(frozen=True, slots=True)
class Flagged:
    """What the cold-start analysis needs of a record, while its flag waits."""

    seq: int  # its place in completion order
    provider: str
    stage: str
    t_dispatch: int
    busy_until: int  # max(dispatch, end), as cold_flags counts it
    ttft_ms: float | None


class ColdFlagger:
    """``cold_flags`` online.  The flags are defined in dispatch order (a request is cold
    when nothing of its provider dispatched before it ended within ``cold_after``), but
    records finish in completion order; so each waits (a small ``Flagged``) until no
    request can still come with an earlier dispatch: none started and unfinished
    (``start``) started before it.  The wait holds the records finished since the oldest
    request still in flight was sent: bounded by the rate times the request timeout."""

    def __init__(self, cold_after_s: float = DEFAULT_COLD_AFTER_S) -> None:
        self.cold_after_ns = cold_after_s * NS_PER_S
        self._waiting: list[tuple[int, int, Flagged]] = []  # (t_dispatch, seq, ...)
        # attempt -> its starts (run clock): one, unless two attempts share a key, when
        # a record ends the latest (the watermark may then only be too early, never late).
        self._in_flight: dict[AttemptKey, list[int]] = {}
        self._starts: list[tuple[int, AttemptKey]] = []  # heap; stale entries skipped
        self._busy_until: dict[str, int] = {}
        self.flags: list[tuple[Flagged, bool]] = []  # released since last taken
        # No start still to come is earlier than this (``hold``): when starts come from
        # several sources (lens.workers' parent), one may not have told of an earlier one.
        self.floor: float = float("inf")

    def start(self, s: RequestStart) -> None:
        key = (s.stage, s.provider, s.index, s.attempt)
        self._in_flight.setdefault(key, []).append(s.t_start)
        heapq.heappush(self._starts, (s.t_start, key))

    def add(self, rec: RequestRecord, seq: int) -> None:
        key = (rec.stage, rec.provider, rec.index, rec.attempt)
        starts = self._in_flight.get(key)
        if starts is not None:
            starts.remove(max(starts))
            if not starts:
                del self._in_flight[key]
        item = Flagged(
            seq,
            rec.provider,
            rec.stage,
            rec.t_dispatch,
            max(rec.t_dispatch, rec.t_end),
            _ttft_ms(rec),
        )
        heapq.heappush(self._waiting, (rec.t_dispatch, seq, item))
        self._release(self._watermark())

    def _watermark(self) -> float:
        """Every request still to finish is dispatched at or after this instant."""
        starts, in_flight = self._starts, self._in_flight
        while starts and starts[0][0] not in in_flight.get(starts[0][1], ()):
            heapq.heappop(starts)
        return min(starts[0][0], self.floor) if starts else self.floor

    def hold(self, floor: float) -> None:
        """Starts still to come are dispatched at or after ``floor``: release what waits
        before it (and the in-flight watermark)."""
        self.floor = floor
        self._release(self._watermark())

    def _release(self, before: float) -> None:
        waiting = self._waiting
        while waiting and waiting[0][0] < before:
            _, _, item = heapq.heappop(waiting)
            last = self._busy_until.get(item.provider)
            cold = last is None or item.t_dispatch - last > self.cold_after_ns
            self._busy_until[item.provider] = max(last or 0, item.busy_until)
            self.flags.append((item, cold))

    def finish(self) -> None:
        """The run is over: flag every record still waiting (a start whose record never
        came cannot hold them back now)."""
        self._release(float("inf"))

    def take(self) -> list[tuple[Flagged, bool]]:
        flags, self.flags = self.flags, []
        return flags


class StreamDeliveryAccumulator:
    """``stream_delivery`` online: per unit, the counts of each zero-gap share and each
    chunks-per-read ratio (few distinct values: they are small fractions), from which the
    median and mean are exactly the batch's."""

    def __init__(self, buffered_share: float = DEFAULT_BUFFERED_SHARE) -> None:
        self.buffered_share = buffered_share
        self._shares: dict[tuple[str, str], Counter[float]] = {}
        self._ratios: dict[tuple[str, str], Counter[float]] = {}

    def add(self, rec: RequestRecord) -> None:
        if not rec.ok:
            return
        key = (rec.stage, rec.provider)
        shares = self._shares.get(key)
        if shares is None:
            shares = self._shares[key] = Counter()
            self._ratios[key] = Counter()
        share = zero_gap_share(rec)
        if share is None:
            return
        shares[share] += 1
        if rec.reads:
            self._ratios[key][len(rec.chunk_times) / rec.reads] += 1

    def result(self) -> tuple[StreamDelivery, ...]:
        out = []
        for (stage, provider), shares in self._shares.items():
            ratios = self._ratios[(stage, provider)]
            n = shares.total()
            median = _median(shares) if n else None
            m = ratios.total()
            out.append(
                StreamDelivery(
                    stage=stage,
                    provider=provider,
                    requests=n,
                    # fmean is fsum / n, and fsum the correctly rounded exact sum.
                    chunks_per_read=float(sum(Fraction(v) * c for v, c in ratios.items())) / m
                    if m
                    else None,
                    zero_gap_share=median,
                    buffered=median is not None and median > self.buffered_share,
                )
            )
        return tuple(out)


def _median(counts: Counter[float]) -> float:
    """``statistics.median`` of the values ``counts`` counts."""
    n = counts.total()
    wanted = [n // 2] if n % 2 else [n // 2 - 1, n // 2]
    picked: list[float] = []
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        while wanted and wanted[0] < seen:
            picked.append(value)
            wanted.pop(0)
    return picked[0] if len(picked) == 1 else statistics.median(picked)


@dataclass(slots=True)
class _Busy:
    busy: int = 0
    first: int = 0
    last: int = 0
    seen: bool = False

    def add(self, rec: RequestRecord) -> None:
        self.busy += rec.t_end - rec.t_dispatch
        self.first = rec.t_dispatch if not self.seen else min(self.first, rec.t_dispatch)
        self.last = rec.t_end if not self.seen else max(self.last, rec.t_end)
        self.seen = True

    @property
    def in_flight(self) -> float | None:
        if self.seen and self.last > self.first:
            return self.busy / (self.last - self.first)
        return None


class ColdStartAccumulator:
    """``cold_start`` online: records as they finish (the load of each stage), flags as
    ``ColdFlagger`` releases them (cold TTFTs, few: a provider is cold at most once per
    ``cold_after``; warm TTFTs per stage in a sketch)."""

    def __init__(self) -> None:
        self._providers: dict[str, None] = {}  # first seen, in completion order
        self._busy: dict[tuple[str, str], _Busy] = {}
        self._cold: dict[str, list[tuple[str, float]]] = {}
        self._warm: dict[tuple[str, str], MetricSketch] = {}
        self._warm_first: dict[tuple[str, str], int] = {}  # first warm TTFT's seq

    def add(self, rec: RequestRecord) -> None:
        self._providers.setdefault(rec.provider)
        busy = self._busy.get((rec.provider, rec.stage))
        if busy is None:
            busy = self._busy[(rec.provider, rec.stage)] = _Busy()
        busy.add(rec)

    def flag(self, item: Flagged, cold: bool) -> None:
        if item.ttft_ms is None:
            return
        if cold:
            self._cold.setdefault(item.provider, []).append((item.stage, item.ttft_ms))
            return
        key = (item.provider, item.stage)
        sketch = self._warm.get(key)
        if sketch is None:
            sketch = self._warm[key] = MetricSketch()
        sketch.add(item.ttft_ms)
        first = self._warm_first.get(key)
        self._warm_first[key] = item.seq if first is None else min(first, item.seq)

    def result(self) -> tuple[ColdStart, ...]:
        out = []
        for provider in self._providers:
            colds = self._cold.get(provider, [])
            # The batch meets the stages in completion order: by their first warm TTFT.
            stages = sorted(
                (st for (p, st) in self._warm if p == provider),
                key=lambda st: self._warm_first[(provider, st)],
            )
            warm = {st: self._warm[(provider, st)] for st in stages}
            loads = {st: self._busy[(provider, st)].in_flight for st in stages}
            cold_stages = {st for st, _ in colds}
            stage = _reference({st: s.count for st, s in warm.items()}, loads, cold_stages)
            sketch = warm[stage] if stage is not None else MetricSketch()
            out.append(
                _cold_start(
                    provider,
                    [t for _, t in colds],
                    cold_stages,
                    stage,
                    sketch.count,
                    sketch.quantile(0.5),
                    sketch.quantile(0.9),
                    None if stage is None else loads[stage],
                )
            )
        return tuple(out)


class RecordSample:
    """The records results.json lists, chosen as they finish: all (``limit`` None), none
    (0), or an evenly spaced sample of ``limit`` in completion order, never holding more
    than ``2 * limit``: every ``stride``-th record is kept, and when the sample outgrows
    ``2 * limit`` the stride doubles and every other kept record goes."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.stride = 1
        self.kept: dict[int, RequestRecord] = {}  # seq -> record, in completion order

    def add(self, rec: RequestRecord, seq: int) -> bool:
        limit = self.limit
        if limit is None:
            self.kept[seq] = rec
            return True
        if limit == 0 or seq % self.stride:
            return False
        self.kept[seq] = rec
        if len(self.kept) > 2 * limit:
            self.stride *= 2
            self.kept = {s: r for s, r in self.kept.items() if s % self.stride == 0}
        return seq in self.kept

    def records(self) -> list[tuple[int, RequestRecord]]:
        """The sample, thinned evenly to ``limit``."""
        items = list(self.kept.items())
        if self.limit is None or len(items) <= self.limit:
            return items
        return [items[i * len(items) // self.limit] for i in range(self.limit)]


@dataclass(frozen=True, slots=True)
class FoldedRecords:
    """The records a folded run kept, with what the results say of each."""

    records: tuple[RequestRecord, ...]  # in completion order
    cold: tuple[bool, ...]
    dropped: int  # records measured and not kept


class RunFold:
    """The run's analyses, fed each record as it finishes (``add``), each request's start
    (``start``), and each measured record with its unit's window origin (``place``)."""

    def __init__(self, plan: Plan, slas: tuple[SlaSpec, ...], summaries: SummaryBuilder) -> None:
        self.plan = plan
        self.summaries = summaries
        self.pacing = PacingAccumulator()
        self.colds = ColdFlagger(plan.integrity.cold_after_s)
        self.cold_starts = ColdStartAccumulator()
        self.streams = StreamDeliveryAccumulator(plan.integrity.buffered_share)
        self.ended_early = EndedEarly()
        pooled = frozenset(u.stage for u in plan.stages if u.phases.pooled)
        self.windows = WindowFeed(slas, plan.providers, pooled)
        self.kept = RecordSample(plan.results_records)
        self.probe_stages = frozenset(u.stage for u in plan.stages if isinstance(u.load, IdleProbe))
        self.probes: dict[int, RequestRecord] = {}  # seq -> an idle probe's record
        self._cold: dict[int, bool] = {}  # seq -> flag, of records kept or probes
        self.count = 0  # records fed

    def start(self, s: RequestStart) -> None:
        self.colds.start(s)

    def add(self, rec: RequestRecord) -> None:
        seq = self.count
        self.count += 1
        self.summaries.add(rec)
        self.pacing.add(rec)
        self.streams.add(rec)
        self.ended_early.add(rec)
        self.cold_starts.add(rec)
        self.kept.add(rec, seq)
        if rec.stage in self.probe_stages:
            self.probes[seq] = rec
        self.colds.add(rec, seq)
        self._take_flags()

    def place(self, rec: RequestRecord, origin_ns: int) -> None:
        self.windows.add(rec, origin_ns)

    def hold(self, floor: float) -> None:
        """Starts from more than one source (the workers of ``lens run --workers``), each
        in its own order: none still to come is dispatched before ``floor`` (the earliest
        of every source's latest start), so the cold flags wait for it
        (``ColdFlagger.hold``)."""
        self.colds.hold(floor)
        self._take_flags()

    def _take_flags(self) -> None:
        for item, cold in self.colds.take():
            self.cold_starts.flag(item, cold)
            if item.seq in self.kept.kept or item.seq in self.probes:
                self._cold[item.seq] = cold

    def finish(self) -> FoldedRecords:
        """Flag what still waits; the records kept, with their flags."""
        self.colds.finish()
        self._take_flags()
        kept = self.kept.records()
        return FoldedRecords(
            tuple(r for _, r in kept),
            tuple(self._cold[s] for s, _ in kept),
            self.count - len(kept),
        )

    def integrity(self, harness: HarnessReport | None) -> IntegrityReport:
        return integrity_of(
            self.streams.result(), self.cold_starts.result(), harness, self.ended_early
        )

    def idle_probes(self) -> tuple[Iterable[RequestRecord], tuple[bool, ...]]:
        seqs = sorted(self.probes)
        return [self.probes[s] for s in seqs], tuple(self._cold[s] for s in seqs)


def analyse_fold(
    fold: RunFold,
    kept: FoldedRecords,
    outcome: RunOutcome,
    summaries: tuple[Summary, ...],
    verdicts: tuple[Verdict, ...],
    bill: RunBill,
) -> RunAnalysis:
    """``analyse_run`` of a folded run: the same analysis, from the accumulators; cold
    flags and prices are those of the records kept (``outcome.records``)."""
    plan = fold.plan
    probes, probe_colds = fold.idle_probes()
    return RunAnalysis(
        exit_code=run_exit_code(
            verdicts, partial=outcome.partial, failed=outcome.failure is not None
        ),
        bill=bill,
        pacing=fold.pacing.result(),
        cold=kept.cold,
        prices=tuple(record_price(r, plan.providers[r.provider], None) for r in kept.records),
        integrity=fold.integrity(outcome.harness),
        idle_probes=idle_probes(list(probes), probe_colds, fold.probe_stages),
        recommendation=recommend(
            summaries, verdicts, {p: spec.model for p, spec in plan.providers.items()}
        ),
    )

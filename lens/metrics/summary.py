"""Records -> sketches -> one frozen ``Summary`` per stage x provider.

``SummaryBuilder`` consumes records one at a time, so the executor's aggregator can feed
it straight from its channel; it keeps counters and bounded sketches, never the records,
so memory stays flat however long the run.  ``aggregate`` is the one-call form.

Counting rules (see also ``lens.metrics.request``):

* ``requests`` is every started request; ``errors`` every failed one, whatever its
  class; ``error_rate = errors / requests`` and ``success_rate = ok / requests`` (both
  ``None`` when nothing started, since 0/0 is not a rate).  Three classes say lens cut a
  request off or lost it, not the server: ``cancelled`` (the run was interrupted),
  ``drained`` (in flight at its stage's cutoff with ``drain: cancel``) and ``lens_lost``
  (in flight in a worker process that died).  They are listed in ``error_counts`` and kept
  out of every denominator; drained ones are also counted in ``drained``.  Their cost is in
  the stage's cost: a summary's cost is the sum of its records' costs, whatever their class.
* Warmup and cooldown requests (``RequestRecord.phase``) are summarised apart, one
  ``Summary`` per phase with its ``phase`` set, unless their stage pools them with the
  measured ones (``sla_includes_warmup``).
* ``rps`` is completed *successful* requests per second of the stage window and
  ``throughput`` the output tokens of successful requests per second of that window.
  The window is the executor's wall-clock span of the stage x provider run, passed in
  explicitly: the span of the records alone would ignore idle time at the edges.
  Without a window both are ``None``.
* ``goodput`` is ``sla_conforming`` requests per second of that same window (vLLM's
  ``--goodput``, AIPerf's goodput), so with no per-request SLA it equals ``rps``: every
  successful request conforms, as in vLLM without a goodput SLO.  ``goodput_ratio`` is
  ``sla_conforming / requests`` (``None`` when nothing started).
* Per-request distributions (``metrics``) follow ``request_metrics``: latencies and
  token counts over successful requests, ``dispatch_lag`` over all of them.

Serialised sketches are *not* part of a results document: an exact sketch carries up to
``exact_limit`` values per metric (hundreds of kB per stage), far more than a result
file should hold by default.  Shards that must be merged later travel as
``SummaryBuilder.to_dict()``, which holds the counters and the sketches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Self

from pydantic import Field

from lens.metric_catalog import REQUEST_METRICS, REQUEST_STATS, STAGE_METRICS, TOTAL_STAT
from lens.metrics._results_config import RESULTS_VALUE
from lens.metrics.conformance import request_checks, request_conforms
from lens.metrics.cost import CostAccumulator, StageCost, record_cost
from lens.metrics.request import NS_PER_S, SERIES_FORMULAS, request_metrics
from lens.metrics.sketch import DEFAULT_EXACT_LIMIT, MetricSketch, QuantileSketch
from lens.plan.model import ProviderSpec, SlaSpec
from lens.pricing import GpuHourRate
from lens.records import (
    ABANDONED_TURNS,
    LENS_SIDE,
    ErrorClass,
    Phase,
    Repetition,
    RequestRecord,
)
from lens.scenario.sla import SlaExpr

StageKey = tuple[str, str]  # (stage, provider)
PhaseKey = tuple[str, str, Phase]  # (stage, provider, phase)
Window = tuple[int, int]  # (t_start_ns, t_end_ns) on the run clock

PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 0.50),
    ("p90", 0.90),
    ("p95", 0.95),
    ("p99", 0.99),
)
UNKNOWN_ERROR = "unknown"  # a failed record that carries no error class (a bug upstream)
BUILDER_KIND = "lens.summary_builder"
BUILDER_VERSION = 1


@dataclass(frozen=True, slots=True)
class MetricStats:
    """Statistics of one metric; every value ``None`` when ``n == 0``."""

    __pydantic_config__ = RESULTS_VALUE

    n: int
    min: float | None = None
    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    exact: Annotated[
        bool, Field(description="true: nearest-rank on exact values; false: t-digest")
    ] = True
    unit: str | None = None  # the catalogue's; None for a metric it does not know

    @classmethod
    def from_sketch(cls, sketch: QuantileSketch, unit: str | None = None) -> MetricStats:
        if sketch.count == 0:
            return cls(n=0, unit=unit)
        p = {name: sketch.quantile(q) for name, q in PERCENTILES}
        return cls(
            n=sketch.count,
            min=sketch.min,
            mean=sketch.mean,
            p50=p["p50"],
            p90=p["p90"],
            p95=p["p95"],
            p99=p["p99"],
            max=sketch.max,
            exact=sketch.exact,
            unit=unit,
        )

    def get(self, stat: str) -> float | None:
        """One statistic by name (one of ``REQUEST_STATS``); ``n`` as a float."""
        if stat not in REQUEST_STATS:
            raise KeyError(f"unknown statistic {stat!r}; expected one of {REQUEST_STATS}")
        value: int | float | None = getattr(self, stat)
        return None if value is None else float(value)


# Conversations: each turn's requests are summarised apart too (``Summary.turns``), for these
# metrics; turns past the last bucket share it ("8+").
TURN_METRICS: tuple[str, ...] = ("ttft", "e2e", "tpot", "input_tokens", "cached_input_tokens")
TURN_BUCKETS = 8


def turn_label(turn: int) -> str:
    """The ``Summary.turns`` key of ``turn``: "1" ... "7", then "8+"."""
    return str(turn) if turn < TURN_BUCKETS else f"{TURN_BUCKETS}+"


@dataclass(frozen=True, slots=True)
class TurnSummary:
    """The requests of one turn of a stage's conversations (turn 1 against later turns:
    how much a server's prefix cache saves on a conversation's history)."""

    __pydantic_config__ = RESULTS_VALUE

    requests: int
    ok: int
    metrics: Mapping[str, MetricStats]


class _TurnAccumulator:
    __slots__ = ("ok", "requests", "sketches")

    def __init__(self, exact_limit: int) -> None:
        self.requests = 0
        self.ok = 0
        self.sketches = {name: MetricSketch(exact_limit) for name in TURN_METRICS}

    def take(self, rec: RequestRecord, values: Mapping[str, float | None]) -> None:
        self.requests += 1
        if not rec.ok:
            return
        self.ok += 1
        for name, sketch in self.sketches.items():
            value = values.get(name)
            if value is not None:
                sketch.add(value)

    def merge(self, other: _TurnAccumulator) -> None:
        self.requests += other.requests
        self.ok += other.ok
        for name, sketch in other.sketches.items():
            self.sketches[name].merge(sketch)

    def summary(self) -> TurnSummary:
        return TurnSummary(
            requests=self.requests,
            ok=self.ok,
            metrics={n: MetricStats.from_sketch(s, _unit(n)) for n, s in self.sketches.items()},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "ok": self.ok,
            "sketches": {name: s.to_dict() for name, s in self.sketches.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], exact_limit: int) -> _TurnAccumulator:
        acc = cls(exact_limit)
        acc.requests = int(d["requests"])
        acc.ok = int(d["ok"])
        acc.sketches.update({str(k): MetricSketch.from_dict(v) for k, v in d["sketches"].items()})
        return acc


@dataclass(frozen=True, slots=True)
class Summary:
    """What one stage x provider run measured. Times in ms, rates per second."""

    stage: str
    provider: str
    requests: int  # started
    ok: int
    errors: int
    error_counts: Mapping[str, int]  # every ErrorClass, zeros included
    error_rate: float | None
    success_rate: float | None
    rps: float | None
    throughput: float | None
    duration_s: float | None
    output_tokens: int  # over successful requests
    token_sources: Mapping[str, int]  # "usage"/"estimated" -> successful requests
    metrics: Mapping[str, MetricStats]  # every name in REQUEST_METRICS
    cost: StageCost | None = None  # None: no price applies or no request could be priced
    sla_conforming: int = 0  # successful requests meeting every per-request SLA
    phase: Phase = "measure"  # warmup / cooldown: that phase's requests, summarised apart
    drained: int = 0  # in flight at the stage's cutoff and cut off (not in ``requests``)
    # One repetition of a repeated stage: summarised, never judged (the pooled summary, under
    # the stage's own id, is).  None: a stage run once, or the pooled summary.
    repetition: Repetition | None = None
    repeated: int = 0  # the pooled summary of a repeated stage: how many repetitions
    # A stage that ran conversations: its requests by turn ("1", "2", ... "8+"), and the
    # turns its sessions left unsent (a failed turn, a cutoff).  None: no conversation.
    turns: Mapping[str, TurnSummary] | None = None
    abandoned_turns: int | None = None
    # endpoint: embeddings: the inputs of successful requests' batches, and per second of
    # the window rps divides by (None: no request carried inputs, or no window).
    inputs: int = 0
    inputs_per_s: float | None = None
    # Successful outputs that stopped on their own before their max_tokens (the record's
    # extra.ended_early): their TPOT and tokens/s cover shorter outputs than planned.
    ended_early: int = 0

    @property
    def goodput(self) -> float | None:
        """SLA-conforming requests per second of the window ``rps`` divides by."""
        if self.duration_s is None or self.duration_s <= 0:
            return None
        return self.sla_conforming / self.duration_s

    @property
    def goodput_ratio(self) -> float | None:
        """SLA-conforming requests / started requests; None when nothing started."""
        return _rate(self.sla_conforming, self.requests)

    def get(self, metric: str, stat: str | None = None) -> float | None:
        """The value an SLA on ``metric[.stat]`` compares; ``KeyError`` if unknown."""
        if metric == "cost" and stat in (TOTAL_STAT, "mean"):
            # Exact decimal sums rather than the float sketch's.
            exact: Decimal | None = None if self.cost is None else getattr(self.cost, stat)
            return None if exact is None else float(exact)
        if metric in STAGE_METRICS:
            if stat is not None:
                raise KeyError(f"{metric!r} is one value per stage and takes no statistic")
            value: int | float | None = getattr(self, metric)
            return None if value is None else float(value)
        if metric not in self.metrics:
            raise KeyError(f"unknown metric {metric!r}")
        if stat is None:
            raise KeyError(f"{metric!r} is a per-request metric: name a statistic")
        return self.metrics[metric].get(stat)

    def samples(self, metric: str, stat: str | None = None) -> int:
        """How many values ``get(metric, stat)`` rests on.

        Stage metrics rest on the started requests (an ``rps`` of 0 over 50 failed
        requests is a measurement; over 0 started requests it is not), request metrics
        on the values in their sketch.
        """
        if metric in STAGE_METRICS:
            return self.requests
        if stat == TOTAL_STAT:
            return 0 if self.cost is None else self.cost.priced_requests
        if metric not in self.metrics:
            raise KeyError(f"unknown metric {metric!r}")
        return self.metrics[metric].n


def _unit(metric: str) -> str | None:
    info = REQUEST_METRICS.get(metric)  # None for a metric from a newer lens's shard
    return info.unit if info is not None else None


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


# A stored record's cost (Decimal), None when it has none of its own (lens merge).
StoredCost = Callable[[RequestRecord], Decimal | None]


class StageAccumulator:
    """Counters and sketches of one stage x provider, fed one record at a time."""

    def __init__(
        self,
        stage: str,
        provider: str,
        *,
        exact_limit: int = DEFAULT_EXACT_LIMIT,
        spec: ProviderSpec | None = None,
        checks: tuple[SlaExpr, ...] = (),
        phase: Phase = "measure",
        repetition: Repetition | None = None,
        repeated: int = 0,
        stored_cost: StoredCost | None = None,
    ) -> None:
        self.stage = stage
        # Records read back from results (lens merge): each one's cost as it was priced
        # when measured, a per-request cost (None: GPU-hour share, or unknown).
        self.stored_cost = stored_cost
        self.provider = provider
        self.phase = phase
        self.repetition = repetition
        self.repeated = repeated
        self.drained = 0
        self.exact_limit = exact_limit
        self.spec = spec  # where the price comes from; None: unpriced
        self.checks = checks  # per-request SLA checks, for sla_conforming
        self.cost = CostAccumulator(spec.price if spec is not None else None)
        self.sla_conforming = 0
        self.requests = 0
        self.ok = 0
        self.output_tokens = 0
        self.inputs = 0  # embedding inputs of successful requests
        self.ended_early = 0  # successful outputs that stopped before their max_tokens
        self.error_counts: dict[str, int] = {c.value: 0 for c in ErrorClass}
        self.token_sources: dict[str, int] = {}
        self.sketches: dict[str, MetricSketch] = {
            name: MetricSketch(exact_limit) for name in REQUEST_METRICS
        }
        self.turns: dict[str, _TurnAccumulator] = {}  # conversations only
        self.abandoned_turns = 0

    def _turn(self, turn: int) -> _TurnAccumulator:
        label = turn_label(turn)
        acc = self.turns.get(label)
        if acc is None:
            acc = self.turns[label] = _TurnAccumulator(self.exact_limit)
        return acc

    @property
    def key(self) -> StageKey:
        return (self.stage, self.provider)

    @property
    def errors(self) -> int:
        return self.requests - self.ok

    def _cost(self, rec: RequestRecord, gpu_usd: Decimal | None) -> Decimal | None:
        """The record's cost: its token cost, or its share of the GPU-hour bill."""
        if self.stored_cost is not None:
            return self.stored_cost(rec)
        if self.spec is None:
            return None
        if isinstance(self.spec.price, GpuHourRate):
            return gpu_usd
        cost = record_cost(rec, self.spec)
        return None if cost is None else cost.total

    def add(self, rec: RequestRecord, gpu_usd: Decimal | None = None) -> None:
        """``gpu_usd``: the record's share of the GPU-hour bill (``bill_run``), when its
        provider is priced by the GPU-hour; without it such a record is unpriced."""
        if (rec.stage, rec.provider) != self.key:
            raise ValueError(
                f"record of stage={rec.stage!r} provider={rec.provider!r} fed to the "
                f"accumulator of stage={self.stage!r} provider={self.provider!r}"
            )
        self.take(rec, gpu_usd)

    def take(self, rec: RequestRecord, gpu_usd: Decimal | None = None) -> None:
        """``add`` without the check that the record is this group's own: how a repeated
        stage's pooled group takes its repetitions' records (stage ``<id>#<k>``)."""
        if rec.turn is not None:
            self._turn(rec.turn)  # a turn cut off still shows its bucket
            left = rec.extra.get(ABANDONED_TURNS)
            if left is not None and left.isdigit():
                self.abandoned_turns += int(left)
        if rec.error_class in LENS_SIDE:
            # Cut off by lens: by its own interruption (Ctrl-C, SIGTERM; the run is marked
            # partial, and a partial run never passes) or by the stage's own end (drain:
            # cancel).  Not an outcome of the system under test: listed in error_counts,
            # kept out of every denominator.  What it used is still paid for: its cost
            # counts, so the stage's cost is its records' costs added up.
            self.error_counts[rec.error_class.value] += 1
            if rec.error_class is ErrorClass.DRAINED:
                self.drained += 1
            self.cost.add(rec, self._cost(rec, gpu_usd))
            return
        self.requests += 1
        if rec.ok:
            self.ok += 1
            self.output_tokens += rec.output_tokens or 0
            self.inputs += rec.inputs or 0
            if "ended_early" in rec.extra:
                self.ended_early += 1
            if rec.token_source is not None:
                src = rec.token_source.value
                self.token_sources[src] = self.token_sources.get(src, 0) + 1
        else:
            cls = rec.error_class.value if rec.error_class is not None else UNKNOWN_ERROR
            self.error_counts[cls] = self.error_counts.get(cls, 0) + 1
        sketches = self.sketches
        values = request_metrics(rec)  # a fresh dict: cost joins it below
        cost = self._cost(rec, gpu_usd)
        self.cost.add(rec, cost)
        # A GPU-hour share is known only once the run's windows are: per-request cost
        # checks (and the spread) stay with token prices, as when results are re-judged.
        per_request = self.cost.per_request or self.stored_cost is not None
        values["cost"] = float(cost) if cost is not None and per_request else None
        for name, value in values.items():
            if value is not None:
                sketches[name].add(value)
        if rec.turn is not None:
            self._turn(rec.turn).take(rec, values)
        series: dict[str, list[float]] = {}
        if rec.ok and len(rec.chunk_times) > 1:
            series = {name: formula(rec) for name, formula in SERIES_FORMULAS.items()}
            for name, values_of_rec in series.items():
                sketches[name].add_many(values_of_rec)
        if request_conforms(rec.ok, values, series, self.checks):
            self.sla_conforming += 1

    def merge(self, other: StageAccumulator) -> None:
        """Fold a shard of the same stage x provider (e.g. from another machine) in."""
        if other.key != self.key:
            raise ValueError(f"cannot merge {other.key} into {self.key}")
        self.requests += other.requests
        self.drained += other.drained
        self.ok += other.ok
        self.output_tokens += other.output_tokens
        self.inputs += other.inputs
        self.ended_early += other.ended_early
        self.sla_conforming += other.sla_conforming
        self.cost.merge(other.cost)
        for cls, n in other.error_counts.items():
            self.error_counts[cls] = self.error_counts.get(cls, 0) + n
        for src, n in other.token_sources.items():
            self.token_sources[src] = self.token_sources.get(src, 0) + n
        for name, sketch in other.sketches.items():
            self.sketches.setdefault(name, MetricSketch(self.exact_limit)).merge(sketch)
        self.abandoned_turns += other.abandoned_turns
        for label, turn in other.turns.items():
            mine = self.turns.get(label)
            if mine is None:
                self.turns[label] = mine = _TurnAccumulator(self.exact_limit)
            mine.merge(turn)

    def summary(self, window: Window | None = None) -> Summary:
        duration_s: float | None = None
        rps: float | None = None
        throughput: float | None = None
        inputs_per_s: float | None = None
        if window is not None:
            duration_s = (window[1] - window[0]) / NS_PER_S
            if duration_s > 0:
                rps = self.ok / duration_s
                # Embeddings generate nothing: their output rate is not measured, not 0.
                if self.output_tokens or not self.inputs:
                    throughput = self.output_tokens / duration_s
                if self.inputs:
                    inputs_per_s = self.inputs / duration_s
        cost = self.cost.result(self.sla_conforming)
        metrics = {
            name: MetricStats.from_sketch(s, _unit(name)) for name, s in self.sketches.items()
        }
        if cost is not None and not self.cost.per_request:
            # GPU-hour pricing: the shares add up exactly, but their spread is not
            # sketched (per-request checks leave them alone), so only the mean is given.
            mean = cost.mean
            metrics["cost"] = MetricStats(
                n=cost.priced_requests,
                mean=None if mean is None else float(mean),
                unit=_unit("cost"),
            )
        return Summary(
            stage=self.stage,
            provider=self.provider,
            requests=self.requests,
            ok=self.ok,
            errors=self.errors,
            error_counts=dict(self.error_counts),
            error_rate=_rate(self.errors, self.requests),
            success_rate=_rate(self.ok, self.requests),
            rps=rps,
            throughput=throughput,
            duration_s=duration_s,
            output_tokens=self.output_tokens,
            token_sources=dict(self.token_sources),
            metrics=metrics,
            cost=cost,
            sla_conforming=self.sla_conforming,
            phase=self.phase,
            drained=self.drained,
            repetition=self.repetition,
            repeated=self.repeated,
            turns=self._turn_summaries(),
            abandoned_turns=self.abandoned_turns if self.turns else None,
            inputs=self.inputs,
            inputs_per_s=inputs_per_s,
            ended_early=self.ended_early,
        )

    def _turn_summaries(self) -> dict[str, TurnSummary] | None:
        if not self.turns:
            return None
        order = sorted(self.turns, key=lambda label: int(label.rstrip("+")))
        return {label: self.turns[label].summary() for label in order}

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "provider": self.provider,
            "exact_limit": self.exact_limit,
            "requests": self.requests,
            "drained": self.drained,
            "ok": self.ok,
            "output_tokens": self.output_tokens,
            "error_counts": dict(self.error_counts),
            "token_sources": dict(self.token_sources),
            "sketches": {name: s.to_dict() for name, s in self.sketches.items()},
            "cost": self.cost.to_dict(),
            "sla_conforming": self.sla_conforming,
            "turns": {label: t.to_dict() for label, t in self.turns.items()},
            "abandoned_turns": self.abandoned_turns,
            "inputs": self.inputs,
            "ended_early": self.ended_early,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        acc = cls(str(d["stage"]), str(d["provider"]), exact_limit=int(d["exact_limit"]))
        acc.requests = int(d["requests"])
        acc.drained = int(d.get("drained", 0))
        acc.ok = int(d["ok"])
        acc.output_tokens = int(d["output_tokens"])
        acc.error_counts.update({str(k): int(v) for k, v in d["error_counts"].items()})
        acc.token_sources = {str(k): int(v) for k, v in d["token_sources"].items()}
        acc.sketches.update({str(k): MetricSketch.from_dict(v) for k, v in d["sketches"].items()})
        acc.cost.load(d["cost"])
        acc.sla_conforming = int(d["sla_conforming"])
        acc.turns = {
            str(k): _TurnAccumulator.from_dict(v, acc.exact_limit)
            for k, v in d.get("turns", {}).items()
        }
        acc.abandoned_turns = int(d.get("abandoned_turns", 0))
        acc.inputs = int(d.get("inputs", 0))
        acc.ended_early = int(d.get("ended_early", 0))
        return acc


class SummaryBuilder:
    """Incremental aggregation of records into summaries, keyed by (stage, provider).

    Groups appear in first-seen order (``open`` registers one ahead of its records, so a
    stage that started nothing still gets a ``Summary``).  Warmup and cooldown records go
    to groups of their own (``build_phases``) unless their stage is in ``pooled_stages``.
    """

    def __init__(
        self,
        *,
        exact_limit: int = DEFAULT_EXACT_LIMIT,
        providers: Mapping[str, ProviderSpec] | None = None,
        slas: tuple[SlaSpec, ...] = (),
        pooled_stages: frozenset[str] = frozenset(),
        repetitions: Mapping[str, Repetition] | None = None,
        stored_cost: StoredCost | None = None,
    ) -> None:
        self.exact_limit = exact_limit
        self.stored_cost = stored_cost  # records read back: their stored costs (lens merge)
        self.providers = providers or {}  # their prices price the records
        self.slas = slas  # per-request checks behind sla_conforming
        self.pooled_stages = pooled_stages
        # A repeated stage's units (``<id>#<k>`` -> which repetition): each record of one
        # goes to its repetition's group and to the pooled group of the stage's own id.
        self.repetitions: Mapping[str, Repetition] = repetitions or {}
        self._groups: dict[StageKey, StageAccumulator] = {}
        self._phase_groups: dict[PhaseKey, StageAccumulator] = {}

    def _new(self, stage: str, provider: str, phase: Phase) -> StageAccumulator:
        rep = self.repetitions.get(stage)
        counts = {r.stage: r.count for r in self.repetitions.values()}
        return StageAccumulator(
            stage,
            provider,
            exact_limit=self.exact_limit,
            spec=self.providers.get(provider),
            checks=request_checks(self.slas, stage, provider),
            phase=phase,
            repetition=rep,
            repeated=counts.get(stage, 0) if rep is None else 0,
            stored_cost=self.stored_cost,
        )

    def open(self, stage: str, provider: str) -> StageAccumulator:
        """The accumulator of ``(stage, provider)``, created on first use."""
        key = (stage, provider)
        acc = self._groups.get(key)
        if acc is None:
            acc = self._groups[key] = self._new(stage, provider, "measure")
        return acc

    def _open_phase(self, stage: str, provider: str, phase: Phase) -> StageAccumulator:
        key = (stage, provider, phase)
        acc = self._phase_groups.get(key)
        if acc is None:
            acc = self._phase_groups[key] = self._new(stage, provider, phase)
        return acc

    def add(self, rec: RequestRecord, gpu_usd: Decimal | None = None) -> None:
        """``gpu_usd``: the record's GPU-hour share (``lens.metrics.cost.bill_run``)."""
        rep = self.repetitions.get(rec.stage)
        if rec.phase == "measure" or rec.stage in self.pooled_stages:
            self.open(rec.stage, rec.provider).add(rec, gpu_usd)
            if rep is not None:
                self.open(rep.stage, rec.provider).take(rec, gpu_usd)
            return
        self._open_phase(rec.stage, rec.provider, rec.phase).add(rec, gpu_usd)
        if rep is not None:
            self._open_phase(rep.stage, rec.provider, rec.phase).take(rec, gpu_usd)

    def add_many(
        self,
        records: Iterable[RequestRecord],
        gpu_usd: Iterable[Decimal | None] | None = None,
    ) -> None:
        """``gpu_usd``: each record's GPU-hour share, in the same order (``RunBill``)."""
        if gpu_usd is None:
            for rec in records:
                self.add(rec)
            return
        for rec, share in zip(records, gpu_usd, strict=True):
            self.add(rec, share)

    @property
    def groups(self) -> Mapping[StageKey, StageAccumulator]:
        return self._groups

    @property
    def sketches(self) -> Mapping[StageKey, Mapping[str, MetricSketch]]:
        """Live sketches per (stage, provider), for merging shards of a distributed run."""
        return {key: acc.sketches for key, acc in self._groups.items()}

    def merge(self, other: SummaryBuilder) -> None:
        for key, acc in other._groups.items():
            self.open(*key).merge(acc)

    def build(self, stage_windows: Mapping[StageKey, Window] | None = None) -> tuple[Summary, ...]:
        """One ``Summary`` per group; windows for keys never seen add empty groups.

        A repeated stage's pooled summaries come right after the last of its repetitions
        (see ``_in_run_order``); its window is ``pooled_window``'s, as long as the
        repetitions' windows together."""
        windows = stage_windows or {}
        for key in windows:
            self.open(*key)
        for key in list(windows):
            rep = self.repetitions.get(key[0])
            if rep is not None:
                self.open(rep.stage, key[1])
        return tuple(acc.summary(windows.get(key)) for key, acc in self._in_run_order(self._groups))

    def build_phases(
        self, phase_windows: Mapping[PhaseKey, Window] | None = None
    ) -> tuple[Summary, ...]:
        """One ``Summary`` per warmup or cooldown group seen, in first-seen order."""
        windows = phase_windows or {}
        return tuple(
            acc.summary(windows.get(key)) for key, acc in self._in_run_order(self._phase_groups)
        )

    def _in_run_order(
        self, groups: Mapping[Any, StageAccumulator]
    ) -> list[tuple[Any, StageAccumulator]]:
        """Groups in first-seen order, except that a repeated stage's pooled groups follow
        the last group of its repetitions: ``s#1/a s#1/b s#2/a s#2/b s/a s/b``."""
        pooled = {r.stage for r in self.repetitions.values()}
        if not pooled:
            return list(groups.items())
        last: dict[str, int] = {}
        items = list(groups.items())
        for i, (_, acc) in enumerate(items):
            if acc.repetition is not None:
                last[acc.repetition.stage] = i
        out: list[tuple[Any, StageAccumulator]] = []
        for i, (key, acc) in enumerate(items):
            if acc.stage in pooled and acc.repetition is None:
                continue
            out.append((key, acc))
            rep = acc.repetition
            if rep is not None and last[rep.stage] == i:
                out.extend(
                    (k, a) for k, a in items if a.stage == rep.stage and a.repetition is None
                )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": BUILDER_KIND,
            "v": BUILDER_VERSION,
            "exact_limit": self.exact_limit,
            "groups": [acc.to_dict() for acc in self._groups.values()],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        if d.get("kind") != BUILDER_KIND or d.get("v") != BUILDER_VERSION:
            raise ValueError(
                f"not a v{BUILDER_VERSION} lens summary builder: "
                f"kind={d.get('kind')!r} v={d.get('v')!r}"
            )
        builder = cls(exact_limit=int(d["exact_limit"]))
        for g in d["groups"]:
            acc = StageAccumulator.from_dict(g)
            builder._groups[acc.key] = acc
        return builder


def pooled_window(windows: Iterable[Window]) -> Window:
    """The window of a repeated stage's pooled summary: as long as its repetitions'
    windows together, so its rates are per second of its own measured time, not of the
    wall time spanning them (which holds the other providers' units).  Only its length is
    read; it starts where the first of them did."""
    spans = list(windows)
    if not spans:
        return (0, 0)
    start = min(a for a, _ in spans)
    return (start, start + sum(b - a for a, b in spans))


def aggregate(
    records: Iterable[RequestRecord],
    *,
    stage_windows: Mapping[StageKey, Window],
    exact_limit: int = DEFAULT_EXACT_LIMIT,
    providers: Mapping[str, ProviderSpec] | None = None,
    slas: tuple[SlaSpec, ...] = (),
    gpu_usd: Iterable[Decimal | None] | None = None,
) -> tuple[Summary, ...]:
    """One ``Summary`` per (stage, provider), in first-seen order of the records: the
    measured phase's (``SummaryBuilder.build_phases`` has the others).  ``gpu_usd`` are
    the records' GPU-hour shares (``lens.metrics.cost.bill_run``), in their order.

    ``stage_windows[(stage, provider)] = (t_start_ns, t_end_ns)`` is the wall-clock span
    of that run, from the executor; it is what ``rps`` and ``throughput`` divide by.
    ``providers`` price the records (their ``price``) and ``slas`` decide which requests
    count as SLA-conforming.
    """
    builder = SummaryBuilder(exact_limit=exact_limit, providers=providers, slas=slas)
    builder.add_many(records, gpu_usd)
    return builder.build(stage_windows)

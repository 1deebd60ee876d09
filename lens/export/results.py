"""results.json: a self-describing, versioned record of one run.

The document carries everything needed to read it later without the scenario: the
resolved plan (secrets masked), an environment manifest, per stage x provider summaries,
SLA verdicts, and one entry per request.  Its JSON Schema (``schemas/results-v1.json``) is
generated from these models, and ``schema_version`` names the contract.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import socket
import sys
from collections.abc import Mapping, Sequence
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    WrapSerializer,
)

from lens import exitcodes
from lens._version import __version__
from lens.errors import Problem, ResultsError, describe, innermost
from lens.metrics.analysis import RunAnalysis
from lens.metrics.compare import Comparison
from lens.metrics.cost import RecordPrice, RunBill, UnitBill, token_price
from lens.metrics.idle import IdleProbes
from lens.metrics.integrity import ColdStart, IntegrityReport, StreamDelivery
from lens.metrics.judge import Verdict
from lens.metrics.pacing import Pacing
from lens.metrics.recommend import Recommendation
from lens.metrics.repetitions import RepetitionSpread, Spread
from lens.metrics.request import NS_PER_MS, NS_PER_S, request_metrics
from lens.metrics.summary import MetricStats, Summary, TurnSummary
from lens.metrics.sweep_outcomes import SweepOutcome, SweepProbe
from lens.plan.describe import plan_to_dict
from lens.plan.model import Plan
from lens.pricing.gpu import money_text
from lens.records import (
    LENS_FAILED_STOP,
    Repetition,
    RequestRecord,
    RunOutcome,
    ServerMetricsReport,
    StageWindow,
)
from lens.redact import Redactor

SCHEMA_VERSION: Literal["lens.results/v1"] = "lens.results/v1"
SCHEMA_ID = "https://lens.dev/schemas/results-v1.json"

PhaseName = Literal["warmup", "measure", "cooldown"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# Results are immutable all the way down: sequences are tuples, and mappings are read-only
# views (types.MappingProxyType) that serialise as the JSON objects they were read from.
def _read_only(value: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(dict(value))


def _as_dict(value: Mapping[Any, Any], handler: SerializerFunctionWrapHandler) -> Any:
    return handler(dict(value))


K = TypeVar("K")
V = TypeVar("V")
FrozenMap = Annotated[
    Mapping[K, V], AfterValidator(_read_only), WrapSerializer(_as_dict, when_used="always")
]


def _freeze(tree: Any) -> Any:
    if isinstance(tree, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in tree.items()})
    if isinstance(tree, list | tuple):
        return tuple(_freeze(v) for v in tree)
    return tree


def _thaw(tree: Any) -> Any:
    if isinstance(tree, Mapping):
        return {k: _thaw(v) for k, v in tree.items()}
    if isinstance(tree, tuple):
        return [_thaw(v) for v in tree]
    return tree


# A JSON tree (the resolved plan): objects read-only, arrays tuples, written back as read.
FrozenTree = Annotated[
    Mapping[str, Any],
    AfterValidator(_freeze),
    WrapSerializer(lambda v, handler: handler(_thaw(v)), when_used="always"),
]


class Environment(_Frozen):
    lens_version: str
    python: str
    implementation: str
    os: str
    machine: str
    cpu_count: int | None
    hostname: str
    started_at: str = Field(description="UTC wall clock, ISO 8601; durations never use it")
    finished_at: str
    clock: str = Field(description="the monotonic clock every duration was measured on")
    argv: tuple[str, ...]


class RepetitionOut(_Frozen):
    """Which repetition of a repeated stage (``repeat: N``) a unit or summary is."""

    stage: str = Field(description="the repeated stage's id: its pooled summary's")
    index: int = Field(description="1-based, as in the unit's stage id <stage>#<index>")
    count: int = Field(description="the stage's repeat")


def _repetition_out(rep: Repetition | None) -> RepetitionOut | None:
    return None if rep is None else RepetitionOut(stage=rep.stage, index=rep.index, count=rep.count)


class RepetitionsOut(_Frozen):
    """A repeated stage x provider: its repetitions and the run-to-run spread of each
    statistic across them (lens.metrics.repetitions)."""

    stage: str = Field(description="the repeated stage's id; its summary pools every repetition")
    provider: str
    count: int = Field(description="the stage's repeat")
    stages: tuple[str, ...] = Field(description="stage ids of the repetitions that ran")
    spread: FrozenMap[str, Spread] = Field(
        description="per statistic (ttft.p50, ..., error_rate, cost.mean, rps, throughput): "
        "its value in each repetition and their min, max, mean and sample stdev"
    )


class SummaryOut(_Frozen):
    stage: str
    provider: str
    phase: PhaseName = Field(
        "measure",
        description="measure: the judged summary; warmup/cooldown: those requests alone "
        "(in phase_summaries, never judged)",
    )
    model: str
    requests: int
    ok: int
    errors: int
    error_counts: FrozenMap[str, int]
    error_rate: float | None
    success_rate: float | None
    drained: int = Field(
        0,
        description="requests in flight at the stage's cutoff and cut off (drain: cancel): "
        "not in requests, error_rate or success_rate",
    )
    rps: float | None
    throughput: float | None = Field(description="output tokens per second of stage wall time")
    duration_s: float | None
    output_tokens: int
    token_sources: FrozenMap[str, int]
    planned_requests: int | None
    inputs: int | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="endpoint: embeddings: inputs of the successful requests' batches; absent "
        "for a stage that sent none",
    )
    inputs_per_s: float | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="inputs per second of stage wall time (embeddings); absent otherwise",
    )
    ended_early: int | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="successful outputs that stopped on their own before their max_tokens "
        "(records' provider_facts.ended_early): TPOT and tokens/s cover shorter outputs than "
        "planned; absent when none did",
    )
    metrics: FrozenMap[str, MetricStats]
    sla_conforming: int = Field(
        0, description="successful requests whose own values met every per-request SLA"
    )
    goodput: float | None = Field(
        default=None,
        description="sla_conforming per second of the window rps divides by (equals rps "
        "when no per-request SLA applies); null without a window",
    )
    goodput_ratio: float | None = Field(
        default=None, description="sla_conforming / requests; null when nothing started"
    )
    cost: FrozenMap[str, str | int | None] | None = Field(
        None,
        description="pricing (tokens|gpu-hour), total_usd, per_request_usd, "
        "per_1k_successful_usd, per_1m_output_tokens_usd, per_sla_conforming_usd (decimal "
        "strings), sla_conforming_requests, priced/unpriced_requests, priced_ok_requests, "
        "priced_output_tokens; absent when no price is known",
    )
    pacing: Pacing | None = Field(
        None, description="open-loop stages: achieved vs planned dispatch rate, dispatch lag"
    )
    repetition: RepetitionOut | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="one repetition of a repeated stage: summarised, never judged; absent "
        "otherwise",
    )
    repeated: int | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="a repeated stage's pooled summary: how many repetitions it pools (its "
        "rates are over their measured windows added up); absent otherwise",
    )
    turns: FrozenMap[str, TurnSummary] | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="a stage that ran conversations: its requests by turn ('1', '2', ... "
        "'8+'; turn 1 against later turns shows prefix-cache reuse); absent otherwise",
    )
    abandoned_turns: int | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="a stage that ran conversations: turns its sessions left unsent (a "
        "failed turn ends its session; a cutoff while a session thinks); absent otherwise",
    )


class ExclusionOut(_Frozen):
    reason: str
    sla: str | None = Field(description="the assertion that did not pass, if a verdict is why")
    stage: str | None
    outcome: Literal["pass", "fail", "inconclusive"] | None


class CandidateOut(_Frozen):
    """One provider as a choice: its stages pooled. Money as decimal strings."""

    provider: str
    model: str
    rank: int | None = Field(description="1 = recommended; null when excluded")
    eligible: bool
    pareto: bool = Field(description="on the frontier of p95 TTFT vs cost per 1M output tokens")
    stages: tuple[str, ...]
    requests: int
    ok: int
    sla_conforming: int
    total_usd: str | None
    per_sla_conforming_usd: str | None
    per_1m_output_tokens_usd: str | None
    ttft_p95_ms: float | None = Field(description="the worst stage's p95")
    verdicts_passed: int
    verdicts_failed: int
    verdicts_inconclusive: int
    excluded_because: tuple[ExclusionOut, ...]


class RecommendationOut(_Frozen):
    """Which provider is the cheapest that meets the SLA (lens.metrics.recommend)."""

    stages: tuple[str, ...] | None = Field(description="the stages considered; null: all")
    best: str | None = Field(description="the recommended provider; null when none is eligible")
    candidates: tuple[CandidateOut, ...] = Field(
        description="ranked eligible ones, then excluded ones"
    )


def _usd(amount: Decimal | None) -> str | None:
    return None if amount is None else str(amount)


def recommendation_out(rec: Recommendation) -> RecommendationOut:
    return RecommendationOut(
        stages=None if rec.stages is None else tuple(rec.stages),
        best=rec.best.provider if rec.best is not None else None,
        candidates=tuple(
            CandidateOut(
                provider=c.provider,
                model=c.model,
                rank=c.rank,
                eligible=c.eligible,
                pareto=c.pareto,
                stages=tuple(c.stages),
                requests=c.requests,
                ok=c.ok,
                sla_conforming=c.sla_conforming,
                total_usd=_usd(c.total_usd),
                per_sla_conforming_usd=_usd(c.per_sla_conforming_usd),
                per_1m_output_tokens_usd=_usd(c.per_1m_output_tokens_usd),
                ttft_p95_ms=c.ttft_p95_ms,
                verdicts_passed=c.passed,
                verdicts_failed=c.failed,
                verdicts_inconclusive=c.inconclusive,
                excluded_because=tuple(
                    ExclusionOut(reason=e.reason, sla=e.sla, stage=e.stage, outcome=e.outcome)
                    for e in c.excluded_because
                ),
            )
            for c in rec.candidates
        ),
    )


class EngineOut(_Frozen):
    """The engine's own account of a request (llama.cpp ``timings``, TGI headers); a figure
    it did not report is null."""

    prompt_ms: float | None = Field(None, description="prefill time (llama.cpp prompt_ms)")
    prompt_tokens: int | None = Field(
        None, description="tokens prefilled, the cached ones excluded (llama.cpp prompt_n)"
    )
    cached_tokens: int | None = Field(
        None, description="prompt tokens reused from the engine's cache (llama.cpp cache_n)"
    )
    decode_ms: float | None = Field(None, description="decode time (llama.cpp predicted_ms)")
    decode_tokens: int | None = Field(None, description="tokens generated (llama.cpp predicted_n)")
    per_token_ms: float | None = Field(
        None, description="decode ms per token (llama.cpp predicted_per_token_ms)"
    )


class RecordOut(_Frozen):
    """One request. Times in ms; ``t_*`` are offsets from the start of the run."""

    provider: str
    stage: str
    prompt: str
    index: int
    attempt: int = Field(description="1, or 2, 3, ... for retries the scenario asked for")
    phase: PhaseName = Field("measure", description="warmup, measure or cooldown")
    status: Literal["ok", "error"]
    error_class: str | None
    error_message: str | None
    http_status: int | None
    input_tokens: int | None
    output_tokens: int | None
    cached_input_tokens: int | None
    cache_write_tokens: int | None
    reasoning_tokens: int | None
    token_source: Literal["usage", "estimated", "tokenizer"] | None
    ttft: float | None
    ttfot: float | None
    ttfb: float | None
    e2e: float | None
    tpot: float | None
    dispatch_lag: float | None
    ttft_from_intended: float | None
    e2e_from_intended: float | None
    output_tokens_per_s: float | None
    t_intended: float | None
    t_dispatch: float
    t_headers: float | None
    t_first_chunk: float | None
    t_first_token: float | None
    t_first_visible: float | None
    t_last_token: float | None
    t_end: float
    chunks: int = Field(description="token-bearing chunks")
    chunk_offsets: tuple[float, ...] = Field(
        description="arrival of each token-bearing chunk, ms after dispatch (us resolution)"
    )
    chunk_tokens: tuple[int, ...] = Field(description="tokens each chunk is taken to carry")
    reads: int = Field(description="network reads that delivered body bytes")
    cold: bool | None = Field(
        None, description="first request to its provider, or sent after an idle gap"
    )
    request_id: str | None
    stale_connection: bool = Field(
        False,
        description="re-sent once on a fresh connection: the reused keep-alive connection it "
        "first went out on had been closed by the server before any response byte (not an "
        "error, not a retry)",
    )
    stale_lost_ms: float | None = Field(
        None, description="with stale_connection: time from the first dispatch to the re-send"
    )
    inputs: int | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="endpoint: embeddings: inputs in the batch the response answered; absent "
        "for generation requests",
    )
    cost_usd: str | None = Field(
        None, description="what the request cost (decimal string); absent if unknown"
    )
    cost_detail: FrozenMap[str, str | int | None] | None = Field(
        None, description="parts, rates (USD per 1M tokens) and price source behind cost_usd"
    )
    provider_facts: FrozenMap[str, str] = Field(
        description="provider headers and stream facts kept verbatim: retry-after, rate "
        "limits, server-side timings (openai-processing-ms, Bedrock latencyMs), stop reason"
    )
    prefix_group: int | None = Field(
        default=None,
        exclude_if=lambda v: v is None,
        description="the shared-prefix group of its synthetic prompt (shared_prefix_tokens): "
        "requests of one group begin with the same text; absent otherwise",
    )
    shard: int | None = Field(
        default=None,
        exclude_if=lambda v: v is None,
        description="the shard that sent it (lens run --shard, lens merge); absent otherwise",
    )
    session: int | None = Field(
        default=None,
        exclude_if=lambda v: v is None,
        description="a conversation's turn: its session's position in the stage x provider "
        "schedule (its turns share it and index); absent for a request that is not a turn",
    )
    turn: int | None = Field(
        default=None,
        exclude_if=lambda v: v is None,
        description="a conversation's turn: 1, 2, ... in its session; absent otherwise",
    )
    engine: EngineOut | None = Field(
        None, description="the engine's own timings of the request, when its response had them"
    )
    engine_prefill: float | None = Field(None, description="engine.prompt_ms (ms)")
    ttft_overhead: float | None = Field(
        None, description="ttft - engine.prompt_ms: network, queueing, HTTP and framing (ms)"
    )
    engine_tpot: float | None = Field(None, description="engine.per_token_ms (ms)")


class ShardOut(_Frozen):
    """Which part of a sharded run these results are (``lens run --shard I/N``)."""

    index: int = Field(description="0-based, below count")
    count: int
    plan_hash: str = Field(
        description="sha256 of the whole plan (every arrival, secrets masked, not the shard): "
        "equal in every shard of one run; lens merge refuses shards whose hashes differ"
    )
    start_at: str | None = Field(
        description="the wall-clock instant the run waited for (--start-at), ISO 8601 UTC"
    )


class HarnessOut(_Frozen):
    status: Literal["ok", "overloaded"]
    reasons: tuple[str, ...]
    samples: int
    loop_lag_p50_ms: float | None
    loop_lag_p99_ms: float | None
    loop_lag_max_ms: float | None
    cpu: float | None = Field(description="client process CPU seconds per wall second")
    max_loop_lag_ms: float
    max_cpu: float


class IntegrityOut(_Frozen):
    """lens's checks of its own measurements; ``warnings`` says what to distrust."""

    harness: HarnessOut | None
    streams: tuple[StreamDelivery, ...]
    cold_start: tuple[ColdStart, ...]
    warnings: tuple[str, ...]


class SweepStepOut(_Frozen):
    sweep: str = Field(description="id of the sweep stage this unit is a step of")
    step: int = Field(description="0-based position of the step in the sweep")
    steps: int | None = Field(
        description="steps in the sweep; null when they are decided at run time "
        "(find_max_rate, find_max_concurrency, auto)"
    )
    rate_per_s: float | None = Field(description="the step's arrival rate (open loop)")
    concurrency: int | None = Field(description="the step's concurrency (closed loop)")


class StageWindowOut(_Frozen):
    stage: str
    provider: str
    start_ms: float
    end_ms: float
    planned: int | None
    started: int
    sweep: SweepStepOut | None = Field(None, description="present when the stage is a sweep step")
    repetition: RepetitionOut | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="present when the unit is a repetition of a repeated stage",
    )
    measure_start_ms: float | None = Field(
        None, description="when the measured phase began (after warmup); null: at start_ms"
    )
    measure_end_ms: float | None = Field(
        None, description="when the cooldown began; null: at end_ms"
    )
    late_ms: float | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="a unit started at an instant named ahead (a shard's planned start, "
        "a worker's stage gate): how long after that instant start_ms is; its schedule "
        "kept the instant, so the lateness is also its first arrivals' dispatch lag. "
        "Merged: the latest shard's. Absent when the unit started once set up",
    )
    billed_s: float | None = Field(
        None,
        description="run wall time billed to this unit: from the end of the unit before "
        "(the run's start for the first) to end_ms; pause_s + setup_s + the window",
    )
    pause_s: float | None = Field(None, description="the sweep's pause before the unit")
    setup_s: float | None = Field(
        None,
        description="the rest of the time before start_ms: connection set-up, lens "
        "choosing the step",
    )
    cost_usd: str | None = Field(
        None,
        description="GPU-hour pricing: what billed_s cost (decimal string); its records' "
        "cost_usd add up to it less unattributed_usd; null for other pricing",
    )
    unattributed_usd: str | None = Field(
        None,
        description="the part of cost_usd no record carries (no request held the server)",
    )


class GpuBillOut(_Frozen):
    """One GPU-hour priced provider's bill for the run."""

    provider: str
    usd_per_gpu_hour: str
    gpus: int
    billed_s: float = Field(description="the wall time of its units' billed spans")
    total_usd: str = Field(
        description="usd_per_gpu_hour x gpus x billed_s, exact to 1e-12 USD; the sum of "
        "its stages' cost_usd"
    )


class BillingOut(_Frozen):
    """Where the run's wall time went, for GPU-hour pricing (lens.pricing.gpu)."""

    run_billed_s: float = Field(
        description="the run's clock from its start to the end of its last unit: every "
        "second of it is billed once, to the unit it led into"
    )
    total_usd: str = Field(description="the GPU-hour providers' bills added up")
    providers: tuple[GpuBillOut, ...]


class SweepOut(_Frozen):
    """What an adaptive sweep (stop_when, find_max_rate, find_max_concurrency, auto) found,
    per provider."""

    id: str = Field(description="id of the sweep stage")
    provider: str
    kind: Literal["stop_when", "find_max_rate", "find_max_concurrency", "auto"]
    reason: str = Field(description="why the sweep ended, in words")
    probes: tuple[SweepProbe, ...] = Field(description="the steps that ran, in order")
    not_run: tuple[str, ...] = Field(description="stop_when: planned steps skipped after the stop")
    max_rate_per_s: float | None = Field(
        None, description="find_max_rate: the highest rate meeting every SLA (null: none did)"
    )
    max_concurrency: int | None = Field(
        None,
        description="find_max_concurrency: the highest concurrency meeting every SLA (null: "
        "none did)",
    )
    bracket: tuple[int | float | None, int | float | None] | None = Field(
        None,
        description="find_max_rate: [highest passing, lowest failing] rate; "
        "find_max_concurrency: the same concurrencies; a null end is open (even the lowest "
        "failed, or even the highest passed)",
    )
    sync_rps: float | None = Field(None, description="auto: throughput one request at a time")
    saturated_rps: float | None = Field(None, description="auto: throughput at saturation")
    cut_short: bool = Field(
        False,
        description="the run stopped (budget, signal) before the sweep ended: probes are the "
        "steps that ran, and there is no answer",
    )
    distrusted: bool = Field(
        False,
        description="the client was overloaded (integrity.harness): the sweep's decisions "
        "and answer rest on distorted timings; the reason says why",
    )


class CounterDeltaOut(_Frozen):
    """How much one counter sample grew over the stage (lens.records.CounterDelta)."""

    name: str = Field(description="the sample's name, e.g. llamacpp:prompt_tokens_total")
    labels: FrozenMap[str, str]
    kind: Literal["counter", "histogram", "summary"] = Field(
        description="counter, or a histogram's/summary's _count or _sum sample"
    )
    before: float | None = Field(description="its value in the stage's first scrape")
    after: float | None = Field(description="its value in the stage's last scrape")
    delta: float = Field(
        description="the increments between consecutive scrapes, added up (a reset counts "
        "the value after it); equals after - before without a reset"
    )
    reset: bool = Field(description="the value went down during the stage: a counter reset")


class StageServerMetricsOut(_Frozen):
    stage: str
    before_ms: float | None = Field(
        description="when the scrape before the stage answered (run clock); null: it failed"
    )
    after_ms: float | None = Field(
        description="when the scrape after it answered; null: failed, or the stage was cut off"
    )
    scrapes: int = Field(description="successful scrapes: before, every interval, after")
    failed_scrapes: int
    counters: tuple[CounterDeltaOut, ...]


class GaugeSeriesOut(_Frozen):
    name: str
    labels: FrozenMap[str, str]
    points: tuple[tuple[float, float], ...] = Field(
        description="[t_ms on the run clock, value] per successful scrape"
    )


class ServerMetricsOut(_Frozen):
    """What a provider's server_metrics endpoint (the engine's Prometheus metrics) said."""

    provider: str
    url: str = Field(description="the endpoint, credentials masked")
    every_s: float
    names: tuple[str, ...] = Field(description="family globs kept; empty: every family")
    scraped_by: str | None = Field(
        None, description="the shard or worker that scraped; null: a run in one process"
    )
    scrapes: int = Field(
        description="scrapes that answered or failed (not those cut off with their stage)"
    )
    failed_scrapes: int = Field(description="failed or timed out: never a failure of the run")
    last_error: str | None
    stages: tuple[StageServerMetricsOut, ...] = Field(
        description="counter deltas per stage x provider unit"
    )
    gauges: tuple[GaugeSeriesOut, ...] = Field(
        description="gauge (and untyped) samples over the whole run"
    )


class Results(_Frozen):
    model_config = ConfigDict(
        frozen=True, extra="forbid", json_schema_extra={"$id": SCHEMA_ID}, title="lens results v1"
    )

    schema_version: Literal["lens.results/v1"] = SCHEMA_VERSION
    scenario: str
    partial: bool = Field(description="true when the run was interrupted before its end")
    interrupted_by: str | None
    exit_code: int = Field(
        description="0 pass, 1 SLA failed, 3 only inconclusive (or partial), 5 lens failed"
    )
    failure: str | None = Field(
        None,
        description="lens itself failed (exit 5): the exception, secrets redacted; the run "
        "is partial and holds what was measured until then",
    )
    environment: Environment
    plan: FrozenTree
    stages: tuple[StageWindowOut, ...]
    billing: BillingOut | None = Field(
        None, description="GPU-hour pricing: the run's bill; absent otherwise"
    )
    summaries: tuple[SummaryOut, ...]
    phase_summaries: tuple[SummaryOut, ...] = Field(
        default=(),
        description="warmup and cooldown requests of each stage x provider, summarised "
        "apart and never judged",
    )
    verdicts: tuple[Verdict, ...]
    idle_probes: tuple[IdleProbes, ...] = Field(
        default=(), description="idle-probe stages: each probe against its idle gap"
    )
    integrity: IntegrityOut | None = None
    recommendation: RecommendationOut | None = Field(
        None, description="the cheapest provider meeting the SLA; absent in older results"
    )
    sweeps: tuple[SweepOut, ...] = Field(
        default=(),
        description="adaptive sweeps (stop_when, find_max_rate, find_max_concurrency, auto) "
        "and what they found",
    )
    regressions: Comparison | None = Field(
        default=None,
        description="this run compared with a baseline (lens run --baseline, or the "
        "scenario's regression: block), as lens compare reports it; absent otherwise",
    )
    repetitions: tuple[RepetitionsOut, ...] = Field(
        default=(),
        exclude_if=lambda v: not v,
        description="repeated stages (repeat: N): each stage x provider's repetitions and the "
        "run-to-run spread of its statistics; absent when no stage repeats",
    )
    shard: ShardOut | None = Field(
        default=None,
        exclude_if=lambda v: v is None,
        description="lens run --shard I/N: which shard of the plan these results ran; "
        "absent when not sharded (and in merged results, which list their shards)",
    )
    shards: tuple[ShardOut, ...] = Field(
        default=(),
        exclude_if=lambda v: not v,
        description="lens merge: the shards these results were merged from; absent otherwise",
    )
    server_metrics: tuple[ServerMetricsOut, ...] = Field(
        default=(),
        exclude_if=lambda v: not v,
        description="providers' server_metrics: the engine's own Prometheus metrics scraped "
        "before, during and after each stage; absent when no provider sets it",
    )
    records_omitted: int = Field(
        default=0,
        exclude_if=lambda v: not v,
        description="requests measured but not listed in records (scenario results: "
        "{records: none | N}, lens run --results-records): summaries, verdicts and analyses "
        "still cover them; absent when records lists every request",
    )
    records: tuple[RecordOut, ...]

    def summary(
        self,
        stage: str | None = None,
        provider: str | None = None,
        *,
        phase: PhaseName = "measure",
    ) -> SummaryOut:
        """The one summary of ``stage`` x ``provider`` (either may be left out when the
        results hold a single one); ``phase`` picks a warmup or cooldown summary instead of
        the judged one.  ``ResultsError`` when none matches, or more than one does."""
        pool = self.summaries if phase == "measure" else self.phase_summaries
        found = [
            s
            for s in pool
            if s.phase == phase
            and (stage is None or s.stage == stage)
            and (provider is None or s.provider == provider)
        ]
        if len(found) == 1:
            return found[0]
        asked = ", ".join(
            f"{k}={v!r}"
            for k, v in (("stage", stage), ("provider", provider), ("phase", phase))
            if v is not None
        )
        held = ", ".join(f"{s.stage}/{s.provider}" for s in pool if s.phase == phase) or "none"
        if not found:
            raise ResultsError(f"no summary for {asked}; the results hold: {held}")
        raise ResultsError(
            f"{len(found)} summaries match {asked} ({held}): name the stage and the provider"
        )

    def to_json(self) -> str:
        """The results document, exactly as ``lens run -o`` writes it; ``lens.load_results``
        (or ``Results.model_validate_json``) reads it back equal to these results."""
        return self.model_dump_json(indent=1) + "\n"


def _ms(ns: int | None) -> float | None:
    return None if ns is None else ns / NS_PER_MS


def record_out(
    rec: RequestRecord, cost: RecordPrice | None = None, cold: bool | None = None
) -> RecordOut:
    # Every scalar metric of the catalogue is a field of its own (pinned by a test); the
    # token counts come back as floats and are validated into the fields' ints.
    metrics: dict[str, Any] = request_metrics(rec, include_failed=True)
    return RecordOut(
        **metrics,
        provider=rec.provider,
        stage=rec.stage,
        prompt=rec.prompt,
        index=rec.index,
        attempt=rec.attempt,
        phase=rec.phase,
        status="ok" if rec.ok else "error",
        error_class=rec.error_class.value if rec.error_class else None,
        error_message=rec.error_message,
        http_status=rec.http_status,
        cached_input_tokens=rec.cached_input_tokens,
        cache_write_tokens=rec.cache_write_tokens,
        reasoning_tokens=rec.reasoning_tokens,
        token_source=rec.token_source.value if rec.token_source else None,
        t_intended=_ms(rec.t_intended),
        t_dispatch=rec.t_dispatch / NS_PER_MS,
        t_headers=_ms(rec.t_headers),
        t_first_chunk=_ms(rec.t_first_chunk),
        t_first_token=_ms(rec.t_first_token),
        t_first_visible=_ms(rec.t_first_visible),
        t_last_token=_ms(rec.t_last_token),
        t_end=rec.t_end / NS_PER_MS,
        chunks=len(rec.chunk_times),
        chunk_offsets=tuple(round((t - rec.t_dispatch) / NS_PER_MS, 3) for t in rec.chunk_times),
        chunk_tokens=tuple(rec.chunk_tokens),
        reads=rec.reads,
        cold=cold,
        request_id=rec.request_id,
        stale_connection=rec.stale_connection,
        stale_lost_ms=_ms(rec.stale_lost_ns),
        inputs=rec.inputs,
        prefix_group=rec.prefix_group,
        provider_facts=dict(rec.extra),
        session=rec.session,
        turn=rec.turn,
        engine=None if rec.engine is None else EngineOut(**dataclasses.asdict(rec.engine)),
        cost_usd=cost[0] if cost is not None else None,
        cost_detail=cost[1] if cost is not None else None,
    )


def summary_out(
    s: Summary, plan: Plan, planned: int | None, paced: Pacing | None = None
) -> SummaryOut:
    return SummaryOut(
        stage=s.stage,
        provider=s.provider,
        phase=s.phase,
        drained=s.drained,
        pacing=paced,
        model=plan.providers[s.provider].model if s.provider in plan.providers else "",
        requests=s.requests,
        ok=s.ok,
        errors=s.errors,
        error_counts=dict(s.error_counts),
        error_rate=s.error_rate,
        success_rate=s.success_rate,
        rps=s.rps,
        throughput=s.throughput,
        duration_s=s.duration_s,
        output_tokens=s.output_tokens,
        token_sources=dict(s.token_sources),
        planned_requests=planned,
        sla_conforming=s.sla_conforming,
        goodput=s.goodput,
        goodput_ratio=s.goodput_ratio,
        cost=s.cost.as_dict() if s.cost is not None else None,
        metrics=dict(s.metrics),
        repetition=_repetition_out(s.repetition),
        repeated=s.repeated or None,
        turns=None if s.turns is None else dict(s.turns),
        abandoned_turns=s.abandoned_turns,
        inputs=s.inputs or None,
        inputs_per_s=s.inputs_per_s,
        ended_early=s.ended_early or None,
    )


def environment(outcome: RunOutcome, redact: Redactor | None = None) -> Environment:
    finished = outcome.started_at + timedelta(seconds=outcome.duration_s)
    return Environment(
        lens_version=__version__,
        python=platform.python_version(),
        implementation=platform.python_implementation(),
        os=f"{platform.system()} {platform.release()}",
        machine=platform.machine(),
        cpu_count=os.cpu_count(),
        hostname=socket.gethostname(),
        started_at=outcome.started_at.isoformat(),
        finished_at=finished.isoformat(),
        clock="trio.current_time (time.perf_counter, monotonic)",
        # Flags may carry credentials (--export influx=http://...?token=...).
        argv=(redact or Redactor()).tree([Path(sys.argv[0]).name, *sys.argv[1:]]),
    )


def build_results(
    plan: Plan,
    outcome: RunOutcome,
    summaries: Sequence[Summary],
    verdicts: Sequence[Verdict],
    analysis: RunAnalysis,
    phase_summaries: Sequence[Summary] = (),
    sweeps: Sequence[SweepOutcome] = (),
    redactor: Redactor | None = None,
    repetitions: Sequence[RepetitionSpread] = (),
) -> Results:
    """The results document of ``outcome``: its summaries and verdicts, and what
    ``lens.metrics.analysis.analyse_run`` found in it.  ``redactor`` (default: the plan's
    secrets) masks the plan section and argv; records were redacted when they were
    created (lens.run.session)."""
    redact = redactor if redactor is not None else Redactor.for_plan(plan)
    kept = kept_records(len(outcome.records), plan.results_records)
    planned: dict[tuple[str, str], int | None] = {}
    for w in outcome.windows:
        planned[(w.stage, w.provider)] = w.planned
        if w.repetition is not None:  # the pooled summary plans its repetitions' requests
            key = (w.repetition.stage, w.provider)
            before = planned.get(key, 0)
            planned[key] = None if before is None or w.planned is None else before + w.planned
    return Results(
        scenario=plan.name,
        partial=outcome.partial,
        interrupted_by=outcome.interrupted_by,
        exit_code=analysis.exit_code,
        failure=None if outcome.failure is None else redact(describe(innermost(outcome.failure))),
        environment=environment(outcome, redact),
        plan=redact.tree(plan_to_dict(plan)),
        stages=tuple(
            window_out(w, u) for w, u in zip(outcome.windows, analysis.bill.units, strict=True)
        ),
        billing=billing_out(analysis.bill),
        summaries=tuple(
            summary_out(
                s,
                plan,
                planned.get((s.stage, s.provider)),
                analysis.pacing_of(s.stage, s.provider),
            )
            for s in summaries
        ),
        phase_summaries=tuple(summary_out(s, plan, None) for s in phase_summaries),
        verdicts=tuple(verdicts),
        idle_probes=tuple(analysis.idle_probes),
        integrity=integrity_out(analysis.integrity, outcome.server_metrics),
        recommendation=recommendation_out(analysis.recommendation),
        sweeps=tuple(sweep_out(o) for o in sweeps),
        server_metrics=tuple(server_metrics_out(r) for r in outcome.server_metrics),
        repetitions=tuple(
            RepetitionsOut(
                stage=r.stage,
                provider=r.provider,
                count=r.count,
                stages=r.stages,
                spread=r.spread,
            )
            for r in repetitions
        ),
        records_omitted=outcome.measured - len(kept),
        records=tuple(
            record_out(outcome.records[i], analysis.prices[i], analysis.cold[i]) for i in kept
        ),
    )


def kept_records(total: int, limit: int | None) -> range | list[int]:
    """Which of ``total`` records results.json lists: all (``limit`` None), or an evenly
    spaced sample of ``limit`` in completion order, so every stage keeps its share (the
    first N would keep only the first stages)."""
    if limit is None or limit >= total:
        return range(total)
    return [i * total // limit for i in range(limit)]


def with_records_kept(results: Results, limit: int | None) -> Results:
    """``results`` listing only the records ``kept_records`` keeps (merged worker results,
    which must hold every record until they are merged)."""
    kept = kept_records(len(results.records), limit)
    if len(kept) == len(results.records):
        return results
    return results.model_copy(
        update={
            "records": tuple(results.records[i] for i in kept),
            "records_omitted": results.records_omitted + len(results.records) - len(kept),
        }
    )


def salvage_results(
    plan: Plan,
    outcome: RunOutcome,
    failure: BaseException,
    redactor: Redactor | None = None,
    summaries: Sequence[Summary] = (),
) -> Results:
    """Results of a run lens failed to summarise: every record it kept (priced where that
    works), the stage windows, the plan, and the failure; no verdicts.  Best effort on
    purpose: it runs after something in lens broke, so it avoids the summarising code.
    ``summaries``: those that could still be built of a run that kept only a sample of its
    records, or none (lens.pipeline.salvaged_summaries); ``--records`` has every line."""
    redact = redactor if redactor is not None else Redactor.for_plan(plan)
    try:
        summary_docs = tuple(summary_out(s, plan, None) for s in summaries)
    except Exception:
        summary_docs = ()
    try:
        plan_doc: dict[str, Any] = redact.tree(plan_to_dict(plan))
    except Exception:
        plan_doc = {"scenario": plan.name}
    return Results(
        scenario=plan.name,
        partial=True,
        interrupted_by=LENS_FAILED_STOP,
        exit_code=exitcodes.LENS_FAILED,
        failure=redact(describe(innermost(failure))),
        environment=environment(outcome, redact),
        plan=plan_doc,
        stages=tuple(window_out(w) for w in outcome.windows),
        billing=None,  # the bill is summarising code too
        summaries=summary_docs,
        verdicts=(),
        recommendation=None,
        server_metrics=tuple(server_metrics_out(r) for r in outcome.server_metrics),
        records_omitted=outcome.records_not_kept,
        records=tuple(
            record_out(r, token_price(r, plan.providers.get(r.provider))) for r in outcome.records
        ),
    )


def billing_out(bill: RunBill) -> BillingOut | None:
    if not bill.providers:
        return None
    return BillingOut(
        run_billed_s=bill.billed_ns / NS_PER_S,
        total_usd=money_text(bill.usd or Decimal(0)),
        providers=tuple(
            GpuBillOut(
                provider=p.provider,
                usd_per_gpu_hour=str(p.rate.usd_per_gpu_hour),
                gpus=p.rate.gpus,
                billed_s=p.billed_ns / NS_PER_S,
                total_usd=money_text(p.usd),
            )
            for p in bill.providers
        ),
    )


def server_metrics_out(report: ServerMetricsReport) -> ServerMetricsOut:
    return ServerMetricsOut(
        provider=report.provider,
        url=report.url,
        every_s=report.every_s,
        names=report.names,
        scraped_by=report.scraped_by,
        scrapes=report.scrapes,
        failed_scrapes=report.failed,
        last_error=report.last_error,
        stages=tuple(
            StageServerMetricsOut(
                stage=st.stage,
                before_ms=None if st.t_before is None else st.t_before / NS_PER_MS,
                after_ms=None if st.t_after is None else st.t_after / NS_PER_MS,
                scrapes=st.scrapes,
                failed_scrapes=st.failed,
                counters=tuple(
                    CounterDeltaOut(
                        name=c.name,
                        labels=dict(c.labels),
                        kind=c.kind,
                        before=c.before,
                        after=c.after,
                        delta=c.delta,
                        reset=c.reset,
                    )
                    for c in st.counters
                ),
            )
            for st in report.stages
        ),
        gauges=tuple(
            GaugeSeriesOut(
                name=g.name,
                labels=dict(g.labels),
                points=tuple((t / NS_PER_MS, v) for t, v in g.points),
            )
            for g in report.gauges
        ),
    )


def server_metrics_warnings(reports: Sequence[ServerMetricsReport]) -> tuple[str, ...]:
    """One warning per provider whose metrics endpoint failed a scrape (or reset a counter
    during a stage): the run went on, its server-side numbers have gaps."""
    out = []
    for r in reports:
        if r.failed:
            out.append(
                f"server metrics of {r.provider}: {r.failed} of {r.scrapes} scrapes of "
                f"{r.url} failed (last: {r.last_error})"
            )
        reset = sorted({c.name for st in r.stages for c in st.counters if c.reset})
        if reset:
            out.append(
                f"server metrics of {r.provider}: counters reset during a stage (the engine "
                f"restarted?): {', '.join(reset)}"
            )
    return tuple(out)


def integrity_out(
    report: IntegrityReport, server_metrics: Sequence[ServerMetricsReport] = ()
) -> IntegrityOut:
    harness = None
    if report.harness is not None:
        h = report.harness
        harness = HarnessOut(
            status="overloaded" if h.overloaded else "ok",
            reasons=tuple(h.reasons),
            samples=h.samples,
            loop_lag_p50_ms=h.loop_lag_p50_ms,
            loop_lag_p99_ms=h.loop_lag_p99_ms,
            loop_lag_max_ms=h.loop_lag_max_ms,
            cpu=h.cpu,
            max_loop_lag_ms=h.limits.max_loop_lag_ms,
            max_cpu=h.limits.max_cpu,
        )
    return IntegrityOut(
        harness=harness,
        streams=tuple(report.streams),
        cold_start=tuple(report.cold_start),
        warnings=(*report.warnings, *server_metrics_warnings(server_metrics)),
    )


def sweep_out(o: SweepOutcome) -> SweepOut:
    return SweepOut(
        id=o.sweep,
        provider=o.provider,
        kind=o.kind,
        reason=o.reason,
        probes=tuple(o.probes),
        not_run=tuple(o.not_run),
        max_rate_per_s=o.max_rate_per_s,
        max_concurrency=o.max_concurrency,
        bracket=o.bracket,
        sync_rps=o.sync_rps,
        saturated_rps=o.saturated_rps,
        cut_short=o.cut_short,
        distrusted=o.distrusted,
    )


def window_out(w: StageWindow, bill: UnitBill | None = None) -> StageWindowOut:
    billed: dict[str, Any] = {}
    if bill is not None:
        billed = {
            "billed_s": bill.billed_ns / NS_PER_S,
            "pause_s": bill.pause_ns / NS_PER_S,
            "setup_s": bill.setup_ns / NS_PER_S,
            "cost_usd": None if bill.usd is None else money_text(bill.usd),
            "unattributed_usd": None
            if bill.unattributed_usd is None
            else money_text(bill.unattributed_usd),
        }
    return StageWindowOut(
        **billed,
        stage=w.stage,
        provider=w.provider,
        start_ms=w.t_start / NS_PER_MS,
        end_ms=w.t_end / NS_PER_MS,
        planned=w.planned,
        started=w.started,
        measure_start_ms=_ms(w.t_measure_start),
        measure_end_ms=_ms(w.t_measure_end),
        late_ms=_ms(w.late_ns),
        repetition=_repetition_out(w.repetition),
        sweep=None
        if w.sweep is None
        else SweepStepOut(
            sweep=w.sweep.sweep,
            step=w.sweep.index,
            steps=w.sweep.steps,
            rate_per_s=w.sweep.rate_per_s,
            concurrency=w.sweep.concurrency,
        ),
    )


def results_json_schema() -> dict[str, Any]:
    return Results.model_json_schema()


def write_results(results: Results, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(results.to_json(), encoding="utf-8")
    tmp.replace(path)  # never leave a half-written results file behind


def write_records_jsonl(results: Results, path: Path) -> None:
    """Every record of ``results``, one JSON line each, replacing ``path`` atomically (the
    lines ``RecordsLog`` appended during the run stay until the new file is complete)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for rec in results.records:
            f.write(rec.model_dump_json() + "\n")
    tmp.replace(path)


class RecordsLog:
    """``--records FILE.jsonl`` as the run goes: opened (emptied) when the run starts, one
    line appended and flushed per finished request, so a process killed outright
    (``kill -9``) loses only the requests that were in flight.

    A line is the request as ``results.json`` has it, except what needs the whole run: no
    ``cold`` flag and no GPU-hour cost share.  When the run ends and its results are built,
    ``write_records_jsonl`` replaces the file with the complete lines, atomically.
    """

    def __init__(self, path: Path, plan: Plan) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._plan = plan
        self._file = path.open("w", encoding="utf-8")
        self.written = 0

    def write(self, rec: RequestRecord) -> None:
        if self._file.closed:
            return  # a record finishing after the log was closed (never, in lens run)
        price = token_price(rec, self._plan.providers.get(rec.provider))
        self._file.write(record_out(rec, price).model_dump_json() + "\n")
        # To the OS now: a killed process loses nothing written; only a crash of the
        # machine itself could (no fsync per request, which would cost milliseconds).
        self._file.flush()
        self.written += 1

    def close(self) -> None:
        self._file.close()


def load_results(path: Path) -> Results:
    """Read a results.json back; a missing, unreadable or foreign file is a ResultsError."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such results file") from None
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read results: {exc.strerror or exc}") from None
    except ValueError as exc:  # undecodable bytes
        raise ResultsError(f"{path}: not a JSON file: {exc}") from None
    return results_from_text(text, str(path))


def results_from_text(text: str, where: str) -> Results:
    """A results document read from somewhere other than a file (``git show``); ``where``
    names it in errors."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{where}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from None
    version = doc.get("schema_version") if isinstance(doc, dict) else None
    if version != SCHEMA_VERSION:
        raise ResultsError(
            f"{where}: not a lens results file (schema_version {version!r}, "
            f"expected {SCHEMA_VERSION!r})"
        )
    try:
        return Results.model_validate(doc)
    except ValidationError as exc:
        problems = [Problem(f"{where}: not a lens results file ({SCHEMA_VERSION}):")]
        problems += [
            Problem(f"{where}: {'.'.join(map(str, e['loc']))}: {e['msg']}")
            for e in exc.errors()[:5]
        ]
        if exc.error_count() > 5:
            problems.append(Problem(f"{where}: ... and {exc.error_count() - 5} more problems"))
        raise ResultsError(problems) from exc

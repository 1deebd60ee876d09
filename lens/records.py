"""What a run measured, and nothing derived: one ``RequestRecord`` per request, one
``StageWindow`` per stage x provider unit, the harness's ``HarnessReport``, and the
``RunOutcome`` that holds them.

Times are integer nanoseconds on the run's monotonic clock, relative to the run's start
(``t0``).  A stamp that was never reached is ``None``; derived metrics live in
``lens.metrics`` so these values stay a faithful log of what happened.

They sit below every stage on purpose: ``lens.run`` produces them, ``lens.metrics``
analyses them and ``lens.export`` writes them, and none of those needs the others for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

# Where a request sits in its stage: warmup and cooldown requests are sent and measured as
# usual but summarised apart from the measured phase (see lens.metrics.summary).
Phase = Literal["warmup", "measure", "cooldown"]
PHASES: tuple[Phase, ...] = ("warmup", "measure", "cooldown")


class ErrorClass(StrEnum):
    """Why a request did not succeed.  Every class counts in every error rate except the three
    that say where lens itself cut a request off or lost it (``cancelled``, ``drained``,
    ``lens_lost``)."""

    HTTP_3XX = "http_3xx"  # a redirect: lens follows none (the record says where it pointed)
    HTTP_4XX = "http_4xx"
    HTTP_429 = "http_429"
    HTTP_5XX = "http_5xx"
    TIMEOUT = "timeout"
    CONNECT = "connect"  # could not connect: DNS, refused, unreachable, TLS handshake, proxy
    # The connection dropped (EOF or reset) after the request was sent and before any
    # response byte: the server may or may not have processed it.
    CONNECTION_LOST = "connection_lost"
    # The response broke the wire format (HTTP framing, an unsupported coding, a limit
    # exceeded, JSON of the wrong shape): the server answered, but not in its protocol.
    PROTOCOL_ERROR = "protocol_error"
    STREAM_ERROR = "stream_error"  # the server reported an error inside a 200 stream
    CUT_STREAM = "cut_stream"  # the body ended (or the connection dropped) before the terminator
    EMPTY = "empty"  # the stream completed but carried no token
    OVERLOADED = "overloaded"  # 529 / 503 "overloaded", also in-band (Anthropic, Bedrock)
    CANCELLED = "cancelled"  # the run was interrupted (Ctrl-C / SIGTERM) while in flight
    DRAINED = "drained"  # in flight at its stage's cutoff, cancelled by ``drain: cancel``
    # In flight in a worker process (``lens run --workers N``) that died (killed, crashed):
    # lens lost the request's outcome.  Like ``cancelled``, lens's doing, not the server's.
    LENS_LOST = "lens_lost"


# The classes that say lens itself cut a request off or lost it: not an outcome of the
# system under test, so in no error rate's denominator (lens.metrics.summary).
LENS_SIDE = frozenset({ErrorClass.CANCELLED, ErrorClass.DRAINED, ErrorClass.LENS_LOST})


class TokenSource(StrEnum):
    USAGE = "usage"  # counts reported by the server in the stream
    ESTIMATED = "estimated"  # counts estimated by lens (about 4 characters per token)
    TOKENIZER = "tokenizer"  # counted by lens with the provider's tokenizer: (no usage sent)


# ``RequestRecord.extra`` key: on the record that ended a conversation early (a failed turn,
# or a turn never sent), how many of its session's turns were left unsent, as a string.
ABANDONED_TURNS = "abandoned_turns"


@dataclass(frozen=True, slots=True)
class EngineTimings:
    """What the inference engine said it spent on one request (llama.cpp's ``timings``,
    TGI's ``x-*-time`` headers), normalised; a figure the engine did not report is None.

    Times are the engine's own milliseconds, not stamps on lens's clock: compared with
    lens's TTFT they split it into prefill (``prompt_ms``) and everything else (network,
    queueing, HTTP and JSON framing)."""

    prompt_ms: float | None = None  # prefill of the tokens not taken from the prompt cache
    prompt_tokens: int | None = None  # tokens prefilled (llama.cpp prompt_n: cached excluded)
    cached_tokens: int | None = None  # prompt tokens reused from the cache (llama.cpp cache_n)
    decode_ms: float | None = None  # generation of the output tokens
    decode_tokens: int | None = None  # tokens generated (llama.cpp predicted_n)
    per_token_ms: float | None = None  # decode_ms / decode_tokens, as the engine gave it


@dataclass(frozen=True, slots=True)
class RequestRecord:
    provider: str
    stage: str
    prompt: str
    index: int  # position of the request in its stage x provider schedule
    ok: bool
    error_class: ErrorClass | None
    error_message: str | None
    http_status: int | None
    # Monotonic stamps, ns since run start. ``t_intended`` only for open-loop arrivals.
    t_intended: int | None
    t_dispatch: int
    t_headers: int | None
    t_first_chunk: int | None
    t_first_token: int | None
    t_first_visible: int | None
    t_last_token: int | None
    t_end: int
    # One entry per token-bearing chunk: arrival stamp and the tokens it is taken to carry.
    chunk_times: tuple[int, ...] = ()
    chunk_tokens: tuple[int, ...] = ()
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    token_source: TokenSource | None = None
    reads: int = 0  # network reads that delivered body bytes
    attempt: int = 1  # 2, 3, ... for retries the stage asked for (each its own record)
    phase: Phase = "measure"  # a retry keeps the phase of its first attempt
    request_id: str | None = None
    # Sent a second time, once, because the reused keep-alive connection it first went out
    # on had been closed by the server (no response byte came back: the server never saw
    # it).  Not an error and not a retry; ``stale_lost_ns`` is the time from the first
    # dispatch to the re-send, and ``t_dispatch`` is the re-send's.
    stale_connection: bool = False
    stale_lost_ns: int | None = None
    # Provider facts kept verbatim: retry-after, rate-limit headers, server-side timings
    # (openai-processing-ms, Bedrock metrics.latencyMs), stop reason.
    extra: dict[str, str] = field(default_factory=dict)
    # A turn of a conversation (lens.run.executor): its session's position in the stage x
    # provider schedule (the turns of a session share it, and ``index``), and the turn,
    # 1-based.  None for a request that is not part of a conversation.
    session: int | None = None
    turn: int | None = None
    # endpoint: embeddings: the inputs of the batch the response answered (None: a
    # generation request, or no answer); what inputs/s counts.
    inputs: int | None = None
    # The shared-prefix group of a synthetic prompt (``shared_prefix_tokens``): requests of
    # one group begin with the same text.  None: the prompt has no shared prefix.
    prefix_group: int | None = None
    # The engine's own account of the request, when the response carried one.
    engine: EngineTimings | None = None

    @property
    def status(self) -> str:
        return "ok" if self.ok else "error"


@dataclass(frozen=True, slots=True)
class RequestStart:
    """A request's attempt going out (``StageRunner(on_start=...)``): what a worker process
    tells its parent, so that the requests in flight when it dies are known by name."""

    stage: str
    provider: str
    prompt: str
    index: int
    attempt: int
    phase: Phase
    t_intended: int | None
    t_start: int  # ns on the run clock, just before the attempt is sent


@dataclass(frozen=True, slots=True)
class SweepStep:
    """Where a stage unit sits in a sweep, so results and charts can group its steps."""

    sweep: str  # the sweep stage's id as written; the unit's own id names the step
    index: int  # 0-based, in the order the steps run
    steps: int | None  # None: decided at run time (find_max_rate, find_max_concurrency, auto)
    rate_per_s: float | None = None  # open-loop step
    concurrency: int | None = None  # closed-loop step


# A repetition's unit is named ``<stage>#<k>``: ``#`` cannot appear in a scenario's ids, so
# no written stage (or sweep step) can take a repetition's name.
REPETITION_MARK = "#"


def repetition_id(stage: str, index: int) -> str:
    """The stage id of repetition ``index`` (1-based) of ``stage``: ``steady#2``."""
    return f"{stage}{REPETITION_MARK}{index}"


@dataclass(frozen=True, slots=True)
class Repetition:
    """Which repetition of a repeated stage (``repeat: N``) a unit is.  The unit's own id
    is ``repetition_id(stage, index)``; the stage's own id names the pooled summary."""

    stage: str  # the repeated stage's id as written
    index: int  # 1-based, as in the unit's id
    count: int  # the stage's repeat

    @property
    def unit_id(self) -> str:
        return repetition_id(self.stage, self.index)


@dataclass(frozen=True, slots=True)
class StageWindow:
    """When one stage x provider unit ran, on the run clock (ns since run start)."""

    stage: str
    provider: str
    t_start: int
    t_end: int
    planned: int | None
    started: int
    sweep: SweepStep | None = None
    # Where the measured phase began and ended; None: at the window's own edge.  Begins:
    # a closed loop's last warmup request's end (the barrier), an open loop's first
    # measured arrival.  Ends: the first cooldown request's start (intended, open loop).
    t_measure_start: int | None = None
    t_measure_end: int | None = None
    # How long the unit paused before its set-up began (a sweep's ``pause``): part of the
    # run's wall time that the GPU-hour bill charges to this unit (lens.pricing.gpu).
    pause_ns: int = 0
    repetition: Repetition | None = None  # a repeated stage's unit: which repetition
    # A unit started at an instant named ahead (a shard's planned start, a worker's gate;
    # lens.run.gate): how long after it the unit started; its schedule kept the instant.
    late_ns: int | None = None

    def span(self, phase: Phase) -> tuple[int, int]:
        """The part of the window ``phase`` had: warmup up to the measured phase's start,
        cooldown from its end, the measured phase in between.  The three spans tile the
        window: every nanosecond of it belongs to exactly one phase."""
        start = self.t_start if self.t_measure_start is None else self.t_measure_start
        end = self.t_end if self.t_measure_end is None else self.t_measure_end
        if phase == "warmup":
            return (self.t_start, start)
        if phase == "cooldown":
            return (end, self.t_end)
        return (start, end)


# The harness self-check (lens.run.harness samples; these judge the samples).
DEFAULT_MAX_LOOP_LAG_MS = 25.0  # p99 of wake-up lateness
DEFAULT_MAX_CPU = 0.9  # share of one core, over the whole run
# Below these, start-up work (TLS contexts, pre-connecting) dominates the figures: a run
# of a few hundred milliseconds is always "busy" and its lag p99 is its maximum.
MIN_CPU_SPAN_S = 2.0
MIN_LAG_SAMPLES = 20


@dataclass(frozen=True, slots=True)
class HarnessLimits:
    max_loop_lag_ms: float = DEFAULT_MAX_LOOP_LAG_MS
    max_cpu: float = DEFAULT_MAX_CPU


@dataclass(frozen=True, slots=True)
class HarnessReport:
    """The client's own load while it measured (lens.run.harness): is lens the bottleneck?"""

    samples: int
    loop_lag_p50_ms: float | None
    loop_lag_p99_ms: float | None
    loop_lag_max_ms: float | None
    cpu: float | None  # process CPU seconds / wall seconds over the sampled span
    limits: HarnessLimits
    span_s: float = 0.0  # wall time sampled

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why the client was overloaded; empty when it was not."""
        out = []
        lag, limits = self.loop_lag_p99_ms, self.limits
        if lag is not None and self.samples >= MIN_LAG_SAMPLES and lag > limits.max_loop_lag_ms:
            out.append(
                f"event-loop lag p99 {lag:.1f} ms > {limits.max_loop_lag_ms:g} ms "
                "(timestamps may be late by as much)"
            )
        if self.cpu is not None and self.span_s >= MIN_CPU_SPAN_S and self.cpu > limits.max_cpu:
            out.append(f"client CPU {self.cpu:.0%} of a core > {limits.max_cpu:.0%}")
        return tuple(out)

    @property
    def overloaded(self) -> bool:
        return bool(self.reasons)


# ``RunOutcome.interrupted_by`` when lens itself stopped the run early (a signal gives
# its name: SIGINT, SIGTERM; a ``StopSwitch`` its reason).
BUDGET_STOP = "budget"  # the budget ran out
LENS_FAILED_STOP = "lens_failed"  # lens itself failed mid-run
CANCEL_AFTER_STOP = "cancel_after"  # the run's time limit ran out
SLA_STOP = "sla"  # an assertion with stop_on_fail failed (lens.run.slastop)


# Server metrics (lens.run.servermetrics): what the engine's own Prometheus endpoint said
# during the run.  Label sets are sorted (name, value) pairs.
Labels = tuple[tuple[str, str], ...]
CounterKind = Literal["counter", "histogram", "summary"]


@dataclass(frozen=True, slots=True)
class CounterDelta:
    """How much one counter sample (or a histogram's/summary's ``_count``/``_sum``) grew
    over one stage: the increments between consecutive scrapes of the stage, added up.  A
    value that went down was reset (the engine restarted): the value after the reset counts
    as the increment, as Prometheus's ``increase()`` does, and ``reset`` says so.  A sample
    absent from an earlier successful scrape of the stage counts from 0 (labelled counters
    appear on their first increment)."""

    name: str  # the sample's name, e.g. llamacpp:prompt_tokens_total
    labels: Labels
    kind: CounterKind
    before: float | None  # its value in the stage's first scrape that had it
    after: float | None  # in the last one
    delta: float
    reset: bool = False


@dataclass(frozen=True, slots=True)
class StageServerMetrics:
    """One stage x provider unit's scrapes: before it, every interval while it ran, after."""

    stage: str
    t_before: int | None  # the scrape before the stage, ns on the run clock; None: it failed
    t_after: int | None  # the scrape after it; None: failed, or the stage was cut off
    scrapes: int  # successful scrapes of the stage, before and after included
    failed: int
    counters: tuple[CounterDelta, ...] = ()


@dataclass(frozen=True, slots=True)
class GaugeSeries:
    """One gauge sample over the run: (t ns on the run clock, value) per successful scrape."""

    name: str
    labels: Labels
    points: tuple[tuple[int, float], ...]


@dataclass(frozen=True, slots=True)
class ServerMetricsReport:
    """What one provider's ``server_metrics:`` endpoint said during the run."""

    provider: str
    url: str  # credentials masked (lens.urlmask)
    every_s: float
    names: tuple[str, ...]  # the family globs kept; empty: every family
    scrapes: int  # that answered or failed (not those cut off with their stage)
    failed: int  # failed or timed out: never a failure of the run
    last_error: str | None
    stages: tuple[StageServerMetrics, ...]
    gauges: tuple[GaugeSeries, ...]
    # Who scraped: None for a run in one process; "shard K" when shards each scraped.
    scraped_by: str | None = None


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """Everything one run measured (lens.run.session), before any analysis."""

    records: tuple[RequestRecord, ...]
    windows: tuple[StageWindow, ...]
    started_at: datetime  # wall clock, for the manifest only; never used for durations
    duration_s: float
    interrupted_by: str | None = None
    harness: HarnessReport | None = None  # the client's own load while it measured
    # lens itself failed mid-run (a bug, a full disk): the run stopped there.  Not for
    # failures of the system under test, which are records.
    failure: Exception | None = None
    # Records measured but not in ``records``: a long run keeps only those its results
    # list (lens.metrics.fold), its analyses fed each record as it finished.
    records_not_kept: int = 0
    # The engines' own metrics, one report per provider with ``server_metrics:``.
    server_metrics: tuple[ServerMetricsReport, ...] = ()

    @property
    def partial(self) -> bool:
        return self.interrupted_by is not None

    @property
    def measured(self) -> int:
        """Requests measured: a record each, kept or not."""
        return len(self.records) + self.records_not_kept

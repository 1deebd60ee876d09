"""Load stages: burst, constant rate, ramp, adaptive sweeps, concurrency and idle probes, and their
tagged union."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    Discriminator,
    Field,
    PlainValidator,
    PrivateAttr,
    Tag,
    WithJsonSchema,
    model_validator,
)

from lens.scenario.model.base import (
    MAX_REQUESTS_PER_STAGE,
    DrainPolicy,
    Duration,
    FieldError,
    FrozenModel,
    Ident,
    NonEmptyStr,
    PhaseSpan,
    PositiveDuration,
    PositiveInt,
    Rate,
    RateOrZero,
)
from lens.scenario.model.defaults import (
    COOLDOWN_DESCRIPTION,
    DRAIN_DESCRIPTION,
    DRAIN_TIMEOUT_DESCRIPTION,
    REPEAT_DESCRIPTION,
    SLA_INCLUDES_WARMUP_DESCRIPTION,
    WARMUP_DESCRIPTION,
    Repeat,
    Retries,
)
from lens.scenario.model.workloads import Body, body_field
from lens.scenario.sla import SlaSyntaxError, parse_sla
from lens.scenario.traces import TraceTable
from lens.scenario.units import Precision, parse_precision, precision_json_schema


class _Stage(FrozenModel):
    id: Ident = Field(description="Unique stage id, used in results and SLA scopes.")
    providers: tuple[Ident, ...] | None = Field(
        None, min_length=1, description="Provider ids to run this stage against (default: all)."
    )
    prompts: tuple[Ident, ...] | None = Field(
        None, min_length=1, description="Prompt ids to use, round-robin (default: all)."
    )
    timeout: PositiveDuration | None = Field(None, description="Overrides defaults.timeout.")
    max_tokens: PositiveInt | None = Field(None, description="Overrides defaults.max_tokens.")
    retries: Retries | None = Field(None, description="Overrides defaults.retries.")
    repeat: Repeat | None = Field(
        None, description=REPEAT_DESCRIPTION + " Default: defaults.repeat."
    )
    body: Body = body_field()


class _PhasedStage(_Stage):
    """A load stage whose first and last requests can be set apart, and whose requests in
    flight at the end are waited for or cut off."""

    warmup: PhaseSpan | None = Field(None, description=WARMUP_DESCRIPTION)
    cooldown: PhaseSpan | None = Field(None, description=COOLDOWN_DESCRIPTION)
    drain: DrainPolicy | None = Field(
        None, description=DRAIN_DESCRIPTION + " Default: defaults.drain."
    )
    drain_timeout: PositiveDuration | None = Field(None, description=DRAIN_TIMEOUT_DESCRIPTION)
    sla_includes_warmup: bool | None = Field(
        None, strict=True, description=SLA_INCLUDES_WARMUP_DESCRIPTION
    )


class BurstStage(_PhasedStage):
    """All requests at once (offset 0), optionally repeated in waves: the worst case for
    queueing."""

    pattern: Literal["burst"] = Field(description="Load pattern.")
    requests: PositiveInt = Field(description="Number of requests sent together, per wave.")
    waves: PositiveInt = Field(
        1, description="Number of bursts, released at 0, interval, 2 x interval... (default 1)."
    )
    interval: PositiveDuration | None = Field(
        None, description="Time between the starts of two waves, e.g. 10s (needs waves >= 2)."
    )

    @model_validator(mode="after")
    def _bounded(self) -> BurstStage:
        if self.interval is not None and self.waves == 1:
            raise FieldError(
                "'interval' separates waves: set 'waves' to 2 or more, or remove 'interval'",
                "interval",
            )
        if self.waves > 1 and self.interval is None:
            raise FieldError(
                f"{self.waves} waves need an 'interval' between them, e.g. interval: 10s", "waves"
            )
        _check_size(self.requests * self.waves)
        return self


ArrivalName = Literal["uniform", "poisson", "gamma"]


class _PacedStage(_PhasedStage):
    """Open loop at a set rate: how arrivals are spaced, and the cap on requests in flight."""

    arrival: ArrivalName = Field(
        "uniform",
        description="How arrivals are spaced: uniform (exactly 1/rate apart), poisson "
        "(exponential gaps) or gamma (gamma gaps of shape burstiness).",
    )
    burstiness: float | None = Field(
        None,
        gt=0,
        strict=True,
        description="Shape k of gamma gaps (arrival: gamma; default 1, which is poisson): "
        "below 1 burstier, above 1 more regular.",
    )
    seed: int = Field(
        0, strict=True, description="Seed of random arrivals: same file, same schedule."
    )
    max_concurrency: PositiveInt | None = Field(
        None, description="Cap on requests in flight; later arrivals wait for a slot."
    )

    @model_validator(mode="after")
    def _burstiness_needs_gamma(self) -> _PacedStage:
        if self.burstiness is not None and self.arrival != "gamma":
            raise FieldError(
                "'burstiness' shapes gamma arrivals: add 'arrival: gamma' or remove it",
                "burstiness",
            )
        return self


class ConstantRateStage(_PacedStage):
    """Open loop: arrivals at a set mean rate (request i at i / rate when uniform), whatever
    the server's speed."""

    pattern: Literal["constant-rate"] = Field(description="Load pattern.")
    rate: Rate = Field(description="Arrival rate, e.g. 5/s or 300/m.")
    duration: PositiveDuration | None = Field(
        None,
        description="Send every arrival due before this time (with requests: whichever "
        "ends first).",
    )
    requests: PositiveInt | None = Field(
        None, description="Send this many (with duration: whichever ends first)."
    )

    @model_validator(mode="after")
    def _bounded(self) -> ConstantRateStage:
        if self.duration is None and self.requests is None:
            raise ValueError("a constant-rate stage needs 'duration', 'requests' or both")
        _check_expected_size(self.rate, self.duration, self.requests)
        return self


class RampStage(_PhasedStage):
    """Open loop with a rate that changes linearly (or in equal steps) from one value to
    another over the stage."""

    pattern: Literal["ramp"] = Field(description="Load pattern.")
    from_: RateOrZero = Field(
        alias="from", description="Arrival rate at the start, e.g. 1/s; 0 is allowed."
    )
    to: RateOrZero = Field(
        description="Arrival rate at the end, e.g. 20/s; below 'from' for a falling ramp."
    )
    duration: PositiveDuration = Field(description="Length of the ramp, e.g. 60s.")
    steps: Annotated[int, Field(strict=True, ge=2)] | None = Field(
        None,
        description="Change the rate in this many equal-duration steps, evenly spaced from "
        "'from' to 'to' inclusive (default: a smooth linear ramp).",
    )
    arrival: Literal["uniform", "poisson"] = Field(
        "uniform",
        description="uniform (arrival i where the expected count reaches i) or poisson.",
    )
    seed: int = Field(
        0, strict=True, description="Seed of poisson arrivals: same file, same schedule."
    )
    max_concurrency: PositiveInt | None = Field(
        None, description="Cap on requests in flight; later arrivals wait for a slot."
    )

    @model_validator(mode="after")
    def _bounded(self) -> RampStage:
        if self.from_ == 0 and self.to == 0:
            raise ValueError("a ramp from 0/s to 0/s sends nothing: raise 'from' or 'to'")
        _check_expected_size((self.from_ + self.to) / 2, self.duration, None)
        return self


class RateRange(FrozenModel):
    """The rates a search may try, both included."""

    from_: Rate = Field(alias="from", description="Lowest rate to try, e.g. 1/s.")
    to: Rate = Field(description="Highest rate to try, e.g. 64/s.")


class ConcurrencyRange(FrozenModel):
    """The concurrencies a search may try, both included."""

    from_: PositiveInt = Field(alias="from", description="Lowest concurrency to try, e.g. 1.")
    to: PositiveInt = Field(description="Highest concurrency to try, e.g. 64.")


class AutoSweep(FrozenModel):
    """GuideLLM-style sweep: a synchronous step (one request at a time) and a saturation
    step measure the slowest and the highest throughput, then constant-rate steps fill the
    range between them."""

    steps: PositiveInt = Field(
        description="Constant-rate steps spread evenly between the synchronous and the "
        "saturated throughput, both excluded (each already has its own step)."
    )
    saturation: PositiveInt = Field(
        64, description="Requests kept in flight by the saturation step (default 64)."
    )


def _steps_kind(value: Any) -> str:
    # A list of steps or a range to search: told apart by shape, so a mistake in one is
    # reported as that one's, not as a failed match of both.
    return "range" if isinstance(value, dict | RateRange | ConcurrencyRange) else "list"


RateSteps = Annotated[
    Annotated[tuple[Rate, ...], Tag("list")] | Annotated[RateRange, Tag("range")],
    Discriminator(_steps_kind),
]
ConcurrencySteps = Annotated[
    Annotated[tuple[PositiveInt, ...], Field(min_length=1), Tag("list")]
    | Annotated[ConcurrencyRange, Tag("range")],
    Discriminator(_steps_kind),
]


def _conditions(field: str, role: str) -> Callable[[Any], tuple[str, ...]]:
    """An SLA expression or a list of them, each parsed now so errors point at it."""

    def check(value: Any) -> tuple[str, ...]:
        texts = [value] if isinstance(value, str) else value
        if not isinstance(texts, list | tuple) or not texts:
            raise ValueError(f"'{field}' takes an SLA expression or a list of them ({role})")
        for text in texts:
            if not isinstance(text, str):
                raise ValueError(f"'{field}' takes SLA expressions as strings ({role})")
            try:
                parse_sla(text)
            except SlaSyntaxError as exc:
                raise ValueError(f"{exc} ({field}: {role})") from None
        return tuple(texts)

    return check


_SLA_LIST_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]
}
_STOP_ROLE = "the condition that ends the sweep, e.g. 'ttft.p95 > 2s'"
_SEARCH_ROLE = "the SLAs every rate must meet, e.g. 'ttft.p95 < 500ms'"
_CONCURRENCY_SEARCH_ROLE = "the SLAs every concurrency must meet, e.g. 'ttft.p95 < 500ms'"
StopConditions = Annotated[
    tuple[str, ...],
    PlainValidator(_conditions("stop_when", _STOP_ROLE)),
    WithJsonSchema(_SLA_LIST_SCHEMA),
]
SearchSlas = Annotated[
    tuple[str, ...],
    PlainValidator(_conditions("find_max_rate", _SEARCH_ROLE)),
    WithJsonSchema(_SLA_LIST_SCHEMA),
]
ConcurrencySearchSlas = Annotated[
    tuple[str, ...],
    PlainValidator(_conditions("find_max_concurrency", _CONCURRENCY_SEARCH_ROLE)),
    WithJsonSchema(_SLA_LIST_SCHEMA),
]


def _search_precision(value: object) -> Precision | int:
    # A whole number stays one: it is also how a concurrency search's precision is written
    # (requests in flight), which a rate (a bare number is per second) cannot tell apart.
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    return parse_precision(value)


SearchPrecision = Annotated[
    Precision | int,
    PlainValidator(_search_precision),
    WithJsonSchema(
        {
            **precision_json_schema(),
            "description": "find_max_rate: 5% (of the rate) or 0.5/s (a bare number is per "
            "second); find_max_concurrency: a whole number of requests in flight, e.g. 2",
        }
    ),
]


class SweepStage(_PacedStage):
    """A series of steps at increasing load: open-loop rates or closed-loop concurrencies.
    Each step is its own stage in results, with the id ``<id>.<rate>rps`` or ``<id>.c<n>``.
    Four kinds decide steps at run time from the steps before: ``stop_when`` ends the sweep
    early, ``find_max_rate`` and ``find_max_concurrency`` search for the highest rate or
    concurrency meeting SLAs, ``auto`` places rate steps between the measured synchronous
    and saturated throughput."""

    pattern: Literal["sweep"] = Field(description="Load pattern.")
    rates: RateSteps | None = Field(
        None,
        description="One open-loop constant-rate step per rate, e.g. [1/s, 2/s, 5/s]; with "
        "find_max_rate, the range to search: {from: 1/s, to: 64/s}.",
    )
    concurrencies: ConcurrencySteps | None = Field(
        None,
        description="One closed-loop step per concurrency, e.g. [1, 4, 16]; with "
        "find_max_concurrency, the range to search: {from: 1, to: 64}.",
    )
    auto: AutoSweep | None = Field(
        None,
        description="Choose the rates at run time: a synchronous and a saturation step, then "
        "'steps' constant-rate steps between their throughputs, e.g. {steps: 5}.",
    )
    duration: PositiveDuration | None = Field(
        None, description="Length of each step (with requests: whichever ends first)."
    )
    requests: PositiveInt | None = Field(
        None, description="Requests of each step (with duration: whichever ends first)."
    )
    pause: Duration = Field(
        0.0, description="Idle time before each step after the first, e.g. 5s (default 0)."
    )
    stop_when: StopConditions | None = Field(
        None,
        description="End the sweep after the first step where this holds (any of a list), "
        "e.g. 'ttft.p95 > 2s'; that step is kept, later steps are not run.",
    )
    find_max_rate: SearchSlas | None = Field(
        None,
        description="Search 'rates: {from, to}' by bisection for the highest rate whose step "
        "meets every one of these SLAs, e.g. 'ttft.p95 < 500ms'.",
    )
    find_max_concurrency: ConcurrencySearchSlas | None = Field(
        None,
        description="Search 'concurrencies: {from, to}' by bisection for the highest "
        "concurrency whose step meets every one of these SLAs, e.g. 'ttft.p95 < 500ms'.",
    )
    precision: SearchPrecision | None = Field(
        None,
        description="The search stops when the highest passing and lowest failing steps are "
        "this close: for find_max_rate 5% (of the rate) or 0.5/s; for find_max_concurrency "
        "a whole number of requests in flight (default 1: neighbours).",
    )
    max_steps: Annotated[int, Field(strict=True, ge=2)] | None = Field(
        None,
        description="A search (find_max_rate, find_max_concurrency) runs at most this many "
        "steps, the two bounds included.",
    )

    @model_validator(mode="after")
    def _bounded(self) -> SweepStage:
        if self.repeat is not None:
            raise FieldError(
                "'repeat' is not supported on a sweep: each step is already its own stage, "
                "and an adaptive sweep chooses its next step from the one before; repeat a "
                "constant-rate or concurrency stage per load level instead",
                "repeat",
            )
        given = [k for k in ("rates", "concurrencies", "auto") if getattr(self, k) is not None]
        if len(given) > 1:
            raise FieldError(
                "give one of 'rates' (open loop), 'concurrencies' (closed loop) or 'auto', "
                f"not {' and '.join(repr(k) for k in given)}",
                given[1],
            )
        if not given:
            raise ValueError("a sweep stage needs 'rates' (open loop), 'concurrencies' or 'auto'")
        if self.duration is None and self.requests is None:
            raise ValueError("a sweep stage needs 'duration', 'requests' or both, for each step")
        self._check_search()
        self._check_concurrency_search()
        decides = self.search_kind or ("auto" if self.auto else None)
        if self.stop_when is not None and decides is not None:
            raise FieldError(
                "'stop_when' ends a sweep over listed 'rates' or 'concurrencies'; "
                f"{decides} decides its own steps",
                "stop_when",
            )
        if self.concurrencies is not None:
            for key in ("arrival", "burstiness", "seed", "max_concurrency"):
                if key in self.model_fields_set:
                    raise FieldError(
                        f"'{key}' applies to a sweep over 'rates'; a sweep over "
                        "'concurrencies' is closed loop",
                        key,
                    )
            if isinstance(self.concurrencies, tuple):
                _no_repeats(self.concurrencies, "concurrencies", str)
        if self.requests is not None and self.rates is None:  # closed-loop steps
            _check_size(self.requests)
        if isinstance(self.rates, tuple):
            if not self.rates:
                raise FieldError("'rates' needs at least one rate", "rates")
            _no_repeats(self.rates, "rates", lambda r: f"{r:g}/s")
            _check_expected_size(max(self.rates), self.duration, self.requests)
        elif isinstance(self.rates, RateRange):
            _check_expected_size(self.rates.to, self.duration, self.requests)
        return self

    @property
    def search_kind(self) -> Literal["find_max_rate", "find_max_concurrency"] | None:
        if self.find_max_rate is not None:
            return "find_max_rate"
        if self.find_max_concurrency is not None:
            return "find_max_concurrency"
        return None

    @property
    def rate_precision(self) -> Precision | None:
        """``precision`` of a rate search: a whole number is per second."""
        if isinstance(self.precision, int):
            return Precision(float(self.precision), relative=False)
        return self.precision

    def _check_search(self) -> None:
        if self.find_max_rate is not None and self.find_max_concurrency is not None:
            raise FieldError(
                "give one of 'find_max_rate' (over 'rates') or 'find_max_concurrency' (over "
                "'concurrencies'), not both",
                "find_max_concurrency",
            )
        for key in ("precision", "max_steps"):
            if getattr(self, key) is not None and self.search_kind is None:
                raise FieldError(
                    f"'{key}' tunes 'find_max_rate' or 'find_max_concurrency': add one, or "
                    f"remove '{key}'",
                    key,
                )
        search = self.find_max_rate is not None
        if isinstance(self.rates, RateRange) and not search:
            raise FieldError(
                "a range of rates ({from, to}) is searched by 'find_max_rate'; to run fixed "
                "steps, list them: rates: [1/s, 2/s, 5/s]",
                "rates",
            )
        if not search:
            return
        if not isinstance(self.rates, RateRange):
            raise FieldError(
                "find_max_rate searches a range of rates: give rates: {from: 1/s, to: 64/s}",
                "rates" if self.rates is not None else "find_max_rate",
            )
        if self.rates.from_ >= self.rates.to:
            raise FieldError(
                f"the search range must rise: 'from' ({self.rates.from_:g}/s) is not below "
                f"'to' ({self.rates.to:g}/s)",
                "rates",
            )
        if self.precision is None and self.max_steps is None:
            raise FieldError(
                "find_max_rate needs to know when to stop: give 'precision' (e.g. 5% or "
                "0.5/s), 'max_steps' or both",
                "find_max_rate",
            )

    def _check_concurrency_search(self) -> None:
        search = self.find_max_concurrency is not None
        if isinstance(self.concurrencies, ConcurrencyRange) and not search:
            raise FieldError(
                "a range of concurrencies ({from, to}) is searched by 'find_max_concurrency'; "
                "to run fixed steps, list them: concurrencies: [1, 4, 16]",
                "concurrencies",
            )
        if not search:
            return
        if not isinstance(self.concurrencies, ConcurrencyRange):
            raise FieldError(
                "find_max_concurrency searches a range of concurrencies: give "
                "concurrencies: {from: 1, to: 64}",
                "concurrencies" if self.concurrencies is not None else "find_max_concurrency",
            )
        if self.concurrencies.from_ >= self.concurrencies.to:
            raise FieldError(
                f"the search range must rise: 'from' ({self.concurrencies.from_}) is not below "
                f"'to' ({self.concurrencies.to})",
                "concurrencies",
            )
        if self.precision is not None and not isinstance(self.precision, int):
            raise FieldError(
                "find_max_concurrency's precision counts requests in flight: give a whole "
                f"number, e.g. 2 (got {self.precision})",
                "precision",
            )


def _no_repeats(values: tuple[Any, ...], key: str, shown: Callable[[Any], str]) -> None:
    # Each step becomes a stage named after its value: two equal steps could not be told apart.
    for i, value in enumerate(values):
        if value in values[:i]:
            raise FieldError(
                f"{shown(value)} appears twice in '{key}': each step needs its own", key
            )


class ConcurrencyStage(_PhasedStage):
    """Closed loop: keep this many requests in flight until done."""

    pattern: Literal["concurrency"] = Field(description="Load pattern.")
    concurrency: PositiveInt = Field(description="Requests kept in flight.")
    requests: PositiveInt | None = Field(None, description="Total requests to send.")
    duration: PositiveDuration | None = Field(
        None, description="Stop starting requests after this long."
    )

    @model_validator(mode="after")
    def _bounded(self) -> ConcurrencyStage:
        if self.duration is None and self.requests is None:
            raise ValueError("a concurrency stage needs 'requests', 'duration' or both")
        if self.requests is not None:
            _check_size(self.requests)
        return self


class IdleProbeStage(_Stage):
    """One request, then after each gap of idle time (nothing in flight) one more: how the
    provider answers after sitting idle (scale to zero, evicted caches)."""

    pattern: Literal["idle-probe"] = Field(description="Load pattern.")
    gaps: tuple[Duration, ...] = Field(
        min_length=1,
        description="Idle time before each probe after the first, e.g. [0s, 30s, 2m, 10m].",
    )

    @model_validator(mode="after")
    def _not_repeated(self) -> IdleProbeStage:
        if self.repeat is not None:
            raise FieldError(
                "'repeat' is not supported on an idle probe: it measures single requests "
                "after idle gaps, not a distribution to pool, and a repetition would start "
                "warm from the one before; list more gaps instead",
                "repeat",
            )
        return self


class TraceWindow(FrozenModel):
    """The part of a trace to replay, in the trace's own time (before ``speedup``)."""

    start: Duration = Field(
        0.0, description="Skip the rows before this time from the trace's first row, e.g. 10m."
    )
    duration: PositiveDuration | None = Field(
        None, description="Replay the rows within this long after 'start' (default: to the end)."
    )


class TraceStage(_PhasedStage):
    """Open loop replaying a request trace: each row is one request, sent at the row's time
    from the trace's start (divided by ``speedup``), with synthetic text of the row's input
    length and max_tokens = its output length; rows that share ``hash_ids`` share those
    blocks of leading text."""

    pattern: Literal["trace"] = Field(description="Load pattern.")
    file: NonEmptyStr = Field(description="The trace file, relative to the scenario.")
    format: Literal["azure", "mooncake", "jsonl"] = Field(
        description="azure (CSV: TIMESTAMP, ContextTokens, GeneratedTokens), mooncake (JSON "
        "lines: timestamp ms, input_length, output_length, hash_ids) or jsonl (JSON lines: "
        "time_s, input_tokens, output_tokens, hash_ids)."
    )
    speedup: float = Field(
        1.0, gt=0, description="Replay this many times faster (2.0: every gap halved)."
    )
    window: TraceWindow | None = Field(
        None, description="Replay only {start, duration} of the trace (trace time)."
    )
    block_tokens: PositiveInt = Field(
        512,
        description="Tokens of text one hash id stands for (Mooncake's traces: 512).",
    )
    seed: int = Field(0, strict=True, description="Seed of the generated text.")
    max_concurrency: PositiveInt | None = Field(
        None, description="Cap on requests in flight; later arrivals wait for a slot."
    )
    _table: TraceTable | None = PrivateAttr(default=None)

    @property
    def table(self) -> TraceTable | None:
        """The trace's rows in the window (read when the scenario loads)."""
        return self._table

    @model_validator(mode="after")
    def _own_prompts(self) -> TraceStage:
        if self.prompts is not None:
            raise FieldError(
                "a trace stage sends the trace's own requests (synthetic text of each row's "
                "lengths): remove 'prompts'",
                "prompts",
            )
        if self.max_tokens is not None:
            raise FieldError(
                "a trace stage sends each row's output length as max_tokens: remove 'max_tokens'",
                "max_tokens",
            )
        return self


def _check_size(n: float) -> None:
    if n > MAX_REQUESTS_PER_STAGE:
        raise ValueError(
            f"schedules more than {MAX_REQUESTS_PER_STAGE} requests, the most lens plans "
            "for one stage"
        )


def _check_expected_size(rate: float, duration: float | None, requests: int | None) -> None:
    """The size check of an open-loop schedule, before it is drawn: random arrivals make
    its exact length known only to the compiler."""
    expected = [float(requests)] if requests is not None else []
    if duration is not None:
        expected.append(rate * duration)
    _check_size(min(expected))


Stage = Annotated[
    BurstStage
    | ConstantRateStage
    | ConcurrencyStage
    | RampStage
    | SweepStage
    | IdleProbeStage
    | TraceStage,
    Field(discriminator="pattern"),
]
PhasedStage = (
    BurstStage | ConstantRateStage | ConcurrencyStage | RampStage | SweepStage | TraceStage
)
PATTERNS: tuple[str, ...] = (
    "burst",
    "constant-rate",
    "concurrency",
    "ramp",
    "sweep",
    "idle-probe",
    "trace",
)

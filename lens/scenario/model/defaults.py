"""``defaults:``: retries, warmup, cooldown, drain and the other settings every stage inherits."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from lens.scenario.model.base import (
    DrainPolicy,
    Duration,
    FrozenModel,
    PhaseSpan,
    PositiveDuration,
    PositiveInt,
)

RetryableClass = Literal[
    "http_429",
    "overloaded",
    "http_5xx",
    "timeout",
    "connect",
    "connection_lost",
    "stream_error",
    "cut_stream",
]


class Retries(FrozenModel):
    """Retries are off unless asked for; when on, every attempt is its own record."""

    max: Annotated[int, Field(strict=True, ge=0, le=10)] = Field(
        0, description="Extra attempts after a failure of a class in `on` (default 0: none)."
    )
    on: tuple[RetryableClass, ...] = Field(
        ("http_429", "overloaded"), min_length=1, description="Error classes worth a retry."
    )
    backoff: Duration = Field(
        1.0,
        description="Wait before retry k when the server gave no retry-after: backoff * 2^(k-1).",
    )
    max_wait: PositiveDuration = Field(
        30.0, description="Cap on any wait, including a server's retry-after."
    )


WARMUP_DESCRIPTION = (
    "The first seconds (10s) or arrivals (5 requests) of each stage: sent and measured as "
    "usual, summarised apart and left out of SLA verdicts (default: none)."
)
COOLDOWN_DESCRIPTION = (
    "The last seconds (10s) or arrivals (5 requests) of each stage, treated like warmup."
)
DRAIN_DESCRIPTION = (
    "What happens to requests in flight when the stage ends: wait (let them finish) or cancel "
    "(cut them off, recorded as drained)."
)
DRAIN_TIMEOUT_DESCRIPTION = (
    "How long requests in flight may run on after the stage ends before they are cut off "
    "(drained): a cap for drain: wait, a grace for drain: cancel."
)
REPEAT_DESCRIPTION = (
    "Run the stage this many times, each a full execution (its warmup, cooldown and schedule "
    "from its own start), interleaved across providers (A1 B1 A2 B2 ...): results keep each "
    "repetition (<id>#1, <id>#2, ...), the pooled summary under the stage's id (judged by "
    "SLAs) and the run-to-run spread of each statistic (default 1: once)."
)
# At most this many repetitions: the spread of a statistic needs a few, not hundreds.
MAX_REPEAT = 100
Repeat = Annotated[int, Field(strict=True, ge=1, le=MAX_REPEAT)]
SLA_INCLUDES_WARMUP_DESCRIPTION = (
    "Judge SLAs on warmup and cooldown requests too, pooled into the main summary."
)


class Defaults(FrozenModel):
    """Values every stage inherits unless it sets its own."""

    retries: Retries | None = Field(None, description="Retry policy (default: no retries).")

    timeout: PositiveDuration = Field(
        60.0, description="Per-request timeout, e.g. 30s (default 60s)."
    )
    max_tokens: PositiveInt | None = Field(
        None, description="Output token limit sent with each request (default: the server's)."
    )
    warmup: PhaseSpan | None = Field(None, description=WARMUP_DESCRIPTION)
    cooldown: PhaseSpan | None = Field(None, description=COOLDOWN_DESCRIPTION)
    drain: DrainPolicy = Field("wait", description=DRAIN_DESCRIPTION)
    drain_timeout: PositiveDuration | None = Field(None, description=DRAIN_TIMEOUT_DESCRIPTION)
    sla_includes_warmup: bool = Field(
        False, strict=True, description=SLA_INCLUDES_WARMUP_DESCRIPTION
    )
    repeat: Repeat = Field(
        1,
        description=REPEAT_DESCRIPTION.replace(" (default 1: once)", "")
        + " Applies to every stage that can repeat (not sweeps or idle probes); default 1.",
    )
    pacing: Literal["standard", "precise"] = Field(
        "standard",
        description="Open-loop dispatch: standard (the event loop's timers, up to ~1 ms late) "
        "or precise (the last millisecond before each arrival is spun through: sub-ms "
        "dispatch lag for up to a millisecond of CPU per request).",
    )
    workers: Annotated[int, Field(strict=True, ge=1, le=1024)] | Literal["auto"] = Field(
        1,
        description="Worker processes of this machine that run the plan, each its share "
        "(the split of lens run --shard), their results merged: a number, or auto (one per "
        "~250 streams or ~500 arrivals/s of the busiest stage, at most the cores but one). "
        "lens run --workers replaces it. Default 1: one process.",
    )

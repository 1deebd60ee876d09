"""``monitor:``: how ``lens monitor`` repeats the scenario (lens.monitor, docs/monitoring.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator

from lens.scenario.model.base import FrozenModel, Ident, NonEmptyStr, Percent, PositiveDuration

# Where lens monitor listens when neither the scenario nor --listen says: loopback only, so
# a monitor started by hand exposes nothing; a pod sets 0.0.0.0:9464.
DEFAULT_LISTEN = "127.0.0.1:9464"
DEFAULT_EVERY_S = 300.0
DEFAULT_JITTER = 0.1
DEFAULT_WINDOWS_S = (3600.0, 86400.0)
DEFAULT_RETENTION_CYCLES = 2000
MAX_JITTER = 0.5
MAX_WINDOWS = 4
# HOST:PORT with an IPv4 address or a name, or [IPv6]:PORT; port 0 picks a free one.
LISTEN_PATTERN = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$"


class Retention(FrozenModel):
    """What ``monitor.store`` keeps: both bounds apply, the older cycles go first."""

    age: PositiveDuration | None = Field(
        None, description="Drop stored cycles older than this (default: the longest window)."
    )
    cycles: Annotated[int, Field(strict=True, ge=1)] = Field(
        DEFAULT_RETENTION_CYCLES, description="Keep at most this many stored cycles."
    )


class Monitor(FrozenModel):
    """How ``lens monitor`` repeats this scenario: every cycle runs ``stages`` through the
    same pipeline as ``lens run``; its command-line flags replace these values."""

    every: PositiveDuration = Field(
        DEFAULT_EVERY_S, description="Interval between cycle starts, e.g. 5m."
    )
    jitter: Percent = Field(
        DEFAULT_JITTER,
        description="Each cycle starts up to this share of the interval late (uniformly, "
        "never early), e.g. 10%; at most 50%.",
    )
    cycle_deadline: PositiveDuration | None = Field(
        None,
        description="A cycle still running this long after its start is cancelled (its "
        "requests in flight end as cancelled). Default: 80% of every.",
    )
    stages: tuple[Ident, ...] | None = Field(
        None, min_length=1, description="The stages of load: each cycle runs (default: all)."
    )
    listen: Annotated[str, Field(pattern=LISTEN_PATTERN)] = Field(
        DEFAULT_LISTEN,
        description="HOST:PORT where /metrics, /healthz and /results/latest are served; "
        "port 0 picks a free one.",
    )
    windows: tuple[PositiveDuration, ...] = Field(
        DEFAULT_WINDOWS_S,
        min_length=1,
        max_length=MAX_WINDOWS,
        description="Rolling windows of the lens_monitor_window_* families, e.g. [1h, 24h].",
    )
    store: NonEmptyStr | None = Field(
        None,
        description="A folder each cycle is written to and the windows are reloaded from "
        "on start (relative to this file). --store replaces it.",
    )
    retention: Retention = Field(
        default=Retention.model_validate({}), description="What the store keeps."
    )

    @field_validator("jitter")
    @classmethod
    def _jitter_bound(cls, value: float) -> float:
        if value > MAX_JITTER:
            raise ValueError(f"jitter must be at most 50%, got {value:.0%}")
        return value

    @field_validator("windows")
    @classmethod
    def _distinct(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if len(set(value)) != len(value):
            raise ValueError("windows must be distinct")
        return value

    @model_validator(mode="after")
    def _deadline_fits(self) -> Monitor:
        # A deadline past the interval would make every slow cycle an overrun by design.
        if self.cycle_deadline is not None and self.cycle_deadline > self.every:
            raise ValueError(
                f"cycle_deadline ({self.cycle_deadline:g}s) must not exceed every "
                f"({self.every:g}s): cycles never overlap"
            )
        return self

"""``integrity:``: when lens distrusts its own numbers, and what counts as a cold start."""

from __future__ import annotations

from pydantic import Field

from lens.scenario.model.base import FrozenModel, Percent, PositiveDuration


class Integrity(FrozenModel):
    """When lens distrusts its own numbers, and what counts as a cold start."""

    max_loop_lag: PositiveDuration = Field(
        0.025,
        description="Client event-loop lag (p99) above which the run is flagged overloaded "
        "and its SLA verdicts inconclusive, e.g. 25ms.",
    )
    max_cpu: Percent = Field(
        0.9, description="Client CPU (share of one core) above which the run is overloaded."
    )
    cold_after: PositiveDuration = Field(
        60.0, description="Idle time after which a provider's next request counts as cold."
    )
    buffered_share: Percent = Field(
        0.5,
        description="Share of a typical stream's chunks arriving in the same read above "
        "which the stream is flagged as buffered.",
    )

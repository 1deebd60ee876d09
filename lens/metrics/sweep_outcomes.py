"""What an adaptive sweep found: its judged steps, why it ended, and its answer.

Produced by the sweep controllers (``lens.sweeps``) from the summaries and verdicts of
each step, read by the exporters.  Every step that ran is also a normal stage (window,
summary, sweep position); this is the sweep's own account on top of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Annotated

from pydantic import Field

from lens.metrics._results_config import RESULTS_VALUE
from lens.plan.model import SweepKind


@dataclass(frozen=True, slots=True)
class SweepProbe:
    """One step of an adaptive sweep as the controller judged it."""

    __pydantic_config__ = RESULTS_VALUE

    stage: Annotated[str, Field(description="the step's stage id, e.g. search.80rps")]
    rate_per_s: float | None
    concurrency: int | None
    held: Annotated[
        bool,
        Field(
            description="find_max_rate, find_max_concurrency: the step met every SLA; "
            "stop_when: the stop condition held; auto: always false"
        ),
    ]
    rps: Annotated[float | None, Field(description="successful requests per second of the step")]
    detail: Annotated[str, Field(description="the verdicts behind 'held'")]


@dataclass(frozen=True, slots=True)
class SweepOutcome:
    sweep: str
    provider: str
    kind: SweepKind
    reason: str  # why the sweep ended, in words
    probes: tuple[SweepProbe, ...]
    not_run: tuple[str, ...] = ()  # planned steps skipped (the reason says why)
    max_rate_per_s: float | None = None  # find_max_rate: None when even the lowest failed
    max_concurrency: int | None = None  # find_max_concurrency: None when even the lowest failed
    # A search's (passing, failing) rates or concurrencies; a None end is open.
    bracket: tuple[float | None, float | None] | None = None
    sync_rps: float | None = None  # auto: throughput one request at a time
    saturated_rps: float | None = None  # auto: throughput of the saturation step
    # The run stopped (budget, signal) before the sweep could end: the probes are the steps
    # that ran, and there is no answer (max_rate_per_s, max_concurrency, bracket) to give.
    cut_short: bool = False
    # The client was overloaded while it measured: every decision rests on distorted timings.
    distrusted: bool = False


def distrust_sweeps(
    outcomes: Sequence[SweepOutcome], reasons: Sequence[str]
) -> tuple[SweepOutcome, ...]:
    """The sweeps of a run whose measurements are suspect (an overloaded client, the run's
    harness ``reasons``): each is flagged ``distrusted`` and says why first, keeping what it
    found, as ``lens.metrics.judge.distrust`` does for verdicts."""
    if not reasons:
        return tuple(outcomes)
    why = "measurements distorted by the client: " + "; ".join(reasons)
    return tuple(replace(o, distrusted=True, reason=f"{why} ({o.reason})") for o in outcomes)

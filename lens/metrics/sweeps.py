"""What an adaptive sweep found: its judged steps, why it ended, and its answer.

Produced by the sweep controllers (``lens.sweeps``) from the summaries and verdicts of
each step, read by the exporters.  Every step that ran is also a normal stage (window,
summary, sweep position); this is the sweep's own account on top of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from lens.plan.model import SweepKind


@dataclass(frozen=True, slots=True)
class Probe:
    """One step of an adaptive sweep as the controller judged it."""

    stage: str
    rate_per_s: float | None
    concurrency: int | None
    # find_max_rate: every SLA passed; stop_when: the stop condition held; auto: unused.
    held: bool
    rps: float | None  # successful requests per second of the step's window
    detail: str  # the verdicts' reasons


@dataclass(frozen=True, slots=True)
class SweepOutcome:
    sweep: str
    provider: str
    kind: SweepKind
    reason: str  # why the sweep ended, in words
    probes: tuple[Probe, ...]
    not_run: tuple[str, ...] = ()  # planned steps skipped (the reason says why)
    max_rate_per_s: float | None = None  # find_max_rate: None when even the lowest failed
    bracket: tuple[float | None, float | None] | None = None  # (passing, failing); None: open
    sync_rps: float | None = None  # auto: throughput one request at a time
    saturated_rps: float | None = None  # auto: throughput of the saturation step

"""Warmup, cooldown and drain of one stage unit: which of its requests are set apart, when
the unit ends, and what happens to requests still in flight then.

The stage's own values win over ``defaults:``.  An open-loop unit's phases are resolved to
request indices here, from its offsets, so the plan says exactly which arrivals are warmup;
a closed-loop unit's may stay in seconds (when its requests start is known only at run time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from lens.plan.model import ArrivalSchedule, ClosedLoop, IdleProbe, OpenLoop, Phases, StagePlan
from lens.scenario.model import (
    ConstantRateStage,
    Defaults,
    PhasedStage,
    RampStage,
    Span,
    SweepStage,
)

# (message, key): the key of the stage (or of defaults) the problem is reported at.
ReportProblem = Callable[[str, str], None]


def with_phases(
    stage: PhasedStage, defaults: Defaults, unit: StagePlan, problem: ReportProblem
) -> StagePlan:
    warmup = stage.warmup if stage.warmup is not None else defaults.warmup
    cooldown = stage.cooldown if stage.cooldown is not None else defaults.cooldown
    pooled = (
        stage.sla_includes_warmup
        if stage.sla_includes_warmup is not None
        else defaults.sla_includes_warmup
    )
    drain = stage.drain or defaults.drain
    timeout = stage.drain_timeout if stage.drain_timeout is not None else defaults.drain_timeout
    cutoff = _cutoff_s(stage, unit)
    if drain == "cancel" and timeout is None and cutoff is None:
        problem(
            "drain: cancel cuts off the requests in flight when the stage's duration ends, "
            "and this stage has no duration: give 'drain_timeout' (a grace after the last "
            "request is sent) or a 'duration'",
            "drain",
        )
    match unit.load:
        case OpenLoop(arrivals=arrivals):
            phases = _open_loop(arrivals, cutoff, warmup, cooldown, problem)
        case ClosedLoop() as load:
            phases = _closed_loop(load, warmup, cooldown, problem)
        case IdleProbe():  # every probe is measured: an idle-probe stage has no phases
            raise AssertionError("with_phases: an idle-probe unit has no phases")
    return replace(
        unit,
        phases=replace(phases, pooled=pooled),
        drain=drain,
        drain_timeout_s=timeout,
        cutoff_s=cutoff,
    )


def _cutoff_s(stage: PhasedStage, unit: StagePlan) -> float | None:
    """The stage's duration, unless its request count ends it first (then None: the stage
    ends when its last request is sent)."""
    if not isinstance(stage, ConstantRateStage | RampStage | SweepStage):
        # burst: None; concurrency: its duration, if any
        return unit.load.duration_s if isinstance(unit.load, ClosedLoop) else None
    duration = stage.duration
    if not isinstance(unit.load, OpenLoop) or duration is None:
        return duration
    requests = getattr(stage, "requests", None)
    return None if requests is not None and unit.load.arrivals.count >= requests else duration


def _empty(problem: ReportProblem, planned: str) -> None:
    problem(f"warmup and cooldown leave none of the stage's {planned} to measure", "warmup")


def _open_loop(
    offsets: ArrivalSchedule,
    cutoff: float | None,
    warmup: Span | None,
    cooldown: Span | None,
    problem: ReportProblem,
) -> Phases:
    count = offsets.count
    first = 0
    if warmup is not None:
        first = warmup.requests if warmup.requests is not None else _before(offsets, warmup)
    last: int | None = None
    if cooldown is not None and (cooldown.requests or cooldown.seconds):
        if cooldown.requests is not None:
            last = max(count - cooldown.requests, 0)
        else:
            assert cooldown.seconds is not None
            end = cutoff if cutoff is not None else offsets.last_s
            last = offsets.index_at(end - cooldown.seconds)
    if min(count, last if last is not None else count) <= first:
        _empty(problem, f"{count} arrivals")
    return Phases(warmup_requests=first, cooldown_from_index=last)


def _before(offsets: ArrivalSchedule, warmup: Span) -> int:
    assert warmup.seconds is not None
    return offsets.index_at(warmup.seconds)


def _closed_loop(
    load: ClosedLoop, warmup: Span | None, cooldown: Span | None, problem: ReportProblem
) -> Phases:
    phases = Phases()
    if warmup is not None:
        phases = Phases(warmup_requests=warmup.requests or 0, warmup_s=warmup.seconds or 0.0)
    if cooldown is not None and cooldown.requests:
        if load.requests is None:
            problem(
                "'cooldown: N requests' needs 'requests' on a closed-loop stage (which "
                "requests come last is known only at its end): give a duration instead, "
                "e.g. cooldown: 10s",
                "cooldown",
            )
        else:
            phases = replace(phases, cooldown_from_index=max(load.requests - cooldown.requests, 0))
    elif cooldown is not None and cooldown.seconds:
        if load.duration_s is None:
            problem(
                "'cooldown: <time>' needs 'duration' on a closed-loop stage: give a count "
                "instead, e.g. cooldown: 5 requests",
                "cooldown",
            )
        else:
            phases = replace(phases, cooldown_from_s=load.duration_s - cooldown.seconds)
    if load.requests is not None and phases.warmup_requests >= (
        phases.cooldown_from_index if phases.cooldown_from_index is not None else load.requests
    ):
        _empty(problem, f"{load.requests} requests")
    elif load.duration_s is not None and phases.warmup_s >= (
        phases.cooldown_from_s if phases.cooldown_from_s is not None else load.duration_s
    ):
        _empty(problem, f"{load.duration_s:g}s")
    return phases

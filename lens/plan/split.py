"""A plan split into shards: shard ``index`` of ``count`` runs its share of every unit.

Pure and deterministic, so N processes (on one machine or N machines, each compiling the
same scenario) agree on who sends what without talking to each other:

- Open loop (burst, constant-rate, ramp, a sweep's rate steps): the unit keeps ONE global
  schedule.  Shard k owns arrivals k, k+N, k+2N, ... at their original offsets, and keeps
  their plan indices (``OpenLoop.first_index``/``index_step``), so prompts, phases and the
  records' ``index`` are those of the unsharded plan.  A burst's waves (arrivals at one
  offset) are split per wave by the same rule: each shard gets a share within one of
  the others'.
- Closed loop (concurrency, a sweep's concurrency steps): the clients are split, the
  remainder going to the lowest indices; a total ``requests`` is split the same way among
  the shards that have clients, and so are warmup and cooldown counted in requests.
- ``max_concurrency`` of an open loop is split per shard the same way: a cap shared across
  machines would need them to coordinate every request, so each shard holds its share (the
  sum is the plan's cap).  A cap smaller than the shard count cannot be split and is refused.
- ``budget_usd``: each shard may spend its share (the budget divided by N).
- A shard whose share of a unit is empty keeps the unit with no requests: it runs for no
  time (its window opens and closes at once) and adds no records; the merged window of the
  unit runs from the earliest start to the latest end across shards (lens.export.merge).
- Refused when N > 1: idle-probe stages (one request at a time, each after the previous
  one's end: a single sequence) and adaptive sweeps (each step is decided from the judged
  summary of the step before, which no shard sees whole).

Later units of a shard start at planned instants (``planned_starts``), so shards on N
machines, each started at one ``--start-at``, start every unit together even though each
only sees its own share of the unit before.

N = 1 returns the plan itself.  ``plan_hash`` names the plan (not the shard) so shards can
prove at merge time that they ran the same one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from lens.errors import PlanError
from lens.plan.describe import plan_to_dict
from lens.plan.duration import SETTLE_MARGIN_S, duration_estimate
from lens.plan.model import ClosedLoop, IdleProbe, OpenLoop, Plan, StagePlan


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        check_shard(self.index, self.count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


# Set by Kubernetes in each pod of an Indexed Job (completionMode: Indexed): 0 .. N-1.
JOB_INDEX_VARIABLE = "JOB_COMPLETION_INDEX"


def parse_shard(text: str, env: Mapping[str, str] | None = None) -> Shard:
    """``I/N`` (0-based I), or ``auto/N``: I read from ``JOB_COMPLETION_INDEX``."""
    env = os.environ if env is None else env
    index_text, sep, count_text = text.strip().partition("/")
    if not sep or not count_text.strip().isdigit():
        raise PlanError(f"--shard {text!r}: expected I/N (e.g. 0/4, 0-based) or auto/N")
    count = int(count_text)
    if index_text.strip() == "auto":
        value = env.get(JOB_INDEX_VARIABLE)
        if value is None:
            raise PlanError(
                f"--shard {text}: {JOB_INDEX_VARIABLE} is not set (Kubernetes sets it in the "
                "pods of an Indexed Job); give the index yourself, as I/N"
            )
        if not value.strip().isdigit():
            raise PlanError(f"--shard {text}: {JOB_INDEX_VARIABLE}={value!r} is not an index")
        index = int(value)
        where = f" ({JOB_INDEX_VARIABLE}={index})"
    elif index_text.strip().isdigit():
        index, where = int(index_text), ""
    else:
        raise PlanError(f"--shard {text!r}: expected I/N (e.g. 0/4, 0-based) or auto/N")
    if count < 1 or not 0 <= index < count:
        raise PlanError(f"--shard {text}{where}: the index must be between 0 and {count - 1}")
    return Shard(index, count)


def share(total: int, index: int, count: int) -> int:
    """Shard ``index``'s part of ``total`` split ``count`` ways, remainders to the lowest."""
    return total // count + (1 if index < total % count else 0)


def check_shard(index: int, count: int) -> None:
    if count < 1:
        raise PlanError(f"shard count must be at least 1, got {count}")
    if not 0 <= index < count:
        raise PlanError(f"shard index {index} is not between 0 and {count - 1} (of {count})")


def shard_plan(plan: Plan, index: int, count: int) -> Plan:
    """Shard ``index`` (0-based) of ``count``: every unit's share (see the module's rules).
    ``PlanError`` when the plan cannot be split so."""
    check_shard(index, count)
    if count == 1:
        return plan
    if plan.sweeps:
        names = ", ".join(s.sweep for s in plan.sweeps)
        raise PlanError(
            f"cannot split adaptive sweeps ({names}) across {count} shards: each step is "
            "decided from the judged summary of the step before, which no shard sees whole; "
            "run them in one process, or list the steps (a sweep with fixed steps splits)"
        )
    units = tuple(_shard_unit(unit, index, count) for unit in plan.stages)
    budget = None if plan.budget_usd is None else plan.budget_usd / count
    return replace(plan, stages=units, budget_usd=budget)


def _shard_unit(unit: StagePlan, index: int, count: int) -> StagePlan:
    match unit.load:
        case OpenLoop(arrivals=arrivals, max_concurrency=limit) as load:
            if limit is not None and limit < count:
                raise PlanError(
                    f"stage {unit.stage}: max_concurrency {limit} cannot be split across "
                    f"{count} shards (each needs at least 1): raise it or use fewer shards"
                )
            rate = arrivals.rate_per_s
            schedule = replace(
                arrivals.stride(index, count),
                rate_per_s=None if rate is None else (rate[0] / count, rate[1] / count),
            )
            return replace(
                unit,
                load=replace(
                    load,
                    arrivals=schedule,
                    max_concurrency=None if limit is None else share(limit, index, count),
                    first_index=load.first_index + index * load.index_step,
                    index_step=load.index_step * count,
                ),
            )
        case ClosedLoop(concurrency=concurrency, requests=requests) as load:
            mine = share(concurrency, index, count)
            # Requests go to the shards that have clients to send them.
            active = min(concurrency, count)

            def part(total: int) -> int:
                return 0 if mine == 0 else share(total, index, active)

            phases = unit.phases
            if requests is not None:
                cooldown = phases.cooldown_from_index
                phases = replace(
                    phases,
                    warmup_requests=part(phases.warmup_requests),
                    cooldown_from_index=None
                    if cooldown is None
                    else part(requests) - part(requests - cooldown),
                )
            return replace(
                unit,
                load=replace(
                    load,
                    concurrency=mine,
                    requests=None if requests is None else part(requests),
                ),
                phases=phases,
            )
        case IdleProbe():
            raise PlanError(
                f"stage {unit.stage}: an idle-probe stage cannot be split across {count} "
                "shards: it is one sequence (each request after the previous one's end and "
                "an idle gap); run it in one process"
            )


def plan_hash(plan: Plan) -> str:
    """sha256 of the plan's canonical JSON (every arrival offset, secrets masked), without
    where the scenario file was read from nor how long a tokenizer pre-flight took: equal
    on every machine and process that compiled the same scenario with the same inputs.
    ``sha256:`` + 64 hex digits."""
    doc = plan_to_dict(plan, arrivals=True)
    doc.pop("source", None)
    # The tokenizer pre-flight's time differs on every run; what it counted is in the prompts.
    doc.pop("tokenizer_preflight", None)
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# Left between a unit's latest end and the next unit's planned start: lens's own work in
# between (recording what the drain cut off, closing the unit's connections, connecting
# and warming the next unit's), and the first unit's set-up after --start-at.
UNIT_GAP_S = SETTLE_MARGIN_S


@dataclass(frozen=True, slots=True)
class PlannedStarts:
    """When each unit of a sharded run starts, in seconds from the run's start (the shared
    ``--start-at``); None: when its shard's previous unit ends (the first unit: once set up,
    right after the start).  ``unbounded``: the position of the first unit whose end is not
    known before the run (every unit after it is unplanned); None when there is none."""

    offsets: tuple[float | None, ...]
    unbounded: int | None = None
    unbounded_stage: str = ""

    def warning(self) -> str | None:
        """What shards drift by, for people; None when every unit after the first is
        planned (or there is only one)."""
        k = self.unbounded
        if k is None or k + 1 >= len(self.offsets):
            return None
        return (
            f"stage {self.unbounded_stage} ends after its request count, not at a time known "
            "before the run: each shard starts the stages after it when its own share of "
            "the stage before has ended, so shards drift apart from there; give it a "
            "duration to start every later stage at a planned instant"
        )


def planned_starts(plan: Plan) -> PlannedStarts:
    """Each unit's planned start, from the whole (unsplit) plan so every shard computes the
    same.  A unit is planned when every unit before it ends by a time known in advance: an
    open loop (its schedule, then its requests in flight, each within its timeout, or its
    drain's grace) or a closed loop with a duration (likewise); its start is the latest end
    of the unit before (``lens.plan.duration``: ``max_s``), plus its own pause, plus
    ``UNIT_GAP_S``.  A closed loop bounded only by its request count (or an idle probe)
    ends when its requests do: the units after it are not planned."""
    offsets: list[float | None] = []
    latest_end: float | None = 0.0
    unbounded: int | None = None
    for k, unit in enumerate(plan.stages):
        if k == 0 or latest_end is None:
            offsets.append(None)
            start = unit.pause_before_s if k == 0 else None
        else:
            start = latest_end + unit.pause_before_s + UNIT_GAP_S
            offsets.append(start)
        bound = _end_bound(unit, plan)
        if start is None or bound is None:
            if latest_end is not None and bound is None and unbounded is None:
                unbounded = k
            latest_end = None
        else:
            latest_end = start + bound
    stage = "" if unbounded is None else plan.stages[unbounded].stage
    return PlannedStarts(tuple(offsets), unbounded, stage)


def _end_bound(unit: StagePlan, plan: Plan) -> float | None:
    """At most how long ``unit`` takes from its start (set-up and pause aside); None when
    the plan does not bound it by time."""
    match unit.load:
        case OpenLoop():
            pass
        case ClosedLoop(duration_s=duration) if duration is not None:
            pass
        case _:
            return None
    return duration_estimate(unit, plan.providers[unit.provider]).max_s

"""Each unit of a run started at an instant another process names (``lens run --workers``).

A worker process runs its share of every unit; for the unit's open-loop schedule to stay
one global schedule, every worker must start the unit's clock at the same instant, not
when its own share of the unit before happened to drain.  So once a unit is set up (its
transports built and warmed), the worker asks its parent (``ask``) and waits; the parent,
when every worker has asked, names an instant of ``time.monotonic()`` (the one clock of
every process of the host) a moment ahead, and each worker's unit starts then.

Shards on different machines cannot ask anyone: ``PlannedGate`` names each unit's instant
from the plan instead (``lens.plan.split.planned_starts``: the run's start plus the planned
length of every unit before it), on each shard's own run clock, started at ``--start-at``.

Either gate returns the instant it let the unit through at (trio's clock): the unit's
schedule is anchored there, not at the moment its task woke up, so a late wake-up (or a
unit before it that overran) shows as lateness of the unit and dispatch lag of its
arrivals, and the schedule itself never moves.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence

import trio


class UnitGate:
    """``StageRunner(before_unit=gate)``: awaited with each unit's position; ``open`` (from
    any thread: the worker's control reader) lets it through at an instant."""

    def __init__(self, ask: Callable[[int], None]) -> None:
        self._ask = ask
        self._lock = threading.Lock()
        self._instants: dict[int, float] = {}
        self._waiting: dict[int, tuple[trio.lowlevel.TrioToken, trio.Event]] = {}

    def open(self, position: int, instant: float) -> None:
        """Unit ``position`` starts at ``instant`` (``time.monotonic()``)."""
        with self._lock:
            self._instants[position] = instant
            waiting = self._waiting.pop(position, None)
        if waiting is not None:
            token, event = waiting
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(event.set)

    async def __call__(self, position: int) -> float:
        at = await self.opened(position)
        await trio.sleep_until(at)
        return at

    async def opened(self, position: int) -> float:
        """Until unit ``position`` is let through: the instant (trio's clock) it starts at,
        not slept until yet.  Every worker has ended the units before it by then, so the
        moment until that instant is when worker 0 scrapes the engines' metrics
        (lens.run.executor)."""
        event = trio.Event()
        with self._lock:
            known = position in self._instants
            if not known:
                self._waiting[position] = (trio.lowlevel.current_trio_token(), event)
        # Asked only once registered, so the answer cannot come before anyone listens.
        self._ask(position)
        if not known:
            await event.wait()
        instant = self._instants[position]
        # trio's clock is perf_counter plus a random offset: the same clock as monotonic
        # on Linux, converted once.
        return trio.current_time() + (instant - time.monotonic())


class PlannedGate:
    """``StageRunner(before_unit=...)`` for a shard: unit ``k`` starts at the run clock's
    origin (``origin()``, trio's clock) + ``offsets[k]`` seconds, asleep until then; a unit
    whose offset is None (not known before the run) starts as soon as it is set up."""

    def __init__(self, offsets: Sequence[float | None], origin: Callable[[], float]) -> None:
        self.offsets = tuple(offsets)
        self._origin = origin

    async def __call__(self, position: int) -> float | None:
        offset = self.offsets[position] if position < len(self.offsets) else None
        if offset is None:
            return None
        at = self._origin() + offset
        await trio.sleep_until(at)  # at once when already past: the unit starts late
        return at

"""One run of a plan: start simulators, execute, stop cleanly on Ctrl-C or SIGTERM.

An interrupted run is not a failed run: every record measured so far (including requests
cut off by the interruption, class ``cancelled``) is returned and marked partial.  Running
out of budget also ends a run early (``interrupted_by="budget"``), but gently: requests in
flight finish, only new ones are refused; so does an SLA with ``stop_on_fail`` that failed
(``interrupted_by="sla"``, lens.run.slastop), in-flight requests ending per the drain
policy.  Should lens itself fail mid-run (a bug), the run stops, and what was measured is
still returned, partial, with the exception in ``failure`` (``interrupted_by=
"lens_failed"``) for the CLI to report after writing it.

Every record is redacted once, as it is created: its error message, request id and provider
facts lose the secrets lens holds (lens.redact) before anything else sees them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import TextIO

import trio

from lens.plan.model import Plan, ProviderSpec
from lens.records import (
    BUDGET_STOP,
    CANCEL_AFTER_STOP,
    LENS_FAILED_STOP,
    SLA_STOP,
    RequestRecord,
    RequestStart,
    RunOutcome,
)
from lens.redact import Redactor, redact_record
from lens.run.budget import BudgetGuard
from lens.run.executor import RunProgress, StageRunner, TransportFactory
from lens.run.gate import PlannedGate
from lens.run.gcpolicy import run_gc_policy
from lens.run.harness import HarnessMonitor
from lens.run.progress import show_progress
from lens.run.slastop import SlaStop
from lens.run.start import WallClock, check_not_passed, utc_now, wait_until

# Runs the plan's units through the runner: StageRunner.run_all, or a caller's order (the
# adaptive sweeps of lens.sweeps choose steps as they go).
Drive = Callable[[StageRunner], Awaitable[None]]


class StopSwitch:
    """Ends a run from outside its trio loop (another thread, a caller's event loop), as
    SIGTERM would: requests in flight are cancelled, the results are partial.  ``stop``
    is thread-safe and may come before the run starts; the first reason given wins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reason: str | None = None
        self._wake: Callable[[], None] | None = None

    @property
    def reason(self) -> str | None:
        return self._reason

    def stop(self, reason: str) -> None:
        with self._lock:
            if self._reason is not None:
                return
            self._reason = reason
            wake = self._wake
        if wake is not None:
            wake()

    async def wait(self) -> str:
        """Inside the run's trio loop: until ``stop`` is called; its reason."""
        event = trio.Event()
        token = trio.lowlevel.current_trio_token()

        def wake() -> None:
            # After the run's loop ended there is nothing left to stop.
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(event.set)

        with self._lock:
            self._wake = None if self._reason is not None else wake
        try:
            if self._reason is None:
                await event.wait()
        finally:
            with self._lock:
                self._wake = None
        assert self._reason is not None
        return self._reason


async def execute(
    plan: Plan,
    providers: Mapping[str, ProviderSpec],
    *,
    progress_out: TextIO | None = None,
    tty: bool = False,
    handle_signals: bool = True,
    on_record: Callable[[RequestRecord], None] | None = None,
    transport_for: TransportFactory | None = None,
    budget: BudgetGuard | None = None,
    harness: HarnessMonitor | None = None,
    drive: Drive | None = None,
    redactor: Redactor | None = None,
    stop: StopSwitch | None = None,
    cancel_after_s: float | None = None,
    sla_stop: SlaStop | None = None,
    start_at: datetime | None = None,
    wall_clock: WallClock = utc_now,
    start_monotonic: float | None = None,
    on_start: Callable[[RequestStart], None] | None = None,
    before_unit: Callable[[int], Awaitable[float | None]] | None = None,
    unit_starts: Sequence[float | None] | None = None,
    keep_records: bool = True,
    scrape_server_metrics: bool = True,
) -> RunOutcome:
    """Run the plan's units; ``stop`` and ``cancel_after_s`` (seconds from here) end the
    run early as a signal would, with ``interrupted_by`` the stop's reason or
    ``"cancel_after"``.  ``start_at``: wait (asleep; a signal or ``stop`` still ends the
    wait) until ``wall_clock`` reads it, then start the run clock (lens.run.start).
    ``start_monotonic``: likewise, an instant of ``time.monotonic()`` — the one clock every
    process of a host shares (CLOCK_MONOTONIC on Linux), so worker processes started at
    different moments start their runs together (lens.workers).  ``on_start``: told of
    every request's attempt as it goes out; ``before_unit``: awaited before each unit's
    clock starts (``StageRunner``).  ``unit_starts``: a shard's planned start of each unit,
    seconds from the run clock's start (``lens.plan.split.planned_starts``; None: when the
    unit before ends), kept by a ``PlannedGate`` (unless ``before_unit`` is given).
    ``keep_records=False``: the outcome holds no record (``on_record`` is where they go: a
    long run cannot keep them all).  ``scrape_server_metrics=False``: providers'
    ``server_metrics:`` endpoints are left to another process (lens.workers)."""
    if start_monotonic is not None:
        waited = await _wait_for_monotonic(start_monotonic, handle_signals, stop)
        if waited is not None:
            return RunOutcome(
                records=(),
                windows=(),
                started_at=wall_clock(),
                duration_s=0.0,
                interrupted_by=waited,
                harness=None,
                failure=None,
            )
    if start_at is not None:
        waited = await _wait_for_start(start_at, wall_clock, handle_signals, stop)
        if waited is not None:  # stopped before anything started
            return RunOutcome(
                records=(),
                windows=(),
                started_at=wall_clock(),
                duration_s=0.0,
                interrupted_by=waited,
                harness=None,
                failure=None,
            )
    records: list[RequestRecord] = []
    redact = redactor if redactor is not None else Redactor.for_providers(providers.values())

    def emit(rec: RequestRecord) -> None:
        rec = redact_record(rec, redact)
        if keep_records:
            records.append(rec)
        if on_record is not None:
            on_record(rec)

    progress = RunProgress(plan)
    if before_unit is None and unit_starts is not None:
        # The run clock starts once the runner does: the origin is read when the unit asks.
        before_unit = PlannedGate(unit_starts, lambda: runner.clock.t0)
    runner = StageRunner(
        plan,
        providers,
        emit,
        progress=progress,
        transport_for=transport_for,
        budget=budget,
        sla_stop=sla_stop,
        on_start=on_start,
        before_unit=before_unit,
        scrape_server_metrics=scrape_server_metrics,
    )
    started_at = wall_clock()
    t_start = trio.current_time()
    interrupted: list[str] = []

    failure: Exception | None = None
    try:
        async with trio.open_nursery() as nursery:
            if handle_signals:
                nursery.start_soon(_watch_signals, nursery.cancel_scope, interrupted)
            if stop is not None:
                nursery.start_soon(_watch_stop, stop, nursery.cancel_scope, interrupted)
            if cancel_after_s is not None:
                nursery.start_soon(_cancel_after, cancel_after_s, nursery.cancel_scope, interrupted)
            if progress_out is not None:
                nursery.start_soon(lambda: show_progress(progress, progress_out, tty=tty))
            if harness is not None:
                nursery.start_soon(harness.run)
            # A signal cancels this nursery, the run included; otherwise the watchers stop.
            await (drive or StageRunner.run_all)(runner)
            await runner.finish()  # the engines' books closed for the last unit (workers)
            nursery.cancel_scope.cancel()
    except Exception as exc:
        # lens's own failure (a bug): what was measured until now is kept and returned.
        failure = exc
        interrupted.insert(0, LENS_FAILED_STOP)

    if not interrupted and sla_stop is not None and sla_stop.tripped:
        interrupted.append(SLA_STOP)
    if not interrupted and budget is not None and budget.exhausted:
        interrupted.append(BUDGET_STOP)
    return RunOutcome(
        records=tuple(records),
        windows=tuple(runner.windows),
        started_at=started_at,
        duration_s=trio.current_time() - t_start,
        interrupted_by=interrupted[0] if interrupted else None,
        harness=None if harness is None else harness.report(),
        failure=failure,
        server_metrics=tuple(
            dataclasses.replace(
                r, last_error=None if r.last_error is None else redact(r.last_error)
            )
            for r in runner.server_metrics()
        ),
    )


async def _wait_for_start(
    start_at: datetime, wall_clock: WallClock, handle_signals: bool, stop: StopSwitch | None
) -> str | None:
    """Until ``start_at``; what interrupted the wait, if anything did."""
    check_not_passed(start_at, wall_clock)  # raised here, not from inside the nursery
    interrupted: list[str] = []
    async with trio.open_nursery() as nursery:
        if handle_signals:
            nursery.start_soon(_watch_signals, nursery.cancel_scope, interrupted)
        if stop is not None:
            nursery.start_soon(_watch_stop, stop, nursery.cancel_scope, interrupted)
        await wait_until(start_at, wall_clock)
        nursery.cancel_scope.cancel()
    return interrupted[0] if interrupted else None


async def _wait_for_monotonic(
    instant: float, handle_signals: bool, stop: StopSwitch | None
) -> str | None:
    """Until ``time.monotonic()`` reads ``instant``; what interrupted the wait, if anything.
    trio's clock is ``perf_counter`` plus a random offset: the same clock as ``monotonic`` on
    Linux, so the deadline is converted once, here."""
    interrupted: list[str] = []
    async with trio.open_nursery() as nursery:
        if handle_signals:
            nursery.start_soon(_watch_signals, nursery.cancel_scope, interrupted)
        if stop is not None:
            nursery.start_soon(_watch_stop, stop, nursery.cancel_scope, interrupted)
        await trio.sleep_until(trio.current_time() + (instant - time.monotonic()))
        nursery.cancel_scope.cancel()
    return interrupted[0] if interrupted else None


async def _watch_signals(scope: trio.CancelScope, interrupted: list[str]) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            interrupted.append(signal.Signals(signum).name)
            scope.cancel()
            return


async def _watch_stop(stop: StopSwitch, scope: trio.CancelScope, interrupted: list[str]) -> None:
    interrupted.append(await stop.wait())
    scope.cancel()


async def _cancel_after(seconds: float, scope: trio.CancelScope, interrupted: list[str]) -> None:
    await trio.sleep(seconds)
    interrupted.append(CANCEL_AFTER_STOP)
    scope.cancel()


def run_blocking(
    plan: Plan,
    providers: Mapping[str, ProviderSpec],
    *,
    progress_out: TextIO | None = None,
    tty: bool = False,
    budget: BudgetGuard | None = None,
    harness: HarnessMonitor | None = None,
    drive: Drive | None = None,
    on_record: Callable[[RequestRecord], None] | None = None,
    redactor: Redactor | None = None,
    handle_signals: bool = True,
    stop: StopSwitch | None = None,
    cancel_after_s: float | None = None,
    sla_stop: SlaStop | None = None,
    start_at: datetime | None = None,
    start_monotonic: float | None = None,
    on_start: Callable[[RequestStart], None] | None = None,
    before_unit: Callable[[int], Awaitable[float | None]] | None = None,
    unit_starts: Sequence[float | None] | None = None,
    keep_records: bool = True,
    scrape_server_metrics: bool = True,
) -> RunOutcome:
    # What the set-up left behind is frozen before the run clock starts, so no full
    # collection walks it while the run measures (lens.run.gcpolicy).
    with run_gc_policy():
        return trio.run(
            lambda: execute(
                plan,
                providers,
                progress_out=progress_out,
                tty=tty,
                budget=budget,
                harness=harness,
                drive=drive,
                on_record=on_record,
                redactor=redactor,
                handle_signals=handle_signals,
                stop=stop,
                cancel_after_s=cancel_after_s,
                sla_stop=sla_stop,
                start_at=start_at,
                start_monotonic=start_monotonic,
                on_start=on_start,
                before_unit=before_unit,
                unit_starts=unit_starts,
                keep_records=keep_records,
                scrape_server_metrics=scrape_server_metrics,
            )
        )

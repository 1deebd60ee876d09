"""``lens monitor``: the scenario run again every interval, forever, served to Prometheus.

The monitor's own trio loop schedules cycles (lens.monitor.schedule), serves the endpoints
(lens.monitor.http) and watches SIGTERM/SIGINT.  Each cycle is one ``run_plan`` (the
pipeline ``lens run`` uses: same records, summaries, verdicts and redaction) in a worker
thread with its own trio loop, so the endpoints answer while a cycle measures, and the
cycle's loop is no busier than ``lens run``'s.  The simulators of ``simulated`` providers
are started once for the monitor's life (``live_providers``), not once per cycle.

Bounds that keep the monitor alive and on time:

- a cycle still running ``deadline`` after its start is cancelled through the pipeline's
  ``cancel_after_s`` (its requests in flight become ``cancelled`` records);
- should it still not return ``ABANDON_GRACE_S`` later (lens stuck), the thread is
  abandoned, the cycle counted as ``deadline``, and the monitor goes on;
- an exception from a cycle is one log line and ``outcome="lens_failed"``, never the end
  of the monitor;
- SIGTERM/SIGINT stop the current cycle as the pipeline's ``StopSwitch`` does; the cycle
  then has ``STOP_GRACE_S`` to build, store and push its partial results before the
  process exits 0 regardless.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import trio

from lens import exitcodes
from lens.errors import InputError, describe, innermost
from lens.export.prometheus import CONTENT_TYPE
from lens.export.registry import export_all
from lens.export.results import Results
from lens.monitor.http import (
    Response,
    bound_address,
    open_listeners,
    serve,
    split_listen,
    text,
)
from lens.monitor.schedule import Schedule
from lens.monitor.state import CycleDigest, MonitorState, digest_cycle
from lens.monitor.store import CycleStore
from lens.pipeline import RunReport, run_plan
from lens.plan.model import Plan, ProviderSpec
from lens.records import CANCEL_AFTER_STOP
from lens.redact import Redactor
from lens.run.session import StopSwitch
from lens.run.simulators import live_providers
from lens.scenario.model import Scenario
from lens.scenario.model.monitor import (
    DEFAULT_EVERY_S,
    DEFAULT_JITTER,
    DEFAULT_LISTEN,
    DEFAULT_RETENTION_CYCLES,
    DEFAULT_WINDOWS_S,
    MAX_JITTER,
)
from lens.scenario.units import parse_duration, parse_percent
from lens.targets import ExportTarget

DEADLINE_SHARE = 0.8  # default cycle deadline: 80 % of the interval
ABANDON_GRACE_S = 30.0  # past its deadline, a cycle that has not returned is abandoned
STOP_GRACE_S = 10.0  # after SIGTERM, the cycle's time to build, store and push its results
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_OUTCOME_BY_EXIT = {
    exitcodes.OK: "pass",
    exitcodes.SLA_FAILED: "sla_failed",
    exitcodes.INCONCLUSIVE: "inconclusive",
    exitcodes.LENS_FAILED: "lens_failed",
}


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    every_s: float = DEFAULT_EVERY_S
    jitter: float = DEFAULT_JITTER
    deadline_s: float = DEFAULT_EVERY_S * DEADLINE_SHARE
    windows_s: tuple[float, ...] = DEFAULT_WINDOWS_S
    host: str = "127.0.0.1"
    port: int = 9464
    store: Path | None = None
    retention_age_s: float = max(DEFAULT_WINDOWS_S)
    retention_cycles: int = DEFAULT_RETENTION_CYCLES
    once: bool = False
    seed: int | None = None  # the jitter's generator (LENS_MONITOR_SEED); None: random
    notes: tuple[str, ...] = ()  # what the flags changed in the scenario's section, to say


def resolve_config(
    scenario: Scenario,
    *,
    every: str | None = None,
    jitter: str | None = None,
    listen: str | None = None,
    store: str | None = None,
    once: bool = False,
    seed: int | None = None,
) -> MonitorConfig:
    """The scenario's ``monitor:`` section with the command line's flags over it; an
    ``InputError`` names the flag or field that is wrong."""
    section = scenario.monitor
    try:
        every_s = (
            parse_duration(every, positive=True)
            if every is not None
            else (section.every if section is not None else DEFAULT_EVERY_S)
        )
    except ValueError as exc:
        raise InputError(f"--every: {exc}") from None
    try:
        share = (
            parse_percent(jitter)
            if jitter is not None
            else (section.jitter if section is not None else DEFAULT_JITTER)
        )
    except ValueError as exc:
        raise InputError(f"--jitter: {exc}") from None
    if share > MAX_JITTER:
        raise InputError(f"--jitter: must be at most 50%, got {jitter}")
    deadline = section.cycle_deadline if section is not None else None
    notes: list[str] = []
    if deadline is not None and deadline > every_s:
        if every is None:
            raise InputError(
                f"monitor.cycle_deadline ({deadline:g}s) exceeds the interval ({every_s:g}s): "
                "cycles never overlap"
            )
        # A shorter --every than the scenario was written for (a quick look, a test): the
        # scenario's deadline cannot hold, so the default share of the new interval does.
        notes.append(
            f"monitor.cycle_deadline ({deadline:g}s) is longer than --every {every}: "
            f"the deadline is {DEADLINE_SHARE:.0%} of the interval instead "
            f"({every_s * DEADLINE_SHARE:g}s)"
        )
        deadline = None
    address = listen if listen is not None else (section.listen if section else DEFAULT_LISTEN)
    try:
        host, port = split_listen(address)
    except ValueError as exc:
        raise InputError(f"--listen: {exc}") from None
    folder: Path | None = None
    if store is not None:
        folder = Path(store)
    elif section is not None and section.store is not None:
        base = Path(scenario.source_map.file).parent if scenario.source_map.file else Path()
        folder = base / section.store
    windows = section.windows if section is not None else DEFAULT_WINDOWS_S
    retention = section.retention if section is not None else None
    return MonitorConfig(
        every_s=every_s,
        jitter=share,
        deadline_s=deadline if deadline is not None else every_s * DEADLINE_SHARE,
        windows_s=tuple(windows),
        host=host,
        port=port,
        store=folder,
        retention_age_s=(
            retention.age if retention is not None and retention.age else max(windows)
        ),
        retention_cycles=retention.cycles if retention is not None else DEFAULT_RETENTION_CYCLES,
        once=once,
        seed=seed,
        notes=tuple(notes),
    )


def monitored_scenario(scenario: Scenario) -> Scenario:
    """The scenario with only ``monitor.stages`` in ``load:`` (and only the SLAs scoped to
    them or to no stage); unchanged without that list."""
    section = scenario.monitor
    if section is None or section.stages is None:
        return scenario
    known = [s.id for s in scenario.load]
    unknown = [s for s in section.stages if s not in known]
    if unknown:
        raise InputError(
            f"monitor.stages: no stage {', '.join(map(repr, unknown))} in load: "
            f"(stages: {', '.join(known)})"
        )
    chosen = set(section.stages)
    return scenario.model_copy(
        update={
            "load": tuple(s for s in scenario.load if s.id in chosen),
            "sla": tuple(a for a in scenario.sla if a.stage is None or a.stage in chosen),
        }
    )


@dataclass(frozen=True, slots=True)
class CycleReport:
    outcome: str
    exit_code: int
    results: Results | None = None
    digest: CycleDigest | None = None
    failure: str | None = None  # one line: why lens failed, or why the cycle was abandoned
    requests: int = 0
    errors: int = 0
    export_failures: tuple[tuple[str, str], ...] = ()  # (kind, message)


# (cycle number, its stop switch, its deadline in seconds) -> what it measured
CycleFn = Callable[[int, StopSwitch, float], Awaitable[CycleReport]]


def outcome_of(report: RunReport, stop: StopSwitch) -> str:
    if report.failure is not None:
        return "lens_failed"
    if report.outcome.interrupted_by == CANCEL_AFTER_STOP:
        return "deadline"
    if stop.reason is not None and report.outcome.interrupted_by == stop.reason:
        return "interrupted"
    return _OUTCOME_BY_EXIT.get(report.results.exit_code, "inconclusive")


def pipeline_cycle(
    plan: Plan,
    live: Mapping[str, ProviderSpec],
    redactor: Redactor,
    targets: Sequence[ExportTarget] = (),
    wall: Callable[[], float] = time.time,
) -> CycleFn:
    """Each cycle: ``run_plan`` in a worker thread (its own trio loop), the records reduced
    to a digest there too, then the pushes."""

    def blocking(stop: StopSwitch, deadline_s: float) -> CycleReport:
        report = run_plan(
            plan,
            redactor=redactor,
            handle_signals=False,  # the monitor's loop owns the signals
            stop=stop,
            cancel_after_s=deadline_s,
            live=live,
        )
        results = report.results
        digest = digest_cycle(report.outcome.records, plan.providers, wall())
        counts = [c.statuses for c in digest.counts.values()]
        failures = tuple((f.target.kind, redactor(str(f))) for f in export_all(results, targets))
        failure = None
        if report.failure is not None:
            failure = redactor(describe(innermost(report.failure)))
        return CycleReport(
            outcome=outcome_of(report, stop),
            exit_code=results.exit_code,
            results=results,
            digest=digest,
            failure=failure,
            requests=sum(sum(c.values()) for c in counts),
            errors=sum(c["error"] for c in counts),
            export_failures=failures,
        )

    async def cycle(number: int, stop: StopSwitch, deadline_s: float) -> CycleReport:
        return await trio.to_thread.run_sync(
            lambda: blocking(stop, deadline_s), abandon_on_cancel=True
        )

    return cycle


class MonitorService:
    def __init__(
        self,
        config: MonitorConfig,
        state: MonitorState,
        cycle: CycleFn,
        *,
        store: CycleStore | None = None,
        log: TextIO | None = None,
        wall: Callable[[], float] = time.time,
        handle_signals: bool = True,
    ) -> None:
        self.config = config
        self.state = state
        self.cycle = cycle
        self.store = store
        self.log = log if log is not None else sys.stderr  # read now: tests swap sys.stderr
        self.wall = wall
        self.handle_signals = handle_signals
        self.address: tuple[str, int] | None = None
        self.stopping: str | None = None
        self._stop: StopSwitch | None = None
        self._sleep: trio.CancelScope | None = None
        self._cycle_scope: trio.CancelScope | None = None
        self._last_code = exitcodes.OK

    # -- endpoints -------------------------------------------------------------------

    def route(self, path: str) -> Response:
        now = self.wall()
        if path == "/metrics":
            return Response(200, self.state.exposition(now).encode(), CONTENT_TYPE)
        if path == "/healthz":
            health = self.state.health(now)
            return text(200 if health.ok else 503, health.reason + "\n")
        if path == "/results/latest":
            body = self.state.last_results_json
            if body is None:
                return text(404, "no cycle has finished yet\n")
            return Response(200, body, "application/json")
        if path == "/results/windows":
            return Response(
                200, json.dumps(self.state.windows_json(now), indent=1).encode(), "application/json"
            )
        if path == "/":
            return text(200, "lens monitor: /metrics /healthz /results/latest /results/windows\n")
        return text(404, "not found\n")

    # -- stopping --------------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        """End the monitor as SIGTERM does: the current cycle is stopped and given
        ``STOP_GRACE_S`` to finish its results; no further cycle starts."""
        if self.stopping is not None:
            return
        self.stopping = reason
        self._say(f"{reason}: stopping after the current cycle's results")
        if self._stop is not None:
            self._stop.stop(reason)
        if self._cycle_scope is not None:
            self._cycle_scope.deadline = min(
                self._cycle_scope.deadline, trio.current_time() + STOP_GRACE_S
            )
        if self._sleep is not None:
            self._sleep.cancel()

    async def _watch_signals(self) -> None:
        with trio.open_signal_receiver(*_STOP_SIGNALS) as signals:
            async for signum in signals:
                self.request_stop(signal.Signals(signum).name)

    # -- the loop --------------------------------------------------------------------

    async def main(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> int:
        """Serve and run cycles until stopped (``--once``: one cycle, nothing served);
        ``task_status`` is started once the address is bound (``self.address``)."""
        async with trio.open_nursery() as nursery:
            if self.handle_signals:
                nursery.start_soon(self._watch_signals)
            if not self.config.once:
                try:
                    listeners = await open_listeners(self.config.host, self.config.port)
                except OSError as exc:
                    raise InputError(
                        f"--listen {self.config.host}:{self.config.port}: cannot listen "
                        f"there: {describe(exc)}"
                    ) from None
                self.address = bound_address(listeners)
                host, port = self.address
                shown = f"[{host}]" if ":" in host else host
                self._say(
                    f"listening on http://{shown}:{port} (every {_span(self.config.every_s)}, "
                    f"jitter {self.config.jitter:.0%}, deadline {_span(self.config.deadline_s)})"
                )
                nursery.start_soon(serve, listeners, self.route)
            task_status.started()
            code = await self.run_cycles()
            nursery.cancel_scope.cancel()
        return code

    async def run_cycles(self) -> int:
        config = self.config
        schedule = Schedule(config.every_s, config.jitter, trio.current_time(), config.seed)
        upcoming = schedule.first()
        start = trio.current_time() if config.once else upcoming.start
        while self.stopping is None:
            with trio.CancelScope() as self._sleep:
                await trio.sleep_until(start)
            self._sleep = None
            if self.stopping is not None:
                break
            begun = trio.current_time()
            report = await self._one_cycle()
            ended = trio.current_time()
            await self._record(report, ended - begun)
            if config.once or self.stopping is not None:
                return report.exit_code if config.once else exitcodes.OK
            upcoming = schedule.after(upcoming.slot, ended)
            start = upcoming.start
            self.state.skipped += upcoming.skipped
            if upcoming.overran:
                self.state.overruns += 1
                self._say(
                    f"cycle {self.state.cycle_number} overran the next slot: the next cycle "
                    f"starts {_span(upcoming.late_s)} late"
                    + (f", {upcoming.skipped} slot(s) skipped" if upcoming.skipped else "")
                )
        return exitcodes.OK

    async def _one_cycle(self) -> CycleReport:
        number = self.state.cycle_number + 1
        stop = self._stop = StopSwitch()
        deadline = self.config.deadline_s
        try:
            with trio.CancelScope(
                deadline=trio.current_time() + deadline + ABANDON_GRACE_S
            ) as self._cycle_scope:
                try:
                    return await self.cycle(number, stop, deadline)
                except Exception as exc:
                    return CycleReport(
                        "lens_failed", exitcodes.LENS_FAILED, failure=describe(innermost(exc))
                    )
            # Cancelled: lens did not return in time (or within STOP_GRACE_S of a stop).
            stop.stop("abandoned")
            if self.stopping is not None:
                return CycleReport(
                    "interrupted",
                    exitcodes.INCONCLUSIVE,
                    failure=f"the cycle did not end within {_span(STOP_GRACE_S)} of "
                    f"{self.stopping}",
                )
            return CycleReport(
                "deadline",
                exitcodes.INCONCLUSIVE,
                failure=f"the cycle did not end within {_span(deadline + ABANDON_GRACE_S)}: "
                "abandoned",
            )
        finally:
            self._stop = None
            self._cycle_scope = None

    async def _record(self, report: CycleReport, duration_s: float) -> None:
        ended_at = self.wall()
        state = self.state
        state.add_cycle(
            report.digest,
            outcome=report.outcome,
            duration_s=duration_s,
            ended_at=ended_at,
            exit_code=report.exit_code,
            results=report.results,
        )
        for kind, message in report.export_failures:
            state.export_failures[kind] = state.export_failures.get(kind, 0) + 1
            self._say(f"cycle {state.cycle_number}: export failed: {message}")
        line = (
            f"cycle {state.cycle_number}: {report.outcome} in {duration_s:.1f}s, "
            f"{report.requests} requests, {report.errors} errors"
        )
        if report.failure is not None:
            said = "lens failed: " if report.outcome == "lens_failed" else ""
            line += f"; {said}{report.failure}"
        self._say(line)
        if self.store is not None and report.digest is not None:
            store, digest = self.store, report.digest
            number = state.cycle_number
            results_text = state.last_results_json if report.results is not None else None

            def write() -> None:
                store.write(
                    number=number,
                    outcome=report.outcome,
                    exit_code=report.exit_code,
                    duration_s=duration_s,
                    window=digest.window,
                    results_text=results_text,
                )
                store.prune(ended_at)

            try:
                await trio.to_thread.run_sync(write)
            except OSError as exc:
                self._say(f"cycle {number}: not stored: {describe(exc)}")

    def _say(self, line: str) -> None:
        print(f"lens monitor: {line}", file=self.log, flush=True)


def restore(state: MonitorState, store: CycleStore, log: TextIO) -> None:
    """The stored cycles' windows, last successes, cycle number and latest results."""
    reloaded = store.reload(time.time())
    for warning in reloaded.warnings:
        print(f"lens monitor: warning: {warning}", file=log)
    for cycle in reloaded.cycles:
        state.add_window(cycle.window)
        state.cycle_number = max(state.cycle_number, cycle.number)
    if reloaded.cycles:
        last = reloaded.cycles[-1]
        state.last_cycle_at = last.window.ended_at
        state.last_exit_code = last.exit_code
        state.last_outcome = last.outcome
    if reloaded.results is not None:
        state.set_results(reloaded.results, reloaded.results_text)
    state.expire(time.time())
    if reloaded.cycles:
        print(
            f"lens monitor: reloaded {len(reloaded.cycles)} cycle(s) from {store.folder}",
            file=log,
        )


def run_monitor(
    plan: Plan,
    config: MonitorConfig,
    *,
    redactor: Redactor,
    targets: Sequence[ExportTarget] = (),
    log: TextIO | None = None,
) -> int:
    """The blocking service ``lens monitor`` runs: until SIGTERM/SIGINT (exit 0), or one
    cycle with ``config.once`` (its exit code)."""
    log = log if log is not None else sys.stderr
    state = MonitorState(
        plan.name,
        every_s=config.every_s,
        deadline_s=config.deadline_s,
        windows_s=config.windows_s,
        started_at=time.time(),
    )
    store = None
    if config.store is not None:
        store = CycleStore(
            config.store, max_age_s=config.retention_age_s, max_cycles=config.retention_cycles
        )
        try:
            store.prepare()
        except OSError as exc:
            raise InputError(
                f"--store {config.store}: cannot write there: {describe(exc)}"
            ) from None
        restore(state, store, log)
    with live_providers(plan) as live:
        service = MonitorService(
            config,
            state,
            pipeline_cycle(plan, live, redactor, targets),
            store=store,
            log=log,
        )
        return trio.run(service.main)


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g}s" if seconds == int(seconds) else f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"

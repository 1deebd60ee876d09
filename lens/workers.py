"""``lens run --workers N``: one plan run by N worker processes of one machine, merged.

The parent compiles the plan, starts the simulators it needs (once: every worker talks to
the same ones), then starts N worker processes (``multiprocessing`` with the ``spawn``
context: a fresh interpreter each, no trio state or simulator threads inherited through
``fork``, and the plan, live provider specs and redactor handed over pickled, not
recompiled).  Worker k runs shard k of N of the plan (``lens.plan.split.shard_plan``: the
split ``lens run --shard`` uses) on its own trio loop, through ``lens.pipeline.run_plan``,
so every worker runs the harness self-check over its own loop.

One start instant: each worker says it is ready (imported, plan split), then the parent
sends every worker the same instant of ``time.monotonic()``, a moment ahead.  On Linux that
is CLOCK_MONOTONIC, one clock for every process of the host (trio's own clock is
``perf_counter`` plus a per-loop random offset, so each worker converts the instant once);
unlike the wall clock it cannot be stepped by NTP between the parent reading it and the
workers waiting for it.  With ``--start-at`` the workers wait for that wall-clock instant
instead (as shards do).

While the run goes on, each worker sends the parent a note of every request it starts and
the record of every request it ends, batched every ``FLUSH_S`` by a thread, so the worker's
read loop only appends to a deque.  The parent writes ``--records`` and the progress line
from them, in the order they arrive (completion order, to within a batch), and folds them
into one ``lens.metrics.fold.RunFold`` of the whole plan (``parent_fold``), so no process
keeps more records than results list: the workers keep none, and at the end each sends
only its ``WorkerOutcome`` (stage windows, harness self-check, interruption, failure); the
parent merges the windows and builds the results as ``run_plan`` builds a folded run's
(``lens.pipeline.folded_results``; each record listed keeps its worker as ``shard``;
distrusted when any worker was overloaded).  Where the fold does not apply (GPU-hour
prices, windowed SLAs) each worker sends its results (a shard's results) and the parent
merges them with ``lens.export.merge.merge_results`` (records concatenated; summaries
rebuilt from the merged records; SLAs judged once).

Ctrl-C / SIGTERM in the parent: every worker is told to stop (as SIGTERM stops a run: the
requests in flight are cancelled and recorded), sends its partial results, and the merged
results are written, partial (exit 3).  Workers ignore SIGINT, so a Ctrl-C sent to the
whole process group reaches them through the parent only.

A worker that dies (killed, crashed) before sending its results: every request it had
started and not ended (as far as the parent was told) gets a record of class
``lens_lost`` ending at the moment the parent saw the death, its finished records are kept,
and the run is partial.  Requests started within the last ``FLUSH_S`` before the death
were never reported and cannot be named.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any, Literal, TextIO

from lens.errors import LensError, describe
from lens.export.merge import merge_results
from lens.export.results import (
    Results,
    ShardOut,
    results_from_text,
    salvage_results,
    with_records_kept,
)
from lens.metrics.fold import FoldedRecords, RunFold
from lens.pipeline import (
    Baseline,
    RunReport,
    folded_results,
    judge_regressions,
    outcome_results,
    run_fold,
    run_plan,
    salvaged_summaries,
    shard_results,
)
from lens.plan.model import ClosedLoop, OpenLoop, Plan, ProviderSpec
from lens.plan.split import Shard, plan_hash, shard_plan
from lens.records import (
    CANCEL_AFTER_STOP,
    ErrorClass,
    HarnessLimits,
    HarnessReport,
    RequestRecord,
    RequestStart,
    RunOutcome,
    ServerMetricsReport,
    StageWindow,
)
from lens.redact import Redactor
from lens.run import recordwire
from lens.run.executor import RunProgress
from lens.run.gate import UnitGate
from lens.run.progress import progress_line
from lens.run.session import StopSwitch
from lens.run.simulators import live_providers

FLUSH_S = 0.02  # how often a worker sends what it started and ended
START_LEAD_S = 0.3  # from the parent's "go" to the shared start: for the message to arrive
UNIT_LEAD_S = 0.05  # from the parent's word to a unit's shared start: the relay's time
READY_TIMEOUT_S = 120.0  # for a worker to start (a fresh interpreter on a loaded machine)
STOP_GRACE_S = 30.0  # after a stop, for a worker to send its results before it is killed

# ``auto``: one worker per this much of a stage's load, at most one per core but one.
STREAMS_PER_WORKER = 250
ARRIVALS_PER_S_PER_WORKER = 500.0

Workers = int | Literal["auto"]


class WorkerFailed(LensError):
    """A worker could not start its share of the run (nothing was measured)."""


class LensFailedInWorker(RuntimeError):
    """lens itself failed inside a worker after measuring started (the merged results hold
    what was measured); the CLI reports it as lens failing (exit 5)."""


# --- the rule for ``auto`` ---------------------------------------------------------------


def splittable(plan: Plan) -> bool:
    """Whether the plan can be run by more than one worker (lens.plan.split refuses
    adaptive sweeps and idle probes)."""
    try:
        shard_plan(plan, 0, 2)
    except LensError:
        return False
    return True


def auto_workers(plan: Plan, cpus: int | None = None) -> int:
    """How many workers ``--workers auto`` runs: one per ``STREAMS_PER_WORKER`` streams of
    the busiest stage (a closed loop's concurrency, an open loop's ``max_concurrency`` or
    burst wave) or per ``ARRIVALS_PER_S_PER_WORKER`` arrivals/s of its peak rate, whichever
    needs more; at most ``cpus - 1`` (one core left for the parent and a local server), at
    least 1; 1 when the plan cannot be split."""
    cpus = os.cpu_count() if cpus is None else cpus
    if not splittable(plan):
        return 1
    streams, rate = 0, 0.0
    for unit in plan.stages:
        match unit.load:
            case ClosedLoop(concurrency=concurrency):
                streams = max(streams, concurrency)
            case OpenLoop(arrivals=arrivals, max_concurrency=limit):
                if arrivals.rate_per_s is not None:
                    rate = max(rate, *arrivals.rate_per_s)
                if limit is not None:
                    streams = max(streams, limit)
                elif arrivals.offsets_s:
                    wave = max(_waves(arrivals.offsets_s))
                    streams = max(streams, wave)
    need = max(
        math.ceil(streams / STREAMS_PER_WORKER), math.ceil(rate / ARRIVALS_PER_S_PER_WORKER), 1
    )
    return max(1, min(need, (cpus or 1) - 1))


def _waves(offsets: Sequence[float]) -> Iterator[int]:
    """The sizes of runs of equal offsets (a burst's waves)."""
    run, last = 0, None
    for offset in offsets:
        if offset == last:
            run += 1
        else:
            if run:
                yield run
            run, last = 1, offset
    yield run


def resolve_workers(plan: Plan, workers: Workers | None) -> int:
    """The flag's (or the scenario's ``defaults.workers``) count; ``auto`` resolved."""
    if workers is None:
        workers = plan.workers
    if workers == "auto":
        return auto_workers(plan)
    if workers < 1:
        raise WorkerFailed(f"--workers {workers}: at least 1")
    return workers


# --- inside a worker ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerJob:
    plan: Plan  # the whole plan: the worker runs its shard of it
    index: int
    count: int
    live: Mapping[str, ProviderSpec]  # the parent's simulators, already listening
    redactor: Redactor
    start_at: datetime | None  # --start-at: wait for this wall-clock instant instead
    # The parent folds every record (``parent_fold``): the worker keeps none and sends its
    # ``WorkerOutcome`` at the end, not its results.
    folded: bool = False


@dataclass(frozen=True, slots=True)
class WorkerOutcome:
    """What a worker sends at the end of a folded run: what the parent cannot rebuild from
    the records and starts it was sent (its stage windows, harness self-check, why it
    stopped early, lens's own failure in it)."""

    windows: tuple[StageWindow, ...]
    harness: HarnessReport | None
    interrupted_by: str | None
    failure: str | None  # described and redacted
    # The engines' metrics: worker 0 alone scrapes them (one scrape per interval, not N).
    server_metrics: tuple[ServerMetricsReport, ...] = ()


class _Batcher:
    """What a worker started and ended, sent to the parent every ``FLUSH_S`` by a thread:
    the run's loop only appends to a deque (thread-safe, no lock)."""

    def __init__(self, out: Connection) -> None:
        self._out = out
        self._items: deque[RequestStart | RequestRecord] = deque()
        self._done = threading.Event()
        self._sending = threading.Lock()  # the run's thread sends too (UnitGate's asks)
        self._thread = threading.Thread(target=self._loop, name="lens-worker-send", daemon=True)

    def add(self, item: RequestStart | RequestRecord) -> None:
        self._items.append(item)

    def send(self, message: tuple[Any, ...]) -> None:
        """A message of its own, now (not batched)."""
        with self._sending:
            self._out.send(message)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._done.set()
        self._thread.join()
        self._flush()

    def _loop(self) -> None:
        while not self._done.wait(FLUSH_S):
            self._flush()

    def _flush(self) -> None:
        items = self._items
        batch = []
        while items:
            batch.append(items.popleft())
        if batch:
            self.send(("batch", recordwire.encode(batch)))


def worker_main(job: WorkerJob, out: Connection, control: Connection) -> None:
    """A worker process: its shard of the plan, results sent to the parent."""
    # Ctrl-C at a terminal signals the whole process group: the parent decides for all.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = StopSwitch()
    # SIGTERM sent to the worker itself stops it as it stops a run (from a thread: the
    # switch takes a lock the interrupted code may hold).
    signal.signal(
        signal.SIGTERM,
        lambda _signum, _frame: threading.Thread(target=stop.stop, args=("SIGTERM",)).start(),
    )
    batcher = _Batcher(out)
    try:
        shard = Shard(job.index, job.count)
        shard_plan(job.plan, shard.index, shard.count)  # refused here, before anything runs
        out.send(("ready",))
        kind, value = control.recv()
        if kind == "stop":
            return
        gate = UnitGate(lambda position: batcher.send(("unit", position)))
        threading.Thread(target=_obey, args=(control, stop, gate), daemon=True).start()
        batcher.start()
        report = run_plan(
            job.plan,
            on_record=batcher.add,
            on_start=batcher.add,
            redactor=job.redactor,
            handle_signals=False,
            stop=stop,
            shard=shard,
            start_at=job.start_at,
            live=job.live,
            start_monotonic=value,
            before_unit=gate,
            # N workers scraping an engine would scrape it N times per interval.
            scrape_server_metrics=job.index == 0,
        )
        batcher.close()
        if job.folded:
            failure = report.failure or report.outcome.failure
            out.send(
                (
                    "outcome",
                    WorkerOutcome(
                        report.outcome.windows,
                        report.outcome.harness,
                        report.outcome.interrupted_by,
                        None if failure is None else job.redactor(describe(failure)),
                        report.outcome.server_metrics,
                    ),
                )
            )
            return
        # As JSON: the results document is what lens merge reads, and holds read-only
        # mappings that do not pickle.
        out.send(("results", report.results.model_dump_json()))
    except EOFError:
        return  # the parent is gone: nobody to report to
    except Exception as exc:
        out.send(("error", job.redactor(describe(exc))))


def _obey(control: Connection, stop: StopSwitch, gate: UnitGate) -> None:
    """The parent's word: each unit's start, or stop (its reason: the signal it got); its
    death stops the run too."""
    while True:
        try:
            message = control.recv()
        except (EOFError, OSError):
            stop.stop("parent exited")
            return
        if message[0] == "unit":
            gate.open(message[1], message[2])
        elif message[0] == "stop":
            stop.stop(str(message[1]))
            return


# --- the parent --------------------------------------------------------------------------


@dataclass(slots=True)
class _Worker:
    index: int
    process: BaseProcess
    out: Connection  # from the worker
    control: Connection  # to the worker
    ready: bool = False
    results: Results | None = None
    outcome: WorkerOutcome | None = None  # a folded run's end
    error: str | None = None  # what the worker said went wrong
    died: str | None = None  # how it ended without results
    open: bool = True  # its pipe still delivers
    unit: int = -1  # the last unit it is set up for (waiting for it to start, or running it)
    in_flight: dict[tuple[str, str, int, int], RequestStart] = field(default_factory=dict)
    records: list[RequestRecord] = field(default_factory=list)  # not kept when folded
    lost: list[RequestRecord] = field(default_factory=list)  # lens_lost, when it died
    # Folded: its latest start (no later one is dispatched earlier), and per unit, what
    # its records tell of its window, should it die: first start, last end, started.
    horizon: float = 0.0
    seen: dict[tuple[str, str], list[int]] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.results is not None or self.outcome is not None or self.died is not None

    def tell(self, message: tuple[Any, ...]) -> None:
        # A worker that is gone cannot be told: its sentinel says it is gone.
        with contextlib.suppress(OSError):
            self.control.send(message)


def _key(item: RequestStart | RequestRecord) -> tuple[str, str, int, int]:
    return (item.stage, item.provider, item.index, item.attempt)


class _Stopper:
    """SIGINT/SIGTERM in the parent, a caller's ``StopSwitch`` or its ``cancel_after``
    (seconds from the shared start, ``t0``): noted, and every worker told to stop."""

    def __init__(self, switch: StopSwitch | None = None, cancel_after_s: float | None = None):
        self._reason: str | None = None
        self._at: float | None = None
        self.switch = switch
        self.cancel_after_s = cancel_after_s
        self.t0: float | None = None

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        self._note(signal.Signals(signum).name)

    def _note(self, reason: str) -> None:
        if self._reason is None:
            self._reason = reason
            self._at = time.monotonic()

    @property
    def reason(self) -> str | None:
        if self._reason is None and self.switch is not None and self.switch.reason is not None:
            self._note(self.switch.reason)
        limit, t0 = self.cancel_after_s, self.t0
        if (
            self._reason is None
            and limit is not None
            and t0 is not None
            and time.monotonic() >= t0 + limit
        ):
            self._note(CANCEL_AFTER_STOP)
        return self._reason

    @property
    def at(self) -> float | None:
        return self._at if self.reason is not None else None


@contextmanager
def _signals(stopper: _Stopper, enabled: bool) -> Iterator[None]:
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {s: signal.signal(s, stopper) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def parent_fold(plan: Plan) -> RunFold | None:
    """The fold of the whole run the parent feeds every worker's starts and records into
    (``lens.metrics.fold``, as ``run_plan`` folds its own), so that no process keeps more
    records than results list; None where the workers' results are merged instead
    (``lens.export.merge``, every record kept): where ``run_fold`` does not apply
    (GPU-hour prices, adaptive sweeps), and for windowed SLAs, whose windows start at each
    unit's measured phase, which the parent learns only from the workers' windows at the
    end."""
    fold = run_fold(plan)
    if fold is None or fold.windows.windowed:
        return None
    return fold


def run_workers(
    plan: Plan,
    count: int,
    *,
    progress_out: TextIO | None = None,
    tty: bool = False,
    on_record: Callable[[RequestRecord], None] | None = None,
    redactor: Redactor | None = None,
    handle_signals: bool = True,
    baseline: Baseline | None = None,
    start_at: datetime | None = None,
    stop: StopSwitch | None = None,
    cancel_after_s: float | None = None,
) -> RunReport:
    """Run ``plan`` in ``count`` worker processes (see the module); their merged results.
    ``count`` 1 is ``run_plan`` itself.  ``stop``/``cancel_after_s``: as ``run_plan``'s
    (lens.api), polled by the parent, which then stops every worker."""
    if count == 1:
        return run_plan(
            plan,
            progress_out=progress_out,
            tty=tty,
            on_record=on_record,
            redactor=redactor,
            handle_signals=handle_signals,
            baseline=baseline,
            start_at=start_at,
            stop=stop,
            cancel_after_s=cancel_after_s,
        )
    redact = redactor if redactor is not None else Redactor.for_plan(plan)
    for k in range(count):
        shard_plan(plan, k, count)  # a plan that cannot be split: refused before anything
    folded = parent_fold(plan) is not None
    # Folded: the parent folds every record as it arrives, and the workers keep none.
    # Else every record comes back: the merge rebuilds summaries from them, and the
    # parent lists only what results: {records: ...} keeps, after merging.
    whole = dataclasses.replace(
        plan, results_records=0 if folded else None, results_records_default=False
    )
    context = multiprocessing.get_context("spawn")
    stopper = _Stopper(stop, cancel_after_s)
    with live_providers(plan) as live, _signals(stopper, handle_signals):
        workers: list[_Worker] = []
        try:
            for k in range(count):
                out_r, out_w = context.Pipe(duplex=False)
                ctl_r, ctl_w = context.Pipe(duplex=False)
                job = WorkerJob(whole, k, count, live, redact, start_at, folded)
                process = context.Process(
                    target=worker_main,
                    args=(job, out_w, ctl_r),
                    name=f"lens-worker-{k}",
                    daemon=True,
                )
                process.start()
                out_w.close()
                ctl_r.close()
                workers.append(_Worker(k, process, out_r, ctl_w))
            supervisor = _Supervisor(plan, workers, stopper, progress_out, tty, on_record, start_at)
            supervisor.start()
            if stopper.reason is not None and supervisor.t0 is None:
                raise KeyboardInterrupt  # stopped before anything ran
            supervisor.collect()
        finally:
            for w in workers:
                if w.process.is_alive():
                    w.process.kill()
                w.process.join()
                w.out.close()
                w.control.close()
    return supervisor.report(redact, baseline)


class _Supervisor:
    """The parent's side of a run: start the workers together, relay what they send,
    stop them on a signal, notice deaths, merge."""

    def __init__(
        self,
        plan: Plan,
        workers: list[_Worker],
        stopper: _Stopper,
        progress_out: TextIO | None,
        tty: bool,
        on_record: Callable[[RequestRecord], None] | None,
        start_at: datetime | None,
    ) -> None:
        self.plan = plan
        self.workers = workers
        self.stopper = stopper
        self.progress_out = progress_out
        self.tty = tty
        self.on_record = on_record
        self.start_at = start_at
        self.progress = RunProgress(plan)
        self.progress.unit = f"{len(workers)} workers"
        self.t0: float | None = None  # the shared start, on time.monotonic()
        self.started_at = datetime.now(UTC)
        self._stop_sent = False
        self._released = -1  # the last unit every worker was told to start
        self.fold = parent_fold(plan)
        self.fold_failure: Exception | None = None  # folding failed: salvaged at the end
        self.measured = 0  # records received (and lens_lost ones made)
        self._worker_of: dict[int, int] = {}  # a kept record's place in the fold -> worker

    # Starting -----------------------------------------------------------------------------

    def start(self) -> None:
        """Until every worker is ready, then the shared start instant to all."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not all(w.ready for w in self.workers):
            if self.stopper.reason is not None:
                for w in self.workers:
                    w.tell(("stop", self.stopper.reason))
                return
            if time.monotonic() > deadline:
                raise WorkerFailed(f"the workers did not start within {READY_TIMEOUT_S:g} s")
            self._poll(0.1)
            for w in self.workers:
                if w.error is not None or w.died is not None:
                    raise WorkerFailed(f"worker {w.index} could not start: {w.error or w.died}")
        t0 = None if self.start_at is not None else time.monotonic() + START_LEAD_S
        for w in self.workers:
            w.tell(("go", t0))
        self.t0 = self.stopper.t0 = t0 if t0 is not None else time.monotonic()
        self.started_at = datetime.now(UTC)

    # Running ------------------------------------------------------------------------------

    def collect(self) -> None:
        interval = 0.5 if self.tty else 5.0
        next_line = time.monotonic() + interval
        last = (time.monotonic(), 0, 0)
        while not all(w.finished for w in self.workers):
            self._poll(0.1)
            self._release()
            now = time.monotonic()
            if self.stopper.reason is not None and not self._stop_sent:
                self._stop_sent = True
                for w in self.workers:
                    w.tell(("stop", self.stopper.reason))
            if self.stopper.at is not None and now - self.stopper.at > STOP_GRACE_S:
                for w in self.workers:
                    if w.process.is_alive():
                        w.process.kill()  # reported as died: its requests in flight lost
            if self.progress_out is not None and now >= next_line:
                last = self._show(now, last)
                next_line = now + interval
        if self.progress_out is not None and self.tty:
            self.progress_out.write("\r\x1b[2K")
            self.progress_out.flush()

    def _release(self) -> None:
        """When every worker still running is set up for the next unit: its start, a
        moment ahead, to all of them (a worker that died or finished waits for nothing)."""
        live = [w for w in self.workers if not w.finished]
        position = self._released + 1
        if not live or any(w.unit != position for w in live):
            return
        instant = time.monotonic() + UNIT_LEAD_S
        for w in live:
            w.tell(("unit", position, instant))
        self._released = position

    def _show(self, now: float, last: tuple[float, int, int]) -> tuple[float, int, int]:
        p = self.progress
        t_last, done, tokens = last
        start = self.t0 if self.t0 is not None else now
        line = progress_line(p, now - start, done, now - t_last, tokens)
        assert self.progress_out is not None
        self.progress_out.write("\r\x1b[2K" + line if self.tty else line + "\n")
        self.progress_out.flush()
        return (now, p.done, p.output_tokens)

    def _poll(self, timeout: float) -> None:
        """Whatever the workers sent within ``timeout``; deaths noticed."""
        waiting: list[Any] = [w.out for w in self.workers if w.open]
        waiting += [w.process.sentinel for w in self.workers if not w.finished]
        if not waiting:
            return
        for ready in wait(waiting, timeout):
            for w in self.workers:
                if ready is w.out:
                    self._receive(w)
        for w in self.workers:
            if not w.finished and not w.process.is_alive():
                while w.open and w.out.poll():
                    self._receive(w)  # what it sent before it ended
                if w.results is None and w.outcome is None:
                    w.died = self._how_it_died(w)
                    self._lose(w)

    def _receive(self, w: _Worker) -> None:
        try:
            message = w.out.recv()
        except (EOFError, OSError):
            w.open = False
            return
        kind = message[0]
        if kind == "ready":
            w.ready = True
        elif kind == "unit":
            w.unit = message[1]
        elif kind == "batch":
            for item in recordwire.decode(message[1]):
                if isinstance(item, RequestStart):
                    w.in_flight[_key(item)] = item
                    self.progress.started += 1
                    w.horizon = item.t_start
                    self._start(item)
                else:
                    w.in_flight.pop(_key(item), None)
                    self.progress.record(item)
                    if self.on_record is not None:
                        self.on_record(item)
                    self._add(w, item)
            self._hold()
        elif kind == "results":
            w.results = results_from_text(message[1], f"worker {w.index}")
            w.in_flight.clear()
        elif kind == "outcome":
            w.outcome = message[1]
            w.in_flight.clear()
            self._hold()
        elif kind == "error":
            w.error = str(message[1])

    # Folding ------------------------------------------------------------------------------

    def _folding(self, feed: Callable[[RunFold], None]) -> None:
        """Feed the fold; should it fail, the run goes on and is salvaged at the end (as
        ``run_plan``'s does)."""
        if self.fold is not None and self.fold_failure is None:
            try:
                feed(self.fold)
            except Exception as exc:
                self.fold_failure = exc

    def _start(self, item: RequestStart) -> None:
        self._folding(lambda fold: fold.start(item))

    def _add(self, w: _Worker, rec: RequestRecord) -> None:
        """A record of ``w``'s: kept (no fold), or folded, with what its window needs."""
        self.measured += 1
        if self.fold is None:
            w.records.append(rec)
            return
        edges = w.seen.get((rec.stage, rec.provider))
        first = rec.t_intended if rec.t_intended is not None else rec.t_dispatch
        if edges is None:
            w.seen[(rec.stage, rec.provider)] = [first, rec.t_end, int(rec.attempt == 1)]
        else:
            edges[0] = min(edges[0], first)
            edges[1] = max(edges[1], rec.t_end)
            edges[2] += rec.attempt == 1
        self._folding(lambda fold: fold.add(rec))
        fold = self.fold
        seq = fold.count - 1
        if seq in fold.kept.kept:
            self._worker_of[seq] = w.index
            if len(self._worker_of) > 2 * len(fold.kept.kept) + 64:
                kept = fold.kept.kept
                self._worker_of = {s: k for s, k in self._worker_of.items() if s in kept}

    def _hold(self) -> None:
        """Cold flags wait for every worker still running to be past their dispatch."""
        running = [w.horizon for w in self.workers if not w.finished]
        self._folding(lambda fold: fold.hold(min(running, default=math.inf)))

    def _lose(self, w: _Worker) -> None:
        """``w`` died: each request it had started and not ended, a ``lens_lost`` record
        ending now (folded now, so they hold nothing back)."""
        now_ns = 0 if self.t0 is None else round((time.monotonic() - self.t0) * 1e9)
        reason = f"worker {w.index} {w.died}"
        w.lost = [
            RequestRecord(
                provider=s.provider,
                stage=s.stage,
                prompt=s.prompt,
                index=s.index,
                ok=False,
                error_class=ErrorClass.LENS_LOST,
                error_message=f"{reason} while the request was in flight: its outcome is unknown",
                http_status=None,
                t_intended=s.t_intended,
                t_dispatch=s.t_start,
                t_headers=None,
                t_first_chunk=None,
                t_first_token=None,
                t_first_visible=None,
                t_last_token=None,
                t_end=max(now_ns, s.t_start),
                attempt=s.attempt,
                phase=s.phase,
            )
            for s in w.in_flight.values()
        ]
        w.in_flight.clear()
        if self.fold is not None:
            for rec in w.lost:
                self._add(w, rec)
        self._hold()

    @staticmethod
    def _how_it_died(w: _Worker) -> str:
        if w.error is not None:
            return f"failed: {w.error}"
        code = w.process.exitcode
        if code is not None and code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited (code {code}) without its results"

    # Merging ------------------------------------------------------------------------------

    def report(self, redact: Redactor, baseline: Baseline | None) -> RunReport:
        now_ns = 0 if self.t0 is None else round((time.monotonic() - self.t0) * 1e9)
        if self.fold is not None:
            return self._folded_report(self.fold, redact, baseline, now_ns)
        parts = [
            w.results if w.results is not None else self._dead_results(w, now_ns, redact)
            for w in self.workers
        ]
        merged = merge_results(parts, [f"worker {w.index}" for w in self.workers])
        if self.stopper.reason is not None:
            # The parent stopped them all: its reason, not the first worker's echo of it.
            merged = merged.model_copy(update={"interrupted_by": self.stopper.reason})
        regression_problem = None
        if baseline is not None:
            merged, regression_problem = judge_regressions(self.plan, merged, baseline)
        merged = with_records_kept(merged, self.plan.results_records)
        records = tuple(r for w in self.workers for r in (*w.records, *w.lost))
        outcome = RunOutcome(
            records=records,
            windows=(),
            started_at=self.started_at,
            duration_s=now_ns / 1e9,
            interrupted_by=self.stopper.reason or merged.interrupted_by,
        )
        failure = None if merged.failure is None else LensFailedInWorker(merged.failure)
        return RunReport(merged, outcome, None, failure, None, regression_problem)

    def _folded_report(
        self, fold: RunFold, redact: Redactor, baseline: Baseline | None, now_ns: int
    ) -> RunReport:
        """The run's results from the fold every worker's records went into, built as
        ``run_plan`` builds a folded run's (``lens.pipeline.folded_results``), over the
        workers' windows merged; each record kept names its worker."""
        kept: FoldedRecords | None = None
        if self.fold_failure is None:
            try:
                kept = fold.finish()
            except Exception as exc:
                self.fold_failure = exc
        sample = fold.kept.records()
        count = len(self.workers)
        windows = _merge_windows(self.plan, [self._windows_of(w) for w in self.workers])
        interrupted = self.stopper.reason or next(
            (why for w in self.workers if (why := _interruption(w)) is not None), None
        )
        failed = next(
            (
                f"shard {w.index}: {w.outcome.failure}"
                for w in self.workers
                if w.outcome is not None and w.outcome.failure is not None
            ),
            None,
        )
        failure: Exception | None = None if failed is None else LensFailedInWorker(failed)
        outcome = RunOutcome(
            records=tuple(r for _, r in sample),
            windows=windows,
            started_at=self.started_at,
            duration_s=now_ns / 1e9,
            interrupted_by=interrupted,
            harness=_worst_harness(
                [w.outcome.harness for w in self.workers if w.outcome is not None]
            ),
            failure=failure,
            records_not_kept=self.measured - len(sample),
            server_metrics=tuple(
                dataclasses.replace(m, scraped_by=f"worker {w.index}")
                for w in self.workers
                if w.outcome is not None
                for m in w.outcome.server_metrics
            ),
        )
        regression_problem = None
        overloaded = [
            f"shard {w.index}: {reason}"
            for w in self.workers
            if w.outcome is not None and w.outcome.harness is not None
            for reason in w.outcome.harness.reasons
        ]
        try:
            if self.fold_failure is not None:
                raise self.fold_failure  # noqa: TRY301 - the salvage below is its handler too
            assert kept is not None
            results = folded_results(
                self.plan, outcome, fold, kept, redact, overloaded=tuple(overloaded)
            )
            if baseline is not None:
                results, regression_problem = judge_regressions(self.plan, results, baseline)
        except Exception as exc:
            failure = failure or exc
            results = salvage_results(
                self.plan,
                outcome,
                failure,
                redact,
                summaries=salvaged_summaries(self.plan, outcome, fold),
            )
        if overloaded and results.integrity is not None and results.integrity.harness:
            # As lens merge says it: which worker was overloaded, and how.
            harness = results.integrity.harness.model_copy(
                update={"status": "overloaded", "reasons": tuple(overloaded)}
            )
            results = results.model_copy(
                update={"integrity": results.integrity.model_copy(update={"harness": harness})}
            )
        hashed = plan_hash(self.plan)
        start_at = None if self.start_at is None else self.start_at.isoformat()
        results = results.model_copy(
            update={
                "shards": tuple(
                    ShardOut(index=k, count=count, plan_hash=hashed, start_at=start_at)
                    for k in range(count)
                ),
                "records": tuple(
                    out.model_copy(update={"shard": self._worker_of.get(seq)})
                    for out, (seq, _) in zip(results.records, sample, strict=True)
                ),
            }
        )
        return RunReport(results, outcome, None, failure, None, regression_problem)

    def _windows_of(self, w: _Worker) -> tuple[StageWindow, ...]:
        """``w``'s stage windows: as it sent them, or, had it died, as its records tell:
        from its first dispatch to its last end in each unit it had started."""
        if w.outcome is not None:
            return w.outcome.windows
        out = []
        for unit in shard_plan(self.plan, w.index, len(self.workers)).stages:
            edges = w.seen.get((unit.stage, unit.provider))
            if edges is None:
                continue
            out.append(
                StageWindow(
                    stage=unit.stage,
                    provider=unit.provider,
                    t_start=edges[0],
                    t_end=edges[1],
                    planned=unit.planned_requests,
                    started=edges[2],
                    sweep=unit.sweep,
                    repetition=unit.repetition,
                )
            )
        return tuple(out)

    def _dead_results(self, w: _Worker, now_ns: int, redact: Redactor) -> Results:
        """A worker that died: what it had sent, and a ``lens_lost`` record for each
        request it had started and not ended (``_lose``), as its shard's results."""
        assert w.died is not None
        reason = f"worker {w.index} {w.died}"
        records = tuple(w.records) + tuple(w.lost)
        shard = shard_plan(self.plan, w.index, len(self.workers))
        outcome = RunOutcome(
            records=records,
            windows=_windows(shard, records),
            started_at=self.started_at,
            duration_s=now_ns / 1e9,
            interrupted_by=reason,
        )
        results = outcome_results(shard, outcome, redact)
        return shard_results(
            results, self.plan, Shard(w.index, len(self.workers)), self.start_at, redact
        )


def _windows(plan: Plan, records: Sequence[RequestRecord]) -> tuple[StageWindow, ...]:
    """A dead worker's stage windows, as far as its records tell: from its first dispatch
    to its last end in each unit it had started."""
    out = []
    for unit in plan.stages:
        mine = [r for r in records if r.stage == unit.stage and r.provider == unit.provider]
        if not mine:
            continue
        starts = [r.t_intended if r.t_intended is not None else r.t_dispatch for r in mine]
        out.append(
            StageWindow(
                stage=unit.stage,
                provider=unit.provider,
                t_start=min(starts),
                t_end=max(r.t_end for r in mine),
                planned=unit.planned_requests,
                started=sum(1 for r in mine if r.attempt == 1),
                sweep=unit.sweep,
                repetition=unit.repetition,
            )
        )
    return tuple(out)


def _interruption(w: _Worker) -> str | None:
    """Why ``w`` ended its share early, if it did."""
    if w.died is not None:
        return f"shard {w.index}: worker {w.index} {w.died}"
    if w.outcome is not None and w.outcome.interrupted_by is not None:
        return f"shard {w.index}: {w.outcome.interrupted_by}"
    return None


def _merge_windows(plan: Plan, parts: Sequence[Sequence[StageWindow]]) -> tuple[StageWindow, ...]:
    """Each unit's window across the workers (as ``lens.export.merge`` merges shards'):
    from the earliest start to the latest end of those that started anything (all of
    them when none did); the measured phase from the earliest measured start to the
    earliest cooldown; planned and started requests added up; the latest lateness."""
    by_unit: dict[tuple[str, str], list[StageWindow]] = {}
    for windows in parts:
        for w in windows:
            by_unit.setdefault((w.stage, w.provider), []).append(w)
    out = []
    for unit in plan.stages:
        got = by_unit.get((unit.stage, unit.provider))
        if not got:
            continue
        ran = [w for w in got if w.started > 0] or got
        planned = [w.planned for w in got]
        lates = [w.late_ns for w in got if w.late_ns is not None]
        measure_start = None
        if any(w.t_measure_start is not None for w in ran):
            measure_start = min(
                w.t_start if w.t_measure_start is None else w.t_measure_start for w in ran
            )
        measure_end = None
        if any(w.t_measure_end is not None for w in ran):
            measure_end = min(w.t_end if w.t_measure_end is None else w.t_measure_end for w in ran)
        out.append(
            StageWindow(
                stage=unit.stage,
                provider=unit.provider,
                t_start=min(w.t_start for w in ran),
                t_end=max(w.t_end for w in ran),
                planned=None if None in planned else sum(p or 0 for p in planned),
                started=sum(w.started for w in got),
                sweep=got[0].sweep,
                t_measure_start=measure_start,
                t_measure_end=measure_end,
                pause_ns=max(w.pause_ns for w in got),
                repetition=got[0].repetition,
                late_ns=max(lates) if lates else None,
            )
        )
    return tuple(out)


def _worst_harness(reports: Sequence[HarnessReport | None]) -> HarnessReport | None:
    """The workers' self-checks as one: each figure the worst worker's, so the run is
    distrusted when any worker's client was overloaded."""
    known = [h for h in reports if h is not None]
    if not known:
        return None

    def worst(values: Iterator[float | None]) -> float | None:
        got = [v for v in values if v is not None]
        return max(got) if got else None

    return HarnessReport(
        samples=sum(h.samples for h in known),
        loop_lag_p50_ms=worst(h.loop_lag_p50_ms for h in known),
        loop_lag_p99_ms=worst(h.loop_lag_p99_ms for h in known),
        loop_lag_max_ms=worst(h.loop_lag_max_ms for h in known),
        cpu=worst(h.cpu for h in known),
        limits=HarnessLimits(
            min(h.limits.max_loop_lag_ms for h in known), min(h.limits.max_cpu for h in known)
        ),
        span_s=max(h.span_s for h in known),
    )

"""lens as a library: the functions ``import lens`` offers, and the CLI is built on.

The steps are the CLI's: ``load_scenario`` → ``compile_plan`` → ``run`` (or ``await
run_async``) → ``Results``, then ``recommend``, ``export``, ``report`` on those results (or
on ``load_results`` of a saved file).  Every error lens raises on purpose is a
``lens.LensError``: ``ScenarioError`` (the scenario is invalid; ``.problems`` name
file:line:col), ``PlanError`` (valid, but it cannot be compiled), ``ProviderError`` (a
provider cannot be called as configured; raised before anything is sent), ``ExportError``
(an export failed or its target is malformed), ``ResultsError`` (a results file cannot be
read, or the results hold no such summary).  Failures of the system under test are not
exceptions: they are records in the results, as in the CLI.

How ``run_async`` runs, chosen by measurement (``bench/bench_embed.py``, figures in the
README): the run gets a worker thread with its own trio loop, exactly the code ``lens run``
executes, and the caller awaits it without blocking its loop, from asyncio or trio alike.
With the caller's loop idle while it awaits, TTFT and ITL errors are the CLI's; a trio guest
run on the asyncio loop (every trio step an asyncio callback) was no better there and cannot
serve trio callers; running lens natively on asyncio through anyio would put every
timestamp behind the caller's callbacks as the guest run does, and means rewriting
``lens.run``.  A caller loop that computes while lens measures delays timestamps in every
design (GIL hand-offs here); the harness self-check sees it as event-loop lag and makes
verdicts inconclusive.  ``on_record`` is called in the caller's loop (asyncio:
``loop.call_soon_threadsafe``; trio: ``TrioToken.run_sync_soon``), in the order the records
finished, never blocking the measuring thread, and every call has run before ``run_async``
returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import math
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar

import outcome
import trio
import yaml

from lens.errors import ExportError, InputError, PlanError, Problem, ResultsError, ScenarioError
from lens.export.baseline import read_baseline
from lens.export.comparison import compare_results, resolve_thresholds
from lens.export.merge import merge_results
from lens.export.registry import export_all
from lens.export.reload import rejudge, summary_from_out
from lens.export.results import RecommendationOut, Results, recommendation_out
from lens.export.results import load_results as _load_results
from lens.metrics.compare import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    Comparison,
    Options,
)
from lens.metrics.estimate import estimate_to_dict
from lens.metrics.recommend import recommend as _recommend
from lens.pipeline import Baseline
from lens.plan.compile import compile_plan as _compile_plan
from lens.plan.describe import plan_to_dict
from lens.plan.model import Plan, SlaSpec
from lens.records import RequestRecord
from lens.redact import Redactor
from lens.run.session import StopSwitch
from lens.run.tokenize_http import HttpTransport
from lens.scenario.env import interpolate
from lens.scenario.load import load_scenario as _load_scenario_file
from lens.scenario.load import parse_scenario
from lens.scenario.model import Scenario
from lens.scenario.server_tokenizer import learnt_before_closing, server_preflight
from lens.scenario.sla import SlaSyntaxError, parse_sla
from lens.scenario.thresholds import (
    Threshold,
    ThresholdError,
    parse_threshold_flag,
)
from lens.targets import ExportTarget, TargetError, parse_target, secrets_of
from lens.workers import Workers, resolve_workers, run_workers

__all__ = [
    "Comparison",
    "RunTarget",
    "ScenarioSource",
    "compare",
    "compile_plan",
    "describe_plan",
    "estimate",
    "export",
    "export_targets",
    "load_results",
    "load_scenario",
    "merge",
    "parse_targets",
    "recommend",
    "report",
    "run",
    "run_async",
]

# What ``load_scenario`` reads: a file path, YAML text, or the scenario as Python data.
ScenarioSource = str | os.PathLike[str] | Mapping[str, Any]
# What ``run`` runs: a compiled plan, a loaded scenario, or anything ``load_scenario`` reads.
RunTarget = Plan | Scenario | ScenarioSource
RecordCallback = Callable[[RequestRecord], object]

TEXT_FILE = "<scenario>"  # how problems name a scenario given as YAML text
DICT_FILE = "<dict>"  # ... and one given as a dict
CANCELLED_STOP = "cancelled"  # interrupted_by: the awaiting task was cancelled
CALLBACK_STOP = "on_record_failed"  # interrupted_by: on_record raised

_T = TypeVar("_T")


# --- scenario and plan ---------------------------------------------------------------------


def load_scenario(
    source: ScenarioSource,
    *,
    env: Mapping[str, str] | None = None,
    allow_files_outside: bool = False,
) -> Scenario:
    """Load and validate a scenario, as ``lens validate`` does.

    ``source`` is one of:

    * an ``os.PathLike`` (``pathlib.Path``): the scenario file;
    * a ``str`` with a line break (that is not the name of an existing file): YAML text
      (problems name it ``<scenario>``; ``file:`` prompts are read relative to the working
      directory); write one-line flow YAML with a trailing newline;
    * any other ``str``: a file path (so a mistyped path says "no such scenario file");
    * a ``Mapping`` of plain data (``dict``, ``list``, ``str``, numbers, ``bool``,
      ``None``): the parsed scenario (problems name the field, e.g. ``providers.sim.ttft``).

    ``${VAR}`` in configuration fields expands from ``env`` (default ``os.environ``).
    ``allow_files_outside`` lets ``file:`` prompts read files outside the scenario's folder
    (``--allow-files-outside``; only for trusted scenarios).

    Raises ``ScenarioError`` listing every problem, each with file:line:col where known.
    """
    if isinstance(source, Mapping):
        return _load_mapping(source, env, allow_files_outside)
    if isinstance(source, os.PathLike):
        path = os.fspath(source)
        return _load_scenario_file(path, env=env, allow_files_outside=allow_files_outside)
    if not isinstance(source, str):
        raise TypeError(
            f"load_scenario takes a path, YAML text or a dict, not {type(source).__name__}"
        )
    if "\n" in source and not os.path.exists(source):
        return parse_scenario(
            source, file=TEXT_FILE, env=env, allow_files_outside=allow_files_outside
        )
    return _load_scenario_file(source, env=env, allow_files_outside=allow_files_outside)


def _load_mapping(
    doc: Mapping[str, Any], env: Mapping[str, str] | None, allow_files_outside: bool
) -> Scenario:
    # Through YAML text, so that a dict gets every check a file gets (${VAR} scope, the
    # JSON Schema, prompt files); positions in that text mean nothing to the caller, so
    # problems keep only the field they are about.
    try:
        text = yaml.safe_dump(dict(doc), sort_keys=False, allow_unicode=True)
    except yaml.YAMLError as exc:
        raise ScenarioError(
            f"{DICT_FILE}: a scenario dict holds plain data only (dict, list, str, int, "
            f"float, bool, None): {exc}"
        ) from None
    try:
        return parse_scenario(
            text, file=DICT_FILE, env=env, allow_files_outside=allow_files_outside
        )
    except ScenarioError as exc:
        raise ScenarioError([_unpositioned(p) for p in exc.problems]) from None


def _unpositioned(problem: Problem) -> Problem:
    if problem.pos is None or problem.pos.file != DICT_FILE:
        return problem
    return Problem(problem.message, pos=None, path=problem.path or DICT_FILE)


def compile_plan(
    scenario: Scenario, *, env: Mapping[str, str] | None = None, repeat: int | None = None
) -> Plan:
    """Compile a validated scenario into the ``Plan`` ``lens run`` executes: providers with
    their prices (``plan.providers[id].price``), stages each with its full schedule
    (``plan.stages[i].load``: an ``OpenLoop``'s ``arrivals.offsets_s``, a ``ClosedLoop``'s
    concurrency, an ``IdleProbe``'s gaps; ``lens.plan.model``), SLAs, budget, exports.
    Nothing is sent.  ``env`` (default ``os.environ``) supplies default credentials such as
    ``OPENAI_API_KEY`` and ``AWS_REGION``.  Raises ``PlanError`` when a reference does not
    resolve (unknown provider or prompt id, missing credential ...).  ``repeat`` is ``lens
    run --repeat N``: every stage that can repeat and sets no ``repeat`` of its own runs N
    times (replacing ``defaults.repeat``)."""
    try:
        return _compile_plan(scenario, env=env, repeat=repeat)
    except PlanError as exc:
        if scenario.source_map.file != DICT_FILE:
            raise
        raise PlanError([_unpositioned(p) for p in exc.problems]) from None


def describe_plan(
    plan: Plan, *, arrivals: bool = False, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The plan as ``lens plan --json`` prints it: stages, providers, prices, expected
    duration and ``cost_estimate``, secrets redacted (``env``, default ``os.environ``, is
    where credentials read from variables are found, to mask them).  ``arrivals`` lists
    every planned send time."""
    doc = plan_to_dict(plan, arrivals=arrivals)
    doc["cost_estimate"] = estimate_to_dict(plan)
    redacted: dict[str, Any] = Redactor.for_plan(plan, os.environ if env is None else env).tree(doc)
    return redacted


def estimate(plan: Plan) -> dict[str, object]:
    """An upper bound of what the plan may cost before anything is sent: ``total_usd``
    (decimal string, None without prices), ``complete``, per-unit ``units`` and
    ``budget_usd``, as in ``lens plan``."""
    return estimate_to_dict(plan)


# --- running -------------------------------------------------------------------------------


def run(
    target: RunTarget,
    *,
    on_record: RecordCallback | None = None,
    exporters: Iterable[str] = (),
    cancel_after: float | None = None,
    progress: TextIO | None = None,
    env: Mapping[str, str] | None = None,
    baseline: BaselineSource | None = None,
    repeat: int | None = None,
    workers: Workers | None = None,
) -> Results:
    """Run a scenario (a ``Plan``, a ``Scenario``, or anything ``load_scenario`` reads) and
    return its ``Results``, as ``lens run -o`` would write them.  Blocks until the run ends;
    from async code use ``await run_async(...)``.

    * ``on_record(record)`` is called with each ``RequestRecord`` (secrets redacted) as its
      request finishes, in this thread.  If it raises, the run stops and the exception is
      re-raised here.
    * ``exporters``: ``"KIND=DEST"`` strings, as ``--export`` (``${VAR}`` expanded), done
      after the scenario's own ``export:`` entries.  If one fails, the others still run and
      ``ExportError`` is raised with ``.failures`` and ``.results`` (the complete results).
    * ``cancel_after`` (seconds, from when the first stage may start) stops the run as
      SIGTERM would: requests in flight become ``cancelled`` records and the results are
      partial (``interrupted_by="cancel_after"``, exit code 3 at best).  From the main
      thread, Ctrl-C and SIGTERM do the same (``interrupted_by="SIGINT"``/``"SIGTERM"``).
    * ``progress``: a stream for the CLI's progress line (default: none).
    * ``baseline``: results to compare the run with, as ``lens compare`` (``Results``, a
      path, or ``"git:REF:PATH"``); default: the scenario's ``regression: baseline``.  It
      is read before anything is sent (``ResultsError`` if it cannot be).  The comparison
      lands in ``results.regressions`` and a regression makes the exit code 1.
    * ``repeat``: as ``lens run --repeat N`` (a scenario target only: a ``Plan`` is
      compiled already, so ``compile_plan(..., repeat=N)`` it instead).
    * ``workers``: as ``lens run --workers N|auto``: the plan split across N processes,
      their results merged exactly (default: the scenario's ``defaults.workers``, 1 unless
      set).  The processes are started with ``spawn``, which imports the caller's main
      module again in each: a script must call ``lens.run`` under
      ``if __name__ == "__main__":`` (or the workers start the script over).  ``on_record``
      is still called in this thread, once per request, in finishing order.

    A scenario with ``tokenizer: server`` is counted by its server in a pre-flight, before
    anything is measured, when ``target`` is a file or text; a ``Scenario`` or ``Plan``
    built outside it has estimated lengths and is refused (``InputError``).

    ``results.exit_code`` is what ``lens run`` would exit with before exporting (0 pass, 1
    an SLA failed, 3 inconclusive or partial, 5 lens itself failed mid-run, with what was
    measured and ``results.failure`` naming the exception).  Raises ``ScenarioError``,
    ``PlanError`` before anything is sent, ``ProviderError`` before anything is sent (a
    provider that cannot be called as configured) and ``ExportError`` as above.
    """
    if _in_trio():
        raise RuntimeError("lens.run() blocks: from async code, use await lens.run_async(...)")
    _check_cancel_after(cancel_after)
    switch = StopSwitch()
    callback = None if on_record is None else _Guarded(on_record, switch)
    job = _Job.prepare(target, exporters, env, baseline, repeat, workers)
    results = job.execute(
        callback,
        stop=switch,
        cancel_after=cancel_after,
        progress=progress,
        handle_signals=threading.current_thread() is threading.main_thread(),
    )
    if callback is not None:
        callback.reraise()
    return job.export(results)


async def run_async(
    target: RunTarget,
    *,
    on_record: RecordCallback | None = None,
    exporters: Iterable[str] = (),
    cancel_after: float | None = None,
    progress: TextIO | None = None,
    env: Mapping[str, str] | None = None,
    baseline: BaselineSource | None = None,
    repeat: int | None = None,
    workers: Workers | None = None,
) -> Results:
    """``run`` for asyncio and trio callers: ``await lens.run_async(...)`` returns the same
    ``Results`` and raises the same errors, without blocking the caller's event loop.

    The run (loading, compiling, measuring, exporting) happens in a worker thread with its
    own trio loop, the code ``lens run`` executes, so timing is the CLI's whatever else the
    caller's loop is doing.  ``on_record`` is called in the caller's loop, in finishing
    order, without ever holding the run up; every call has happened when this returns.

    Cancelling the awaiting task stops the run (as SIGTERM would), waits for it to wind
    down (simulated servers stopped, nothing left running) and re-raises the cancellation.
    ``workers`` as for ``run`` (worker processes started from that thread, the same
    ``if __name__ == "__main__":`` rule).
    """
    host = _Host.current()
    _check_cancel_after(cancel_after)
    switch = StopSwitch()
    callback = None if on_record is None else _Guarded(on_record, switch)
    deliver = None if callback is None else host.deliver(callback)
    exported = list(exporters)

    def work() -> Results:
        job = _Job.prepare(target, exported, env, baseline, repeat, workers)
        results = job.execute(
            deliver,
            stop=switch,
            cancel_after=cancel_after,
            progress=progress,
            handle_signals=False,  # signals are the caller's to handle
        )
        return job.export(results)

    try:
        results = await host.call_in_thread(work, on_cancel=lambda: switch.stop(CANCELLED_STOP))
    finally:
        if callback is not None:
            callback.reraise()
    return results


def _check_cancel_after(seconds: float | None) -> None:
    if seconds is not None and not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"cancel_after is a number of seconds >= 0, not {seconds!r}")


@dataclass(slots=True)
class _Job:
    """One run's plan, export targets and redactor, prepared from the caller's target."""

    plan: Plan
    targets: list[ExportTarget]
    redactor: Redactor
    baseline: Baseline | None = None
    workers: int = 1

    @classmethod
    def prepare(
        cls,
        target: RunTarget,
        exporters: Iterable[str],
        env: Mapping[str, str] | None,
        baseline: BaselineSource | None = None,
        repeat: int | None = None,
        workers: Workers | None = None,
    ) -> _Job:
        environ = os.environ if env is None else env
        if isinstance(target, Plan):
            if repeat is not None:
                raise ValueError(
                    "repeat= needs a scenario: a Plan is compiled already; use "
                    "lens.compile_plan(scenario, repeat=N)"
                )
            plan = target
        elif isinstance(target, Scenario):
            plan = compile_plan(target, env=env, repeat=repeat)
        else:
            source = target
            plan = preflight_plan(
                lambda: compile_plan(load_scenario(source, env=env), env=env, repeat=repeat)
            )
        check_preflight_done(plan)
        extra = export_targets(exporters, env=environ)
        redactor = Redactor.for_plan(plan, environ).with_secrets(
            (secret, "export destination") for t in extra for secret in secrets_of(t.dest)
        )
        targets = [ExportTarget(e.kind, e.dest.reveal()) for e in plan.exports] + extra
        count = resolve_workers(plan, workers)  # a bad count: refused before anything
        return cls(plan, targets, redactor, load_baseline(plan, baseline), count)

    def execute(
        self,
        on_record: Callable[[RequestRecord], None] | None,
        *,
        stop: StopSwitch,
        cancel_after: float | None,
        progress: TextIO | None,
        handle_signals: bool,
    ) -> Results:
        report = run_workers(
            self.plan,
            self.workers,  # 1: run_plan in this process
            progress_out=progress,
            tty=progress is not None and progress.isatty(),
            on_record=on_record,
            redactor=self.redactor,
            handle_signals=handle_signals,
            stop=stop,
            cancel_after_s=cancel_after,
            baseline=self.baseline,
        )
        return report.results

    def export(self, results: Results) -> Results:
        if self.targets:
            try:
                _export(results, self.targets, self.redactor)
            except ExportError as exc:
                exc.results = results
                raise
        return results


class _Guarded:
    """The caller's ``on_record``: the first exception it raises stops the run and is kept
    to be re-raised once the run has ended (it must not become "lens failed")."""

    def __init__(self, callback: RecordCallback, switch: StopSwitch) -> None:
        self._callback = callback
        self._switch = switch
        self.error: BaseException | None = None

    def __call__(self, rec: RequestRecord) -> None:
        if self.error is not None:
            return
        try:
            self._callback(rec)
        except BaseException as exc:  # re-raised to the caller by reraise()
            self.error = exc
            self._switch.stop(CALLBACK_STOP)

    def reraise(self) -> None:
        if self.error is not None:
            raise self.error


class _Host:
    """The caller's event loop, seen from the worker thread: ``post`` queues a call in it
    (thread-safe, never blocks, first in first out), ``call_in_thread`` runs work in a new
    thread and awaits its outcome.  Both post through the same queue, so every call posted
    while the work ran has run when the awaiting task resumes."""

    @staticmethod
    def current() -> _Host:
        if _in_trio():
            return _TrioHost()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "lens.run_async() needs a running asyncio or trio loop; "
                "from synchronous code use lens.run(...)"
            ) from None
        return _AsyncioHost()

    def post(self, fn: Callable[[], object]) -> None:
        raise NotImplementedError

    def deliver(self, callback: _Guarded) -> Callable[[RequestRecord], None]:
        """``callback`` as the measuring thread calls it: posted to this loop."""
        return lambda rec: self.post(functools.partial(callback, rec))

    async def call_in_thread(self, work: Callable[[], _T], *, on_cancel: Callable[[], None]) -> _T:
        raise NotImplementedError


class _AsyncioHost(_Host):
    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()

    def post(self, fn: Callable[[], object]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody left to tell
            self._loop.call_soon_threadsafe(fn)

    async def call_in_thread(self, work: Callable[[], _T], *, on_cancel: Callable[[], None]) -> _T:
        done: asyncio.Future[outcome.Outcome[_T]] = self._loop.create_future()

        def settle(result: outcome.Outcome[_T]) -> None:
            if not done.done():
                done.set_result(result)

        thread = _start_thread(lambda: self.post(functools.partial(settle, outcome.capture(work))))
        try:
            result = await asyncio.shield(done)
        except asyncio.CancelledError:
            on_cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(done)  # the run winds down: nothing left running
            raise
        finally:
            if done.done():
                _finish(thread)
        return result.unwrap()


class _TrioHost(_Host):
    def __init__(self) -> None:
        self._token = trio.lowlevel.current_trio_token()

    def post(self, fn: Callable[[], object]) -> None:
        with contextlib.suppress(trio.RunFinishedError):  # nobody left to tell
            self._token.run_sync_soon(fn)

    async def call_in_thread(self, work: Callable[[], _T], *, on_cancel: Callable[[], None]) -> _T:
        finished = trio.Event()
        box: list[outcome.Outcome[_T]] = []

        def body() -> None:
            box.append(outcome.capture(work))
            self.post(finished.set)

        thread = _start_thread(body)
        try:
            await finished.wait()
        except trio.Cancelled:
            on_cancel()
            with trio.CancelScope(shield=True):
                await finished.wait()  # the run winds down: nothing left running
            raise
        finally:
            if finished.is_set():
                _finish(thread)
        return box[0].unwrap()


def _start_thread(body: Callable[[], None]) -> threading.Thread:
    # A daemon: should the caller's loop die without awaiting it, the process can still
    # exit (the simulated servers stop with their stdin).
    thread = threading.Thread(target=body, name="lens-run", daemon=True)
    thread.start()
    return thread


def _finish(thread: threading.Thread) -> None:
    """Once the thread has handed its outcome over, all it has left to do is return: wait
    for that (microseconds), so that nothing of the run outlives ``run_async``."""
    thread.join(timeout=1.0)


def _in_trio() -> bool:
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return False
    return True


# --- results -------------------------------------------------------------------------------


def load_results(path: str | os.PathLike[str]) -> Results:
    """Read a results file (``lens run -o``, ``Results.to_json()``) back into ``Results``,
    equal to the ones written.  Raises ``ResultsError`` for a missing, unreadable or foreign
    file."""
    return _load_results(Path(path))


ResultsSource = Results | str | os.PathLike[str]


def merge(shards: Iterable[ResultsSource]) -> Results:
    """The results of the shards of one plan (``lens run --shard I/N``; ``Results`` or
    results-file paths) merged into one run's, as ``lens merge``: records concatenated
    (each keeps its ``shard``), summaries rebuilt from them, token costs summed exactly,
    the plan's SLAs judged once on the merged data (distrusted if any shard's client was
    overloaded).  ``ResultsError`` unless every shard of one plan (equal plan hash) is
    there exactly once, saying which is missing, doubled or foreign; rules in
    ``lens.export.merge``."""
    loaded: list[Results] = []
    labels: list[str] = []
    for k, source in enumerate(shards):
        if isinstance(source, Results):
            loaded.append(source)
            labels.append(f"results #{k}")
        else:
            loaded.append(load_results(source))
            labels.append(os.fspath(source))
    return merge_results(loaded, labels)


# A baseline may also be read from Git: "git:REF:PATH" (lens.export.baseline).
BaselineSource = ResultsSource


def load_baseline(plan: Plan, baseline: BaselineSource | None = None) -> Baseline | None:
    """The baseline a run of ``plan`` is compared with: ``baseline`` (``Results``, a path
    from the current directory, or ``git:REF:PATH`` run here), else the scenario's
    ``regression: baseline`` (a path from the scenario's folder, or ``git:`` run there);
    None when neither names one.  ``ResultsError`` when it cannot be read: before a run,
    so a typo fails at once rather than after the run."""
    if isinstance(baseline, Results):
        return Baseline(baseline, "baseline")
    if baseline is not None:
        spec = os.fspath(baseline)
        return Baseline(read_baseline(spec), spec)
    block = plan.regression
    if block is None or block.baseline is None:
        return None
    return Baseline(read_baseline(block.baseline, cwd=Path(block.base_dir)), block.baseline)


ThresholdSpec = Mapping[str, str | float] | Iterable[str]


def compare(
    baseline: ResultsSource,
    current: ResultsSource,
    *,
    thresholds: ThresholdSpec | None = None,
    statistics: Sequence[str] | None = None,
    stages: Iterable[str] | None = None,
    providers: Iterable[str] | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Comparison:
    """Compare ``current`` results against a ``baseline`` (``Results`` or results-file
    paths), as ``lens compare``: for every stage x provider both hold (``stages`` and
    ``providers`` narrow it down) and every statistic (default
    ``lens.scenario.thresholds.DEFAULT_CHECKS``: ``ttft.p50``, ``ttft.p95``, ``itl.p50``,
    ``itl.p95``, ``e2e.p95``, ``output_tokens_per_s.p50``, ``error_rate``, ``cost.mean``,
    plus any other statistic ``thresholds`` names), a ``Check`` with both values, the
    change, its ``confidence`` interval and a verdict: regressed, improved, unchanged or
    inconclusive (the interval straddles the threshold, or too few samples).

    ``thresholds``: ``{"ttft.p95": "+10%", "itl.p50": "+2ms", "error_rate": "+0.5%"}`` or
    ``["ttft.p95=+10%", ...]``; default +10 % of the baseline, +2 percentage points for
    rates.  Percentile intervals come from a bootstrap over requests (``resamples``
    replicates, seeded by ``seed``: the same files give the same answer); method and
    assumptions in ``lens.metrics.compare``.  ``comparison.exit_code`` is what ``lens
    compare`` exits with: 0 nothing regressed, 1 something did, 3 only inconclusive.

    Raises ``ResultsError`` for a file that cannot be read, and ``InputError`` for
    results of different schema versions, nothing to compare, a filter naming an id
    neither holds, or a threshold that does not parse (every such problem listed).
    """
    if not 0.5 <= confidence < 1:
        raise ValueError(f"confidence is a level in [0.5, 1), not {confidence!r}")
    if resamples < 100:
        raise ValueError(f"resamples must be at least 100, not {resamples!r}")
    labels = (_label(baseline, "baseline"), _label(current, "current"))
    checks = resolve_thresholds(_threshold_map(thresholds), statistics)
    base = baseline if isinstance(baseline, Results) else load_results(baseline)
    cur = current if isinstance(current, Results) else load_results(current)
    return compare_results(
        base,
        cur,
        checks=checks,
        stages=None if stages is None else list(stages),
        providers=None if providers is None else list(providers),
        options=Options(confidence=confidence, resamples=resamples, seed=seed),
        labels=labels,
    )


def _label(source: ResultsSource, default: str) -> str:
    return default if isinstance(source, Results) else os.fspath(source)


def _threshold_map(spec: ThresholdSpec | None) -> dict[str, str | float | Threshold]:
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        return dict(spec)
    out: dict[str, str | float | Threshold] = {}
    problems: list[Problem] = []
    for text in spec:
        try:
            label, threshold = parse_threshold_flag(text)
        except ThresholdError as exc:
            problems.append(Problem(f"threshold: {exc}"))
            continue
        out[label] = threshold
    if problems:
        raise InputError(problems)
    return out


def recommend(
    results: Results, sla: str | Sequence[str] = (), *, stages: Iterable[str] | None = None
) -> RecommendationOut:
    """The cheapest provider meeting the SLA, as ``lens recommend``: ``.best`` (None when no
    provider is eligible) and every ``.candidates`` entry, ranked, with why the others were
    excluded.  ``sla`` (one expression or several, e.g. ``"ttft.p95 < 500ms"``) judges the
    results again instead of by the run's own SLAs; ``stages`` considers only those.

    Raises ``ScenarioError`` for an SLA expression that does not parse, ``ResultsError``
    for a stage the results do not hold (or results without records to re-judge)."""
    texts = [sla] if isinstance(sla, str) else list(sla)
    try:
        slas = tuple(SlaSpec(parse_sla(text), where="--sla") for text in texts)
    except SlaSyntaxError as exc:
        raise ScenarioError(str(exc)) from exc
    only = None if stages is None else frozenset(stages)
    known = list(dict.fromkeys(s.stage for s in results.summaries))
    unknown = sorted((only or frozenset()) - set(known))
    if unknown:
        raise ResultsError(
            f"no stage {', '.join(unknown)} in the results; stages: {', '.join(known) or 'none'}"
        )
    if slas:
        summaries, verdicts = rejudge(results, slas)
    else:
        summaries = [summary_from_out(s) for s in results.summaries]
        verdicts = tuple(results.verdicts)  # the judge's own Verdicts, as stored
    models = {s.provider: s.model for s in results.summaries}
    return recommendation_out(_recommend(summaries, verdicts, models, only))


def export_targets(
    specs: Iterable[str], *, env: Mapping[str, str] | None = None, label: str = "exporters"
) -> list[ExportTarget]:
    """``"KIND=DEST"`` strings as export targets, ``${VAR}`` expanded from ``env`` (default
    ``os.environ``).  Raises ``ExportError`` naming every malformed one (``label:`` first)."""
    targets, problems = parse_targets(specs, os.environ if env is None else env, label)
    if problems:
        raise ExportError(failures=[str(p) for p in problems])
    return targets


def parse_targets(
    specs: Iterable[str], env: Mapping[str, str], label: str
) -> tuple[list[ExportTarget], list[Problem]]:
    """The targets, and a problem for each spec that is not one (``lens run --export``
    raises these as input errors, ``export_targets`` as an ``ExportError``)."""
    targets: list[ExportTarget] = []
    problems: list[Problem] = []
    for spec in specs:
        expanded = interpolate(spec, env)
        if expanded.problems:
            problems += [Problem(f"{label}: {p.message}") for p in expanded.problems]
            continue
        try:
            targets.append(parse_target(expanded.value))
        except TargetError as exc:
            problems.append(Problem(f"{label}: {exc}"))
    return targets, problems


def export(
    results: Results, *targets: str | ExportTarget, env: Mapping[str, str] | None = None
) -> None:
    """Export ``results`` to each ``"KIND=DEST"`` target (``csv=``, ``prometheus=``,
    ``influx=``, ``junit=``, ``markdown=``, ``html=``; ``${VAR}`` expanded from ``env``),
    as ``lens export --to``.  One that fails does not stop the others; then ``ExportError``
    is raised, its ``.failures`` one line per failed target (credentials masked).  A
    malformed target raises ``ExportError`` before anything is exported."""
    texts = [t for t in targets if isinstance(t, str)]
    parsed = iter(export_targets(texts, env=env))
    resolved = [next(parsed) if isinstance(t, str) else t for t in targets]
    _export(results, resolved, Redactor())


def _export(results: Results, targets: Sequence[ExportTarget], redactor: Redactor) -> None:
    failures = export_all(results, targets)
    if failures:
        raise ExportError(failures=[redactor(str(f)) for f in failures])


def report(results: Results, path: str | os.PathLike[str]) -> Path:
    """Write the self-contained HTML report of ``results`` to ``path`` (as ``lens
    report``; needs the ``report`` extra, matplotlib) and return the path.  Raises
    ``ExportError`` when matplotlib is missing or the file cannot be written."""
    from lens.export.report import write_html  # noqa: PLC0415  (matplotlib: on demand)

    dest = Path(path)
    write_html(results, dest)
    return dest


def preflight_plan(load: Callable[[], Plan]) -> Plan:
    """``load()`` (load and compile a scenario) inside ``tokenizer: server``'s pre-flight:
    the server counts the prompts before anything is measured, on connections of its own
    that close before the run starts; the plan records the calls made and their time."""
    with server_preflight(HttpTransport()) as session:
        plan = load()
        learnt_before_closing(session, any(unit.trace is not None for unit in plan.stages))
    if plan.tokenizer_preflight is None:
        return plan
    made = dataclasses.replace(
        plan.tokenizer_preflight, calls=session.calls, seconds=round(session.seconds, 6)
    )
    return dataclasses.replace(plan, tokenizer_preflight=made)


def check_preflight_done(plan: Plan) -> None:
    """A plan compiled outside the pre-flight has estimated lengths where the scenario
    asked for the server's: refused rather than run as if exact."""
    preflight = plan.tokenizer_preflight
    if preflight is not None and preflight.calls is None:
        raise InputError(
            "tokenizer: server: this plan was compiled without the server's pre-flight (its "
            "token counts are estimates): run the scenario from its file or text "
            "(lens run FILE, lens.run(path)) so lens asks the server first"
        )

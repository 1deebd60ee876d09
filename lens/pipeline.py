"""One run, stage by stage: the plan in, ``Results`` out.

Each step is a small function, and ``run_plan`` reads as their list: guard the budget,
watch the harness, execute (adaptive sweeps choosing their steps as they go), summarise,
judge, analyse (``lens.metrics.analysis``), assemble results.  The CLI adds only what is
about the terminal: warnings, writing files, exporting, exit codes.

lens failing (a bug) after measuring started never loses the measurement: the run stops,
and the report carries the failure next to results built from what was measured (in full
if summarising still works, else ``salvage_results``: every record, no summaries).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import TextIO

from lens import exitcodes
from lens.errors import InputError, describe, innermost
from lens.export.comparison import compare_results, resolve_thresholds
from lens.export.results import Results, ShardOut, build_results, salvage_results
from lens.metrics.analysis import analyse_run
from lens.metrics.cost import RunBill, bill_run, record_cost
from lens.metrics.estimate import request_bound
from lens.metrics.fold import FoldedRecords, RunFold, analyse_fold
from lens.metrics.judge import Verdict, distrust, judge
from lens.metrics.repetitions import repetition_spreads
from lens.metrics.slawatch import SlaWatch
from lens.metrics.summary import Summary, SummaryBuilder, Window, pooled_window
from lens.metrics.sweep_outcomes import SweepOutcome, distrust_sweeps
from lens.metrics.windows import WindowFeed, judge_all
from lens.plan.describe import plan_to_dict
from lens.plan.model import Plan, PromptSpec, ProviderSpec, SlaSpec
from lens.plan.split import Shard, plan_hash, planned_starts, shard_plan
from lens.pricing import GpuHourRate
from lens.records import HarnessLimits, Phase, RequestRecord, RequestStart, RunOutcome
from lens.redact import Redactor
from lens.run.budget import BudgetGuard
from lens.run.harness import HarnessMonitor
from lens.run.session import StopSwitch, run_blocking
from lens.run.simulators import live_providers
from lens.run.slastop import SlaStop
from lens.sweeps.driver import SweepDriver


@dataclass(frozen=True, slots=True)
class RunReport:
    results: Results
    outcome: RunOutcome
    budget: BudgetGuard | None  # None: the scenario set no budget
    # lens itself failed after measuring started: ``results`` hold what was measured, and
    # the CLI reports this (exit 5) once they are written.
    failure: BaseException | None = None
    sla_stop: str | None = None  # why an SLA with stop_on_fail ended the run early
    # Why the run could not be compared with its baseline (nothing in common): the gate
    # could not judge, so the exit code is at best inconclusive.
    regression_problem: str | None = None


@dataclass(frozen=True, slots=True)
class Baseline:
    """Results a run is compared with, and how to name them in reports (the path, or
    ``git:REF:PATH``)."""

    results: Results
    label: str


def run_plan(
    plan: Plan,
    *,
    progress_out: TextIO | None = None,
    tty: bool = False,
    on_record: Callable[[RequestRecord], None] | None = None,
    redactor: Redactor | None = None,
    handle_signals: bool = True,
    stop: StopSwitch | None = None,
    cancel_after_s: float | None = None,
    baseline: Baseline | None = None,
    shard: Shard | None = None,
    start_at: datetime | None = None,
    live: Mapping[str, ProviderSpec] | None = None,
    start_monotonic: float | None = None,
    on_start: Callable[[RequestStart], None] | None = None,
    before_unit: Callable[[int], Awaitable[float | None]] | None = None,
    scrape_server_metrics: bool = True,
) -> RunReport:
    """Run ``plan``; ``on_record`` sees each request's record (redacted) as it finishes.
    SIGINT/SIGTERM (``handle_signals``: the main thread only), ``stop`` and
    ``cancel_after_s`` end the run early, its results partial.  ``baseline``: results to
    compare the run with (``judge_regressions``).  ``shard``: run only that shard's part of
    the plan (lens.plan.split); ``start_at``: wait for that wall-clock instant first
    (lens.run.start).  ``live``: the providers already reachable (a worker process is
    handed the simulators its parent started), else started here (``live_providers``);
    ``start_monotonic``/``on_start``/``before_unit``/``scrape_server_metrics``: see
    ``lens.run.session.execute``."""
    redact = redactor if redactor is not None else Redactor.for_plan(plan)
    whole = plan
    if shard is not None:
        plan = shard_plan(whole, shard.index, shard.count)
        if plan.results_records_default:
            # lens merge rebuilds the summaries from every shard's records.
            plan = replace(plan, results_records=None, results_records_default=False)
    budget = budget_guard(plan)
    watch = SlaWatch(plan, plan.slas) if any(s.stop_on_fail for s in plan.slas) else None
    harness = harness_monitor(plan)
    sweeps = SweepDriver(plan)
    fold = run_fold(plan)
    fold_failure: Exception | None = None
    measured = 0  # records emitted, folded or not

    def folding(feed: Callable[[], None]) -> None:
        nonlocal fold_failure
        if fold_failure is None:
            try:
                feed()
            except Exception as exc:
                # Analysing fails after the run instead, where it cannot stop the run and
                # what was measured is salvaged.
                fold_failure = exc

    def record(rec: RequestRecord) -> None:
        nonlocal measured
        measured += 1
        sweeps.record(rec)
        if fold is not None:
            folding(lambda: fold.add(rec))
        if on_record is not None:
            on_record(rec)

    def started(start: RequestStart) -> None:
        if fold is not None:
            folding(lambda: fold.start(start))
        if on_start is not None:
            on_start(start)

    def placed(rec: RequestRecord, origin_ns: int) -> None:
        if fold is not None:
            folding(lambda: fold.place(rec, origin_ns))

    follow = placed if fold is not None and fold.windows.windowed else None
    sla_stop = (
        SlaStop(watch.on_record, watch.on_unit_end, follow=follow)
        if watch is not None
        else (SlaStop(follow=follow) if follow is not None else None)
    )
    outcome: RunOutcome | None = None
    failure: BaseException | None = None
    regression_problem: str | None = None
    try:
        with _providers(plan, live) as providers:
            outcome = run_blocking(
                plan,
                providers,
                progress_out=progress_out,
                tty=tty,
                budget=budget,
                harness=harness,
                drive=sweeps.drive,
                on_record=record,
                redactor=redact,
                handle_signals=handle_signals,
                stop=stop,
                cancel_after_s=cancel_after_s,
                sla_stop=sla_stop,
                start_at=start_at,
                start_monotonic=start_monotonic,
                on_start=started if fold is not None else on_start,
                before_unit=before_unit,
                # Shards started at one instant start every later unit at its planned one.
                unit_starts=None
                if shard is None or start_at is None
                else planned_starts(whole).offsets,
                keep_records=fold is None,
                scrape_server_metrics=scrape_server_metrics,
            )
    except Exception as exc:
        if outcome is None:
            raise  # nothing was measured: the CLI's boundary reports it
        failure = exc  # stopping the simulators failed, after the run: keep the run
    failure = failure or outcome.failure
    kept: FoldedRecords | None = None
    if fold is not None:
        if fold_failure is None:
            try:
                kept = fold.finish()
            except Exception as exc:
                fold_failure = exc
        # Folding failed: the sample kept until then (the --records file has every line).
        sample = tuple(r for _, r in fold.kept.records()) if kept is None else kept.records
        outcome = replace(outcome, records=sample, records_not_kept=measured - len(sample))
    try:
        if fold_failure is not None:
            raise fold_failure  # noqa: TRY301 - the salvage below is its handler too
        slas = sweeps.scoped(plan.slas)  # a scope naming a sweep takes in its steps
        if fold is not None and kept is not None:
            results = folded_results(
                plan, outcome, fold, kept, redact, watch=watch, sweeps=judge_sweeps(sweeps, outcome)
            )
        else:
            bill = bill_run(plan.providers, outcome.windows, outcome.records)
            summaries, phase_summaries = summarise(plan, outcome, slas, bill)
            verdicts = mark_stopper(judge_run(slas, summaries, outcome, plan), watch)
            analysis = analyse_run(plan, outcome, summaries, verdicts, bill)
            results = build_results(
                plan,
                outcome,
                summaries,
                verdicts,
                analysis,
                phase_summaries,
                sweeps=judge_sweeps(sweeps, outcome),
                redactor=redact,
                repetitions=repetition_spreads(summaries),
            )
        if shard is not None:
            results = shard_results(results, whole, shard, start_at, redact)
        if baseline is not None:
            results, regression_problem = judge_regressions(plan, results, baseline)
        if failure is not None and results.failure is None:
            # The run itself ended; lens failed after it (stopping a simulator).
            results = results.model_copy(
                update={
                    "failure": redact(describe(innermost(failure))),
                    "exit_code": exitcodes.LENS_FAILED,
                }
            )
    except Exception as exc:
        failure = failure or exc
        results = salvage_results(
            plan, outcome, failure, redact, summaries=salvaged_summaries(plan, outcome, fold)
        )
    return RunReport(
        results,
        outcome,
        budget,
        failure,
        None if sla_stop is None else sla_stop.reason,
        regression_problem,
    )


def folded_results(
    plan: Plan,
    outcome: RunOutcome,
    fold: RunFold,
    kept: FoldedRecords,
    redact: Redactor,
    *,
    watch: SlaWatch | None = None,
    sweeps: tuple[SweepOutcome, ...] = (),
    overloaded: tuple[str, ...] = (),
) -> Results:
    """The results of a run whose records were folded as they finished (``run_fold``):
    summaries, verdicts and analyses from the accumulators, over ``outcome``'s windows;
    ``outcome.records`` are the records kept (``kept.records``).  A folded run's SLAs are
    the plan's (a sweep's widened scopes need the old path).  Shared by ``run_plan`` and
    the parent of ``lens run --workers`` (lens.workers), which folds every worker's
    records itself; ``overloaded``: why its workers were (naming each), the verdicts'
    distrust instead of ``outcome.harness``'s reasons."""
    bill = bill_run(plan.providers, outcome.windows, ())
    summaries, phase_summaries = summarise(plan, outcome, plan.slas, bill, fold.summaries)
    judged = replace(outcome, harness=None) if overloaded else outcome
    verdicts = judge_run(plan.slas, summaries, judged, plan, fold.windows)
    if overloaded:
        verdicts = distrust(verdicts, overloaded)
    verdicts = mark_stopper(verdicts, watch)
    analysis = analyse_fold(fold, kept, outcome, summaries, verdicts, bill)
    return build_results(
        plan,
        outcome,
        summaries,
        verdicts,
        analysis,
        phase_summaries,
        sweeps=sweeps,
        redactor=redact,
        repetitions=repetition_spreads(summaries),
    )


def run_fold(plan: Plan) -> RunFold | None:
    """The accumulators to feed each record as it finishes, so that the run keeps only the
    records its results list (``lens.metrics.fold``); None when the analyses need the whole
    run first, and every record is kept until it ends: GPU-hour prices share each unit's
    bill among its records by busy time, and an adaptive sweep widens the SLAs' scopes to
    the steps it ran."""
    builder = streaming_summaries(plan)
    return None if builder is None else RunFold(plan, plan.slas, builder)


def salvaged_summaries(
    plan: Plan, outcome: RunOutcome, fold: RunFold | None
) -> tuple[Summary, ...]:
    """What the failure path can still say of a folded run (whose records were not kept):
    its summaries, if they can be built; nothing otherwise, or for a run that kept them."""
    if fold is None:
        return ()
    try:
        return summarise(plan, outcome, plan.slas, None, fold.summaries)[0]
    except Exception:
        return ()


@contextmanager
def _providers(
    plan: Plan, live: Mapping[str, ProviderSpec] | None
) -> Iterator[Mapping[str, ProviderSpec]]:
    if live is not None:
        yield live
        return
    with live_providers(plan) as providers:
        yield providers


def outcome_results(plan: Plan, outcome: RunOutcome, redact: Redactor) -> Results:
    """``outcome``'s results, as ``run_plan`` builds them (no sweeps, no stop_on_fail
    marks): how lens.workers reports a worker that died from what it had sent."""
    bill = bill_run(plan.providers, outcome.windows, outcome.records)
    summaries, phase_summaries = summarise(plan, outcome, plan.slas, bill)
    verdicts = judge_run(plan.slas, summaries, outcome, plan)
    analysis = analyse_run(plan, outcome, summaries, verdicts, bill)
    return build_results(
        plan,
        outcome,
        summaries,
        verdicts,
        analysis,
        phase_summaries,
        redactor=redact,
        repetitions=repetition_spreads(summaries),
    )


def shard_results(
    results: Results, whole: Plan, shard: Shard, start_at: datetime | None, redact: Redactor
) -> Results:
    """A shard's results: the whole plan in the plan section (what lens merge judges
    against), the shard named with the plan's hash, and on each record."""
    return results.model_copy(
        update={
            "plan": redact.tree(plan_to_dict(whole)),
            "shard": ShardOut(
                index=shard.index,
                count=shard.count,
                plan_hash=plan_hash(whole),
                start_at=None if start_at is None else start_at.isoformat(),
            ),
            "records": tuple(r.model_copy(update={"shard": shard.index}) for r in results.records),
            # Every shard scrapes the engines it runs against: say which one these are.
            "server_metrics": tuple(
                m.model_copy(update={"scraped_by": f"shard {shard.index}"})
                for m in results.server_metrics
            ),
        }
    )


def judge_regressions(
    plan: Plan, results: Results, baseline: Baseline
) -> tuple[Results, str | None]:
    """``results`` with their comparison to ``baseline`` (the scenario's ``regression:``
    thresholds over lens compare's defaults) and the exit code of both judgements; when
    nothing can be compared, the results unchanged but at best inconclusive, and why."""
    thresholds = dict(plan.regression.thresholds) if plan.regression is not None else {}
    try:
        comparison = compare_results(
            baseline.results,
            results,
            checks=resolve_thresholds(thresholds, None),
            labels=(baseline.label, "this run"),
        )
    except InputError as exc:
        problem = "; ".join(str(p) for p in exc.problems)
        code = exitcodes.worst(results.exit_code, exitcodes.INCONCLUSIVE)
        return results.model_copy(update={"exit_code": code}), problem
    code = exitcodes.worst(results.exit_code, comparison.exit_code)
    return results.model_copy(update={"regressions": comparison, "exit_code": code}), None


def budget_guard(plan: Plan) -> BudgetGuard | None:
    if plan.budget_usd is None:
        return None

    def reserve(spec: ProviderSpec, prompt: PromptSpec, max_tokens: int | None) -> Decimal | None:
        # The run hands over the live spec; a simulator's own settings (its output bound)
        # are in the plan's.
        return request_bound(plan.providers.get(spec.id, spec), prompt, max_tokens)

    def cost(rec: RequestRecord, spec: ProviderSpec) -> Decimal | None:
        breakdown = record_cost(rec, spec)
        return None if breakdown is None else breakdown.total

    return BudgetGuard(plan.budget_usd, reserve, cost)


def harness_monitor(plan: Plan) -> HarnessMonitor:
    limits = plan.integrity
    return HarnessMonitor(HarnessLimits(limits.max_loop_lag_ms, limits.max_cpu))


def summary_builder(plan: Plan, slas: tuple[SlaSpec, ...]) -> SummaryBuilder:
    """An empty builder of ``plan``'s summaries, judged against ``slas``."""
    repetitions = {u.stage: u.repetition for u in plan.stages if u.repetition is not None}
    return SummaryBuilder(
        providers=plan.providers,
        slas=slas,
        pooled_stages=pooled_stages(plan),
        repetitions=repetitions,
    )


def streaming_summaries(plan: Plan) -> SummaryBuilder | None:
    """A builder to feed each record as it finishes (sketches, counts and token costs are
    incremental), or None when the summaries need the whole run first: GPU-hour prices
    share each unit's bill among its records by busy time, and an adaptive sweep widens
    the SLAs' scopes to the steps it ran."""
    if plan.sweeps or any(isinstance(p.price, GpuHourRate) for p in plan.providers.values()):
        return None
    return summary_builder(plan, plan.slas)


def summarise(
    plan: Plan,
    outcome: RunOutcome,
    slas: tuple[SlaSpec, ...],
    bill: RunBill | None = None,
    streamed: SummaryBuilder | None = None,
) -> tuple[tuple[Summary, ...], tuple[Summary, ...]]:
    """The measured summaries (judged) and the warmup/cooldown ones, each over its own part
    of the stage window; a stage with ``sla_includes_warmup`` pools them, over its whole
    window.  Costs are their records' (``bill``: the GPU-hour shares, worked out here when
    not given), so a stage's summaries add up to its cost.  ``streamed``: a builder fed
    every record of ``outcome`` as it finished (``streaming_summaries``), used as is."""
    if streamed is not None:
        builder = streamed
    else:
        if bill is None:
            bill = bill_run(plan.providers, outcome.windows, outcome.records)
        builder = summary_builder(plan, slas)
        builder.add_many(outcome.records, bill.record_usd)
    windows = measured_spans(plan, outcome)
    set_apart: tuple[Phase, ...] = ("warmup", "cooldown")
    phase_windows = {
        (w.stage, w.provider, phase): w.span(phase) for w in outcome.windows for phase in set_apart
    }
    # A repeated stage's pooled summaries: over its repetitions' windows added up.
    spans: dict[tuple[str, str], list[Window]] = {}
    phase_spans: dict[tuple[str, str, Phase], list[Window]] = {}
    for w in outcome.windows:
        if w.repetition is None:
            continue
        spans.setdefault((w.repetition.stage, w.provider), []).append(
            windows[(w.stage, w.provider)]
        )
        for phase in set_apart:
            key = (w.repetition.stage, w.provider, phase)
            phase_spans.setdefault(key, []).append(phase_windows[(w.stage, w.provider, phase)])
    windows.update((key, pooled_window(parts)) for key, parts in spans.items())
    phase_windows.update((key, pooled_window(parts)) for key, parts in phase_spans.items())
    return builder.build(windows), builder.build_phases(phase_windows)


def pooled_stages(plan: Plan) -> frozenset[str]:
    """Stages whose warmup and cooldown are judged with their measured requests."""
    return frozenset(u.stage for u in plan.stages if u.phases.pooled)


def measured_spans(plan: Plan, outcome: RunOutcome) -> dict[tuple[str, str], tuple[int, int]]:
    """The judged span of each stage x provider: its measured phase, or its whole window
    when it pools warmup (``sla_includes_warmup``)."""
    pooled = pooled_stages(plan)
    return {
        (w.stage, w.provider): (w.t_start, w.t_end) if w.stage in pooled else w.span("measure")
        for w in outcome.windows
    }


def judge_run(
    slas: tuple[SlaSpec, ...],
    summaries: tuple[Summary, ...],
    outcome: RunOutcome,
    plan: Plan | None = None,
    windows: WindowFeed | None = None,
) -> tuple[Verdict, ...]:
    """Verdicts, made inconclusive when the client itself was the bottleneck.  Windowed
    assertions are judged from the records, given the ``plan`` (without it, inconclusive),
    or from the ``windows`` fed as the run went (a folded run keeps no records)."""
    if plan is None:
        verdicts = judge(slas, summaries)
    elif windows is not None:
        verdicts = windows.judge(slas, summaries, measured_spans(plan, outcome))
    else:
        verdicts = judge_all(
            slas,
            summaries,
            outcome.records,
            measured_spans(plan, outcome),
            providers=plan.providers,
            pooled=pooled_stages(plan),
        )
    if outcome.harness is not None:
        verdicts = distrust(verdicts, outcome.harness.reasons)
    return verdicts


def mark_stopper(verdicts: tuple[Verdict, ...], watch: SlaWatch | None) -> tuple[Verdict, ...]:
    """The verdict of the ``stop_on_fail`` assertion that ended the run, marked so."""
    if watch is None or watch.stopped_by is None:
        return verdicts
    spec, stage, provider = watch.stopped_by
    return tuple(
        replace(v, stopped_run=True)
        if (v.sla, v.where, v.stage, v.provider) == (spec.expr.text, spec.where, stage, provider)
        else v
        for v in verdicts
    )


def judge_sweeps(sweeps: SweepDriver, outcome: RunOutcome) -> tuple[SweepOutcome, ...]:
    """What the adaptive sweeps found, flagged distrusted when the client itself was the
    bottleneck: the run's harness report applies to every sweep of the run."""
    if outcome.harness is None:
        return tuple(sweeps.outcomes)
    return distrust_sweeps(sweeps.outcomes, outcome.harness.reasons)

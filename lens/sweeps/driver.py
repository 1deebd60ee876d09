"""Run a plan whose sweeps decide their next step from the steps before.

This composes the executor and the metrics (run one step, aggregate and judge it, choose
the next), so it sits above both: ``lens.run`` never imports metrics.  It reuses the
run's ``StageRunner`` one unit at a time (same clock, same records, same windows), so a
step chosen at run time is a stage unit like any other in the results.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from lens.metrics.cost import bill_run
from lens.metrics.judge import judge
from lens.metrics.summary import aggregate
from lens.metrics.sweep_outcomes import SweepOutcome, SweepProbe
from lens.plan.compile import concurrency_step, rate_step, step_id
from lens.plan.model import AdaptiveSweep, Plan, SlaSpec, StagePlan
from lens.records import RequestRecord
from lens.run.executor import StageRunner
from lens.sweeps.steps import Controller, NextStep, controller_for, cut_short


class SweepDriver:
    """``drive`` runs the plan through a runner; ``record`` must see every record.

    Units outside adaptive sweeps run as planned, in order.  The units of an adaptive
    sweep run in rounds: each round runs the next step of every provider whose controller
    is still going, in the plan's provider order.
    """

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.outcomes: list[SweepOutcome] = []
        self._adaptive = {s.sweep: s for s in plan.sweeps}
        self._ran: dict[str, list[str]] = {}  # sweep id -> stage ids of its steps that ran
        self._collecting: list[RequestRecord] | None = None

    def record(self, rec: RequestRecord) -> None:
        if self._collecting is not None:
            self._collecting.append(rec)

    def scoped(self, slas: Sequence[SlaSpec]) -> tuple[SlaSpec, ...]:
        """``slas`` whose scope names an adaptive sweep, widened to the steps that ran."""
        out = []
        for spec in slas:
            ran = self._ran.get(spec.stage or "", [])
            steps = tuple(dict.fromkeys([*spec.steps, *ran]))
            out.append(dataclasses.replace(spec, steps=steps) if ran else spec)
        return tuple(out)

    async def drive(self, runner: StageRunner) -> None:
        runner.start()
        if any(s.kind != "stop_when" for s in self.plan.sweeps):
            runner.progress.total = None  # the number of steps is not known yet
        stages = self.plan.stages
        i = 0
        while i < len(stages):
            if _out_of_budget(runner):
                return  # later stages never start
            unit = stages[i]
            sweep = self._adaptive.get(unit.sweep.sweep) if unit.sweep is not None else None
            if sweep is None:
                if not runner.may_start(unit):
                    return  # out of budget: this and later stages never start
                await runner.run_unit(unit)
                i += 1
                continue
            group = [u for u in stages[i:] if u.sweep is not None and u.sweep.sweep == sweep.sweep]
            await self._sweep(runner, sweep, group)
            i += len(group)

    async def _sweep(
        self, runner: StageRunner, sweep: AdaptiveSweep, group: list[StagePlan]
    ) -> None:
        planned: dict[str, list[StagePlan]] = {}
        for unit in group:
            planned.setdefault(unit.provider, []).append(unit)
        controllers: dict[str, Controller] = {}
        pending: dict[str, NextStep] = {}
        for pid, units in planned.items():
            steps = [u.sweep for u in units if u.sweep is not None]
            controllers[pid] = controller_for(sweep, pid, steps)
            pending[pid] = next(controllers[pid])
        probes: dict[str, list[SweepProbe]] = {pid: [] for pid in planned}
        running: dict[str, str] = {}  # provider -> the step it is in the middle of
        cause = "the run was interrupted"  # a signal cancels the run inside a step
        try:
            while pending:
                for k, pid in enumerate(list(pending)):
                    unit = _unit(sweep, planned[pid], pending[pid], len(probes[pid]), pause=k == 0)
                    if not runner.may_start(unit):
                        stopped = runner.sla_stop is not None and runner.sla_stop.tripped
                        cause = (
                            "an SLA with stop_on_fail failed" if stopped else "the budget ran out"
                        )
                        return
                    running[pid] = unit.stage
                    probe = await self._step(runner, sweep, unit)
                    del running[pid]
                    probes[pid].append(probe)
                    try:
                        pending[pid] = controllers[pid].send(probe)
                    except StopIteration as done:
                        self.outcomes.append(done.value)
                        del pending[pid]
        finally:
            # Stopped before its end (budget, Ctrl-C): each provider still going gets its
            # account of the steps that ran, marked cut short, with no answer.
            for pid in pending:
                steps = [u.sweep for u in planned[pid] if u.sweep is not None]
                self.outcomes.append(
                    cut_short(sweep, pid, steps, probes[pid], cause, running.get(pid))
                )

    async def _step(self, runner: StageRunner, sweep: AdaptiveSweep, unit: StagePlan) -> SweepProbe:
        """Run ``unit``, then judge its summary against the sweep's conditions."""
        self._collecting = []
        try:
            await runner.run_unit(unit)
        finally:
            records, self._collecting = self._collecting, None
        window = runner.windows[-1]
        # The step's GPU-hour cost is its billed span (pause and set-up included), as in
        # the run's bill; judged before later steps exist, so from the windows so far.
        bill = bill_run(self.plan.providers, runner.windows, records)
        (summary,) = aggregate(
            records,
            stage_windows={(unit.stage, unit.provider): (window.t_start, window.t_end)},
            providers=self.plan.providers,
            gpu_usd=bill.record_usd,
        )
        verdicts = judge(sweep.conditions, [summary])
        passed = [v.outcome == "pass" for v in verdicts]
        # stop_when: any condition holding ends the sweep; a search (find_max_rate,
        # find_max_concurrency): a step passes when every SLA does (inconclusive is no pass:
        # too few samples prove nothing).
        held = any(passed) if sweep.kind == "stop_when" else bool(passed) and all(passed)
        self._ran.setdefault(sweep.sweep, []).append(unit.stage)
        assert unit.sweep is not None
        return SweepProbe(
            stage=unit.stage,
            rate_per_s=unit.sweep.rate_per_s,
            concurrency=unit.sweep.concurrency,
            held=held,
            rps=summary.rps,
            detail="; ".join(v.reason for v in verdicts),
        )


def _unit(
    sweep: AdaptiveSweep, planned: list[StagePlan], step: NextStep, index: int, *, pause: bool
) -> StagePlan:
    """The unit of ``step``: the planned one when the plan lists it, else a new rate or
    concurrency step.  The sweep's pause comes before each round but the first."""
    pause = pause and index > 0
    name = step_id(sweep.sweep, rate=step.rate_per_s, concurrency=step.concurrency)
    for unit in planned:
        if unit.stage == name:
            return dataclasses.replace(unit, pause_before_s=sweep.pause_s if pause else 0.0)
    if step.concurrency is not None:
        return concurrency_step(planned[0], sweep, step.concurrency, index, pause=pause)
    assert step.rate_per_s is not None
    return rate_step(planned[0], sweep, step.rate_per_s, index, pause=pause)


def _out_of_budget(runner: StageRunner) -> bool:
    return runner.budget is not None and runner.budget.exhausted

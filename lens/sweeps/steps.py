"""The step logic of each adaptive sweep kind, as generators: pure, no I/O, no clock.

A controller yields the ``NextStep`` to run and is sent back the ``SweepProbe`` the driver made
of it (the step's summary judged against the sweep's conditions); it returns the sweep's
``SweepOutcome``.  One controller runs per sweep x provider, so each provider gets its own
answer.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass

from lens.metrics.sweep_outcomes import SweepOutcome, SweepProbe
from lens.plan.compile import step_id
from lens.plan.model import AdaptiveSweep
from lens.records import SweepStep
from lens.sweeps.search import (
    N,
    SearchResult,
    bisect_max_concurrency,
    bisect_max_rate,
    round_rate,
)


@dataclass(frozen=True, slots=True)
class NextStep:
    rate_per_s: float | None = None  # open loop
    concurrency: int | None = None  # closed loop


Controller = Generator[NextStep, SweepProbe, SweepOutcome]


def controller_for(sweep: AdaptiveSweep, provider: str, planned: Sequence[SweepStep]) -> Controller:
    """The controller of ``sweep`` for ``provider``; ``planned`` are the steps the plan
    lists for it, in order."""
    if sweep.kind == "stop_when":
        return stop_when_steps(sweep, provider, planned)
    if sweep.kind == "find_max_rate":
        return find_max_rate_steps(sweep, provider)
    if sweep.kind == "find_max_concurrency":
        return find_max_concurrency_steps(sweep, provider)
    return auto_steps(sweep, provider, planned)


def _step(step: SweepStep) -> NextStep:
    return NextStep(step.rate_per_s, step.concurrency)


def stop_when_steps(
    sweep: AdaptiveSweep, provider: str, planned: Sequence[SweepStep]
) -> Generator[NextStep, SweepProbe, SweepOutcome]:
    """Every planned step in order, until one where a stop condition holds (kept)."""
    probes: list[SweepProbe] = []
    for k, step in enumerate(planned):
        probe = yield _step(step)
        probes.append(probe)
        if probe.held:
            rest = len(planned) - k - 1
            return SweepOutcome(
                sweep.sweep,
                provider,
                "stop_when",
                f"stopped after {probe.stage}: {probe.detail}"
                + (f"; the {rest} later step(s) were not run" if rest else ""),
                tuple(probes),
                not_run=tuple(
                    step_id(sweep.sweep, rate=s.rate_per_s, concurrency=s.concurrency)
                    for s in planned[k + 1 :]
                ),
            )
    conditions = " or ".join(c.expr.text for c in sweep.conditions)
    return SweepOutcome(
        sweep.sweep,
        provider,
        "stop_when",
        f"every step ran: {conditions} never held",
        tuple(probes),
    )


def _run_search(
    search: Generator[N, bool, SearchResult[N]], step: Callable[[N], NextStep]
) -> Generator[NextStep, SweepProbe, tuple[SearchResult[N], tuple[SweepProbe, ...]]]:
    """Drive a bisection: run the step for each value it proposes and tell it whether that
    step held; return its result and the probes, in the order run."""
    probes: list[SweepProbe] = []
    try:
        value = next(search)
        while True:
            probe = yield step(value)
            probes.append(probe)
            value = search.send(probe.held)
    except StopIteration as done:
        return done.value, tuple(probes)


def find_max_rate_steps(
    sweep: AdaptiveSweep, provider: str
) -> Generator[NextStep, SweepProbe, SweepOutcome]:
    """Bisection over the search range; a step passes when every condition passes."""
    assert sweep.search_range is not None
    low, high = sweep.search_range
    result, probes = yield from _run_search(
        bisect_max_rate(low, high, sweep.precision, sweep.max_steps),
        lambda rate: NextStep(rate_per_s=rate),
    )
    found = result.found
    slas = " and ".join(c.expr.text for c in sweep.conditions)
    reason = result.reason if found is None else f"{found:g}/s meets {slas}: {result.reason}"
    return SweepOutcome(
        sweep.sweep,
        provider,
        "find_max_rate",
        reason,
        probes,
        max_rate_per_s=found,
        bracket=(result.passing, result.failing),
    )


def find_max_concurrency_steps(
    sweep: AdaptiveSweep, provider: str
) -> Generator[NextStep, SweepProbe, SweepOutcome]:
    """Bisection over whole concurrencies; a step passes when every condition passes."""
    assert sweep.concurrency_range is not None
    low, high = sweep.concurrency_range
    result, probes = yield from _run_search(
        bisect_max_concurrency(low, high, sweep.concurrency_precision, sweep.max_steps),
        lambda concurrency: NextStep(concurrency=concurrency),
    )
    found = result.found
    slas = " and ".join(c.expr.text for c in sweep.conditions)
    reason = result.reason if found is None else f"{found} in flight meets {slas}: {result.reason}"
    return SweepOutcome(
        sweep.sweep,
        provider,
        "find_max_concurrency",
        reason,
        probes,
        max_concurrency=found,
        bracket=(result.passing, result.failing),
    )


def spread_rates(sync_rps: float | None, saturated_rps: float | None, steps: int) -> list[float]:
    """``steps`` rates evenly spaced strictly between the two throughputs (none when the
    saturated one is not above the synchronous one: there is no range to step through)."""
    if sync_rps is None or saturated_rps is None or saturated_rps <= sync_rps:
        return []
    width = saturated_rps - sync_rps
    rates = (round_rate(sync_rps + width * k / (steps + 1)) for k in range(1, steps + 1))
    return list(dict.fromkeys(rates))  # rounding may merge neighbours of a narrow range


def auto_steps(
    sweep: AdaptiveSweep, provider: str, planned: Sequence[SweepStep]
) -> Generator[NextStep, SweepProbe, SweepOutcome]:
    """The synchronous and saturation steps, then rate steps between their throughputs."""
    assert sweep.auto_steps is not None
    sync, saturated = planned
    probes = [(yield _step(sync))]
    probes.append((yield _step(saturated)))
    sync_rps, saturated_rps = probes[0].rps, probes[1].rps
    rates = spread_rates(sync_rps, saturated_rps, sweep.auto_steps)
    for rate in rates:  # a generator: each step is sent back before the next is chosen
        probe = yield NextStep(rate_per_s=rate)
        probes.append(probe)
    if rates:
        reason = (
            f"{len(rates)} rate step(s), {rates[0]:g}/s to {rates[-1]:g}/s, between the "
            f"synchronous {sync_rps:.3g} req/s and the saturated {saturated_rps:.3g} req/s"
        )
    else:
        reason = (
            f"no rate steps: the saturated throughput ({_rps(saturated_rps)}) is not above "
            f"the synchronous one ({_rps(sync_rps)})"
        )
    return SweepOutcome(
        sweep.sweep,
        provider,
        "auto",
        reason,
        tuple(probes),
        sync_rps=sync_rps,
        saturated_rps=saturated_rps,
    )


def cut_short(
    sweep: AdaptiveSweep,
    provider: str,
    planned: Sequence[SweepStep],
    probes: Sequence[SweepProbe],
    cause: str,
    running: str | None = None,
) -> SweepOutcome:
    """The outcome of a sweep the run stopped before it could end (``cause``, e.g. the
    budget ran out): the probes that ran, no answer, and for stop_when the planned steps
    never run.  ``running`` is the step that was cut off in the middle, if one was."""
    during = f" during {running}" if running is not None else ""
    reason = f"cut short: {cause}{during}, after {len(probes)} completed step(s)"
    if sweep.kind in ("find_max_rate", "find_max_concurrency"):
        # A step's load: its rate (a rate search) or its concurrency.
        load = [(p.rate_per_s or p.concurrency, p.held) for p in probes]
        passed = [x for x, held in load if held and x is not None]
        failed = [x for x, held in load if not held and x is not None]
        unit = "/s" if sweep.kind == "find_max_rate" else " in flight"
        so_far = [f"{max(passed):g}{unit} passed"] if passed else []
        so_far += [f"{min(failed):g}{unit} failed"] if failed else []
        reason += f" ({' and '.join(so_far)} so far)" if so_far else ""
        reason += "; no answer"
    ran = {p.stage for p in probes} | {running}
    return SweepOutcome(
        sweep.sweep,
        provider,
        sweep.kind,
        reason,
        tuple(probes),
        not_run=tuple(
            name
            for s in planned
            if (name := step_id(sweep.sweep, rate=s.rate_per_s, concurrency=s.concurrency))
            not in ran
        )
        if sweep.kind == "stop_when"
        else (),
        cut_short=True,
    )


def _rps(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.3g} req/s"

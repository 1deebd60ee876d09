"""Client-side cost and accuracy of lens's streaming path against the simulated server.

Every figure comes from a real run: lens's executor in this process, the simulated server
in another process (its own core), talking over loopback.

* CPU per streamed token: this process's CPU time (user + system) over the tokens it
  received, at closed-loop concurrency 1, 64 and 256 (server: TTFT 200 ms, ITL 20 ms,
  128 tokens, as in the reference figures of GuideLLM and AIPerf).
* Timing error: measured minus configured TTFT and ITL, p50 and p99.
* Absorption: tokens/s lens accounts for when the server sends with zero delay.
* Pacing: achieved vs planned rate and dispatch lag of constant-rate schedules.
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from dataclasses import dataclass

import trio

from lens.metrics.pacing import pacing as stage_pacing
from lens.metrics.request import itl_values
from lens.plan.compile import PRECISE_SPIN_S
from lens.plan.model import (
    ArrivalSchedule,
    ClosedLoop,
    Message,
    OpenLoop,
    Plan,
    PromptSpec,
    ProviderSpec,
    SimSettings,
    StagePlan,
)
from lens.records import RequestRecord
from lens.run.session import execute
from lens.run.simulators import live_providers

PROMPT = PromptSpec(id="p", messages=(Message("user", "Count to one hundred and twenty eight."),))


def sim_plan(sim: SimSettings, unit: StagePlan) -> Plan:
    """A one-stage plan against the simulated server (shared by the bench sections)."""
    return Plan(
        name="bench",
        description="",
        source="bench",
        providers={
            "sim": ProviderSpec(
                id="sim", type="simulated", model="sim", base_url=None, settings=sim
            )
        },
        prompts={"p": PROMPT},
        stages=(unit,),
        slas=(),
    )


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@dataclass(frozen=True)
class Run:
    records: tuple[RequestRecord, ...]
    wall_s: float
    cpu_s: float

    @property
    def ok(self) -> list[RequestRecord]:
        return [r for r in self.records if r.ok]

    @property
    def tokens(self) -> int:
        return sum(r.output_tokens or 0 for r in self.ok)


def run_once(sim: SimSettings, unit: StagePlan) -> Run:
    plan = sim_plan(sim, unit)
    with live_providers(plan) as providers:
        cpu0 = _cpu_s()
        outcome = trio.run(lambda: execute(plan, providers, handle_signals=False))
        cpu = _cpu_s() - cpu0
    return Run(outcome.records, outcome.duration_s, cpu)


def pct(xs: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1), as lens reports them."""
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = max(0, min(len(xs) - 1, round(q * len(xs) + 0.5) - 1))
    return xs[k]


def closed(concurrency: int, requests: int) -> StagePlan:
    return StagePlan(
        stage=f"c{concurrency}",
        provider="sim",
        pattern="concurrency",
        prompts=("p",),
        timeout_s=60.0,
        max_tokens=None,
        load=ClosedLoop(concurrency=concurrency, requests=requests),
    )


def warm_up() -> None:
    """Pay one-time costs (lazy imports, first connection) outside every measurement."""
    run_once(SimSettings(ttft_s=0.0, itl_s=0.0, output_tokens=4), closed(2, 4))


def streaming(emit: Callable[[str], None]) -> None:
    warm_up()
    sim = SimSettings(ttft_s=0.2, itl_s=0.02, output_tokens=128)
    emit("closed loop vs simulated server (TTFT 200 ms, ITL 20 ms, 128 tokens)")
    emit(
        f"{'streams':>8} {'reqs':>5} {'errors':>6} {'CPU us/token':>13} "
        f"{'TTFT err p50':>13} {'p99':>8} {'warm p99':>9} {'ITL err p50':>12} {'p99':>8}"
    )
    emit("  (warm p99: requests after each stream's first, i.e. without the opening burst)")
    for conc, reqs in ((1, 5), (64, 192), (256, 512)):
        run = run_once(sim, closed(conc, reqs))
        ok = run.ok
        ttft_err = [(r.t_first_token - r.t_dispatch) / 1e6 - 200.0 for r in ok if r.t_first_token]
        warm_err = [
            (r.t_first_token - r.t_dispatch) / 1e6 - 200.0
            for r in ok
            if r.t_first_token and r.index >= conc
        ]
        itl_err = [v - 20.0 for r in ok for v in itl_values(r)]
        us_per_token = run.cpu_s / max(run.tokens, 1) * 1e6
        emit(
            f"{conc:>8} {len(run.records):>5} {len(run.records) - len(ok):>6} "
            f"{us_per_token:>13.1f} {pct(ttft_err, 0.5):>+12.2f}ms "
            f"{pct(ttft_err, 0.99):>+7.2f}ms {pct(warm_err, 0.99):>+7.2f}ms "
            f"{pct(itl_err, 0.5):>+11.2f}ms {pct(itl_err, 0.99):>+7.2f}ms"
        )


def absorption(emit: Callable[[str], None]) -> None:
    sim = SimSettings(ttft_s=0.0, itl_s=0.0, output_tokens=128)
    run = run_once(sim, closed(64, 3000))
    cpu_us = run.cpu_s / max(run.tokens, 1) * 1e6
    emit(
        f"zero-delay absorption (64 streams, 128 tokens): {run.tokens / run.wall_s:,.0f} "
        f"tokens/s, {len(run.ok) / run.wall_s:,.0f} req/s, CPU {cpu_us:.1f} us/token, "
        f"errors {len(run.records) - len(run.ok)}"
    )


def pacing(emit: Callable[[str], None]) -> None:
    sim = SimSettings(ttft_s=0.05, itl_s=0.01, output_tokens=16)
    emit("constant-rate pacing vs simulated server (TTFT 50 ms, ITL 10 ms, 16 tokens)")
    emit(
        f"{'planned/s':>10} {'achieved/s':>11} {'error':>7} "
        f"{'lag p50':>9} {'lag p99':>9} {'max':>8}"
    )
    cases = [(rate, seconds, 0.0) for rate, seconds in ((50.0, 4.0), (200.0, 3.0), (500.0, 2.0))]
    cases += [(rate, seconds, PRECISE_SPIN_S) for rate, seconds in ((50.0, 4.0), (200.0, 3.0))]
    for rate, seconds, spin_s in cases:
        n = int(rate * seconds)
        unit = StagePlan(
            stage=f"r{rate:g}",
            provider="sim",
            pattern="constant-rate",
            prompts=("p",),
            timeout_s=30.0,
            max_tokens=None,
            load=OpenLoop(ArrivalSchedule(tuple(i / rate for i in range(n)))),
            spin_s=spin_s,
        )
        # The figures lens run reports per open-loop stage (results: summaries[].pacing).
        (p,) = stage_pacing(run_once(sim, unit).records).values()
        assert p.achieved_rate_per_s is not None
        assert p.rate_error is not None
        emit(
            f"{rate:>10.0f} {p.achieved_rate_per_s:>11.2f} {p.rate_error * 100:>+6.2f}% "
            f"{p.lag_p50_ms:>7.3f}ms {p.lag_p99_ms:>7.3f}ms {p.lag_max_ms:>6.2f}ms"
            + ("  (pacing: precise)" if spin_s else "")
        )


__all__ = ["absorption", "closed", "pacing", "pct", "sim_plan", "streaming"]

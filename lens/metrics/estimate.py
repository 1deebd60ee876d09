"""What a plan may cost, before anything is sent: ``lens plan``'s bound and the
reservations that keep a run inside its ``budget``.

A bound, not a forecast.  Token prices: every request (every attempt its retries allow)
uses its whole output limit (``max_tokens``, or what the simulator is set to send) and
about one token per three characters of prompt (English runs nearer four, so this errs
high).  A request with no output limit has no bound at all (``UNLIMITED_OUTPUT_TOKENS``
is only what a budget's reservation assumes where the plan lets it through).

GPU-hour prices: the deployment is paid for time (``lens.pricing.gpu``), so the bound is
the longest the unit can take, lead-in included, with every request running to its
timeout (``time_bound_s``):

* a request's life: ``timeout``, and for each retry its longest back-off and ``timeout``
  again;
* a closed loop of N requests at concurrency c: ``ceil(N / c)`` lives one after another
  (the warmup's rounds, then the measured ones'), or its duration plus one life (or its
  drain grace) when that is shorter;
* an open loop: its last arrival plus one life (``ceil(n / max_concurrency)`` lives when
  a cap queues them), or its cutoff plus the drain grace;
* an idle probe: its gaps plus one life per probe;
* before the window: the sweep's pause and the connection set-up (at most the connect
  timeout).

A closed loop that runs until a duration has no request count, so at token prices it is
unbounded; every other stage has a bound.  Adaptive sweeps add steps at run time that the
plan does not list: their bound is the listed steps'.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from lens.plan.duration import SETTLE_MARGIN_S, duration_estimate, setup_bound_s
from lens.plan.model import Plan, PromptSpec, ProviderSpec, SimSettings, StagePlan
from lens.pricing import GpuHourRate, ModelPrice, request_cost

CHARS_PER_TOKEN_BOUND = 3
MESSAGE_OVERHEAD_TOKENS = 4  # role and separators, per message
UNLIMITED_OUTPUT_TOKENS = 4096
_NS_PER_S = 1_000_000_000
_MICRO_USD = Decimal("0.000001")


def input_tokens_bound(prompt: PromptSpec) -> int:
    if not prompt.messages and prompt.input_tokens is not None:
        # Known by its length alone (a trace row, lens.plan.trace): its text will be lens's
        # synthetic text, about 4 characters a token.
        chars = prompt.input_tokens * 4
        return math.ceil(chars / CHARS_PER_TOKEN_BOUND) + MESSAGE_OVERHEAD_TOKENS
    return sum(
        math.ceil(len(m.content) / CHARS_PER_TOKEN_BOUND) + MESSAGE_OVERHEAD_TOKENS
        for m in prompt.messages
    )


def output_limit(spec: ProviderSpec, prompt: PromptSpec, max_tokens: int | None) -> int | None:
    """The most output tokens one request can bring; None: nothing limits it."""
    limit = prompt.token_limit(max_tokens)
    if isinstance(spec.settings, SimSettings):
        sim = spec.settings.output_tokens
        return sim if limit is None else min(sim, limit)
    return limit


def output_tokens_bound(spec: ProviderSpec, prompt: PromptSpec, max_tokens: int | None) -> int:
    limit = output_limit(spec, prompt, max_tokens)
    return UNLIMITED_OUTPUT_TOKENS if limit is None else limit


def request_bound(spec: ProviderSpec, prompt: PromptSpec, max_tokens: int | None) -> Decimal | None:
    """The most one request should cost at token prices; None without token prices."""
    if not isinstance(spec.price, ModelPrice):
        return None
    cost = request_cost(
        spec.price,
        input_tokens=input_tokens_bound(prompt),
        output_tokens=output_tokens_bound(spec, prompt, max_tokens),
        provider_type=spec.type,
    )
    assert cost is not None  # counts are given
    return cost.total


def attempts(unit: StagePlan) -> int:
    return 1 + (unit.retries.max_retries if unit.retries is not None else 0)


def time_bound_s(unit: StagePlan, spec: ProviderSpec) -> float:
    """The longest the unit can be billed for: pause, set-up and window (the window at its
    timeouts' bound, ``lens.plan.duration``)."""
    window = duration_estimate(unit, spec).max_s
    assert window is not None, "every unit has a request count, a duration or a schedule"
    return unit.pause_before_s + setup_bound_s(unit) + window


def _ceil_usd(amount: Decimal) -> Decimal:
    return amount.quantize(_MICRO_USD, rounding=ROUND_CEILING)


@dataclass(frozen=True, slots=True)
class UnitEstimate:
    stage: str
    provider: str
    usd: Decimal | None  # the bound; None: no price known, or no bound (``bounded``)
    basis: str  # how it was worked out, for people
    bounded: bool = True  # False: priced, but nothing bounds what the unit can cost
    bound_s: float | None = None  # GPU-hour: the time the bound pays for
    expected_usd: Decimal | None = None  # GPU-hour: at the plan's expected duration


def unit_estimate(plan: Plan, unit: StagePlan) -> UnitEstimate:
    spec = plan.providers[unit.provider]
    if isinstance(spec.price, GpuHourRate):
        seconds = time_bound_s(unit, spec)
        usd = _ceil_usd(spec.price.cost_of(round(seconds * _NS_PER_S)))
        expected = duration_estimate(unit, spec).expected_s
        expected_usd = (
            None
            if expected is None
            else spec.price.cost_of(round((expected + unit.pause_before_s) * _NS_PER_S))
        )
        return UnitEstimate(
            unit.stage,
            unit.provider,
            usd,
            f"GPU-hours for {seconds:.1f}s (every request at its {unit.timeout_s:g}s timeout)",
            bound_s=seconds,
            expected_usd=None if expected_usd is None else _ceil_usd(expected_usd),
        )
    if spec.price is None:
        return UnitEstimate(unit.stage, unit.provider, None, "no price known")
    if unit.trace is not None:
        replay = unit.trace
        total = Decimal(0)
        for row in range(len(replay)):
            bound = request_bound(spec, replay.sizing_prompt(row), unit.max_tokens)
            assert bound is not None  # token-priced, and every row has its output length
            total += bound * attempts(unit)
        return UnitEstimate(
            unit.stage, unit.provider, total, f"{len(replay)} trace requests at their limits"
        )
    unlimited = [
        p for p in unit.prompts if output_limit(spec, plan.prompts[p], unit.max_tokens) is None
    ]
    if unlimited:
        return UnitEstimate(
            unit.stage,
            unit.provider,
            None,
            f"unbounded: prompt {unlimited[0]!r} has no output limit (max_tokens)",
            bounded=False,
        )
    count = unit.planned_requests
    if count is None:
        return UnitEstimate(
            unit.stage,
            unit.provider,
            None,
            "unbounded: requests until its duration, their number unknown",
            bounded=False,
        )
    # Request i sends prompts[i % len(prompts)]: count each prompt's turns, not each request.
    full, rest = divmod(count, len(unit.prompts))
    turns = Counter(unit.prompts * full + unit.prompts[:rest])
    total = Decimal(0)
    for prompt_id, n in turns.items():
        bound = request_bound(spec, plan.prompts[prompt_id], unit.max_tokens)
        assert bound is not None  # token-priced
        total += bound * n * attempts(unit)
    retried = f", {attempts(unit)} attempts each" if unit.retries is not None else ""
    return UnitEstimate(
        unit.stage, unit.provider, total, f"{count} requests at their limits{retried}"
    )


def plan_estimate(plan: Plan) -> tuple[UnitEstimate, ...]:
    return tuple(unit_estimate(plan, unit) for unit in plan.stages)


def first_request_usd(plan: Plan) -> Decimal | None:
    """What the budget must allow before the first request can go: its worst case, with
    the first unit's pause and set-up and the guard's margin for GPU-hours."""
    if not plan.stages:
        return None
    unit = plan.stages[0]
    spec = plan.providers[unit.provider]
    if isinstance(spec.price, GpuHourRate):
        lead = unit.pause_before_s + setup_bound_s(unit) + unit.timeout_s + SETTLE_MARGIN_S
        return _ceil_usd(spec.price.cost_of(round(lead * _NS_PER_S)))
    first = plan.prompts[unit.prompt_for(0)] if unit.trace is None else unit.trace.sizing_prompt(0)
    return request_bound(spec, first, unit.max_tokens)


def estimate_to_dict(plan: Plan) -> dict[str, object]:
    """Upper bound of what the plan may cost (money as decimal strings).

    ``total_usd`` bounds the priced stages when each of them has a bound (``unbounded``
    lists those that have none; then it is null); ``complete``: every stage is priced and
    bounded, and no adaptive sweep adds steps at run time.
    """
    units = plan_estimate(plan)
    unbounded = [f"{u.stage}/{u.provider}" for u in units if not u.bounded]
    unpriced = [f"{u.stage}/{u.provider}" for u in units if u.usd is None and u.bounded]
    known = [u.usd for u in units if u.usd is not None]
    total = None if unbounded or not known else sum(known, Decimal(0))
    gpu_units = [u for u in units if u.bound_s is not None]
    expected = [u.expected_usd for u in gpu_units if u.expected_usd is not None]
    runtime = [s.sweep for s in plan.sweeps]
    first = first_request_usd(plan) if plan.budget_usd is not None else None
    # The guard keeps back its margin for lens's own work after the last deadline.
    margin = max(
        (
            _ceil_usd(spec.price.cost_of(round(SETTLE_MARGIN_S * _NS_PER_S)))
            for spec in plan.providers.values()
            if isinstance(spec.price, GpuHourRate)
        ),
        default=Decimal(0),
    )
    return {
        "upper_bound": True,
        "total_usd": None if total is None else str(total),
        "complete": not unbounded and not unpriced and not runtime,
        "unbounded": unbounded,
        "unpriced": unpriced,
        "runtime_steps": runtime,  # adaptive sweeps: steps beyond the listed ones
        # GPU-hours at the plan's expected durations (simulators), for comparison
        "expected_gpu_usd": str(sum(expected, Decimal(0)))
        if gpu_units and len(expected) == len(gpu_units)
        else None,
        "units": [
            {
                "stage": u.stage,
                "provider": u.provider,
                "usd": None if u.usd is None else str(u.usd),
                "bounded": u.bounded,
                "basis": u.basis,
                "bound_s": u.bound_s,
                "expected_usd": None if u.expected_usd is None else str(u.expected_usd),
            }
            for u in units
        ],
        "budget_usd": None if plan.budget_usd is None else str(plan.budget_usd),
        # The budget is a hard bound (lens.run.budget): with a total above it, or stages
        # without a bound, the run may stop early; below ``first_request_usd`` it sends
        # nothing at all.
        "budget_fits": None
        if plan.budget_usd is None
        else (total is not None and total + margin <= plan.budget_usd and not runtime),
        "first_request_usd": None if first is None else str(first),
    }

"""What a plan may cost, before anything is sent: ``lens plan``'s estimate and the
reservations that keep a run inside its ``budget``.

An estimate is an upper bound, not a forecast: every request is taken to use its whole
output limit (``max_tokens``, or what the simulator is set to send) and about one token
per three characters of prompt (English runs nearer four, so this errs high).  A request
with no output limit is bounded by ``UNLIMITED_OUTPUT_TOKENS``.  GPU-hour providers cost
their expected wall time (``lens.plan.duration``), or its upper bound from the timeouts
when no wall time is expected.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

from lens.plan.duration import duration_estimate
from lens.plan.model import Plan, PromptSpec, ProviderSpec, StagePlan
from lens.pricing import GpuHourRate, ModelPrice, request_cost

CHARS_PER_TOKEN_BOUND = 3
MESSAGE_OVERHEAD_TOKENS = 4  # role and separators, per message
UNLIMITED_OUTPUT_TOKENS = 4096
_NS_PER_S = 1_000_000_000
_MICRO_USD = Decimal("0.000001")


def input_tokens_bound(prompt: PromptSpec) -> int:
    return sum(
        math.ceil(len(m.content) / CHARS_PER_TOKEN_BOUND) + MESSAGE_OVERHEAD_TOKENS
        for m in prompt.messages
    )


def output_tokens_bound(spec: ProviderSpec, prompt: PromptSpec, max_tokens: int | None) -> int:
    limit = prompt.token_limit(max_tokens)
    if spec.sim is not None:
        return spec.sim.output_tokens if limit is None else min(spec.sim.output_tokens, limit)
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


@dataclass(frozen=True, slots=True)
class UnitEstimate:
    stage: str
    provider: str
    usd: Decimal | None  # None: no price, or an open-ended (duration-only) closed loop
    basis: str  # how it was worked out, for people


def unit_estimate(plan: Plan, unit: StagePlan) -> UnitEstimate:
    spec = plan.providers[unit.provider]
    if isinstance(spec.price, GpuHourRate):
        duration = duration_estimate(unit, spec)
        # Without an expectation (a closed loop of a real provider), its timeouts' bound.
        seconds = duration.expected_s if duration.expected_s is not None else duration.max_s
        if seconds is None:
            return UnitEstimate(unit.stage, unit.provider, None, "duration unknown")
        usd = spec.price.cost_of(round(seconds * _NS_PER_S)).quantize(_MICRO_USD)
        within = "" if duration.expected_s is not None else "at most "
        return UnitEstimate(unit.stage, unit.provider, usd, f"GPU-hours for {within}{seconds:.1f}s")
    if spec.price is None:
        return UnitEstimate(unit.stage, unit.provider, None, "no price known")
    count = unit.planned_requests
    if count is None:
        return UnitEstimate(unit.stage, unit.provider, None, "request count unknown")
    # Request i sends prompts[i % len(prompts)]: count each prompt's turns, not each request.
    full, rest = divmod(count, len(unit.prompts))
    turns = Counter(unit.prompts * full + unit.prompts[:rest])
    total = Decimal(0)
    for prompt_id, n in turns.items():
        bound = request_bound(spec, plan.prompts[prompt_id], unit.max_tokens)
        assert bound is not None  # token-priced
        total += bound * n
    return UnitEstimate(unit.stage, unit.provider, total, f"{count} requests at their limits")


def plan_estimate(plan: Plan) -> tuple[UnitEstimate, ...]:
    return tuple(unit_estimate(plan, unit) for unit in plan.stages)


def estimate_to_dict(plan: Plan) -> dict[str, object]:
    """Upper bound of what the plan may cost (money as decimal strings)."""
    units = plan_estimate(plan)
    known = [u.usd for u in units if u.usd is not None]
    return {
        "upper_bound": True,
        "total_usd": str(sum(known, Decimal(0))) if known else None,
        "complete": len(known) == len(units),
        "units": [
            {
                "stage": u.stage,
                "provider": u.provider,
                "usd": None if u.usd is None else str(u.usd),
                "basis": u.basis,
            }
            for u in units
        ],
        "budget_usd": None if plan.budget_usd is None else str(plan.budget_usd),
    }

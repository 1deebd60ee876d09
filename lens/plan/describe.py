"""The plan as plain data, for ``lens plan`` and for the ``plan`` section of results.

Pure functions; secrets are replaced by where they came from (``${OPENAI_API_KEY}``), so a
plan can be printed, logged and committed without leaking a key.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from lens.plan.model import Plan, ProviderSpec, StagePlan

# Types that speak Chat Completions and so take max_tokens_field / include_usage.
_CHAT_TYPES = frozenset({"openai", "openai-compatible", "azure-openai"})


def provider_to_dict(spec: ProviderSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"id": spec.id, "type": spec.type, "model": spec.model}
    if spec.base_url is not None:
        out["base_url"] = spec.base_url
    if spec.api_key is not None:
        out["api_key"] = f"<secret from {spec.api_key.source or 'scenario'}>"
    if spec.headers:
        # Header values may carry credentials too: print the names only.
        out["headers"] = sorted(name for name, _ in spec.headers)
    if spec.type in _CHAT_TYPES:
        out["max_tokens_field"] = spec.max_tokens_field
        out["include_usage"] = spec.include_usage
    if spec.type == "bedrock":
        out["region"] = spec.region
        out["api"] = spec.bedrock_api
        out["auth"] = "bearer" if spec.api_key is not None else "aws-sigv4"
        if spec.aws_profile:
            out["profile"] = spec.aws_profile
    if spec.type == "azure-openai":
        out["deployment"] = spec.deployment
        out["api_version"] = spec.api_version  # None: the v1 API
        out["auth"] = spec.auth
    if spec.type == "anthropic":
        out["anthropic_version"] = spec.anthropic_version
    if spec.sim is not None:
        s = spec.sim
        out["sim"] = {
            "ttft_ms": s.ttft_s * 1e3,
            "itl_ms": s.itl_s * 1e3,
            "output_tokens": s.output_tokens,
            "jitter": s.jitter,
            "error_429": s.error_429,
            "error_500": s.error_500,
            "cut_stream": s.cut_stream,
            "seed": s.seed,
            "protocol": s.protocol,
        }
    return out


def _sim_e2e_s(spec: ProviderSpec, max_tokens: int | None) -> float | None:
    if spec.sim is None:
        return None
    n = spec.sim.output_tokens if max_tokens is None else min(spec.sim.output_tokens, max_tokens)
    return spec.sim.ttft_s + max(n - 1, 0) * spec.sim.itl_s


def expected_duration_s(unit: StagePlan, spec: ProviderSpec) -> float | None:
    """Wall time the unit should take, where it can be known before sending anything."""
    e2e = _sim_e2e_s(spec, unit.max_tokens)
    if unit.arrivals is not None:
        last = unit.arrivals.offsets_s[-1] if unit.arrivals.offsets_s else 0.0
        if unit.max_concurrency is not None and e2e is not None:
            waves = math.ceil(unit.arrivals.count / unit.max_concurrency)
            return max(last, waves * e2e)
        return last + e2e if e2e is not None else last
    if unit.duration_s is not None:
        return unit.duration_s
    if unit.requests is not None and e2e is not None:
        return math.ceil(unit.requests / (unit.concurrency or 1)) * e2e
    return None


def stage_to_dict(unit: StagePlan, spec: ProviderSpec) -> dict[str, Any]:
    out: dict[str, Any] = {
        "stage": unit.stage,
        "provider": unit.provider,
        "pattern": unit.pattern,
        "loop": "open" if unit.open_loop else "closed",
        "requests": unit.planned_requests,
        "timeout_s": unit.timeout_s,
        "max_tokens": unit.max_tokens,
        "prompts": sorted(set(unit.prompts)),
    }
    if unit.arrivals is not None:
        offs = unit.arrivals.offsets_s
        gaps = [b - a for a, b in itertools.pairwise(offs)]
        out["arrivals"] = {
            "count": len(offs),
            "span_s": unit.arrivals.span_s,
            "mean_rate_per_s": (len(offs) - 1) / unit.arrivals.span_s
            if unit.arrivals.span_s > 0
            else None,
            "min_gap_s": min(gaps) if gaps else None,
            "max_gap_s": max(gaps) if gaps else None,
        }
    if unit.concurrency is not None:
        out["concurrency"] = unit.concurrency
    if unit.max_concurrency is not None:
        out["max_concurrency"] = unit.max_concurrency
    if unit.duration_s is not None:
        out["duration_s"] = unit.duration_s
    if unit.retries is not None:
        out["retries"] = {
            "max": unit.retries.max_retries,
            "on": sorted(unit.retries.on),
            "backoff_s": unit.retries.backoff_s,
            "max_wait_s": unit.retries.max_wait_s,
        }
    out["expected_duration_s"] = expected_duration_s(unit, spec)
    return out


def plan_to_dict(plan: Plan, *, arrivals: bool = False) -> dict[str, Any]:
    stages = []
    for unit in plan.stages:
        entry = stage_to_dict(unit, plan.providers[unit.provider])
        if arrivals and unit.arrivals is not None:
            entry["arrival_offsets_s"] = list(unit.arrivals.offsets_s)
        stages.append(entry)
    durations = [s["expected_duration_s"] for s in stages]
    return {
        "scenario": plan.name,
        "description": plan.description,
        "source": plan.source,
        "scenario_version": plan.scenario_version,
        "providers": [provider_to_dict(p) for p in plan.providers.values()],
        "prompts": [
            {
                "id": p.id,
                "source": p.source,
                "messages": len(p.messages),
                "chars": sum(len(m.content) for m in p.messages),
                "max_tokens": p.max_tokens,
                "weight": p.weight,
            }
            for p in plan.prompts.values()
        ],
        "stages": stages,
        "total_requests": sum(s["requests"] or 0 for s in stages)
        if all(s["requests"] is not None for s in stages)
        else None,
        "expected_duration_s": sum(d for d in durations if d is not None)
        if all(d is not None for d in durations)
        else None,
        "sla": [
            {"assert": s.expr.text, "provider": s.provider, "stage": s.stage, "where": s.where}
            for s in plan.slas
        ],
        # Only the masked destination: a token in it stays out of plans and results.
        "export": [{"kind": e.kind, "dest": e.dest.source, "where": e.where} for e in plan.exports],
    }

"""The plan as plain data, for ``lens plan`` and for the ``plan`` section of results.

Pure functions; secrets are replaced by where they came from (``${OPENAI_API_KEY}``) and
secret header values by ``***``, so a plan can be printed, logged and committed without
leaking a key.  Environment variables are listed by name and field, never by value.
"""

from __future__ import annotations

import itertools
import math
from typing import Any
from urllib.parse import urlsplit

from lens.netconfig import NoProxy, mask_proxy_url
from lens.plan.duration import duration_estimate
from lens.plan.model import (
    AdaptiveSweep,
    AnthropicSettings,
    ArrivalSchedule,
    AzureSettings,
    BedrockSettings,
    ClosedLoop,
    EndpointSpec,
    IdleProbe,
    Load,
    OpenAISettings,
    OpenLoop,
    Phases,
    Plan,
    PluginSettings,
    PromptSource,
    PromptSpec,
    ProviderSpec,
    RegressionSpec,
    ServerMetricsSpec,
    SimSettings,
    SlaSpec,
    StagePlan,
    TokenizerPreflight,
    header_is_secret,
)
from lens.plan.trace import TraceReplay, trace_to_dict
from lens.pricing import GpuHourRate, ProviderPrice
from lens.scenario.model import PluginProviderSettings
from lens.urlmask import mask_url

MASK = "***"
# ``lens plan --json`` lists at most this many arrival offsets per stage (marking the list
# ``arrival_offsets_truncated``): the rest follow from the schedule's parameters, and an
# hour at 1,000 req/s would be 3.6M numbers.
MAX_LISTED_ARRIVALS = 100_000


def price_to_dict(price: ProviderPrice) -> dict[str, Any]:
    """Money as decimal strings, as everywhere in lens's outputs."""
    if isinstance(price, GpuHourRate):
        return {"kind": "gpu-hour", **price.to_dict()}
    rates = {
        key: str(value)
        for key in ("input", "output", "cached_input", "cache_write", "reasoning")
        if (value := getattr(price.rates, key)) is not None
    }
    out: dict[str, Any] = {
        "kind": "tokens",
        "model": price.model,
        "usd_per_mtok": rates,
        "source": price.source,
        "checked": price.checked.isoformat(),
    }
    if price.tiers:
        out["tiers_above_input_tokens"] = [t.above_input_tokens for t in price.tiers]
    return out


PLUGIN_COMMON_FIELDS = tuple(PluginProviderSettings.model_fields)


def provider_to_dict(spec: ProviderSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"id": spec.id, "type": spec.type, "model": spec.model}
    if spec.base_url is not None:
        out["base_url"] = spec.base_url
    if spec.api_key is not None:
        out["api_key"] = f"<secret from {spec.api_key.source or 'scenario'}>"
    if spec.headers:
        # Values of headers marked secret, or named like a credential, are masked.
        out["headers"] = {
            name: MASK if header_is_secret(spec, name) else value for name, value in spec.headers
        }
    out.update(settings_to_dict(spec))
    endpoint = spec.endpoint
    if endpoint != EndpointSpec():  # the default says nothing: plans stay as they were
        out["endpoint"] = endpoint.kind
        out["stream"] = endpoint.streams
        if endpoint.inputs_per_request is not None:
            out["inputs_per_request"] = endpoint.inputs_per_request
    if spec.tokenizer is not None:
        out["tokenizer"] = spec.tokenizer.name  # counts responses without usage
    out["price"] = price_to_dict(spec.price) if spec.price is not None else None
    out["network"] = network_to_dict(spec)
    if spec.server_metrics is not None:
        out["server_metrics"] = server_metrics_to_dict(spec.server_metrics)
    return out


def server_metrics_to_dict(sm: ServerMetricsSpec) -> dict[str, Any]:
    """``server_metrics:`` as the plan shows it: the URL's credentials masked (urlmask)."""
    return {
        "url": "<the simulator's /metrics>" if sm.url is None else mask_url(sm.url),
        "every_s": sm.every_s,
        "timeout_s": sm.timeout_s,
        "names": list(sm.names) if sm.names else "all",
    }


def settings_to_dict(spec: ProviderSpec) -> dict[str, Any]:
    """The fields of ``spec``'s own type, under the names the scenario gives them."""
    match spec.settings:
        case OpenAISettings() as s:
            fields: dict[str, Any] = {
                "max_tokens_field": s.max_tokens_field,
                "include_usage": s.include_usage,
            }
            if s.exact_output:
                fields["output_tokens"] = "exact"
            return fields
        case AzureSettings() as s:
            return {
                "max_tokens_field": s.max_tokens_field,
                "include_usage": s.include_usage,
                "deployment": s.deployment,
                "api_version": s.api_version,  # None: the v1 API
                "auth": s.auth,
            }
        case BedrockSettings() as s:
            out: dict[str, Any] = {
                "region": s.region,
                "api": s.api,
                "auth": "bearer" if spec.api_key is not None else "aws-sigv4",
            }
            return out | ({"profile": s.aws_profile} if s.aws_profile else {})
        case AnthropicSettings() as s:
            return {"anthropic_version": s.version}
        case PluginSettings(values=values):
            # A provider plugin's own fields (a SecretStr one shows as stars); the common
            # ones are the spec's.
            own = set(type(values).model_fields) - set(PLUGIN_COMMON_FIELDS)
            return {"settings": values.model_dump(mode="json", include=own)}
        case SimSettings() as s:
            return {
                "sim": {
                    "ttft_ms": s.ttft_s * 1e3,
                    "itl_ms": s.itl_s * 1e3,
                    "output_tokens": s.output_tokens,
                    "jitter": s.jitter,
                    "error_429": s.error_429,
                    "error_500": s.error_500,
                    "cut_stream": s.cut_stream,
                    "seed": s.seed,
                    "protocol": s.protocol,
                    "capacity": s.capacity,
                }
            }
        case None:
            return {}


def network_to_dict(spec: ProviderSpec) -> dict[str, Any]:
    """Proxy (URLs masked), TLS verification and keep-alive of one provider."""
    out: dict[str, Any] = {"keep_alive": spec.keep_alive}
    proxy = spec.proxy
    if proxy is None:
        source = "never (lens's loopback simulator)" if spec.type == "simulated" else "direct"
        out["proxy"] = {"url": None, "source": source}
    elif proxy.mode == "url" and proxy.url is not None:
        out["proxy"] = {"url": proxy.url.source, "source": "scenario"}
    elif proxy.mode == "env" and proxy.env:
        name, url = proxy.env[0]
        variable = url.source.partition("=")[0]
        entry: dict[str, Any] = {"url": mask_proxy_url(url.reveal()), "source": variable}
        if proxy.no_proxy:
            entry["no_proxy"] = proxy.no_proxy
            host = urlsplit(spec.base_url).hostname if spec.base_url else None
            port = urlsplit(spec.base_url).port if spec.base_url else None
            default = 443 if name == "HTTPS_PROXY" else 80
            if host is not None and NoProxy.parse(proxy.no_proxy).matches(host, port or default):
                entry = {"url": None, "source": "NO_PROXY", "no_proxy": proxy.no_proxy}
        out["proxy"] = entry
    else:
        out["proxy"] = {"url": None, "source": "proxy: none"}
    if spec.type != "simulated":
        tls = spec.tls
        tls_out: dict[str, Any] = {"verify": tls.verify}
        if tls.verify:
            tls_out["ca"] = tls.ca_source
            if tls.ca_file is not None:
                tls_out["ca_file"] = tls.ca_file
            if tls.ca_dir is not None:
                tls_out["ca_dir"] = tls.ca_dir
        if tls.client_cert is not None:
            tls_out["client_cert"] = tls.client_cert
        if tls.client_key is not None:
            tls_out["client_key"] = tls.client_key
        out["tls"] = tls_out
    return out


def arrival_stats(schedule: ArrivalSchedule) -> dict[str, Any]:
    """What a schedule amounts to: count, span, mean rate and extreme gaps, and what it was
    drawn from (process, seed, intended rate at start and end)."""
    count = schedule.count
    gaps = _gap_range(schedule) if count > 1 else None
    out: dict[str, Any] = {
        "count": count,
        "span_s": schedule.span_s,
        "mean_rate_per_s": (count - 1) / schedule.span_s if schedule.span_s > 0 else None,
        "min_gap_s": None if gaps is None else gaps[0],
        "max_gap_s": None if gaps is None else gaps[1],
        "process": schedule.process,
    }
    if schedule.burstiness is not None:
        out["burstiness"] = schedule.burstiness
    if schedule.seed is not None:
        out["seed"] = schedule.seed
    if schedule.rate_per_s is not None:
        out["rate_from_per_s"], out["rate_to_per_s"] = schedule.rate_per_s
    return out


def _gap_range(schedule: ArrivalSchedule) -> tuple[float, float]:
    """The smallest and largest gap between consecutive arrivals, walked in O(1) memory."""
    offsets = iter(schedule)
    previous = next(offsets)
    low, high = math.inf, -math.inf
    for t in offsets:  # a plain loop: this walks every arrival of a long stage
        gap = t - previous
        low = min(low, gap)
        high = max(high, gap)
        previous = t
    return low, high


def phases_to_dict(phases: Phases) -> dict[str, Any]:
    """Where warmup ends and cooldown begins: request indices and/or seconds."""
    out: dict[str, Any] = {}
    if phases.warmup_requests:
        out["warmup_requests"] = phases.warmup_requests
    if phases.warmup_s:
        out["warmup_s"] = phases.warmup_s
    if phases.cooldown_from_index is not None:
        out["cooldown_from_request"] = phases.cooldown_from_index
    if phases.cooldown_from_s is not None:
        out["cooldown_from_s"] = phases.cooldown_from_s
    out["sla_includes_warmup"] = phases.pooled
    return out


def stage_to_dict(unit: StagePlan, spec: ProviderSpec) -> dict[str, Any]:
    out: dict[str, Any] = {
        "stage": unit.stage,
        "provider": unit.provider,
        "pattern": unit.pattern,
        "loop": "open" if isinstance(unit.load, OpenLoop) else "closed",
        "requests": unit.planned_requests,
        "timeout_s": unit.timeout_s,
        "max_tokens": unit.max_tokens,
        "prompts": sorted(set(unit.prompts)),
    }
    if isinstance(unit.load, OpenLoop):
        out["arrivals"] = arrival_stats(unit.load.arrivals)
    if isinstance(unit.trace, TraceReplay):
        out["trace"] = trace_to_dict(unit.trace)
    if unit.sweep is not None:
        step = unit.sweep
        out["sweep"] = {"id": step.sweep, "step": step.index, "steps": step.steps}
        if step.rate_per_s is not None:
            out["sweep"]["rate_per_s"] = step.rate_per_s
        if step.concurrency is not None:
            out["sweep"]["concurrency"] = step.concurrency
    if unit.repetition is not None:
        rep = unit.repetition
        out["repetition"] = {"stage": rep.stage, "index": rep.index, "count": rep.count}
    if unit.pause_before_s:
        out["pause_before_s"] = unit.pause_before_s
    if unit.phases.any:
        out["phases"] = phases_to_dict(unit.phases)
    if unit.drain != "wait" or unit.drain_timeout_s is not None:
        out["drain"] = {
            "policy": unit.drain,
            "timeout_s": unit.drain_timeout_s,
            "cutoff_s": unit.cutoff_s,  # None: when the last request is sent
        }
    out.update(_load_fields(unit.load))
    if unit.spin_s:
        out["pacing"] = {"mode": "precise", "spin_s": unit.spin_s}
    if unit.body:
        out["body"] = dict(unit.body)  # the provider's, the stage's merged over it
    if unit.retries is not None:
        out["retries"] = {
            "max": unit.retries.max_retries,
            "on": sorted(unit.retries.on),
            "backoff_s": unit.retries.backoff_s,
            "max_wait_s": unit.retries.max_wait_s,
        }
    duration = duration_estimate(unit, spec)
    out["expected_duration_s"] = duration.expected_s
    out["max_duration_s"] = duration.max_s
    out["duration_basis"] = duration.basis
    return out


def _load_fields(load: Load) -> dict[str, Any]:
    """The load's own numbers (an open loop's arrivals are shown apart, as ``arrivals``)."""
    match load:
        case OpenLoop(max_concurrency=limit):
            return {} if limit is None else {"max_concurrency": limit}
        case ClosedLoop(concurrency=concurrency, duration_s=duration):
            return {"concurrency": concurrency} | (
                {} if duration is None else {"duration_s": duration}
            )
        case IdleProbe(gaps_s=gaps):
            return {"idle_gaps_s": list(gaps)}


def adaptive_sweep_to_dict(sweep: AdaptiveSweep) -> dict[str, Any]:
    """An adaptive sweep's rules: the plan lists its known steps, these decide the rest."""
    out: dict[str, Any] = {"id": sweep.sweep, "kind": sweep.kind, "decided_at_run_time": True}
    if sweep.conditions:
        out["conditions"] = [c.expr.text for c in sweep.conditions]
    if sweep.search_range is not None:
        out["rate_from_per_s"], out["rate_to_per_s"] = sweep.search_range
    if sweep.precision is not None:
        out["precision"] = str(sweep.precision)
    if sweep.concurrency_range is not None:
        out["concurrency_from"], out["concurrency_to"] = sweep.concurrency_range
        out["precision"] = sweep.concurrency_precision
    if sweep.max_steps is not None:
        out["max_steps"] = sweep.max_steps
    if sweep.auto_steps is not None:
        out["auto_steps"] = sweep.auto_steps
    return out


def _total(stages: list[dict[str, Any]], key: str, pauses: float) -> float | None:
    values = [s[key] for s in stages]
    return None if None in values else sum(values) + pauses


def plan_to_dict(plan: Plan, *, arrivals: bool = False) -> dict[str, Any]:
    stages = []
    for unit in plan.stages:
        entry = stage_to_dict(unit, plan.providers[unit.provider])
        if arrivals and isinstance(unit.load, OpenLoop):
            schedule = unit.load.arrivals
            entry["arrival_offsets_s"] = list(itertools.islice(schedule, MAX_LISTED_ARRIVALS))
            if schedule.count > MAX_LISTED_ARRIVALS:
                # The rest follow from the parameters above (process, rate, seed).
                entry["arrival_offsets_truncated"] = True
        stages.append(entry)
    # A pause before a unit is wall time too.
    pauses = sum(unit.pause_before_s for unit in plan.stages)
    return {
        "scenario": plan.name,
        "description": plan.description,
        "source": plan.source,
        "scenario_version": plan.scenario_version,
        "providers": [provider_to_dict(p) for p in plan.providers.values()],
        "prompts": [_prompt(p) for p in plan.prompts.values()],
        "tokenizer": plan.tokenizer,
        "prompt_sources": [source_to_dict(s) for s in plan.prompt_sources],
        **_preflight(plan.tokenizer_preflight),
        "stages": stages,
        "total_requests": sum(s["requests"] or 0 for s in stages)
        if all(s["requests"] is not None for s in stages)
        else None,
        "expected_duration_s": _total(stages, "expected_duration_s", pauses),
        "max_duration_s": _total(stages, "max_duration_s", pauses),
        # Steps an adaptive sweep adds at run time are in neither total.
        "durations_exclude_run_time_steps": any(s.kind != "stop_when" for s in plan.sweeps),
        "sla": [_sla(s) for s in plan.slas],
        "budget_usd": str(plan.budget_usd) if plan.budget_usd is not None else None,
        "integrity": {
            "max_loop_lag_ms": plan.integrity.max_loop_lag_ms,
            "max_cpu": plan.integrity.max_cpu,
            "cold_after_s": plan.integrity.cold_after_s,
            "buffered_share": plan.integrity.buffered_share,
        },
        "limits": {
            "max_event_bytes": plan.limits.max_event_bytes,
            "max_response_bytes": plan.limits.max_response_bytes,
        },
        # Names and the fields that read them; values never appear in a plan.
        "environment": [
            {"variable": e.name, "field": e.field, "default": e.default} for e in plan.environment
        ],
        "warnings": list(plan.warnings),
        "adaptive_sweeps": [adaptive_sweep_to_dict(s) for s in plan.sweeps],
        # Only the masked destination: a token in it stays out of plans and results.
        "export": [{"kind": e.kind, "dest": e.dest.source, "where": e.where} for e in plan.exports],
        **({} if plan.regression is None else {"regression": regression_to_dict(plan.regression)}),
    }


def _prompt(p: PromptSpec) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": p.id,
        "source": p.source,
        "messages": len(p.messages),
        "chars": sum(len(m.content) for m in p.messages),
        "input_tokens": p.input_tokens,
        "max_tokens": p.max_tokens,
        "weight": p.weight,
    }
    if p.body:
        out["body"] = dict(p.body)
    conv = p.conversation
    if conv is not None:
        # The turn count, how turns follow, and the history's reply source: what a run of
        # it sends (its texts are the scenario's or the dataset's).
        out["conversation"] = {
            "turns": len(conv.turns),
            "carry": conv.carry,
            "think_time": conv.think.describe(),
            "reference_replies": sum(1 for r in conv.replies if r is not None),
        }
    if p.prefix_group is not None:
        out["prefix_group"] = p.prefix_group
    return out


def source_to_dict(source: PromptSource) -> dict[str, Any]:
    """What one prompt entry yields: how many prompts, their input lengths (tokens, counted
    by ``tokenizer``) and how their output limit is set."""
    return {
        "id": source.id,
        "kind": source.kind,
        "prompts": source.prompts,
        "input_tokens": {
            "min": source.min_tokens,
            "p50": source.p50_tokens,
            "p90": source.p90_tokens,
            "max": source.max_tokens,
        },
        "tokenizer": source.tokenizer,
        "output": source.output,
        "detail": source.detail,
    }


def regression_to_dict(spec: RegressionSpec) -> dict[str, Any]:
    return {
        "baseline": spec.baseline,
        "thresholds": {label: t.text for label, t in spec.thresholds},
        "where": spec.where,
    }


def _sla(spec: SlaSpec) -> dict[str, Any]:
    out: dict[str, Any] = {
        "assert": spec.expr.text,
        "provider": spec.provider,
        "stage": spec.stage,
        "where": spec.where,
    }
    if spec.window_s is not None:  # only when set: older plans read the same
        out.update(window_s=spec.window_s, allow=spec.allow)
    if spec.stop_on_fail:
        out["stop_on_fail"] = True
    return out


def _preflight(preflight: TokenizerPreflight | None) -> dict[str, Any]:
    """``tokenizer_preflight`` when a tokenizer counts by the server; absent otherwise."""
    if preflight is None:
        return {}
    return {
        "tokenizer_preflight": {
            "tokenizers": list(preflight.tokenizers),
            "origins": list(preflight.origins),
            "planned_calls": preflight.planned_calls,
            "calls": preflight.calls,
            "seconds": preflight.seconds,
        }
    }

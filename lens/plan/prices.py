"""Which price each provider is billed at, decided once, when the plan is compiled.

Order: the provider's own ``price:`` (token rates or GPU-hours), then the scenario's
``pricing:`` entries, then the built-in catalog.  The simulated provider is free unless
it names a price (handy to rehearse cost SLAs and budgets offline).  A provider with no
known price has no cost (absent, never $0): that is an input error when a cost SLA or a
budget depends on it, and a warning otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date

from lens.pricing import GpuHourRate, ModelPrice, PricingCatalog, ProviderPrice, Rates
from lens.scenario.model import AnyProvider, GpuHourPrice, Scenario, TokenPrice
from lens.scenario.sla import parse_sla
from lens.scenario.yaml_nodes import PathT

ProblemSink = Callable[[str, PathT], None]


def _rates(price: TokenPrice) -> Rates:
    return Rates(
        input=price.input,
        output=price.output,
        cached_input=price.cached_input,
        cache_write=price.cache_write,
        reasoning=price.reasoning,
    )


def _catalog(scenario: Scenario, base: PricingCatalog) -> PricingCatalog:
    if not scenario.pricing:
        return base
    where = scenario.source_map.file or "scenario"
    return base.with_overrides(
        ModelPrice(
            provider=entry.provider,
            model=entry.model,
            rates=_rates(entry),
            source=f"{where}: pricing[{i}]",
            checked=date.today(),
        )
        for i, entry in enumerate(scenario.pricing)
    )


def _own_price(pid: str, spec: AnyProvider, file: str) -> ProviderPrice | None:
    where = f"{file or 'scenario'}: providers.{pid}.price"
    if isinstance(spec.price, GpuHourPrice):
        return GpuHourRate(spec.price.gpu_hour, spec.price.gpus, where)
    if isinstance(spec.price, TokenPrice):
        return ModelPrice(
            provider=spec.type,
            model=spec.model or pid,
            rates=_rates(spec.price),
            source=where,
            checked=date.today(),
        )
    return None


def resolve_prices(
    scenario: Scenario,
    models: Mapping[str, str],
    problem: ProblemSink,
    warnings: list[str],
    catalog: PricingCatalog | None = None,
) -> dict[str, ProviderPrice | None]:
    """The price of each provider (``models``: provider id -> model name it reports)."""
    book = _catalog(scenario, catalog or PricingCatalog.load())
    prices: dict[str, ProviderPrice | None] = {}
    for pid, spec in scenario.providers.items():
        own = _own_price(pid, spec, scenario.source_map.file)
        if own is not None or spec.type == "simulated":
            prices[pid] = own
        else:
            prices[pid] = book.lookup(spec.type, models[pid])
    for pid, price in prices.items():
        if price is not None:
            continue
        simulated = scenario.providers[pid].type == "simulated"
        what = (
            f"the simulated provider {pid!r} has no price"
            if simulated
            else f"no price known for {scenario.providers[pid].type} model "
            f"{models[pid]!r} (provider {pid!r})"
        )
        fix = (
            "add 'price: {input: ..., output: ...}' (per 1M tokens) or "
            "'price: {gpu_hour: ..., gpus: ...}' (self-hosted) to the provider, "
            "or a 'pricing:' entry"
        )
        needed = _needs_price(scenario, pid)
        if needed is not None:
            problem(f"{what}, but {needed[0]} needs it: {fix}", needed[1])
        elif not simulated:
            warnings.append(f"{what}: its requests will have no cost; {fix}")
    return prices


def _needs_price(scenario: Scenario, pid: str) -> tuple[str, PathT] | None:
    """What in the scenario depends on ``pid``'s cost, and where it is written."""
    for i, entry in enumerate(scenario.sla):
        if parse_sla(entry.assert_).metric == "cost" and entry.provider in (None, pid):
            return f"the cost SLA {entry.assert_.strip()!r}", ("sla", i)
    if scenario.budget is not None:
        return "the budget", ("budget",)
    return None

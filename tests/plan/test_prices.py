from __future__ import annotations

from decimal import Decimal

import pytest

from lens.errors import PlanError
from lens.plan.compile import compile_plan
from lens.plan.describe import plan_to_dict
from lens.plan.model import Plan
from lens.pricing import GpuHourRate, ModelPrice
from lens.scenario.load import parse_scenario

TAIL = """\
prompts: [{id: q, messages: [{role: user, content: hi}]}]
load: [{id: b, pattern: burst, requests: 2}]
"""
ENV = {"OPENAI_API_KEY": "sk-test", "ANTHROPIC_API_KEY": "a"}


def plan_of(head: str) -> Plan:
    text = "version: 1\nname: t\n" + head + TAIL
    return compile_plan(parse_scenario(text, file="s.yaml", env=ENV), env=ENV)


def problems_of(head: str) -> list[str]:
    with pytest.raises(PlanError) as info:
        plan_of(head)
    return [str(p) for p in info.value.problems]


def test_catalog_price_resolves_dated_snapshots() -> None:
    plan = plan_of("providers:\n  o: {type: openai, model: gpt-4o-mini-2024-07-18}\n")
    price = plan.providers["o"].price
    assert isinstance(price, ModelPrice)
    assert (price.model, price.rates.input, price.rates.output) == (
        "gpt-4o-mini",
        Decimal("0.15"),
        Decimal("0.6"),
    )
    assert plan.warnings == ()


def test_provider_price_beats_pricing_block_beats_catalog() -> None:
    plan = plan_of(
        "pricing:\n"
        "  - {provider: openai, model: gpt-4o-mini, input: 0.1, output: '$0.4'}\n"
        "providers:\n"
        "  o: {type: openai, model: gpt-4o-mini}\n"
        "  own: {type: openai, model: gpt-4o-mini, price: {input: 1, output: 2}}\n"
    )
    negotiated, own = plan.providers["o"].price, plan.providers["own"].price
    assert isinstance(negotiated, ModelPrice)
    assert isinstance(own, ModelPrice)
    assert (negotiated.rates.input, negotiated.rates.output) == (Decimal("0.1"), Decimal("0.4"))
    assert negotiated.source == "s.yaml: pricing[0]"
    assert (own.rates.input, own.rates.output) == (Decimal(1), Decimal(2))
    assert own.source == "s.yaml: providers.own.price"


def test_private_model_gets_a_price_from_the_pricing_block() -> None:
    plan = plan_of(
        "pricing: [{provider: openai-compatible, model: llama-70b, input: 0.5, output: 0.9}]\n"
        "providers:\n  v: {type: openai-compatible, base_url: 'http://127.0.0.1:1', "
        "model: llama-70b}\n"
    )
    assert isinstance(plan.providers["v"].price, ModelPrice)


def test_gpu_hour_price_and_its_plan_form() -> None:
    plan = plan_of(
        "providers:\n  v: {type: openai-compatible, base_url: 'http://127.0.0.1:1', "
        "model: m, price: {gpu_hour: 2.5, gpus: 4}}\n"
    )
    assert plan.providers["v"].price == GpuHourRate(Decimal("2.5"), 4, "s.yaml: providers.v.price")
    (provider,) = plan_to_dict(plan)["providers"]
    assert provider["price"] == {
        "kind": "gpu-hour",
        "usd_per_gpu_hour": "2.5",
        "gpus": 4,
        "source": "s.yaml: providers.v.price",
    }


def test_unknown_model_without_cost_assertions_is_a_warning_and_no_price() -> None:
    plan = plan_of(
        "providers:\n  v: {type: openai-compatible, base_url: 'http://127.0.0.1:1', model: m}\n"
    )
    assert plan.providers["v"].price is None
    (warning,) = plan.warnings
    assert "no price known for openai-compatible model 'm' (provider 'v')" in warning
    assert plan_to_dict(plan)["warnings"] == [warning]


def test_unknown_model_under_a_cost_sla_is_an_input_error_at_the_sla() -> None:
    (problem,) = problems_of(
        "providers:\n  v: {type: openai-compatible, base_url: 'http://127.0.0.1:1', model: m}\n"
        "sla:\n  - cost.mean < $0.01\n"
    )
    assert problem.startswith("s.yaml:6:5: sla[0]: no price known for openai-compatible")
    assert "the cost SLA 'cost.mean < $0.01' needs it" in problem


def test_cost_sla_scoped_to_another_provider_needs_no_price_here() -> None:
    plan = plan_of(
        "providers:\n  v: {type: openai-compatible, base_url: 'http://127.0.0.1:1', model: m}\n"
        "  o: {type: openai, model: gpt-4o-mini}\n"
        "sla:\n  - {assert: cost.total < $1, provider: o}\n"
    )
    assert plan.providers["v"].price is None
    assert len(plan.warnings) == 1


def test_budget_needs_every_provider_priced_including_the_simulator() -> None:
    (problem,) = problems_of("budget: $5\nproviders:\n  s: {type: simulated}\n")
    assert "the simulated provider 's' has no price, but the budget needs it" in problem
    assert problem.startswith("s.yaml:3:9: budget:")
    plan = plan_of("budget: 5\nproviders:\n  s: {type: simulated, price: {input: 1, output: 1}}\n")
    assert plan.budget_usd == Decimal(5)
    assert plan_to_dict(plan)["budget_usd"] == "5"


def test_unpriced_simulator_is_free_and_silent() -> None:
    plan = plan_of("providers:\n  s: {type: simulated}\n")
    assert plan.providers["s"].price is None
    assert plan.warnings == ()

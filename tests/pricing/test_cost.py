"""Hand-computed costs: rate (USD per 1M tokens) x tokens / 1,000,000, per part."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from lens.pricing import ModelPrice, PricingCatalog, Rates, request_cost
from lens.pricing.cost import CostBreakdown

USD = Decimal("0.000001")


@pytest.fixture(scope="module")
def catalog() -> PricingCatalog:
    return PricingCatalog.load()


def _price(catalog: PricingCatalog, provider_type: str, model: str) -> ModelPrice:
    price = catalog.lookup(provider_type, model)
    assert price is not None
    return price


def _close(actual: Decimal, expected: str) -> None:
    assert abs(actual - Decimal(expected)) < USD, (actual, expected)


def test_anthropic_cache_read_and_write(catalog: PricingCatalog) -> None:
    # Anthropic wire usage: input_tokens=1000 (uncached), cache_read=20000,
    # cache_creation=5000, output=800.  lens input = 1000 + 20000 + 5000 = 26000.
    # 1000*3 + 20000*0.3 + 5000*3.75 + 800*15 = 0.003 + 0.006 + 0.01875 + 0.012
    cost = request_cost(
        _price(catalog, "anthropic", "claude-sonnet-4-5-20250929"),
        input_tokens=26000,
        cached_input_tokens=20000,
        cache_write_tokens=5000,
        output_tokens=800,
        reasoning_tokens=None,
        provider_type="anthropic",
    )
    assert cost is not None
    _close(cost.input, "0.003")
    _close(cost.cached_input, "0.006")
    _close(cost.cache_write, "0.01875")
    _close(cost.output, "0.012")
    _close(cost.total, "0.03975")
    assert cost.total == Decimal("0.03975")  # exact, not just close
    assert cost.uncached_input_tokens == 1000
    assert cost.tier_above_input_tokens is None
    assert cost.rates.cache_write == Decimal("3.75")


def test_openai_cached_and_reasoning(catalog: PricingCatalog) -> None:
    # prompt_tokens=10000 with 6000 cached; completion_tokens=3000 incl. 2500 reasoning.
    # 4000*1.1 + 6000*0.275 + 3000*4.4 = 0.0044 + 0.00165 + 0.0132
    cost = request_cost(
        _price(catalog, "openai", "o4-mini-2025-04-16"),
        input_tokens=10000,
        cached_input_tokens=6000,
        cache_write_tokens=None,
        output_tokens=3000,
        reasoning_tokens=2500,
        provider_type="openai",
    )
    assert cost is not None
    _close(cost.total, "0.01925")
    _close(cost.output, "0.0132")
    assert cost.reasoning == 0
    assert cost.reasoning_tokens == 0  # billed inside output
    assert cost.output_tokens == 3000
    assert cost.rates.reasoning == Decimal("4.4")


def test_gemini_with_thoughts(catalog: PricingCatalog) -> None:
    # promptTokenCount=4000 (1000 cached); candidates=500 + thoughts=1500 -> output 2000.
    # 3000*0.3 + 1000*0.075 + 2000*2.5 = 0.0009 + 0.000075 + 0.005
    cost = request_cost(
        _price(catalog, "gemini", "gemini-2.5-flash"),
        input_tokens=4000,
        cached_input_tokens=1000,
        cache_write_tokens=None,
        output_tokens=2000,
        reasoning_tokens=1500,
        provider_type="gemini",
    )
    assert cost is not None
    _close(cost.total, "0.005975")


def test_bedrock_regional_prefix(catalog: PricingCatalog) -> None:
    # lens input 3000 = 1500 uncached + 1000 read + 500 write; output 200.
    # 1500*0.8 + 1000*0.08 + 500*1 + 200*4 = 0.0012 + 0.00008 + 0.0005 + 0.0008
    cost = request_cost(
        _price(catalog, "bedrock", "us.anthropic.claude-3-5-haiku-20241022-v1:0"),
        input_tokens=3000,
        cached_input_tokens=1000,
        cache_write_tokens=500,
        output_tokens=200,
        reasoning_tokens=None,
        provider_type="bedrock",
    )
    assert cost is not None
    _close(cost.total, "0.00258")
    assert cost.model == "anthropic.claude-3-5-haiku-20241022-v1:0"


def test_azure_uses_azure_price(catalog: PricingCatalog) -> None:
    # azure gpt-4o-mini: 0.165 / 0.66.  1000*0.165 + 1000*0.66 = 0.000825
    cost = request_cost(
        _price(catalog, "azure-openai", "gpt-4o-mini"),
        input_tokens=1000,
        output_tokens=1000,
        provider_type="azure-openai",
    )
    assert cost is not None
    _close(cost.total, "0.000825")


def test_long_context_tier_anthropic(catalog: PricingCatalog) -> None:
    # 250000 input > 200000: the whole request at the tier rates.
    # 190000*6 + 50000*0.6 + 10000*7.5 + 1000*22.5 = 1.14 + 0.03 + 0.075 + 0.0225
    price = _price(catalog, "anthropic", "claude-sonnet-4-20250514")
    cost = request_cost(
        price,
        input_tokens=250000,
        cached_input_tokens=50000,
        cache_write_tokens=10000,
        output_tokens=1000,
        reasoning_tokens=None,
        provider_type="anthropic",
    )
    assert cost is not None
    _close(cost.total, "1.2675")
    assert cost.tier_above_input_tokens == 200000
    # exactly at the threshold: base rates. 200000*3 + 1000*15 = 0.6 + 0.015
    at = request_cost(price, input_tokens=200000, output_tokens=1000, provider_type="anthropic")
    assert at is not None
    _close(at.total, "0.615")
    assert at.tier_above_input_tokens is None


def test_long_context_tier_gemini(catalog: PricingCatalog) -> None:
    # 200000*2.5 + 100000*0.3125 (no tier cached rate: base) + 1000*15
    cost = request_cost(
        _price(catalog, "gemini", "gemini-2.5-pro"),
        input_tokens=300000,
        cached_input_tokens=100000,
        output_tokens=1000,
        reasoning_tokens=800,
        provider_type="gemini",
    )
    assert cost is not None
    _close(cost.total, "0.54625")


def _custom(**rates: Decimal) -> ModelPrice:
    return ModelPrice(
        provider="openai-compatible",
        model="custom",
        rates=Rates(input=Decimal(1), output=Decimal(2), **rates),
        source="test",
        checked=date(2025, 1, 1),
    )


def test_separate_reasoning_rate_and_fallbacks() -> None:
    # reasoning rate 4: 60 output at 2, 40 reasoning at 4; no cached/write rates: input 1.
    # 800*1 + 100*1 + 100*1 + 60*2 + 40*4 = 0.0008+0.0001+0.0001+0.00012+0.00016
    cost = request_cost(
        _custom(reasoning=Decimal(4)),
        input_tokens=1000,
        cached_input_tokens=100,
        cache_write_tokens=100,
        output_tokens=100,
        reasoning_tokens=40,
        provider_type="openai-compatible",
    )
    assert cost is not None
    _close(cost.reasoning, "0.00016")
    _close(cost.output, "0.00012")
    _close(cost.total, "0.00128")
    assert cost.reasoning_tokens == 40
    assert cost.output_tokens == 60
    assert cost.rates.cached_input == Decimal(1)
    assert cost.rates.cache_write == Decimal(1)
    # separate rate but reasoning unknown: all output at the output rate
    unknown = request_cost(
        _custom(reasoning=Decimal(4)),
        input_tokens=0,
        output_tokens=100,
        provider_type="openai-compatible",
    )
    assert unknown is not None
    _close(unknown.total, "0.0002")


def test_unknown_usage_is_none_not_zero() -> None:
    price = _custom()
    assert request_cost(price, input_tokens=10, output_tokens=None, provider_type="x") is None
    assert request_cost(price, input_tokens=None, output_tokens=10, provider_type="x") is None
    zero = request_cost(price, input_tokens=0, output_tokens=0, provider_type="x")
    assert zero is not None
    assert zero.total == 0


def test_no_floats_and_record_form(catalog: PricingCatalog) -> None:
    cost = request_cost(
        _price(catalog, "openai", "gpt-4o-mini"),
        input_tokens=7,
        cached_input_tokens=3,
        output_tokens=11,
        provider_type="openai",
    )
    assert isinstance(cost, CostBreakdown)
    # 4*0.15 + 3*0.075 + 11*0.6 = 0.6 + 0.225 + 6.6 = 7.425 micro-USD, exactly
    assert cost.total == Decimal("0.000007425")
    record = cost.to_record()
    assert record["total_usd"] == "0.000007425"
    assert record["rate_cached_input"] == "0.075"
    assert record["price_checked"] == cost.checked
    assert record["tier_above_input_tokens"] is None
    for value in (cost.total, cost.input, cost.cached_input, cost.output):
        assert isinstance(value, Decimal)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_tokens": 10, "cached_input_tokens": 8, "cache_write_tokens": 3}, "exceed input"),
        ({"input_tokens": 10, "output_tokens": 5, "reasoning_tokens": 6}, "exceed output"),
        ({"input_tokens": -1}, "non-negative integer"),
        ({"input_tokens": True}, "non-negative integer"),
    ],
)
def test_inconsistent_counts(kwargs: dict[str, int], message: str) -> None:
    args: dict[str, int] = {"output_tokens": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        request_cost(_custom(), provider_type="x", **args)

"""List prices of LLM models and the cost of a request (exact decimal USD)."""

from lens.pricing.catalog import (
    SCHEMA,
    ModelPrice,
    PricingCatalog,
    PricingDataError,
    Rates,
    Tier,
    parse_entry,
)
from lens.pricing.cost import CostBreakdown, EffectiveRates, request_cost
from lens.pricing.gpu import GpuHourRate

# What a plan prices a provider with: list or negotiated token rates, or GPU-hours.
ProviderPrice = ModelPrice | GpuHourRate

__all__ = [
    "SCHEMA",
    "CostBreakdown",
    "EffectiveRates",
    "GpuHourRate",
    "ModelPrice",
    "PricingCatalog",
    "PricingDataError",
    "ProviderPrice",
    "Rates",
    "Tier",
    "parse_entry",
    "request_cost",
]

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

__all__ = [
    "SCHEMA",
    "CostBreakdown",
    "EffectiveRates",
    "ModelPrice",
    "PricingCatalog",
    "PricingDataError",
    "Rates",
    "Tier",
    "parse_entry",
    "request_cost",
]

"""Cost of each request and of each stage x provider, from token counts and list prices.

Part of the metrics stage: a future cost SLA judges these values like any other metric.

Money is ``decimal.Decimal`` end to end and leaves as decimal strings, so totals never
drift.  A request whose provider has no known price, or whose token counts are unknown,
has no cost (absent), never a cost of 0; failed requests that report usage still cost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from lens.plan.model import ProviderSpec
from lens.pricing import CostBreakdown, ModelPrice, PricingCatalog, request_cost
from lens.records import RequestRecord


def prices_for(
    providers: Mapping[str, ProviderSpec], catalog: PricingCatalog | None = None
) -> dict[str, ModelPrice | None]:
    """The list price of each provider's model, None where the catalog has none."""
    catalog = catalog or PricingCatalog.load()
    return {
        pid: None if spec.type == "simulated" else catalog.lookup(spec.type, spec.model)
        for pid, spec in providers.items()
    }


def record_cost(
    rec: RequestRecord, price: ModelPrice | None, provider_type: str
) -> CostBreakdown | None:
    if price is None:
        return None
    try:
        return request_cost(
            price,
            input_tokens=rec.input_tokens,
            cached_input_tokens=rec.cached_input_tokens,
            cache_write_tokens=rec.cache_write_tokens,
            output_tokens=rec.output_tokens,
            reasoning_tokens=rec.reasoning_tokens,
            provider_type=provider_type,
        )
    except ValueError:
        return None  # inconsistent counts from the server: unknown, not guessed


@dataclass(frozen=True, slots=True)
class StageCost:
    total: Decimal
    priced_requests: int
    unpriced_requests: int
    ok_requests: int
    output_tokens: int

    def as_dict(self) -> dict[str, str | int | None]:
        def per(n: int, scale: int = 1) -> str | None:
            return str(self.total * scale / n) if n else None

        return {
            "total_usd": str(self.total),
            "per_request_usd": per(self.priced_requests),
            "per_1k_successful_usd": per(self.ok_requests, 1000),
            "per_1m_output_tokens_usd": per(self.output_tokens, 1_000_000),
            "priced_requests": self.priced_requests,
            "unpriced_requests": self.unpriced_requests,
        }


def stage_cost(
    records: Iterable[tuple[RequestRecord, CostBreakdown | None]],
) -> StageCost | None:
    """Totals over one stage x provider; None when not one request could be priced."""
    total, priced, unpriced, ok, tokens = Decimal(0), 0, 0, 0, 0
    for rec, cost in records:
        if cost is None:
            unpriced += 1
            continue
        priced += 1
        total += cost.total
        if rec.ok:
            ok += 1
            tokens += rec.output_tokens or 0
    if priced == 0:
        return None
    return StageCost(total, priced, unpriced, ok, tokens)

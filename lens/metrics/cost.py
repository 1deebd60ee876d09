"""Cost of each request and of each stage x provider, from token counts and the plan's
resolved prices (``ProviderSpec.price``).

Money is ``decimal.Decimal`` end to end and leaves as decimal strings, so totals never
drift.  A request whose provider has no known price, or whose token counts are unknown,
has no cost (absent), never a cost of 0; failed requests that report usage still cost.

Token-priced providers are billed per request.  GPU-hour providers (``lens.pricing.gpu``)
are billed for the stage's wall time, shared among its requests by busy time, so their
per-request cost is only known once the stage has ended.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import Any, Literal

from lens.plan.model import ProviderSpec
from lens.pricing import CostBreakdown, GpuHourRate, ModelPrice, ProviderPrice, request_cost
from lens.records import RequestRecord

_CTX = Context(prec=40)


def record_cost(rec: RequestRecord, spec: ProviderSpec) -> CostBreakdown | None:
    """What one request cost at token prices; None for GPU-hour or unknown prices."""
    if not isinstance(spec.price, ModelPrice):
        return None
    return _token_cost(
        spec.price,
        spec.type,
        rec.input_tokens,
        rec.cached_input_tokens,
        rec.cache_write_tokens,
        rec.output_tokens,
        rec.reasoning_tokens,
    )


# Each record is priced twice (summing per stage, then its results entry), and requests of
# one prompt mostly repeat the same counts: the exact Decimal work is done once per shape.
@functools.lru_cache(maxsize=4096)
def _token_cost(
    price: ModelPrice,
    provider_type: str,
    input_tokens: int | None,
    cached_input_tokens: int | None,
    cache_write_tokens: int | None,
    output_tokens: int | None,
    reasoning_tokens: int | None,
) -> CostBreakdown | None:
    try:
        return request_cost(
            price,
            input_tokens=input_tokens,
            cached_input_tokens=cached_input_tokens,
            cache_write_tokens=cache_write_tokens,
            output_tokens=output_tokens,
            reasoning_tokens=reasoning_tokens,
            provider_type=provider_type,
        )
    except ValueError:
        return None  # inconsistent counts from the server: unknown, not guessed


def busy_ns(rec: RequestRecord) -> int:
    """How long the request held the server: dispatch to end."""
    return max(rec.t_end - rec.t_dispatch, 0)


def gpu_share(rec: RequestRecord, stage_total: Decimal, stage_busy_ns: int) -> Decimal | None:
    """A request's share of its stage's GPU-hour cost, by busy time."""
    if stage_busy_ns <= 0:
        return None
    return _CTX.divide(_CTX.multiply(stage_total, Decimal(busy_ns(rec))), Decimal(stage_busy_ns))


@dataclass(frozen=True, slots=True)
class StageCost:
    """Cost totals of one stage x provider."""

    kind: Literal["tokens", "gpu-hour"]
    total: Decimal
    priced_requests: int  # requests with a cost
    unpriced_requests: int  # requests without one (no usage reported)
    ok_requests: int  # successful priced requests
    output_tokens: int  # of those
    sla_conforming: int  # successful requests that met every per-request SLA
    busy_ns: int = 0  # summed request busy time: GPU-hour cost is shared by it

    def _per(self, n: int, scale: int = 1) -> str | None:
        if not n:
            return None
        return str(_CTX.divide(_CTX.multiply(self.total, Decimal(scale)), Decimal(n)))

    @property
    def mean(self) -> Decimal | None:
        n = self.priced_requests
        return _CTX.divide(self.total, Decimal(n)) if n else None

    def as_dict(self) -> dict[str, str | int | None]:
        return {
            "pricing": self.kind,
            "total_usd": str(self.total),
            "per_request_usd": self._per(self.priced_requests),
            "per_1k_successful_usd": self._per(self.ok_requests, 1000),
            "per_1m_output_tokens_usd": self._per(self.output_tokens, 1_000_000),
            "per_sla_conforming_usd": self._per(self.sla_conforming),
            "sla_conforming_requests": self.sla_conforming,
            "priced_requests": self.priced_requests,
            "unpriced_requests": self.unpriced_requests,
            # What the per-request and per-token figures divide by, so stages can be pooled.
            "priced_ok_requests": self.ok_requests,
            "priced_output_tokens": self.output_tokens,
        }


class CostAccumulator:
    """Running cost totals of one stage x provider; mergeable across shards."""

    def __init__(self, price: ProviderPrice | None) -> None:
        self.price = price
        self.total = Decimal(0)
        self.priced = 0
        self.unpriced = 0
        self.ok = 0
        self.output_tokens = 0
        self.busy_ns = 0

    @property
    def per_request(self) -> bool:
        return isinstance(self.price, ModelPrice)

    def add(self, rec: RequestRecord, cost: Decimal | None) -> None:
        """``cost``: the request's token cost (always None under GPU-hour pricing)."""
        self.busy_ns += busy_ns(rec)
        if isinstance(self.price, GpuHourRate):
            cost = Decimal(0)  # priced at the end, from the stage's wall time
        elif cost is None:
            self.unpriced += 1
            return
        self.priced += 1
        self.total = _CTX.add(self.total, cost)
        if rec.ok:
            self.ok += 1
            self.output_tokens += rec.output_tokens or 0

    def merge(self, other: CostAccumulator) -> None:
        self.total = _CTX.add(self.total, other.total)
        self.priced += other.priced
        self.unpriced += other.unpriced
        self.ok += other.ok
        self.output_tokens += other.output_tokens
        self.busy_ns += other.busy_ns

    def result(self, wall_ns: int | None, sla_conforming: int) -> StageCost | None:
        """The stage's cost; None when no price applies or not one request was priced."""
        if self.price is None or self.priced == 0:
            return None
        if isinstance(self.price, GpuHourRate):
            if wall_ns is None:
                return None
            return StageCost(
                "gpu-hour",
                self.price.cost_of(wall_ns),
                self.priced,
                self.unpriced,
                self.ok,
                self.output_tokens,
                sla_conforming,
                self.busy_ns,
            )
        return StageCost(
            "tokens",
            self.total,
            self.priced,
            self.unpriced,
            self.ok,
            self.output_tokens,
            sla_conforming,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": str(self.total),
            "priced": self.priced,
            "unpriced": self.unpriced,
            "ok": self.ok,
            "output_tokens": self.output_tokens,
            "busy_ns": self.busy_ns,
        }

    def load(self, d: Mapping[str, Any]) -> None:
        self.total = Decimal(str(d["total"]))
        self.priced = int(d["priced"])
        self.unpriced = int(d["unpriced"])
        self.ok = int(d["ok"])
        self.output_tokens = int(d["output_tokens"])
        self.busy_ns = int(d["busy_ns"])

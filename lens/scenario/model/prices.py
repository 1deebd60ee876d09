"""Prices: per-token and per-GPU-hour prices of a provider, and ``pricing:`` catalog entries."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, Discriminator, Field, Tag, WithJsonSchema

from lens.scenario.env_scope import FROM_ENV
from lens.scenario.model.base import FrozenModel, NonEmptyStr, PositiveInt
from lens.scenario.units import parse_usd, usd_json_schema

Usd = Annotated[Decimal, BeforeValidator(parse_usd), WithJsonSchema(usd_json_schema())]


class TokenPrice(FrozenModel):
    """Prices in USD per 1M tokens, billed the way lens's catalog bills them."""

    input: Usd = Field(description="USD per 1M uncached input tokens, e.g. 0.15.")
    output: Usd = Field(description="USD per 1M output tokens (reasoning included).")
    cached_input: Usd | None = Field(
        None, description="USD per 1M cache-read input tokens (default: the input rate)."
    )
    cache_write: Usd | None = Field(
        None, description="USD per 1M cache-write tokens (default: the input rate)."
    )
    reasoning: Usd | None = Field(
        None, description="USD per 1M reasoning tokens (default: billed as output)."
    )


class GpuHourPrice(FrozenModel):
    """A self-hosted deployment billed by the hour whether busy or idle."""

    gpu_hour: Usd = Field(description="USD per GPU per hour, e.g. 2.50.")
    gpus: PositiveInt = Field(1, description="GPUs the deployment occupies.")


def _price_kind(value: Any) -> str:
    return "gpu" if isinstance(value, dict) and "gpu_hour" in value else "tokens"


Price = Annotated[
    Annotated[TokenPrice, Tag("tokens")] | Annotated[GpuHourPrice, Tag("gpu")],
    Discriminator(_price_kind),
]


class Priced(FrozenModel):
    price: Annotated[Price | None, FROM_ENV] = Field(
        None,
        description="What this provider costs, overriding the pricing catalog: USD per 1M "
        "tokens ({input, output, ...}) or per GPU-hour ({gpu_hour, gpus}).",
    )


class PricingEntry(TokenPrice):
    """A negotiated or private price for a provider type and model, replacing the catalog's."""

    provider: NonEmptyStr = Field(
        description="Provider type whose catalog this entry joins, e.g. openai or bedrock."
    )
    model: NonEmptyStr = Field(description="Model name as providers name it.")

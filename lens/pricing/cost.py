"""Cost of one request from lens's normalised token counts, in exact decimal USD.

lens normalises every provider's usage to the same meaning (``lens.records``,
wire-formats.md §9), so one formula serves them all:

* ``input_tokens`` is *every* prompt token, cache reads and cache writes included, for
  every provider.  Anthropic and Bedrock report them apart and lens's decoders add them
  back in; OpenAI/Azure/Gemini already include cached tokens in the prompt count.
  Billable uncached input is therefore ``input - cached - cache_write``.
* cache reads are billed at the cached rate, cache writes at the write rate (Anthropic and
  Bedrock's 5-minute rate; lens does not see the 5m/1h split), each falling back to the
  input rate when the model has none;
* ``output_tokens`` includes reasoning/thinking tokens (OpenAI ``reasoning_tokens``,
  Gemini ``thoughtsTokenCount``, Anthropic thinking).  They are billed at the output rate
  unless the entry has a separate ``reasoning`` rate, in which case the reasoning part
  moves to that rate;
* a long-context tier applies to the whole request, chosen by total input tokens.

Unknown is not zero: no usage (``output_tokens`` or ``input_tokens`` is ``None``) gives
``None`` rather than a cost that looks exact.  Only :class:`~decimal.Decimal` arithmetic
is used, in a private context, so results are exact to the last digit of the rates.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal

from lens.pricing.catalog import ModelPrice, Rates

_MILLION = Decimal(1_000_000)
_CTX = Context(prec=40)
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class EffectiveRates:
    """USD per 1M tokens actually applied to each part (fallbacks resolved)."""

    input: Decimal
    cached_input: Decimal
    cache_write: Decimal
    output: Decimal
    reasoning: Decimal

    @classmethod
    def of(cls, rates: Rates) -> EffectiveRates:
        return cls(
            input=rates.input,
            cached_input=rates.input if rates.cached_input is None else rates.cached_input,
            cache_write=rates.input if rates.cache_write is None else rates.cache_write,
            output=rates.output,
            reasoning=rates.output if rates.reasoning is None else rates.reasoning,
        )


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    """What one request cost (USD) and how it was worked out."""

    provider_type: str
    model: str  # the catalog entry priced against
    total: Decimal
    input: Decimal  # uncached input
    cached_input: Decimal
    cache_write: Decimal
    output: Decimal  # output tokens not billed separately as reasoning
    reasoning: Decimal  # only non-zero when the entry has a separate reasoning rate
    rates: EffectiveRates
    tier_above_input_tokens: int | None  # the long-context tier applied, if any
    uncached_input_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    output_tokens: int  # billed at the output rate
    reasoning_tokens: int  # billed at the reasoning rate (0 when inside output)
    source: str
    checked: str

    def to_record(self) -> dict[str, str | int | None]:
        """A JSON-ready form (money as decimal strings) for run records."""
        return {
            "provider_type": self.provider_type,
            "model": self.model,
            "total_usd": str(self.total),
            "input_usd": str(self.input),
            "cached_input_usd": str(self.cached_input),
            "cache_write_usd": str(self.cache_write),
            "output_usd": str(self.output),
            "reasoning_usd": str(self.reasoning),
            "rate_input": str(self.rates.input),
            "rate_cached_input": str(self.rates.cached_input),
            "rate_cache_write": str(self.rates.cache_write),
            "rate_output": str(self.rates.output),
            "rate_reasoning": str(self.rates.reasoning),
            "tier_above_input_tokens": self.tier_above_input_tokens,
            "price_source": self.source,
            "price_checked": self.checked,
        }


def _count(value: int | None, name: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def _usd(tokens: int, rate: Decimal) -> Decimal:
    return _CTX.divide(_CTX.multiply(Decimal(tokens), rate), _MILLION)


def request_cost(
    price: ModelPrice,
    *,
    input_tokens: int | None,
    cached_input_tokens: int | None = None,
    cache_write_tokens: int | None = None,
    output_tokens: int | None,
    reasoning_tokens: int | None = None,
    provider_type: str,
) -> CostBreakdown | None:
    """The cost of one request, or ``None`` when its usage is unknown.

    Counts are lens's normalised ones (see the module docstring); counts inconsistent
    with them (cached + cache-write above input, reasoning above output) raise
    ``ValueError`` rather than produce a negative cost.
    """
    if input_tokens is None or output_tokens is None:
        return None
    total_in = _count(input_tokens, "input_tokens")
    cached = _count(cached_input_tokens, "cached_input_tokens")
    written = _count(cache_write_tokens, "cache_write_tokens")
    out = _count(output_tokens, "output_tokens")
    reasoning = _count(reasoning_tokens, "reasoning_tokens")
    uncached = total_in - cached - written
    if uncached < 0:
        raise ValueError(
            f"cached ({cached}) + cache-write ({written}) tokens exceed input_tokens "
            f"({total_in}): input_tokens must include cache reads and writes"
        )
    if reasoning > out:
        raise ValueError(
            f"reasoning_tokens ({reasoning}) exceed output_tokens ({out}): "
            "output_tokens must include reasoning"
        )
    base, tier = price.rates_for(total_in)
    rates = EffectiveRates.of(base)
    separate = base.reasoning is not None
    billed_reasoning = reasoning if separate else 0
    billed_output = out - billed_reasoning
    parts = (
        _usd(uncached, rates.input),
        _usd(cached, rates.cached_input),
        _usd(written, rates.cache_write),
        _usd(billed_output, rates.output),
        _usd(billed_reasoning, rates.reasoning) if separate else _ZERO,
    )
    total = _ZERO
    for part in parts:
        total = _CTX.add(total, part)
    return CostBreakdown(
        provider_type=provider_type,
        model=price.model,
        total=total,
        input=parts[0],
        cached_input=parts[1],
        cache_write=parts[2],
        output=parts[3],
        reasoning=parts[4],
        rates=rates,
        tier_above_input_tokens=tier.above_input_tokens if tier else None,
        uncached_input_tokens=uncached,
        cached_input_tokens=cached,
        cache_write_tokens=written,
        output_tokens=billed_output,
        reasoning_tokens=billed_reasoning,
        source=price.source,
        checked=price.checked.isoformat(),
    )

"""Versioned list-price catalog (``lens.pricing/v1``) and model-name resolution.

Prices are USD per one million tokens, held as :class:`decimal.Decimal` (the JSON file
stores them as decimal strings so no binary float ever touches a price).

Resolution (:meth:`PricingCatalog.lookup`) maps a provider type and the model name a
scenario names to one entry:

* ``openai-responses`` uses OpenAI's prices; ``azure-openai`` uses Azure entries first,
  then OpenAI's (the Azure model name is the deployment's *model*, not its deployment id);
* dated snapshots resolve to their undated entry (``gpt-4o-mini-2024-07-18`` →
  ``gpt-4o-mini``, ``claude-3-5-haiku-latest`` → ``claude-3-5-haiku-20241022``);
* Bedrock ids resolve with or without the inference-profile prefix (``us.``, ``eu.``,
  ``apac.``, ``global.``...) and version suffix (``-v1:0``); an exact entry (a profile
  with its own price) wins.  A Bedrock Anthropic id with no Bedrock entry falls back to
  Anthropic's first-party price only when it is unprefixed or ``global.``: geographic
  profiles of newer models carry a premium the catalog does not know;
* ``openai-compatible`` and ``simulated`` have no list price: ``None`` unless an
  override names them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

SCHEMA = "lens.pricing/v1"
_RATE_KEYS = ("input", "cached_input", "cache_write", "output", "reasoning")
_ENTRY_KEYS = frozenset(
    {"provider", "model", "aliases", "usd_per_mtok", "tiers", "batch_discount", "source", "checked"}
)

# Which catalog providers a lens provider type reads, in order.
_PROVIDER_CHAIN: dict[str, tuple[str, ...]] = {
    "openai": ("openai",),
    "openai-responses": ("openai",),
    "azure-openai": ("azure-openai", "openai"),
}

_DATE_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})$")
_GEMINI_SNAPSHOT = re.compile(r"-\d{3}$")
_BEDROCK_PROFILE = re.compile(r"^(?:us-gov|us|eu|apac|ap|jp|au|ca|global)\.")
_BEDROCK_VERSION = re.compile(r"-v\d+(?::\d+)?$")


class PricingDataError(ValueError):
    """A malformed pricing catalog or override (a ``ValueError``)."""


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per 1M tokens. ``None``: cached/cache-write → input rate; reasoning → output rate."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Tier:
    """Rates for a whole request whose total input tokens exceed ``above_input_tokens``."""

    above_input_tokens: int
    rates: Rates


@dataclass(frozen=True, slots=True)
class ModelPrice:
    provider: str
    model: str
    rates: Rates
    source: str
    checked: date
    aliases: tuple[str, ...] = ()
    tiers: tuple[Tier, ...] = ()  # ascending by threshold
    batch_discount: Decimal | None = None  # fraction taken off for batch requests

    def rates_for(self, input_tokens: int) -> tuple[Rates, Tier | None]:
        """The rates a request with ``input_tokens`` total prompt tokens is billed at."""
        chosen: Tier | None = None
        for tier in self.tiers:
            if input_tokens > tier.above_input_tokens:
                chosen = tier
        return (chosen.rates if chosen else self.rates), chosen


def _name_keys(provider: str, name: str) -> list[str]:
    """Lookup keys for a model name, most specific first."""
    keys = [name.strip().lower()]

    def add(key: str) -> None:
        if key and key not in keys:
            keys.append(key)

    base = keys[0]
    if provider == "bedrock":
        base = _BEDROCK_PROFILE.sub("", base)
        add(base)
        add(_BEDROCK_VERSION.sub("", base))
    elif provider == "gemini":
        base = base.removeprefix("models/").removeprefix("gemini/")
        add(base)
        add(_GEMINI_SNAPSHOT.sub("", base.removesuffix("-latest")))
    else:
        add(base.removesuffix("-latest"))
        add(_DATE_SUFFIX.sub("", base))
    return keys


@dataclass(frozen=True, slots=True)
class PricingCatalog:
    checked: date
    entries: tuple[ModelPrice, ...]
    _index: dict[tuple[str, str], ModelPrice] = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        levels: dict[tuple[str, str], int] = {}
        index: dict[tuple[str, str], ModelPrice] = {}
        for entry in self.entries:
            for name in (entry.model, *entry.aliases):
                for level, key in enumerate(_name_keys(entry.provider, name)):
                    slot = (entry.provider, key)
                    old = levels.get(slot)
                    # exact names: a later entry (an override) wins; derived keys: the most
                    # specific derivation wins, then the first entry.
                    if old is None or level < old or (level == 0 and old == 0):
                        levels[slot] = level
                        index[slot] = entry
        object.__setattr__(self, "_index", index)

    @classmethod
    def load(cls, path: str | Path | None = None) -> PricingCatalog:
        """Load a catalog file; default: the one packaged with lens."""
        if path is None:
            text = resources.files("lens").joinpath("data/pricing-v1.json").read_text("utf-8")
            where = "lens/data/pricing-v1.json"
        else:
            text = Path(path).read_text(encoding="utf-8")
            where = str(path)
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PricingDataError(f"{where}: not valid JSON: {exc}") from exc
        return cls.from_dict(raw, where=where)

    @classmethod
    def from_dict(cls, raw: object, *, where: str = "pricing catalog") -> PricingCatalog:
        if not isinstance(raw, dict):
            raise PricingDataError(f"{where}: expected a JSON object")
        if raw.get("schema") != SCHEMA:
            raise PricingDataError(f"{where}: schema must be {SCHEMA!r}, got {raw.get('schema')!r}")
        checked = _date(raw.get("checked"), f"{where}: checked")
        models = raw.get("models")
        if not isinstance(models, list):
            raise PricingDataError(f"{where}: 'models' must be a list")
        entries = tuple(
            parse_entry(item, where=f"{where}: models[{i}]", allow_float=False)
            for i, item in enumerate(models)
        )
        _check_unique(entries, where)
        return cls(checked=checked, entries=entries)

    def lookup(self, provider_type: str, model: str) -> ModelPrice | None:
        """The price of ``model`` served by a provider of ``provider_type``, or ``None``."""
        for provider in _PROVIDER_CHAIN.get(provider_type, (provider_type,)):
            found = self._find(provider, model)
            if found is not None:
                return found
        if provider_type == "bedrock":
            name = model.strip().lower()
            profile = _BEDROCK_PROFILE.match(name)
            if profile is None or profile.group(0) == "global.":
                bare = _BEDROCK_VERSION.sub("", _BEDROCK_PROFILE.sub("", name))
                if bare.startswith("anthropic."):
                    return self._find("anthropic", bare.removeprefix("anthropic."))
        return None

    def _find(self, provider: str, model: str) -> ModelPrice | None:
        for key in _name_keys(provider, model):
            found = self._index.get((provider, key))
            if found is not None:
                return found
        return None

    def with_overrides(self, entries: Iterable[ModelPrice | Mapping[str, Any]]) -> PricingCatalog:
        """A new catalog where ``entries`` replace same provider+model ones or are added.

        Mappings use the file's entry format; ``source`` and ``checked`` default to
        ``"override"`` and today, and numbers may be given as int/float (YAML) as well.
        """
        parsed: list[ModelPrice] = []
        for i, item in enumerate(entries):
            if isinstance(item, ModelPrice):
                parsed.append(item)
                continue
            if not isinstance(item, Mapping):
                raise PricingDataError(f"pricing override [{i}]: expected a mapping")
            filled = {"source": "override", "checked": date.today().isoformat(), **item}
            parsed.append(parse_entry(filled, where=f"pricing override [{i}]", allow_float=True))
        _check_unique(tuple(parsed), "pricing overrides")
        replaced = {(p.provider, p.model.lower()) for p in parsed}
        kept = tuple(e for e in self.entries if (e.provider, e.model.lower()) not in replaced)
        return PricingCatalog(checked=self.checked, entries=kept + tuple(parsed))


def _check_unique(entries: tuple[ModelPrice, ...], where: str) -> None:
    seen: dict[tuple[str, str], str] = {}
    for entry in entries:
        for name in (entry.model, *entry.aliases):
            slot = (entry.provider, name.strip().lower())
            if slot in seen:
                raise PricingDataError(
                    f"{where}: {entry.provider} name {name!r} is claimed by both "
                    f"{seen[slot]!r} and {entry.model!r}"
                )
            seen[slot] = entry.model


def parse_entry(raw: object, *, where: str, allow_float: bool = False) -> ModelPrice:
    """One catalog entry (file format) → :class:`ModelPrice`, or a ``ValueError``."""
    if not isinstance(raw, Mapping):
        raise PricingDataError(f"{where}: expected an object")
    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        raise PricingDataError(f"{where}: unknown keys {sorted(unknown)}")
    provider = _text(raw.get("provider"), f"{where}: provider")
    model = _text(raw.get("model"), f"{where}: model")
    where = f"{where} ({provider}/{model})"
    aliases_raw = raw.get("aliases", [])
    if not isinstance(aliases_raw, list):
        raise PricingDataError(f"{where}: aliases must be a list of strings")
    aliases = tuple(_text(a, f"{where}: alias") for a in aliases_raw)
    rates = _rates(raw.get("usd_per_mtok"), None, f"{where}: usd_per_mtok", allow_float)
    tiers_raw = raw.get("tiers", [])
    if not isinstance(tiers_raw, list):
        raise PricingDataError(f"{where}: tiers must be a list")
    tiers: list[Tier] = []
    for j, t in enumerate(tiers_raw):
        tw = f"{where}: tiers[{j}]"
        if not isinstance(t, Mapping):
            raise PricingDataError(f"{tw}: expected an object")
        above = t.get("above_input_tokens")
        if isinstance(above, bool) or not isinstance(above, int) or above < 0:
            raise PricingDataError(f"{tw}: above_input_tokens must be a non-negative integer")
        if tiers and above <= tiers[-1].above_input_tokens:
            raise PricingDataError(f"{tw}: tiers must be in ascending above_input_tokens order")
        tiers.append(Tier(above, _rates(t.get("usd_per_mtok"), rates, tw, allow_float)))
    discount: Decimal | None = None
    if raw.get("batch_discount") is not None:
        discount = _decimal(raw["batch_discount"], f"{where}: batch_discount", allow_float)
        if discount > 1:
            raise PricingDataError(f"{where}: batch_discount must be between 0 and 1")
    return ModelPrice(
        provider=provider,
        model=model,
        aliases=aliases,
        rates=rates,
        tiers=tuple(tiers),
        batch_discount=discount,
        source=_text(raw.get("source"), f"{where}: source"),
        checked=_date(raw.get("checked"), f"{where}: checked"),
    )


def _rates(raw: object, base: Rates | None, where: str, allow_float: bool) -> Rates:
    """Parse ``usd_per_mtok``; within a tier, omitted keys inherit ``base``."""
    if not isinstance(raw, Mapping):
        raise PricingDataError(f"{where}: usd_per_mtok must be an object")
    unknown = set(raw) - set(_RATE_KEYS)
    if unknown:
        raise PricingDataError(f"{where}: unknown rate keys {sorted(unknown)}")
    values: dict[str, Decimal | None] = {}
    for key in _RATE_KEYS:
        if key in raw:
            value = raw[key]
            values[key] = None if value is None else _decimal(value, f"{where}.{key}", allow_float)
        elif base is not None:
            values[key] = getattr(base, key)
        else:
            values[key] = None
    input_rate, output_rate = values.pop("input"), values.pop("output")
    if input_rate is None or output_rate is None:
        raise PricingDataError(f"{where}: 'input' and 'output' rates are required")
    return Rates(input=input_rate, output=output_rate, **values)


def _decimal(value: object, where: str, allow_float: bool) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise PricingDataError(f"{where}: expected a decimal string, got {value!r}")
    if isinstance(value, float) and not allow_float:
        raise PricingDataError(
            f"{where}: prices must be decimal strings, not JSON numbers ({value!r})"
        )
    try:
        result = Decimal(str(value).strip())
    except InvalidOperation:
        raise PricingDataError(f"{where}: not a decimal number: {value!r}") from None
    if not result.is_finite() or result < 0:
        raise PricingDataError(f"{where}: must be a finite, non-negative number, got {value!r}")
    return result


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PricingDataError(f"{where}: expected a non-empty string")
    return value.strip()


def _date(value: object, where: str) -> date:
    if not isinstance(value, str):
        raise PricingDataError(f"{where}: expected a YYYY-MM-DD date string")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise PricingDataError(f"{where}: expected a YYYY-MM-DD date, got {value!r}") from None

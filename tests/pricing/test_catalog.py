from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from lens.pricing import SCHEMA, ModelPrice, PricingCatalog, Rates


@pytest.fixture(scope="module")
def catalog() -> PricingCatalog:
    return PricingCatalog.load()


def _model(catalog: PricingCatalog, provider_type: str, name: str) -> str | None:
    found = catalog.lookup(provider_type, name)
    return None if found is None else f"{found.provider}:{found.model}"


def test_shipped_catalog_entries_have_source_and_date(catalog: PricingCatalog) -> None:
    assert catalog.checked >= date(2025, 1, 1)
    assert len(catalog.entries) >= 46
    for entry in catalog.entries:
        assert entry.source.strip()
        assert isinstance(entry.checked, date)
        assert entry.rates.input >= 0
        assert entry.rates.output > 0


def test_shipped_file_stores_prices_as_strings() -> None:
    raw = json.loads(resources.files("lens").joinpath("data/pricing-v1.json").read_text())
    assert raw["schema"] == SCHEMA
    for entry in raw["models"]:
        for value in entry["usd_per_mtok"].values():
            assert value is None or isinstance(value, str)
        assert entry["source"]
        assert entry["checked"]


@pytest.mark.parametrize(
    ("provider_type", "name", "expected"),
    [
        ("openai", "gpt-4o-mini", "openai:gpt-4o-mini"),
        ("openai", "gpt-4o-mini-2024-07-18", "openai:gpt-4o-mini"),
        ("openai", "GPT-5-Mini", "openai:gpt-5-mini"),
        ("openai", "gpt-5-2025-08-07", "openai:gpt-5"),
        ("openai-responses", "o4-mini-2025-04-16", "openai:o4-mini"),
        ("azure-openai", "gpt-4o-mini", "azure-openai:gpt-4o-mini"),
        ("azure-openai", "gpt-5-nano", "openai:gpt-5-nano"),
        ("anthropic", "claude-3-5-haiku-20241022", "anthropic:claude-3-5-haiku-20241022"),
        ("anthropic", "claude-3-5-haiku-latest", "anthropic:claude-3-5-haiku-20241022"),
        ("anthropic", "claude-sonnet-4-5", "anthropic:claude-sonnet-4-5-20250929"),
        ("anthropic", "claude-opus-4-1", "anthropic:claude-opus-4-1-20250805"),
        ("anthropic", "claude-opus-4-0", "anthropic:claude-opus-4-20250514"),
        ("gemini", "gemini-2.5-flash", "gemini:gemini-2.5-flash"),
        ("gemini", "models/gemini-2.5-pro", "gemini:gemini-2.5-pro"),
        ("gemini", "gemini-2.0-flash-001", "gemini:gemini-2.0-flash"),
        (
            "bedrock",
            "anthropic.claude-3-5-haiku-20241022-v1:0",
            "bedrock:anthropic.claude-3-5-haiku-20241022-v1:0",
        ),
        (
            "bedrock",
            "us.anthropic.claude-3-5-haiku-20241022-v1:0",
            "bedrock:anthropic.claude-3-5-haiku-20241022-v1:0",
        ),
        (
            "bedrock",
            "us.anthropic.claude-sonnet-4-20250514-v1:0",
            "bedrock:us.anthropic.claude-sonnet-4-20250514-v1:0",
        ),
        (
            "bedrock",
            "eu.anthropic.claude-sonnet-4-20250514-v1:0",
            "bedrock:anthropic.claude-sonnet-4-20250514-v1:0",
        ),
        ("bedrock", "amazon.nova-pro-v1:0", "bedrock:amazon.nova-pro-v1:0"),
        ("bedrock", "amazon.nova-pro", "bedrock:amazon.nova-pro-v1:0"),
        (
            "bedrock",
            "us.meta.llama3-3-70b-instruct-v1:0",
            "bedrock:us.meta.llama3-3-70b-instruct-v1:0",
        ),
        # no Bedrock entry: unprefixed/global Anthropic ids use the first-party price
        (
            "bedrock",
            "global.anthropic.claude-haiku-4-5-20251001-v1:0",
            "anthropic:claude-haiku-4-5-20251001",
        ),
        (
            "bedrock",
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
            "anthropic:claude-sonnet-4-5-20250929",
        ),
        # geographic profiles of such models carry a premium the catalog lacks
        ("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", None),
        ("bedrock", "us.amazon.unknown-v1:0", None),
        ("openai", "gpt-4o-mini-tts", None),
        ("openai", "gpt-9", None),
        ("anthropic", "claude-opus-4-5-20251101", None),
        ("openai-compatible", "gpt-4o", None),
        ("simulated", "gpt-4o", None),
        ("some-new-type", "gpt-4o", None),
    ],
)
def test_lookup(
    catalog: PricingCatalog, provider_type: str, name: str, expected: str | None
) -> None:
    assert _model(catalog, provider_type, name) == expected


def test_lookup_rates_are_decimals(catalog: PricingCatalog) -> None:
    price = catalog.lookup("anthropic", "claude-sonnet-4-20250514")
    assert price is not None
    assert price.rates == Rates(
        input=Decimal("3"),
        output=Decimal("15"),
        cached_input=Decimal("0.3"),
        cache_write=Decimal("3.75"),
    )
    assert [t.above_input_tokens for t in price.tiers] == [200000]
    assert price.tiers[0].rates.cache_write == Decimal("7.5")
    assert catalog.lookup("openai", "gpt-4.1") is not None
    gpt41 = catalog.lookup("openai", "gpt-4.1")
    assert gpt41 is not None
    assert gpt41.batch_discount == Decimal("0.5")
    gemini_pro = catalog.lookup("gemini", "gemini-2.5-pro")
    assert gemini_pro is not None
    # the source gives no >200k cached rate: the tier inherits the base one
    assert gemini_pro.tiers[0].rates.cached_input == Decimal("0.3125")
    assert gemini_pro.tiers[0].rates.input == Decimal("2.5")


def test_overrides_replace_and_add(catalog: PricingCatalog) -> None:
    new = catalog.with_overrides(
        [
            {"provider": "openai", "model": "gpt-4o", "usd_per_mtok": {"input": 1, "output": 2.5}},
            {
                "provider": "openai-compatible",
                "model": "llama-3.1-8b",
                "aliases": ["meta-llama/Llama-3.1-8B-Instruct"],
                "usd_per_mtok": {"input": "0.05", "output": "0.1"},
                "source": "my contract",
                "checked": "2025-06-01",
            },
        ]
    )
    gpt4o = new.lookup("openai", "gpt-4o-2024-08-06")
    assert gpt4o is not None
    assert gpt4o.rates.input == Decimal(1)
    assert gpt4o.rates.output == Decimal("2.5")
    assert gpt4o.source == "override"
    assert gpt4o.rates.cached_input is None
    llama = new.lookup("openai-compatible", "meta-llama/llama-3.1-8b-instruct")
    assert llama is not None
    assert llama.source == "my contract"
    assert llama.checked == date(2025, 6, 1)
    assert len(new.entries) == len(catalog.entries) + 1
    # the original is untouched
    old = catalog.lookup("openai", "gpt-4o")
    assert old is not None
    assert old.rates.input == Decimal("2.5")
    assert catalog.lookup("openai-compatible", "llama-3.1-8b") is None


def test_override_alias_wins_over_shipped_name(catalog: PricingCatalog) -> None:
    price = ModelPrice(
        provider="openai",
        model="my-gpt",
        aliases=("gpt-4o",),
        rates=Rates(input=Decimal(7), output=Decimal(8)),
        source="test",
        checked=date(2025, 1, 1),
    )
    new = catalog.with_overrides([price])
    assert _model(new, "openai", "gpt-4o") == "openai:my-gpt"


def test_overrides_errors(catalog: PricingCatalog) -> None:
    with pytest.raises(ValueError, match="expected a mapping"):
        catalog.with_overrides(["gpt-4o"])  # type: ignore[list-item]
    entry = {"provider": "x", "model": "m", "usd_per_mtok": {"input": "1", "output": "1"}}
    with pytest.raises(ValueError, match="claimed by both"):
        catalog.with_overrides([entry, entry])
    with pytest.raises(ValueError, match="required"):
        catalog.with_overrides([{"provider": "x", "model": "m", "usd_per_mtok": {"input": "1"}}])


def _entry(**changes: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "provider": "openai",
        "model": "m",
        "aliases": [],
        "usd_per_mtok": {"input": "1", "output": "2"},
        "source": "test",
        "checked": "2025-01-01",
    }
    entry.update(changes)
    return entry


def _doc(*entries: object, **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"schema": SCHEMA, "checked": "2025-01-01", "models": list(entries)}
    doc.update(changes)
    return doc


def test_load_from_path(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(_doc(_entry(aliases=["mm"]))))
    loaded = PricingCatalog.load(path)
    assert _model(loaded, "openai", "mm") == "openai:m"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        PricingCatalog.load(path)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "expected a JSON object"),
        (_doc(schema="lens.pricing/v2"), "schema must be"),
        (_doc(checked="yesterday"), "YYYY-MM-DD"),
        (_doc(checked=20250101), "YYYY-MM-DD"),
        (_doc(models={}), "'models' must be a list"),
        (_doc("gpt"), "expected an object"),
        (_doc(_entry(extra=1)), "unknown keys"),
        (_doc(_entry(provider="")), "provider: expected a non-empty string"),
        (_doc(_entry(model=None)), "model: expected a non-empty string"),
        (_doc(_entry(aliases="x")), "aliases must be a list"),
        (_doc(_entry(aliases=[1])), "alias: expected a non-empty string"),
        (_doc(_entry(usd_per_mtok=None)), "usd_per_mtok must be an object"),
        (_doc(_entry(usd_per_mtok={"input": "1", "output": "2", "x": "1"})), "unknown rate"),
        (_doc(_entry(usd_per_mtok={"input": "1"})), "'input' and 'output' rates are required"),
        (_doc(_entry(usd_per_mtok={"input": 1.5, "output": "2"})), "decimal strings"),
        (_doc(_entry(usd_per_mtok={"input": True, "output": "2"})), "expected a decimal"),
        (_doc(_entry(usd_per_mtok={"input": ["1"], "output": "2"})), "expected a decimal"),
        (_doc(_entry(usd_per_mtok={"input": "abc", "output": "2"})), "not a decimal"),
        (_doc(_entry(usd_per_mtok={"input": "NaN", "output": "2"})), "finite, non-negative"),
        (_doc(_entry(usd_per_mtok={"input": "-1", "output": "2"})), "finite, non-negative"),
        (_doc(_entry(tiers={})), "tiers must be a list"),
        (_doc(_entry(tiers=["x"])), "expected an object"),
        (
            _doc(_entry(tiers=[{"above_input_tokens": True, "usd_per_mtok": {}}])),
            "non-negative integer",
        ),
        (
            _doc(
                _entry(
                    tiers=[
                        {"above_input_tokens": 200, "usd_per_mtok": {}},
                        {"above_input_tokens": 100, "usd_per_mtok": {}},
                    ]
                )
            ),
            "ascending",
        ),
        (_doc(_entry(batch_discount="1.5")), "between 0 and 1"),
        (_doc(_entry(source=" ")), "source: expected a non-empty string"),
        (_doc(_entry(checked="2025-13-01")), "YYYY-MM-DD"),
        (_doc(_entry(), _entry(model="M")), "claimed by both"),
        (_doc(_entry(), _entry(model="n", aliases=["m"])), "claimed by both"),
    ],
)
def test_malformed_catalog(doc: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PricingCatalog.from_dict(doc)


def test_same_name_under_different_providers_is_fine() -> None:
    cat = PricingCatalog.from_dict(_doc(_entry(), _entry(provider="azure-openai")))
    assert _model(cat, "azure-openai", "m") == "azure-openai:m"
    assert _model(cat, "openai", "m") == "openai:m"

from __future__ import annotations

from decimal import Decimal

from lens.metrics.cost import prices_for, record_cost, stage_cost
from lens.plan.model import ProviderSpec, SimSettings
from lens.records import ErrorClass, RequestRecord


def rec(ok: bool = True, **tokens: int | None) -> RequestRecord:
    return RequestRecord(
        provider="p", stage="s", prompt="q", index=0, ok=ok,
        error_class=None if ok else ErrorClass.CUT_STREAM, error_message=None, http_status=200,
        t_intended=None, t_dispatch=0, t_headers=None, t_first_chunk=None, t_first_token=None,
        t_first_visible=None, t_last_token=None, t_end=1, **tokens,  # type: ignore[arg-type]
    )  # fmt: skip


PROVIDERS = {
    "mini": ProviderSpec(id="mini", type="openai", model="gpt-4o-mini-2024-07-18", base_url="x"),
    "haiku": ProviderSpec(
        id="haiku", type="anthropic", model="claude-3-5-haiku-latest", base_url="x"
    ),
    "sim": ProviderSpec(
        id="sim", type="simulated", model="gpt-4o-mini", base_url=None, sim=SimSettings()
    ),
    "local": ProviderSpec(id="local", type="openai-compatible", model="llama", base_url="x"),
}


def test_prices_only_for_known_hosted_models() -> None:
    prices = prices_for(PROVIDERS)
    assert prices["mini"] is not None
    assert prices["haiku"] is not None
    assert prices["sim"] is None  # simulated requests cost nothing real: unknown, not 0
    assert prices["local"] is None


def test_openai_request_cost_by_hand() -> None:
    price = prices_for(PROVIDERS)["mini"]
    # 1,000 input of which 400 cached, 200 output: 600*0.15 + 400*0.075 + 200*0.6 per 1M
    cost = record_cost(
        rec(input_tokens=1000, cached_input_tokens=400, output_tokens=200), price, "openai"
    )
    assert cost is not None
    assert cost.total == Decimal("0.00024")  # 0.00009 + 0.00003 + 0.00012


def test_anthropic_request_with_cache_read_and_write_by_hand() -> None:
    price = prices_for(PROVIDERS)["haiku"]
    # lens's input includes cache: 100 uncached + 300 read + 50 written; 40 output.
    r = rec(input_tokens=450, cached_input_tokens=300, cache_write_tokens=50, output_tokens=40)
    cost = record_cost(r, price, "anthropic")
    assert cost is not None
    # 100*0.8 + 300*0.08 + 50*1 + 40*4 = 80 + 24 + 50 + 160 = 314 per 1M
    assert cost.total == Decimal("0.000314")


def test_unknown_counts_or_inconsistent_counts_have_no_cost() -> None:
    price = prices_for(PROVIDERS)["mini"]
    assert record_cost(rec(input_tokens=10, output_tokens=None), price, "openai") is None
    assert record_cost(rec(input_tokens=10, output_tokens=1), None, "openai") is None
    bad = rec(input_tokens=10, cached_input_tokens=20, output_tokens=1)
    assert record_cost(bad, price, "openai") is None


def test_stage_totals_count_failed_requests_that_used_tokens() -> None:
    price = prices_for(PROVIDERS)["mini"]
    ok = rec(input_tokens=1000, output_tokens=1000)  # 0.00015 + 0.0006 = 0.00075
    failed = rec(ok=False, input_tokens=1000, output_tokens=0)  # 0.00015
    unknown = rec(input_tokens=None, output_tokens=None)
    pairs = [(r, record_cost(r, price, "openai")) for r in (ok, failed, unknown)]
    total = stage_cost(pairs)
    assert total is not None
    d = total.as_dict()
    assert d["total_usd"] == "0.00090"
    assert d["priced_requests"] == 2
    assert d["unpriced_requests"] == 1
    assert Decimal(str(d["per_request_usd"])) == Decimal("0.00045")
    assert Decimal(str(d["per_1k_successful_usd"])) == Decimal("0.9")
    assert Decimal(str(d["per_1m_output_tokens_usd"])) == Decimal("0.9")
    assert stage_cost([(unknown, None)]) is None

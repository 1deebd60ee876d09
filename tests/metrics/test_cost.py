from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

import pytest

from lens.metrics.cost import CostAccumulator, bill_run, busy_ns, record_cost
from lens.metrics.judge import judge
from lens.metrics.summary import SummaryBuilder, aggregate
from lens.plan.model import ProviderSpec, SimSettings, SlaSpec
from lens.pricing import GpuHourRate, ModelPrice, PricingCatalog
from lens.records import ErrorClass, RequestRecord
from lens.scenario.sla import parse_sla

S = 1_000_000_000


def rec(ok: bool = True, t_end: int = 1, **tokens: int | None) -> RequestRecord:
    return RequestRecord(
        provider="p", stage="s", prompt="q", index=0, ok=ok,
        error_class=None if ok else ErrorClass.CUT_STREAM, error_message=None, http_status=200,
        t_intended=None, t_dispatch=0, t_headers=None, t_first_chunk=None, t_first_token=None,
        t_first_visible=None, t_last_token=None, t_end=t_end, **tokens,  # type: ignore[arg-type]
    )  # fmt: skip


CATALOG = PricingCatalog.load()


def priced(pid: str, type_: str, model: str) -> ProviderSpec:
    spec = ProviderSpec(id=pid, type=type_, model=model, base_url="x")
    return replace(spec, price=CATALOG.lookup(type_, model))


MINI = priced("p", "openai", "gpt-4o-mini-2024-07-18")
HAIKU = priced("p", "anthropic", "claude-3-5-haiku-latest")
UNPRICED = ProviderSpec(id="p", type="openai-compatible", model="llama", base_url="x")
GPU = replace(
    ProviderSpec(id="p", type="simulated", model="m", base_url=None, settings=SimSettings()),
    price=GpuHourRate(Decimal("2.5"), 2, "test"),
)


def test_openai_request_cost_by_hand() -> None:
    # 1,000 input of which 400 cached, 200 output: 600*0.15 + 400*0.075 + 200*0.6 per 1M
    cost = record_cost(rec(input_tokens=1000, cached_input_tokens=400, output_tokens=200), MINI)
    assert cost is not None
    assert cost.total == Decimal("0.00024")  # 0.00009 + 0.00003 + 0.00012


def test_anthropic_request_with_cache_read_and_write_by_hand() -> None:
    # lens's input includes cache: 100 uncached + 300 read + 50 written; 40 output.
    r = rec(input_tokens=450, cached_input_tokens=300, cache_write_tokens=50, output_tokens=40)
    cost = record_cost(r, HAIKU)
    assert cost is not None
    # 100*0.8 + 300*0.08 + 50*1 + 40*4 = 80 + 24 + 50 + 160 = 314 per 1M
    assert cost.total == Decimal("0.000314")


def test_unknown_counts_unknown_price_or_inconsistent_counts_have_no_cost() -> None:
    assert record_cost(rec(input_tokens=10, output_tokens=None), MINI) is None
    assert record_cost(rec(input_tokens=10, output_tokens=1), UNPRICED) is None
    assert record_cost(rec(input_tokens=10, output_tokens=1), GPU) is None  # priced per stage
    assert record_cost(rec(input_tokens=10, cached_input_tokens=20, output_tokens=1), MINI) is None


def test_stage_totals_count_failed_requests_that_used_tokens() -> None:
    ok = rec(input_tokens=1000, output_tokens=1000)  # 0.00015 + 0.0006 = 0.00075
    failed = rec(ok=False, input_tokens=1000, output_tokens=0)  # 0.00015
    unknown = rec(input_tokens=None, output_tokens=None)
    (s,) = aggregate([ok, failed, unknown], stage_windows={}, providers={"p": MINI})
    assert s.cost is not None
    d = s.cost.as_dict()
    assert d["pricing"] == "tokens"
    assert d["total_usd"] == "0.00090"
    assert d["priced_requests"] == 2
    assert d["unpriced_requests"] == 1
    assert Decimal(str(d["per_request_usd"])) == Decimal("0.00045")
    assert Decimal(str(d["per_1k_successful_usd"])) == Decimal("0.9")
    assert Decimal(str(d["per_1m_output_tokens_usd"])) == Decimal("0.9")
    # no SLA: every successful request conforms, and they carry the whole stage's cost
    assert d["sla_conforming_requests"] == 2
    assert Decimal(str(d["per_sla_conforming_usd"])) == Decimal("0.00045")
    assert s.get("cost", "total") == pytest.approx(0.0009)
    assert s.get("cost", "mean") == pytest.approx(0.00045)
    assert s.metrics["cost"].n == 2
    assert s.metrics["cost"].max == pytest.approx(0.00075)


def test_no_price_or_nothing_priced_is_no_cost_not_zero() -> None:
    r = rec(input_tokens=10, output_tokens=1)
    (unpriced,) = aggregate([r], stage_windows={}, providers={"p": UNPRICED})
    assert unpriced.cost is None
    assert unpriced.get("cost", "total") is None
    (no_usage,) = aggregate([rec()], stage_windows={}, providers={"p": MINI})
    assert no_usage.cost is None
    (no_providers,) = aggregate([r], stage_windows={})
    assert no_providers.cost is None


@dataclass(frozen=True)
class Win:
    stage: str
    provider: str
    t_start: int
    t_end: int
    pause_ns: int = 0


def test_gpu_hour_cost_is_billed_time_shared_by_busy_time() -> None:
    short = rec(t_end=1 * S)
    long_ = rec(ok=False, t_end=3 * S)
    window = Win("s", "p", 0, 36 * S)  # 36 s = 0.01 h; 2.5 $/GPU-h x 2 GPUs x 0.01 h = $0.05
    bill = bill_run({"p": GPU}, [window], [short, long_])
    assert bill.record_usd == (Decimal("0.0125"), Decimal("0.0375"))
    (s,) = aggregate(
        [short, long_], stage_windows={("s", "p"): (0, 36 * S)}, providers={"p": GPU},
        gpu_usd=bill.record_usd,
    )  # fmt: skip
    assert s.cost is not None
    assert s.cost.kind == "gpu-hour"
    assert s.cost.total == Decimal("0.05")
    assert s.get("cost", "mean") == pytest.approx(0.025)
    assert s.metrics["cost"].p95 is None  # per-request checks leave GPU-hour shares alone
    # without the bill's shares the records' costs, and so the stage's, are unknown
    (no_bill,) = aggregate([short], stage_windows={("s", "p"): (0, S)}, providers={"p": GPU})
    assert no_bill.cost is None


def test_busy_time_never_negative() -> None:
    assert busy_ns(rec(t_end=5)) == 5
    assert busy_ns(replace(rec(t_end=5), t_dispatch=9)) == 0


def test_cost_accumulator_round_trips_and_merges_exactly() -> None:
    a, b = CostAccumulator(MINI.price), CostAccumulator(MINI.price)
    a.add(rec(input_tokens=1, output_tokens=1), Decimal("0.1"))
    b.add(rec(input_tokens=1, output_tokens=1), Decimal("0.2"))
    a.merge(b)
    c = CostAccumulator(MINI.price)
    c.load(a.to_dict())
    assert c.total == Decimal("0.3")  # not 0.30000000000000004
    assert c.to_dict() == a.to_dict()


def test_shards_merge_costs_and_conforming_counts() -> None:
    slas = (SlaSpec(parse_sla("e2e.p95 < 2s")),)
    fast, slow = rec(t_end=S, input_tokens=1000, output_tokens=0), rec(t_end=3 * S)
    whole = SummaryBuilder(providers={"p": MINI}, slas=slas)
    whole.add_many([fast, slow])
    left = SummaryBuilder(providers={"p": MINI}, slas=slas)
    left.add(fast)
    right = SummaryBuilder(providers={"p": MINI}, slas=slas)
    right.add(slow)
    merged = SummaryBuilder(providers={"p": MINI}, slas=slas)
    merged.merge(SummaryBuilder.from_dict(left.to_dict()))
    merged.merge(SummaryBuilder.from_dict(right.to_dict()))
    (w,), (m,) = whole.build(), merged.build()
    assert m.sla_conforming == w.sla_conforming == 1
    assert m.cost == w.cost
    assert w.cost is not None
    assert w.cost.total == Decimal("0.00015")


def test_cost_slas_judge_exact_totals_and_means() -> None:
    r = rec(input_tokens=1000, output_tokens=1000)  # $0.00075 each
    (s,) = aggregate([r, r, r, r], stage_windows={}, providers={"p": MINI})
    slas = [
        SlaSpec(parse_sla("cost.total < $0.003")),  # 0.003 exactly: not below
        SlaSpec(parse_sla("cost.total <= $0.003")),
        SlaSpec(parse_sla("cost.mean < $0.001")),
    ]
    verdicts = judge(slas, [s])
    assert [v.outcome for v in verdicts] == ["fail", "pass", "pass"]
    assert verdicts[0].reason == "cost.total = $0.003, not < $0.003"
    assert verdicts[2].exact


def test_cost_sla_without_any_priced_request_is_inconclusive() -> None:
    (s,) = aggregate([rec()], stage_windows={}, providers={"p": MINI})
    (v,) = judge([SlaSpec(parse_sla("cost.mean < $1"))], [s])
    assert v.outcome == "inconclusive"
    assert "token usage" in v.reason


def test_model_price_from_the_catalog_is_what_a_provider_carries() -> None:
    assert isinstance(MINI.price, ModelPrice)
    assert MINI.price.model == "gpt-4o-mini"

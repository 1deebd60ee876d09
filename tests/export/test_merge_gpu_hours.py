"""A merged GPU-hour run is billed once, on its merged windows: N shards hitting one
deployment pay for its wall time once, shared by busy time among every merged record,
exactly as one process's run is billed (Decimal, to the last quantum)."""

from __future__ import annotations

from decimal import Decimal

import pytest

import lens
from lens.export.merge import bill_merged, record_from_out
from lens.export.results import Results, StageWindowOut
from lens.metrics.cost import busy_ns
from lens.pipeline import run_plan
from lens.plan.compile import compile_plan
from lens.plan.model import ProviderSpec
from lens.plan.split import Shard
from lens.pricing import GpuHourRate
from lens.scenario import parse_scenario

# $2 per second of the deployment's time: a bill large enough to see any double count.
SCENARIO = """\
version: 1
name: gpu-shards
providers:
  gpu:
    type: simulated
    ttft: 20ms
    itl: 3ms
    output_tokens: 4
    price: {gpu_hour: 3600, gpus: 2}
prompts:
  - id: q
    messages: [{role: user, content: hi}]
load:
  - {id: rate, pattern: constant-rate, rate: 50/s, requests: 12}
  - {id: conc, pattern: concurrency, concurrency: 4, requests: 10}
"""
COUNT = 2
RATE = GpuHourRate(Decimal(3600), 2, "scenario")
NS = 1_000_000_000


@pytest.fixture(scope="module")
def shards() -> list[Results]:
    plan = compile_plan(parse_scenario(SCENARIO), env={})
    return [
        run_plan(plan, shard=Shard(k, COUNT), handle_signals=False).results for k in range(COUNT)
    ]


def test_the_merged_bill_is_one_process_bill_of_the_merged_windows(
    shards: list[Results],
) -> None:
    merged = lens.merge(shards)
    assert merged.billing is not None
    total = Decimal(merged.billing.total_usd)
    # Independently of bill_run: every nanosecond from the shared start to the merged end
    # of the last unit, billed once at the rate (one provider, units back to back).
    windows = {(w.stage, w.provider): w for w in merged.stages}
    ends = {
        key: max(s.stages[k].end_ms for s in shards)
        for k, key in enumerate((("rate", "gpu"), ("conc", "gpu")))
    }
    assert windows[("conc", "gpu")].end_ms == ends[("conc", "gpu")]
    last_end_ns = round(ends[("conc", "gpu")] * 1_000_000)
    assert merged.billing.run_billed_s == pytest.approx(last_end_ns / 1e9)
    expected = Decimal(RATE.units_of(last_end_ns)).scaleb(-12)
    assert total == expected
    assert total.quantize(Decimal("0.01")) == expected.quantize(Decimal("0.01"))  # to the cent
    # Not the shards' own bills added up: they overlap in time, so that sum is ~2x.
    own = [Decimal(s.billing.total_usd) for s in shards if s.billing is not None]
    assert len(own) == COUNT
    assert sum(own, Decimal(0)) > total * Decimal("1.5")

    # Per unit: billed from the end of the unit before to its merged end.
    rate, conc = merged.stages
    assert rate.billed_s == pytest.approx(rate.end_ms / 1e3)
    assert conc.billed_s == pytest.approx((conc.end_ms - rate.end_ms) / 1e3)
    unit_total = sum((Decimal(w.cost_usd or "0") for w in merged.stages), Decimal(0))
    assert unit_total == total

    # Every merged record carries its share of its unit; the shares and what no record
    # carries add up to the bill exactly, and so do the summaries' costs.
    for w in merged.stages:
        shares = [
            Decimal(r.cost_usd or "0")
            for r in merged.records
            if (r.stage, r.provider) == (w.stage, w.provider)
        ]
        assert all(r.cost_detail and r.cost_detail["pricing"] == "gpu-hour" for r in merged.records)
        assert sum(shares, Decimal(0)) + Decimal(w.unattributed_usd or "0") == Decimal(
            w.cost_usd or "0"
        )
    summed = sum(
        (
            Decimal(str(s.cost["total_usd"]))
            for s in (*merged.summaries, *merged.phase_summaries)
            if s.cost is not None
        ),
        Decimal(0),
    )
    unattributed = sum((Decimal(w.unattributed_usd or "0") for w in merged.stages), Decimal(0))
    assert summed + unattributed == total
    assert all(s.cost and s.cost["pricing"] == "gpu-hour" for s in merged.summaries)


def test_shares_go_by_busy_time(shards: list[Results]) -> None:
    """Within a unit, each merged record's share is the unit's bill split by busy time
    (dispatch to end), whichever shard it came from, to within one 10^-12 USD quantum."""
    merged = lens.merge(shards)
    for w in merged.stages:
        mine = [r for r in merged.records if (r.stage, r.provider) == (w.stage, w.provider)]
        assert {r.shard for r in mine} == {0, 1}
        busy = [busy_ns(record_from_out(r)) for r in mine]
        pooled = Decimal(w.cost_usd or "0") - Decimal(w.unattributed_usd or "0")
        quantum = Decimal("1e-12")
        for rec, ns in zip(mine, busy, strict=True):
            due = pooled * ns / sum(busy)
            assert abs(Decimal(rec.cost_usd or "0") - due) <= quantum


def test_overlapping_merged_windows_are_billed_once() -> None:
    """Shard 0 started the second unit while shard 1 still ran the first: the merged
    windows overlap by 1 s, which is billed once."""
    spec = ProviderSpec(id="gpu", type="simulated", model="m", base_url=None, price=RATE)
    windows = [
        StageWindowOut.model_validate(
            {"stage": s, "provider": "gpu", "start_ms": a, "end_ms": b, "planned": 1, "started": 1}
        )
        for s, a, b in (("a", 0, 5000), ("b", 4000, 9000))
    ]
    bill = bill_merged({"gpu": spec}, windows, [])
    assert bill.usd == Decimal(18)  # 9 s at $2/s, not 10 s
    assert [u.billed_ns for u in bill.units] == [5 * NS, 4 * NS]

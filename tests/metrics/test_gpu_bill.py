"""The GPU-hour bill of a run: every nanosecond billed once, every level adding up exactly."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction

import pytest

from lens.metrics.cost import bill_run
from lens.metrics.summary import SummaryBuilder
from lens.plan.model import ProviderSpec, SimSettings
from lens.pricing import GpuHourRate, ModelPrice, PricingCatalog, Rates
from lens.pricing.gpu import QUANTUM, apportion
from lens.records import ErrorClass, RequestRecord
from tests.metrics._factory import failed, record

MS = 1_000_000
S = 1_000_000_000
SIM = ProviderSpec(id="g", type="simulated", model="m", base_url=None, settings=SimSettings())
# $2.50 x 3 GPUs: $7.50 an hour, 1/480 of a cent per second; nothing here divides evenly.
GPU = replace(SIM, price=GpuHourRate(Decimal("2.5"), 3, "test"))
TOKENS = replace(
    SIM,
    id="t",
    price=ModelPrice(
        provider="simulated",
        model="m",
        rates=Rates(input=Decimal(1), output=Decimal(2)),
        source="test",
        checked=PricingCatalog.load().checked,
    ),
)
PROVIDERS = {"g": GPU, "t": TOKENS}


@dataclass(frozen=True)
class Win:
    stage: str
    provider: str
    t_start: int
    t_end: int
    pause_ns: int = 0


def rec(stage: str, busy_ms: float, start_ms: float = 0, **kw: object) -> RequestRecord:
    return record(
        provider="g", stage=stage, t_dispatch=round(start_ms * MS),
        t_end=round((start_ms + busy_ms) * MS), **kw,
    )  # fmt: skip


def exact_usd(ns: int) -> Fraction:
    return Fraction(Decimal("2.5")) * 3 * ns / (3600 * S)


@pytest.mark.parametrize("seed", range(20))
def test_apportion_adds_up_and_stays_within_one_unit_of_each_quota(seed: int) -> None:
    rng = random.Random(seed)
    total = rng.randrange(0, 10**9)
    weights = [rng.choice([0, rng.randrange(1, 10**6)]) for _ in range(rng.randrange(1, 30))]
    parts = apportion(total, weights)
    if sum(weights) == 0:
        assert parts == [0] * len(weights)
        return
    assert sum(parts) == total
    for part, w in zip(parts, weights, strict=True):
        quota = Fraction(total * w, sum(weights))
        assert quota - 1 < part < quota + 1
        assert w or part == 0  # nothing goes to a request that held nothing


def test_apportion_gives_the_leftover_units_to_the_largest_remainders_then_in_order() -> None:
    assert apportion(10, [1, 1, 1]) == [4, 3, 3]
    assert apportion(11, [1, 1, 1]) == [4, 4, 3]
    assert apportion(7, [5, 1, 3]) == [4, 1, 2]  # quotas 3.89, 0.78, 2.33
    assert apportion(5, [0, 0]) == [0, 0]
    with pytest.raises(ValueError, match="negative"):
        apportion(5, [2, -1])


def test_every_nanosecond_of_the_run_is_billed_once_to_the_unit_it_led_into() -> None:
    windows = [
        Win("a", "g", t_start=120 * MS, t_end=3 * S + 7),  # 120 ms of set-up first
        # pause 1 s, 3.2 ms of set-up, then the window
        Win("b.c1", "g", t_start=4 * S + 3_200_007, t_end=6 * S + 1, pause_ns=S),
        Win("c", "g", t_start=6 * S + 5, t_end=9 * S + 333),
    ]
    records = [
        rec("a", 1000, 120), rec("a", 1000, 120), rec("a", 1000, 120),  # equal shares
        rec("b.c1", 700, 4100, phase="warmup"), rec("b.c1", 1300, 4800),
        replace(failed(provider="g", stage="b.c1"), t_dispatch=5 * S, t_end=5 * S + 13),
        rec("c", 5, 6000),
    ]  # fmt: skip
    bill = bill_run(PROVIDERS, windows, records)
    a, b, c = bill.units
    assert (a.billed_from, b.billed_from, c.billed_from) == (0, 3 * S + 7, 6 * S + 1)
    assert (a.setup_ns, b.pause_ns, b.setup_ns, c.setup_ns) == (120 * MS, S, 3_200_000, 4)
    assert sum(u.billed_ns for u in bill.units) == bill.billed_ns == 9 * S + 333
    (provider,) = bill.providers
    assert provider.billed_ns == bill.billed_ns
    # the run's cost is rate x gpus x its billed time, rounded once to 10^-12 USD
    assert bill.usd == provider.usd
    assert provider.usd == Decimal(round(exact_usd(bill.billed_ns) / Fraction(QUANTUM))) * QUANTUM
    # units add up to the run, records to their unit: exactly, as Decimals
    assert sum((u.usd or Decimal(0) for u in bill.units), Decimal(0)) == bill.usd
    for u in bill.units:
        shares = [
            share
            for r, share in zip(records, bill.record_usd, strict=True)
            if r.stage == u.stage and share is not None
        ]
        assert u.unattributed_usd == 0
        assert sum(shares, Decimal(0)) == u.usd
        assert abs(Fraction(u.usd) - exact_usd(u.billed_ns)) < 3 * Fraction(QUANTUM)
    shares = [s or Decimal(0) for s in bill.record_usd]
    assert None not in bill.record_usd
    assert max(shares[:3]) - min(shares[:3]) == QUANTUM  # thirds: one quantum apart at most
    assert 0 < shares[5] < shares[3]  # the failed request held the server: it pays


def test_summaries_of_each_phase_add_up_to_the_units_cost() -> None:
    windows = [Win("b", "g", t_start=0, t_end=10 * S + 1)]
    records = [
        rec("b", 333, 0, phase="warmup"), rec("b", 333, 0, phase="warmup"),
        rec("b", 1000, 400), rec("b", 999, 500),
        rec("b", 10, 1600, phase="cooldown"),
        rec("b", 2000, 2000, ok=False, error_class=ErrorClass.DRAINED),
        rec("b", 100, 4000, ok=False, error_class=ErrorClass.CANCELLED),
    ]  # fmt: skip
    bill = bill_run(PROVIDERS, windows, records)
    builder = SummaryBuilder(providers=PROVIDERS)
    builder.add_many(records, bill.record_usd)
    (measured,) = builder.build({("b", "g"): (0, 10 * S)})
    phases = builder.build_phases()
    assert {s.phase for s in phases} == {"warmup", "cooldown"}
    costs = [s.cost.total for s in (measured, *phases) if s.cost is not None]
    (unit,) = bill.units
    assert sum(costs, Decimal(0)) == unit.usd  # drained and cancelled requests pay too
    assert measured.cost is not None
    shares = [s or Decimal(0) for s in bill.record_usd]
    assert measured.cost.total == sum(shares[2:4] + shares[5:], Decimal(0))
    assert measured.cost.priced_requests == 4


def test_a_unit_that_sent_nothing_keeps_its_cost_unattributed() -> None:
    windows = [Win("a", "g", 0, S), Win("empty", "g", S, 2 * S)]
    bill = bill_run(PROVIDERS, windows, [rec("a", 10)])
    a, empty = bill.units
    assert a.unattributed_usd == 0
    assert empty.usd == empty.unattributed_usd == Decimal("0.002083333333")  # 1 s of $7.50/h
    assert bill.record_usd[0] == a.usd


def test_time_of_other_providers_units_is_theirs_and_records_without_gpu_prices_get_none() -> None:
    windows = [
        Win("s", "g", 0, 2 * S),
        Win("s", "t", 2 * S, 5 * S),  # token-priced: its 3 s bill no GPU
        Win("u", "g", 5 * S + 10, 6 * S),
    ]
    token_rec = replace(rec("s", 10), provider="t")
    bill = bill_run(PROVIDERS, windows, [rec("s", 10), token_rec, rec("u", 10), rec("x", 1)])
    (provider,) = bill.providers
    assert provider.billed_ns == 2 * S + S  # its own units, each with its lead-in
    assert bill.billed_ns == 6 * S
    assert bill.units[1].usd is None
    assert bill.record_usd[1] is None  # priced by its tokens
    assert bill.record_usd[3] is None  # no window: its share cannot be known
    assert bill.record_usd[0] is not None
    assert bill.record_usd[2] is not None
    assert bill.record_usd[0] + bill.record_usd[2] == bill.usd


def test_a_run_with_no_gpu_hour_price_has_no_bill() -> None:
    bill = bill_run({"t": TOKENS}, [Win("s", "t", 0, S)], [replace(rec("s", 1), provider="t")])
    assert bill.usd is None
    assert bill.providers == ()
    assert bill.record_usd == (None,)

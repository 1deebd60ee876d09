"""The budget guard alone, and the executor honouring it under a mock clock."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import trio
import trio.testing

from lens.metrics.cost import record_cost
from lens.metrics.estimate import request_bound
from lens.plan.model import ProviderSpec, RetryPolicy, StagePlan
from lens.pricing import GpuHourRate, ModelPrice, PricingCatalog, Rates
from lens.records import RequestRecord
from lens.run.budget import BudgetGuard
from lens.run.executor import StageRunner

from .fake_server import FakeOpenAI, Script
from .test_executor import PROMPTS, PROVIDER, open_stage, plan_of

# $1 per 1M input, $1000 per 1M output: a 16-token limit holds 16 * 0.001 + input.
PRICE = ModelPrice(
    provider="openai-compatible",
    model="m",
    rates=Rates(input=Decimal(1), output=Decimal(1000)),
    source="test",
    checked=PricingCatalog.load().checked,
)
PRICED = replace(PROVIDER, price=PRICE)
HOURLY = replace(PROVIDER, price=GpuHourRate(Decimal(3600), 1, "test"))  # $1 per second


def cost(rec: RequestRecord, spec: ProviderSpec) -> Decimal | None:
    found = record_cost(rec, spec)
    return None if found is None else found.total


def guard(limit: str) -> BudgetGuard:
    return BudgetGuard(Decimal(limit), request_bound, cost)


def stage(**kw: object) -> StagePlan:
    return open_stage([0.0], **kw)


def test_reservation_is_the_worst_case_and_settles_to_the_actual_cost() -> None:
    g = guard("1")
    prompt = PROMPTS["a"]  # "hi": ceil(2/3) + 4 = 5 input tokens at most
    held = g.try_reserve(PRICED, stage(), prompt, Decimal(0))
    assert held == Decimal("0.016005")  # 5 * $1/1M + 16 * $1000/1M
    assert g.reserved == held
    done = _record(input_tokens=5, output_tokens=3)
    g.settle(held, done, PRICED)
    assert g.reserved == 0
    assert g.spent == Decimal("0.003005")


def test_unknown_cost_keeps_its_reservation() -> None:
    g = guard("1")
    held = g.try_reserve(PRICED, stage(), PROMPTS["a"], Decimal(0))
    assert held is not None
    g.settle(held, _record(input_tokens=None, output_tokens=None), PRICED)
    assert g.spent == held


def test_refuses_what_could_overspend_and_stays_refused() -> None:
    g = guard("0.02")
    assert g.try_reserve(PRICED, stage(), PROMPTS["a"], Decimal(0)) is not None
    assert g.try_reserve(PRICED, stage(), PROMPTS["a"], Decimal(0)) is None
    assert g.exhausted
    g.reserved = Decimal(0)  # even with room again, a refused guard stays refused
    assert g.try_reserve(PRICED, stage(), PROMPTS["a"], Decimal(0)) is None


def test_gpu_hours_count_while_running_and_when_charged() -> None:
    g = guard("10")
    assert g.try_reserve(HOURLY, stage(), PROMPTS["a"], Decimal(9)) == 0
    assert g.try_reserve(HOURLY, stage(), PROMPTS["a"], Decimal("10.5")) is None
    g2 = guard("10")
    g2.charge_time(HOURLY, 2_000_000_000)
    g2.charge_time(PRICED, 5_000_000_000)  # token-priced: time costs nothing
    assert g2.spent == Decimal(2)
    g2.settle(Decimal(0), _record(input_tokens=1, output_tokens=1), HOURLY)
    assert g2.spent == Decimal(2)


def _record(**tokens: int | None) -> RequestRecord:
    return RequestRecord(
        provider="p", stage="s", prompt="a", index=0, ok=True, error_class=None,
        error_message=None, http_status=200, t_intended=None, t_dispatch=0, t_headers=None,
        t_first_chunk=None, t_first_token=None, t_first_visible=None, t_last_token=None,
        t_end=1, **tokens,  # type: ignore[arg-type]
    )  # fmt: skip


async def _run(
    units: tuple[StagePlan, ...], spec: ProviderSpec, g: BudgetGuard, fake: FakeOpenAI
) -> list[RequestRecord]:
    plan = replace(plan_of(*units), providers={"p": spec})
    records: list[RequestRecord] = []
    runner = StageRunner(
        plan, plan.providers, records.append, transport_for=lambda _: fake, budget=g
    )
    await runner.run_all()
    return records


async def test_open_loop_stops_scheduling_and_later_stages_never_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Each request holds 0.016005 and costs 0.003005 (3 tokens): with $0.05, requests
    # keep starting while spent + held + next <= 0.05.
    fake = FakeOpenAI(Script(ttft_s=0.01, itl_s=0.0, tokens=3))
    g = guard("0.05")
    first = open_stage([0.1 * i for i in range(40)])
    later = replace(first, stage="later")
    records = await _run((first, later), PRICED, g, fake)
    assert g.exhausted
    assert {r.stage for r in records} == {"s"}
    assert 10 <= len(records) < 40
    assert all(r.ok for r in records)
    spent = sum((cost(r, PRICED) or Decimal(0) for r in records), Decimal(0))
    assert spent == g.spent
    assert spent <= Decimal("0.05")


async def test_in_flight_requests_finish_when_the_budget_runs_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A burst of 5 with room for 3 reservations: 3 start, and all 3 complete.
    fake = FakeOpenAI(Script(ttft_s=0.5, itl_s=0.1, tokens=3))
    g = guard("0.05")
    records = await _run((open_stage([0.0] * 5, pattern="burst"),), PRICED, g, fake)
    assert len(records) == 3
    assert all(r.ok for r in records)
    assert fake.max_in_flight == 3


async def test_closed_loop_and_retries_reserve_each_attempt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeOpenAI(Script(status=429))
    policy = RetryPolicy(max_retries=5, on=frozenset({"http_429"}), backoff_s=0.1, max_wait_s=1)
    unit = StagePlan(
        stage="c", provider="p", pattern="concurrency", prompts=("a",), timeout_s=5.0,
        max_tokens=16, concurrency=1, requests=10, retries=policy,
    )  # fmt: skip
    g = guard("0.04")
    records = await _run((unit,), PRICED, g, fake)
    # A 429 reports no usage: its reservation counts as spent, so two attempts fit.
    assert [r.attempt for r in records] == [1, 2]
    assert g.exhausted


async def test_without_a_budget_nothing_is_held(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeOpenAI(Script(tokens=1))
    plan = replace(plan_of(open_stage([0.0, 0.0])), providers={"p": PRICED})
    records: list[RequestRecord] = []
    await StageRunner(plan, plan.providers, records.append, transport_for=lambda _: fake).run_all()
    assert len(records) == 2


def test_a_request_never_sent_releases_its_reservation() -> None:
    g = guard("1")
    held = g.try_reserve(PRICED, stage(), PROMPTS["a"], Decimal(0))
    assert held is not None
    g.release(held)
    assert (g.reserved, g.spent) == (Decimal(0), Decimal(0))

"""The budget guard alone, and the executor honouring it under a mock clock."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import trio
import trio.testing

from lens.metrics.cost import bill_run, record_cost
from lens.metrics.estimate import request_bound
from lens.plan.model import ClosedLoop, IdleProbe, ProviderSpec, RetryPolicy, StagePlan
from lens.pricing import GpuHourRate, ModelPrice, PricingCatalog, Rates
from lens.records import ErrorClass, RequestRecord, StageWindow
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
S = 1_000_000_000


def cost(rec: RequestRecord, spec: ProviderSpec) -> Decimal | None:
    found = record_cost(rec, spec)
    return None if found is None else found.total


def guard(limit: str) -> BudgetGuard:
    return BudgetGuard(Decimal(limit), request_bound, cost)


def stage(*, timeout_s: float = 5.0, pause_before_s: float = 0.0) -> StagePlan:
    return open_stage([0.0], timeout_s=timeout_s, pause_before_s=pause_before_s)


def test_reservation_is_the_worst_case_and_settles_to_the_actual_cost() -> None:
    g = guard("1")
    prompt = PROMPTS["a"]  # "hi": ceil(2/3) + 4 = 5 input tokens at most
    held = g.try_reserve(PRICED, stage(), prompt, 0)
    assert held == Decimal("0.016005")  # 5 * $1/1M + 16 * $1000/1M
    assert g.reserved == held
    done = _record(input_tokens=5, output_tokens=3)
    g.settle(held, done, PRICED)
    assert g.reserved == 0
    assert g.spent == Decimal("0.003005")


def test_unknown_cost_keeps_its_reservation() -> None:
    g = guard("1")
    held = g.try_reserve(PRICED, stage(), PROMPTS["a"], 0)
    assert held is not None
    g.settle(held, _record(input_tokens=None, output_tokens=None), PRICED)
    assert g.spent == held


def test_refuses_what_could_overspend_and_stays_refused() -> None:
    g = guard("0.02")
    assert g.try_reserve(PRICED, stage(), PROMPTS["a"], 0) is not None
    assert g.try_reserve(PRICED, stage(), PROMPTS["a"], 0) is None
    assert g.exhausted
    g.reserved = Decimal(0)  # even with room again, a refused guard stays refused
    assert g.try_reserve(PRICED, stage(), PROMPTS["a"], 0) is None


def test_gpu_hours_count_until_every_admitted_deadline_and_the_margin() -> None:
    g = guard("10")
    unit = stage(timeout_s=2.0)  # $1 per second: a request may hold $2 of GPU time
    g.enter(HOURLY)
    # at t=6: 6 s spent, the request's deadline at 8 s, the margin to 9 s: $9 <= $10
    assert g.try_reserve(HOURLY, unit, PROMPTS["a"], 6 * S) == 0
    assert g.committed() == Decimal(9)
    # a wait that ends before the deadline costs nothing more; one past it does
    assert g.may_wait(7 * S)
    assert g.try_reserve(HOURLY, unit, PROMPTS["a"], 7 * S) == 0  # 7 + 2 + 1 = $10 fits
    assert g.try_reserve(HOURLY, unit, PROMPTS["a"], 7 * S + 1) is None  # a ns more: no
    assert g.exhausted
    assert not g.may_wait(7 * S)
    g.unit_ended(9 * S)  # the in-flight requests ended at their deadlines
    assert g.spent == Decimal(9) <= g.limit


def test_time_between_units_is_billed_to_the_next_and_token_units_bill_no_time() -> None:
    g = guard("100")
    g.enter(PRICED)
    g.unit_ended(5 * S)  # a token-priced unit: its time costs nothing
    assert g.spent == 0
    assert g.may_start(HOURLY, stage(timeout_s=1.0, pause_before_s=2.0), 5 * S)
    g.unit_ended(9 * S)  # from the last unit's end (5 s), pause and set-up included
    assert g.spent == Decimal(4)
    g.settle(Decimal(0), _record(input_tokens=1, output_tokens=1), HOURLY)
    assert g.spent == Decimal(4)  # charged by time, not per request


def test_a_unit_starts_only_if_its_pause_set_up_and_first_request_fit() -> None:
    unit = stage(timeout_s=2.0, pause_before_s=3.0)  # 3 + 2 (connect) + 2 + 1 margin: $8
    assert guard("8").may_start(HOURLY, unit, 0)
    g = guard("7.99")
    assert not g.may_start(HOURLY, unit, 0)
    assert g.exhausted


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
        max_tokens=16, load=ClosedLoop(concurrency=1, requests=10), retries=policy,
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
    held = g.try_reserve(PRICED, stage(), PROMPTS["a"], 0)
    assert held is not None
    g.release(held)
    assert (g.reserved, g.spent) == (Decimal(0), Decimal(0))


async def _run_hourly(
    units: tuple[StagePlan, ...], g: BudgetGuard, fake: FakeOpenAI
) -> tuple[list[RequestRecord], list[StageWindow], Decimal]:
    """Run ``units`` at $1 per GPU-second; also what the run's bill says it cost."""
    plan = replace(plan_of(*units), providers={"p": HOURLY})
    records: list[RequestRecord] = []
    runner = StageRunner(
        plan, plan.providers, records.append, transport_for=lambda _: fake, budget=g
    )
    await runner.run_all()
    bill = bill_run(plan.providers, runner.windows, records)
    assert bill.usd is not None
    assert g.spent >= bill.usd  # the guard never counts less than the bill
    return records, runner.windows, bill.usd


async def test_a_gpu_hour_budget_is_a_hard_bound_when_requests_hang_to_their_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Every request hangs until its 0.7 s deadline.  Counting only the time gone by, the
    # guard used to admit requests until $3 was reached, and the last one then ran past it.
    fake = FakeOpenAI(Script(hang=True))
    unit = StagePlan(
        stage="c", provider="p", pattern="concurrency", prompts=("a",), timeout_s=0.7,
        max_tokens=16, load=ClosedLoop(concurrency=1, requests=20),
    )  # fmt: skip
    g = guard("3")
    records, _, spent = await _run_hourly((unit,), g, fake)
    assert g.exhausted
    assert 1 <= len(records) < 20
    assert all(r.error_class is ErrorClass.TIMEOUT for r in records)
    assert spent <= Decimal(3)
    assert g.spent <= Decimal(3)
    # admitted while its deadline plus the margin fit: t + 0.7 + 1 <= 3
    assert max(r.t_dispatch for r in records) <= 1.3 * S


async def test_a_wait_that_could_overspend_is_not_waited(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Arrivals 5 s apart, $4: the first request fits, but waiting 5 s for the second
    # alone would cost $5 (the guard used to wait, then refuse, having spent it).
    fake = FakeOpenAI(Script(ttft_s=0.1, itl_s=0.01, tokens=3))
    g = guard("4")
    first = open_stage([0.0, 5.0, 10.0], timeout_s=0.5)
    later = replace(first, stage="later")
    records, windows, spent = await _run_hourly((first, later), g, fake)
    assert [r.index for r in records] == [0]
    assert [w.stage for w in windows] == ["s"]  # later units never start
    assert windows[0].t_end < 1 * S  # ended with its request, not at the next arrival
    assert spent <= Decimal(4)


async def test_idle_gaps_and_sweep_pauses_are_paid_time_the_budget_counts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeOpenAI(Script(ttft_s=0.1, itl_s=0.01, tokens=3))
    probe = StagePlan(
        stage="idle", provider="p", pattern="idle-probe", prompts=("a",), timeout_s=0.5,
        max_tokens=16, load=IdleProbe((1.0, 8.0)),
    )  # fmt: skip
    g = guard("6")
    records, windows, spent = await _run_hourly((probe,), g, fake)
    assert len(records) == 2  # the 8 s gap would pass $6: the third probe is never sent
    assert spent <= Decimal(6)
    # a sweep step's pause is billed to it: a 5 s pause does not fit in what is left
    step = replace(open_stage([0.0], timeout_s=0.5), stage="next", pause_before_s=5.0)
    g = guard("6")
    records, windows, spent = await _run_hourly((open_stage([0.0], timeout_s=0.5), step), g, fake)
    assert [w.stage for w in windows] == ["s"]
    assert spent <= Decimal(6)

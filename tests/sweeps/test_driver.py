"""The sweep driver on a mock clock, against a fake server with a capacity.

The fake streams at most 4 responses at once (TTFT 20 ms, 16 tokens 2 ms apart: 50 ms
each, so 80 requests per second); the rest wait in a FIFO queue before their headers.  With
uniform arrivals nothing waits below 80/s, and above it the wait grows for the whole step,
so TTFT p95 crosses 150 ms a little past 80/s.  On a mock clock all of it is exact.
"""

from __future__ import annotations

import math
import textwrap
from decimal import Decimal

import httpx
import pytest
import trio
import trio.testing

from lens.plan.compile import compile_plan
from lens.plan.model import Plan
from lens.records import RequestRecord, StageWindow
from lens.run.budget import BudgetGuard
from lens.run.executor import StageRunner
from lens.scenario import parse_scenario
from lens.sweeps.driver import SweepDriver
from tests.run.fake_server import Script, _Body

SCRIPT = Script(ttft_s=0.02, itl_s=0.002, tokens=16)


class QueueingServer(httpx.AsyncBaseTransport):
    """At most ``capacity`` responses at once; later requests wait, first come first served."""

    def __init__(self, capacity: int) -> None:
        self.slots = trio.Semaphore(capacity)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self.slots.acquire()
        slots = self.slots

        class Releasing(_Body):
            async def aclose(self) -> None:
                slots.release()

        return httpx.Response(200, stream=Releasing(SCRIPT), request=request)


def plan_of(load: str, providers: tuple[str, ...] = ("fake",), sla: str = "") -> Plan:
    declared = "".join(
        f"  {p}: {{type: openai-compatible, base_url: 'http://fake/v1', model: m}}\n"
        for p in providers
    )
    text = (
        "version: 1\nname: t\nproviders:\n"
        + declared
        + "prompts:\n  - {id: q, messages: [{role: user, content: hi}]}\nload:\n"
        + textwrap.indent(textwrap.dedent(load), "  ")
        + (f"sla:\n{sla}" if sla else "")
    )
    return compile_plan(parse_scenario(text, file="s.yaml", env={}), env={})


async def drive(
    plan: Plan, budget: BudgetGuard | None = None, cancel_after_s: float = math.inf
) -> tuple[SweepDriver, list[RequestRecord], list[StageWindow]]:
    """Drive ``plan``; ``cancel_after_s`` cancels the run then, as a signal does."""
    server = QueueingServer(capacity=4)
    driver = SweepDriver(plan)
    records: list[RequestRecord] = []

    def emit(rec: RequestRecord) -> None:
        records.append(rec)
        driver.record(rec)

    runner = StageRunner(plan, plan.providers, emit, transport_for=lambda _: server, budget=budget)
    with trio.move_on_after(cancel_after_s):
        await driver.drive(runner)
    return driver, records, runner.windows


async def test_stop_when_keeps_the_step_that_held_and_skips_the_rest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = plan_of(
        """\
        - {id: before, pattern: burst, requests: 2}
        - id: ladder
          pattern: sweep
          rates: [40/s, 70/s, 100/s, 130/s]
          duration: 1s
          pause: 1s
          stop_when: "ttft.p95 > 150ms"
        - {id: after, pattern: burst, requests: 2}
        """
    )
    driver, records, windows = await drive(plan)
    assert [w.stage for w in windows] == [
        "before",
        "ladder.40rps",
        "ladder.70rps",
        "ladder.100rps",
        "after",
    ]
    (outcome,) = driver.outcomes
    assert [p.held for p in outcome.probes] == [False, False, True]
    assert outcome.not_run == ("ladder.130rps",)
    assert outcome.reason.startswith("stopped after ladder.100rps: ttft.p95 = ")
    # The pause comes before each step but the first, outside the windows.
    assert windows[2].t_start - windows[1].t_end == 1_000_000_000
    assert windows[3].t_start - windows[2].t_end == 1_000_000_000
    assert windows[4].t_start == windows[3].t_end
    assert {r.stage for r in records} == {w.stage for w in windows}


async def test_stop_when_that_never_holds_runs_every_step(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = plan_of(
        """\
        - {id: ladder, pattern: sweep, rates: [10/s, 20/s], requests: 5,
           stop_when: ["ttft.p95 > 1s", "error_rate > 50%"]}
        """
    )
    driver, _, windows = await drive(plan)
    assert len(windows) == 2
    (outcome,) = driver.outcomes
    assert outcome.reason == "every step ran: ttft.p95 > 1s or error_rate > 50% never held"
    assert outcome.not_run == ()


async def test_each_provider_stops_on_its_own(autojump_clock: trio.testing.MockClock) -> None:
    plan = plan_of(
        """\
        - {id: ladder, pattern: sweep, rates: [40/s, 120/s, 160/s], duration: 1s,
           stop_when: "ttft.p95 > 150ms", pause: 2s}
        """,
        providers=("a", "b"),
    )
    driver, _, windows = await drive(plan)
    # Rounds of one step per provider still going; both stop at 120/s.
    assert [(w.stage, w.provider) for w in windows] == [
        ("ladder.40rps", "a"),
        ("ladder.40rps", "b"),
        ("ladder.120rps", "a"),
        ("ladder.120rps", "b"),
    ]
    assert windows[2].t_start - windows[1].t_end == 2_000_000_000  # the pause: once a round
    assert windows[3].t_start == windows[2].t_end
    assert [(o.provider, o.not_run) for o in driver.outcomes] == [
        ("a", ("ladder.160rps",)),
        ("b", ("ladder.160rps",)),
    ]


async def test_find_max_rate_lands_just_past_the_capacity(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = plan_of(
        """\
        - id: search
          pattern: sweep
          rates: {from: 40/s, to: 160/s}
          duration: 2s
          find_max_rate: "ttft.p95 < 150ms"
          precision: 5/s
        """
    )
    driver, _, windows = await drive(plan)
    (outcome,) = driver.outcomes
    # Above 80/s the queue grows by (rate - 80) per second; 2 s in, the 95th percentile
    # request waited about 0.95 * 2 s * (rate / 80 - 1), so TTFT p95 (20 ms + the wait)
    # crosses 150 ms at about 85.5/s: 85/s passes, 88.75/s fails.
    assert outcome.max_rate_per_s == 85.0
    assert outcome.bracket == (85.0, 88.75)
    assert [p.stage for p in outcome.probes] == [
        "search.40rps",
        "search.160rps",
        "search.100rps",
        "search.70rps",
        "search.85rps",
        "search.92.5rps",
        "search.88.75rps",
    ]
    assert [w.stage for w in windows] == [p.stage for p in outcome.probes]
    # Steps chosen at run time are stage units like the planned ones.
    assert [w.sweep.index for w in windows if w.sweep] == list(range(7))
    assert all(w.sweep is not None and w.sweep.steps is None for w in windows)
    assert windows[2].planned == 200  # 100/s for 2 s
    assert driver.scoped(plan.slas) == ()


async def test_find_max_rate_open_below_stops_after_one_step(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = plan_of(
        """\
        - {id: s, pattern: sweep, rates: {from: 100/s, to: 200/s}, duration: 1s,
           find_max_rate: "ttft.p95 < 50ms", max_steps: 5}
        """
    )
    driver, _, windows = await drive(plan)
    (outcome,) = driver.outcomes
    assert len(windows) == 1
    assert outcome.max_rate_per_s is None
    assert outcome.bracket == (None, 100.0)


async def test_inconclusive_is_no_pass(autojump_clock: trio.testing.MockClock) -> None:
    # 3 requests cannot show a p99: the lowest rate is not shown to pass.
    plan = plan_of(
        """\
        - {id: s, pattern: sweep, rates: {from: 1/s, to: 2/s}, requests: 3,
           find_max_rate: "ttft.p99 < 1s", max_steps: 2}
        """
    )
    driver, _, _ = await drive(plan)
    (outcome,) = driver.outcomes
    assert outcome.probes[0].held is False
    assert "needs >= " in outcome.probes[0].detail


async def test_auto_steps_between_synchronous_and_saturated_throughput(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = plan_of(
        """\
        - {id: auto, pattern: sweep, auto: {steps: 3, saturation: 16}, duration: 2s}
        """
    )
    driver, _, windows = await drive(plan)
    (outcome,) = driver.outcomes
    assert outcome.sync_rps is not None
    assert outcome.saturated_rps is not None
    assert outcome.sync_rps == pytest.approx(20.0, rel=0.02)  # one 50 ms request at a time
    assert outcome.saturated_rps == pytest.approx(80.0, rel=0.05)  # 4 slots of 50 ms
    stages = [w.stage for w in windows]
    assert stages[:2] == ["auto.c1", "auto.c16"]
    rates = [w.sweep.rate_per_s for w in windows[2:] if w.sweep]
    assert len(rates) == 3
    width = outcome.saturated_rps - outcome.sync_rps
    expected = [outcome.sync_rps + width * k / 4 for k in (1, 2, 3)]
    assert rates == pytest.approx(expected, rel=1e-3)
    assert outcome.reason.startswith("3 rate step(s)")


async def test_scoped_slas_take_in_the_steps_that_ran(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = plan_of(
        """\
        - {id: s, pattern: sweep, rates: {from: 10/s, to: 20/s}, requests: 4,
           find_max_rate: "error_rate < 1%", max_steps: 3}
        """,
        sla="  - {assert: 'error_rate < 1%', stage: s}\n  - error_rate < 5%\n",
    )
    driver, _, windows = await drive(plan)
    scoped, unscoped = driver.scoped(plan.slas)
    assert scoped.steps == ("s.10rps", "s.20rps")  # open above after both bounds pass
    assert [w.stage for w in windows] == list(scoped.steps)
    assert unscoped == plan.slas[1]


async def test_the_budget_stops_a_sweep_and_what_follows(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = plan_of(
        """\
        - {id: ladder, pattern: sweep, rates: [10/s, 20/s, 30/s], requests: 4,
           stop_when: "error_rate > 50%"}
        - {id: after, pattern: burst, requests: 2}
        """
    )
    # $1 held and spent per request, $6 in all: the second step runs out after 2 requests.
    budget = BudgetGuard(Decimal(6), lambda *_: Decimal(1), lambda *_: Decimal(1))
    driver, records, windows = await drive(plan, budget)
    assert [w.stage for w in windows] == ["ladder.10rps", "ladder.20rps"]
    assert len(records) == 6
    # The sweep still gives its account: the steps that ran, cut short, no stop found.
    (outcome,) = driver.outcomes
    assert outcome.cut_short
    assert [p.stage for p in outcome.probes] == ["ladder.10rps", "ladder.20rps"]
    assert outcome.not_run == ("ladder.30rps",)
    assert outcome.reason == "cut short: the budget ran out, after 2 completed step(s)"


async def test_a_signal_in_the_middle_of_find_max_rate_keeps_the_probes_that_ran(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = plan_of(
        """\
        - id: search
          pattern: sweep
          rates: {from: 40/s, to: 160/s}
          duration: 2s
          find_max_rate: "ttft.p95 < 150ms"
          precision: 5/s
        """,
        providers=("a", "b"),
    )
    # Rounds of one step per provider: 40/s for a and b (2 s each), 160/s for a (4 s with
    # the queue drained), then the signal comes about 2 s into b's 160/s step.
    driver, _, windows = await drive(plan, cancel_after_s=10.0)
    assert [(w.stage, w.provider) for w in windows] == [
        ("search.40rps", "a"),
        ("search.40rps", "b"),
        ("search.160rps", "a"),
        ("search.160rps", "b"),  # cut off, its window still a fact
    ]
    a, b = driver.outcomes
    assert (a.provider, b.provider) == ("a", "b")
    assert (a.cut_short, b.cut_short) == (True, True)
    assert [(p.stage, p.held) for p in a.probes] == [
        ("search.40rps", True),
        ("search.160rps", False),
    ]
    assert [(p.stage, p.held) for p in b.probes] == [("search.40rps", True)]
    assert a.reason == (
        "cut short: the run was interrupted, after 2 completed step(s) "
        "(40/s passed and 160/s failed so far); no answer"
    )
    assert b.reason == (
        "cut short: the run was interrupted during search.160rps, after 1 completed step(s) "
        "(40/s passed so far); no answer"
    )
    assert (a.max_rate_per_s, a.bracket) == (None, None)  # a bracket not narrowed: no answer


async def test_a_sweep_that_ends_before_the_signal_is_not_cut_short(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = plan_of(
        """\
        - {id: ladder, pattern: sweep, rates: [10/s, 20/s], requests: 2,
           stop_when: "error_rate > 50%"}
        - {id: after, pattern: constant-rate, rate: 1/s, duration: 10s}
        """
    )
    driver, _, windows = await drive(plan, cancel_after_s=0.5)
    assert [w.stage for w in windows] == ["ladder.10rps", "ladder.20rps", "after"]
    (outcome,) = driver.outcomes
    assert not outcome.cut_short
    assert outcome.reason.startswith("every step ran")


async def test_find_max_concurrency_lands_where_queueing_starts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = plan_of(
        """\
        - id: conc
          pattern: sweep
          concurrencies: {from: 1, to: 16}
          requests: 40
          find_max_concurrency: "ttft.p95 < 50ms"
        """
    )
    driver, records, windows = await drive(plan)
    (outcome,) = driver.outcomes
    # Up to 4 in flight every request gets a slot at once: TTFT is the script's 20 ms. With
    # c > 4, c - 4 requests of each 50 ms wave wait for the next one (TTFT 70 ms): at 5,
    # about one in five, far more than the 5% a p95 leaves out.  So 4 passes and 5 fails.
    assert outcome.kind == "find_max_concurrency"
    assert outcome.max_concurrency == 4
    assert outcome.bracket == (4, 5)
    assert outcome.max_rate_per_s is None
    assert [(p.stage, p.held) for p in outcome.probes] == [
        ("conc.c1", True),
        ("conc.c16", False),
        ("conc.c8", False),
        ("conc.c4", True),
        ("conc.c6", False),
        ("conc.c5", False),
    ]
    assert outcome.reason == "4 in flight meets ttft.p95 < 50ms: bracket down to neighbours"
    assert "ttft.p95 = 20 ms < 50 ms" in outcome.probes[3].detail
    assert "ttft.p95 = 70 ms, not < 50 ms" in outcome.probes[5].detail
    # Steps chosen at run time are closed-loop stage units like the two planned bounds.
    assert [w.stage for w in windows] == [p.stage for p in outcome.probes]
    assert [w.sweep.concurrency for w in windows if w.sweep] == [1, 16, 8, 4, 6, 5]
    assert [w.sweep.index for w in windows if w.sweep] == list(range(6))
    assert all(w.sweep is not None and w.sweep.steps is None for w in windows)
    assert all(w.planned == 40 and w.started == 40 for w in windows)
    assert len(records) == 6 * 40
    # 40 requests in waves of min(c, 4) x 50 ms: c1 takes 2 s, the rest 0.5 s.
    assert [(w.t_end - w.t_start) / 1e9 for w in windows] == pytest.approx(
        [2.0, 0.5, 0.5, 0.5, 0.5, 0.5], abs=1e-6
    )


async def test_find_max_concurrency_precision_and_max_steps(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = plan_of(
        """\
        - {id: wide, pattern: sweep, concurrencies: {from: 1, to: 16}, requests: 20,
           find_max_concurrency: "ttft.p95 < 50ms", precision: 4}
        - {id: short, pattern: sweep, concurrencies: {from: 1, to: 16}, requests: 20,
           find_max_concurrency: "ttft.p95 < 50ms", max_steps: 3, pause: 1s}
        """
    )
    driver, _, windows = await drive(plan)
    wide, short = driver.outcomes
    # 1 and 16, then 8 fails (8 - 1 > 4), then 4 passes: 8 - 4 is within the precision.
    assert [p.stage for p in wide.probes] == ["wide.c1", "wide.c16", "wide.c8", "wide.c4"]
    assert (wide.max_concurrency, wide.bracket) == (4, (4, 8))
    assert wide.reason.endswith("bracket within 4 in flight")
    assert [p.stage for p in short.probes] == ["short.c1", "short.c16", "short.c8"]
    assert (short.max_concurrency, short.bracket) == (1, (1, 8))
    assert short.reason.endswith("stopped after max_steps (3) steps")
    # The pause comes before each step of the second sweep but its first, outside windows.
    steps = [w for w in windows if w.stage.startswith("short.")]
    assert steps[0].t_start == windows[3].t_end
    assert steps[1].t_start - steps[0].t_end == 1_000_000_000
    assert steps[2].t_start - steps[1].t_end == 1_000_000_000


async def test_find_max_concurrency_open_ends(autojump_clock: trio.testing.MockClock) -> None:
    plan = plan_of(
        """\
        - {id: low, pattern: sweep, concurrencies: {from: 5, to: 9}, requests: 20,
           find_max_concurrency: "ttft.p95 < 50ms"}
        - {id: high, pattern: sweep, concurrencies: {from: 1, to: 4}, requests: 20,
           find_max_concurrency: "ttft.p95 < 50ms"}
        """
    )
    driver, _, windows = await drive(plan)
    low, high = driver.outcomes
    assert (low.max_concurrency, low.bracket) == (None, (None, 5))
    assert low.reason == (
        "even the lowest concurrency, 5 in flight, fails: the bracket is open below"
    )
    assert (high.max_concurrency, high.bracket) == (4, (4, None))
    assert high.reason.endswith(
        "even the highest concurrency, 4 in flight, passes: the bracket is open above"
    )
    assert [w.stage for w in windows] == ["low.c5", "high.c1", "high.c4"]


async def test_a_signal_in_the_middle_of_find_max_concurrency(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = plan_of(
        """\
        - {id: conc, pattern: sweep, concurrencies: {from: 1, to: 16}, requests: 40,
           find_max_concurrency: "ttft.p95 < 50ms"}
        """
    )
    # c1 takes 2 s, c16 and c8 0.5 s each: the signal comes during c4.
    driver, _, windows = await drive(plan, cancel_after_s=3.2)
    assert [w.stage for w in windows] == ["conc.c1", "conc.c16", "conc.c8", "conc.c4"]
    (outcome,) = driver.outcomes
    assert outcome.cut_short
    assert (outcome.max_concurrency, outcome.bracket) == (None, None)
    assert outcome.reason == (
        "cut short: the run was interrupted during conc.c4, after 3 completed step(s) "
        "(1 in flight passed and 8 in flight failed so far); no answer"
    )

"""The plan's expected duration of every kind of unit, its upper bound, and the assumption
behind both; then, on a mock clock, the executor taking exactly what the plan said.

The simulated provider here answers like the fake server of the sweep tests: TTFT 20 ms,
then 15 more tokens 2 ms apart (e2e 50 ms), at most 4 responses at once, the rest queued.
"""

from __future__ import annotations

import math
import textwrap

import httpx
import pytest
import trio
import trio.testing

from lens.export.plan_view import plan_text
from lens.metrics.estimate import estimate_to_dict
from lens.plan.compile import compile_plan
from lens.plan.describe import plan_to_dict
from lens.plan.duration import DurationEstimate, duration_estimate
from lens.plan.model import Plan
from lens.run.executor import StageRunner
from lens.run.simulators import simulated_client_spec
from lens.scenario import parse_scenario
from tests.sweeps.test_driver import QueueingServer

SIM = "{type: simulated, ttft: 20ms, itl: 2ms, output_tokens: 16, capacity: 4}"
REAL = "{type: openai-compatible, base_url: 'http://real/v1', model: m}"
BASIS_E2E = "e2e 50ms = ttft 20ms + 15 x itl 2ms, capacity 4"


def plan_of(load: str, provider: str = SIM, defaults: str = "") -> Plan:
    text = (
        f"version: 1\nname: t\n{defaults}providers:\n  p: {provider}\n"
        "prompts:\n  - {id: q, messages: [{role: user, content: hi}]}\nload:\n"
        + textwrap.indent(textwrap.dedent(load), "  ")
    )
    return compile_plan(parse_scenario(text, file="s.yaml", env={}), env={})


def estimates(plan: Plan) -> dict[str, DurationEstimate]:
    return {u.stage: duration_estimate(u, plan.providers[u.provider]) for u in plan.stages}


CLOSED = """\
- {id: c16, pattern: concurrency, concurrency: 16, requests: 40}
- {id: c3, pattern: concurrency, concurrency: 3, requests: 40}
- {id: d32, pattern: concurrency, concurrency: 32, duration: 1.01s}
- {id: d2, pattern: concurrency, concurrency: 2, duration: 1.01s}
- {id: both, pattern: concurrency, concurrency: 8, requests: 1000, duration: 0.51s}
- {id: idle, pattern: idle-probe, gaps: [1s, 2s]}
- {id: steps, pattern: sweep, concurrencies: [1, 6], requests: 12}
"""
# Waves of min(concurrency, 4) requests, 50 ms each.  c16: 40 / 4 = 10 waves.  c3: 3 at a
# time, ceil(40 / 3) = 14 waves.  d32: the wave in flight at 1.01 s ends at 1.05 s, then the
# 28 requests queued behind it take 7 more.  d2: nothing queues, it ends at 1.05 s.  both:
# its duration ends it first (at 0.55 s, plus the 4 queued: 0.6 s), not its 1000 requests.
# idle: 3 s of gaps and 3 probes.  steps: 12 one at a time; 12 in waves of 4.
EXPECTED = {
    "c16": 0.5,
    "c3": 0.7,
    "d32": 1.4,
    "d2": 1.05,
    "both": 0.6,
    "idle": 3.15,
    "steps.c1": 0.6,
    "steps.c6": 0.15,
}


def test_closed_loops_on_the_simulator_run_in_waves_of_its_capacity() -> None:
    got = estimates(plan_of(CLOSED))
    assert {k: e.expected_s for k, e in got.items()} == pytest.approx(EXPECTED, abs=1e-9)
    basis = got["c16"].basis
    assert basis.startswith("closed loop: ceil(requests / min(concurrency, capacity)) x e2e")
    assert BASIS_E2E in basis
    assert "no errors or jitter" in basis
    assert got["d32"].basis.startswith(
        "closed loop: the duration, then the wave in flight and the requests queued behind it"
    )
    assert "whichever ends first" in got["both"].basis
    assert got["idle"].basis.startswith("idle-probe: the idle gaps + e2e per probe")


def test_without_a_capacity_every_request_in_flight_is_served_at_once() -> None:
    got = estimates(plan_of(CLOSED, provider=SIM.replace(", capacity: 4", "")))
    assert got["c16"].expected_s == pytest.approx(3 * 0.05)  # ceil(40 / 16) waves
    assert got["d32"].expected_s == pytest.approx(1.05)  # nothing queues behind the wave
    assert "ceil(requests / concurrency) x e2e" in got["c16"].basis


def test_the_upper_bound_is_every_request_at_its_timeout() -> None:
    got = estimates(plan_of(CLOSED, defaults="defaults: {timeout: 10s}\n"))
    # ceil(requests / concurrency) requests per worker, each within the timeout.
    assert got["c16"].max_s == pytest.approx(3 * 10)
    assert got["c3"].max_s == pytest.approx(14 * 10)
    assert got["d32"].max_s == pytest.approx(1.01 + 10)  # the duration and one more request
    assert got["both"].max_s == pytest.approx(0.51 + 10)  # less than 1000 / 8 x 10 s
    assert got["idle"].max_s == pytest.approx(3 + 3 * 10)


def test_a_real_provider_has_no_expectation_for_a_counted_closed_loop_only_a_bound() -> None:
    plan = plan_of(
        CLOSED + "- {id: r, pattern: constant-rate, rate: 4/s, duration: 2s}\n",
        provider=REAL,
        defaults="defaults: {timeout: 10s, retries: {max: 2, max_wait: 5s}}\n",
    )
    got = estimates(plan)
    worst = 3 * 10 + 2 * 5  # three attempts to the timeout and two waits at their cap
    assert (got["c16"].expected_s, got["c16"].max_s) == (None, 3 * worst)
    assert got["c16"].basis == (
        "closed loop: at most ceil(requests / concurrency) x 40s a request (timeout 10s x 3 "
        "attempts + 2 waits of <= 5s) (e2e unknown: p is not simulated)"
    )
    # Bounded by a duration: it sends for that long whatever the responses take.
    assert (got["d32"].expected_s, got["d32"].max_s) == (1.01, 1.01 + worst)
    assert got["d32"].basis.startswith("closed loop: its duration, then the requests in flight")
    assert got["both"].expected_s is None
    assert got["both"].max_s == pytest.approx(0.51 + worst)
    assert (got["idle"].expected_s, got["idle"].max_s) == (None, 3 + 3 * worst)
    # Open loop: the schedule's span (7 gaps of 0.25 s), the last response at most one more.
    assert (got["r"].expected_s, got["r"].max_s) == (1.75, 1.75 + worst)


def test_the_drain_grace_caps_what_runs_past_the_duration() -> None:
    plan = plan_of(
        "- {id: d, pattern: concurrency, concurrency: 32, duration: 1.01s, drain: cancel,"
        " drain_timeout: 0.1s}\n"
        "- {id: w, pattern: concurrency, concurrency: 2, duration: 2s, drain_timeout: 1s}\n",
        defaults="defaults: {timeout: 30s}\n",
    )
    got = estimates(plan)
    assert got["d"].expected_s == pytest.approx(1.11)  # not 1.4: cut off 0.1 s after 1.01 s
    assert got["d"].max_s == pytest.approx(1.11)
    assert got["d"].basis.endswith("; drain: cancel after 0.1s")
    assert got["w"].max_s == pytest.approx(3.0)  # wait, but at most 1 s past the duration


def test_an_open_loop_faster_than_the_capacity_ends_with_its_queue() -> None:
    got = estimates(
        plan_of(
            "- {id: slow, pattern: constant-rate, rate: 40/s, duration: 2s}\n"
            "- {id: fast, pattern: constant-rate, rate: 160/s, duration: 2s}\n"
            "- {id: capped, pattern: constant-rate, rate: 40/s, duration: 2s,"
            " max_concurrency: 1}\n"
        )
    )
    assert got["slow"].expected_s == pytest.approx(79 / 40 + 0.05)  # the last arrival + e2e
    assert got["fast"].expected_s == pytest.approx(320 / 4 * 0.05)  # 80 waves of 4
    assert got["capped"].expected_s == pytest.approx(80 * 0.05)  # one at a time
    assert "ceil(arrivals / min(max_concurrency, capacity)) x e2e" in got["capped"].basis


def test_plan_shows_each_assumption_once_and_the_bound_where_nothing_is_expected() -> None:
    sim = plan_to_dict(plan_of(CLOSED))
    assert sim["expected_duration_s"] == pytest.approx(sum(EXPECTED.values()))
    assert sim["durations_exclude_run_time_steps"] is False
    stage = sim["stages"][0]
    assert (stage["expected_duration_s"], stage["max_duration_s"]) == (0.5, 3 * 60.0)
    assert stage["duration_basis"].startswith("closed loop: ceil(requests")

    plan = plan_of(CLOSED, provider=REAL, defaults="defaults: {timeout: 10s}\n")
    doc = plan_to_dict(plan)
    doc["cost_estimate"] = estimate_to_dict(plan)
    text = plan_text(doc)
    rows = {line.split()[0]: line for line in text.splitlines() if line}
    assert " <= 30.0s " in rows["c16"]
    assert " 1.0s " in rows["d32"]  # its duration
    assert doc["expected_duration_s"] is None
    assert doc["max_duration_s"] == pytest.approx(
        3 * 10 + 14 * 10 + 11.01 + 11.01 + 10.51 + 33 + 12 * 10 + 2 * 10
    )
    assert (
        f"expected duration: ?, at most {doc['max_duration_s']:.1f}s (every request to its timeout)"
        in text
    )
    assert "expected durations (else '<=': at most, every request to its timeout):" in text
    assert (
        "  c16/p, c3/p, steps steps/p: closed loop: at most ceil(requests / concurrency) x "
        "timeout 10s (e2e unknown: p is not simulated)"
    ) in text.splitlines()


def test_the_run_time_steps_of_a_search_are_not_in_the_totals() -> None:
    plan = plan_of(
        "- {id: s, pattern: sweep, concurrencies: {from: 1, to: 8}, requests: 8,"
        " find_max_concurrency: 'ttft.p95 < 1s'}\n"
    )
    doc = plan_to_dict(plan)
    doc["cost_estimate"] = estimate_to_dict(plan)
    assert doc["durations_exclude_run_time_steps"] is True
    assert "; plus the steps adaptive sweeps choose at run time" in plan_text(doc)


def test_a_gpu_hour_closed_loop_is_priced_at_its_bound_when_nothing_is_expected() -> None:
    plan = plan_of(
        "- {id: c, pattern: concurrency, concurrency: 4, requests: 8}\n",
        provider=REAL.replace("}", ", price: {gpu_hour: 3.60}}"),
        defaults="defaults: {timeout: 10s}\n",
    )
    units = estimate_to_dict(plan)["units"]
    assert isinstance(units, list)
    (unit,) = units
    # At most 2 requests a worker, 10 s each, after a connection set-up of at most the
    # connect timeout (10 s): 30 s at $3.60 an hour.
    assert unit["usd"] == "0.030000"
    assert unit["basis"] == "GPU-hours for 30.0s (every request at its 10s timeout)"


@pytest.mark.parametrize("stage", sorted(EXPECTED))
async def test_the_executor_takes_what_the_plan_expected(
    autojump_clock: trio.testing.MockClock, stage: str
) -> None:
    plan = plan_of(CLOSED)
    units = [u for u in plan.stages if u.stage == stage]
    server = QueueingServer(capacity=4)
    live = {"p": simulated_client_spec(plan.providers["p"], "http://sim")}
    runner = StageRunner(plan, live, lambda rec: None, transport_for=lambda _: server)
    runner.start()
    for unit in units:
        await runner.run_unit(unit)
    (window,) = runner.windows
    assert (window.t_end - window.t_start) / 1e9 == pytest.approx(EXPECTED[stage], abs=1e-6)


class Hanging(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await trio.sleep_forever()
        raise AssertionError  # never reached


async def test_every_request_hanging_to_its_timeout_reaches_the_bound(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = plan_of(
        "- {id: c, pattern: concurrency, concurrency: 3, requests: 7}\n",
        provider=REAL,
        defaults="defaults: {timeout: 2s}\n",
    )
    (unit,) = plan.stages
    bound = duration_estimate(unit, plan.providers["p"]).max_s
    assert bound == math.ceil(7 / 3) * 2.0
    runner = StageRunner(plan, plan.providers, lambda rec: None, transport_for=lambda _: Hanging())
    runner.start()
    await runner.run_unit(unit)
    (window,) = runner.windows
    assert (window.t_end - window.t_start) / 1e9 == pytest.approx(bound, abs=1e-6)


def test_a_warmup_barrier_adds_its_own_rounds_to_the_bound() -> None:
    """Measured requests start only once the warmup has ended, so 2 warmup + 6 measured
    requests on 4 workers take 1 + 2 rounds, not ceil(8 / 4) = 2."""
    plan = plan_of(
        "- {id: c, pattern: concurrency, concurrency: 4, requests: 8, warmup: 2 requests}\n",
        provider=REAL,
        defaults="defaults: {timeout: 10s}\n",
    )
    (unit,) = plan.stages
    assert duration_estimate(unit, plan.providers[unit.provider]).max_s == 30.0

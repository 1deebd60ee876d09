"""``lens plan``'s cost bound: every stage gets one, or says it has none."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lens.errors import PlanError
from lens.export.plan_view import plan_text
from lens.metrics.estimate import estimate_to_dict, plan_estimate
from lens.plan.compile import compile_plan
from lens.plan.describe import plan_to_dict
from lens.plan.model import Plan
from lens.scenario import parse_scenario

# A real (never contacted) server: its requests take what they take, up to their timeout.
SCENARIO = """\
version: 1
name: t
providers:
  gpu:
    type: openai-compatible
    base_url: http://127.0.0.1:9/v1
    model: m
    price: {{gpu_hour: 3600}}
prompts:
  - {{id: q, messages: [{{role: user, content: "hello"}}]}}
defaults: {{timeout: 10s}}
load:
{load}
{extra}
"""


def plan_of(load: str, extra: str = "", price: str = "{gpu_hour: 3600}") -> Plan:
    text = SCENARIO.format(load=load, extra=extra).replace("{gpu_hour: 3600}", price)
    return compile_plan(parse_scenario(text, file="s.yaml"), env={})


def bounds(load: str, **kw: str) -> list[Decimal | None]:
    return [u.usd for u in plan_estimate(plan_of(load, **kw))]


def test_gpu_hour_stages_are_bounded_by_every_request_at_its_timeout() -> None:
    # $1 per second.  Set-up before each window: at most the connect timeout (= the 10s
    # timeout here); then each stage's longest window.
    (burst,) = bounds("  - {id: b, pattern: burst, requests: 4}")
    assert burst == Decimal(20)  # all at once, each within 10 s (it said $0 before)
    (closed,) = bounds(
        "  - {id: c, pattern: concurrency, concurrency: 4, requests: 12, warmup: 2 requests}"
    )
    assert closed == Decimal(10 + 10 * (1 + 3))  # warmup's round, then ceil(10/4) rounds
    (timed,) = bounds(
        "  - {id: d, pattern: concurrency, concurrency: 2, duration: 30s, drain: cancel,"
        " drain_timeout: 2s}"
    )
    assert timed == Decimal(10 + 30 + 2)  # its duration, then the drain's grace
    (probe,) = bounds("  - {id: i, pattern: idle-probe, gaps: [1s, 2s]}")
    assert probe == Decimal(10 + 3 + 3 * 10)
    (paced,) = bounds("  - {id: r, pattern: constant-rate, rate: 2/s, duration: 5s}")
    assert paced == Decimal(10 + Decimal("4.5") + 10)  # last arrival at 4.5 s
    (capped,) = bounds(
        "  - {id: r, pattern: constant-rate, rate: 10/s, requests: 6, max_concurrency: 2}"
    )
    assert capped == Decimal(10 + Decimal("0.5") + 3 * 10)  # three waves after the last


def test_retries_and_pauses_count_in_the_bound() -> None:
    (retried,) = bounds(
        "  - {id: c, pattern: concurrency, concurrency: 1, requests: 2,"
        " retries: {max: 2, on: [http_429], backoff: 1s, max_wait: 3s}}"
    )
    assert retried == Decimal(10 + 2 * (10 + 2 * (3 + 10)))
    steps = bounds("  - {id: s, pattern: sweep, concurrencies: [1, 2], requests: 2, pause: 5s}")
    assert steps == [Decimal(10 + 20), Decimal(5 + 10 + 10)]


def test_token_prices_bound_each_attempt_and_a_duration_only_loop_is_unbounded() -> None:
    price = "{input: 1000000, output: 1000000}"  # $1 per token
    (one,) = bounds(
        "  - {id: b, pattern: burst, requests: 2, max_tokens: 5,"
        " retries: {max: 1, on: [http_429]}}",
        price=price,
    )
    assert one == 2 * 2 * (6 + 5)  # "hello": ceil(5/3) + 4 = 6 input tokens, 5 output
    plan = plan_of(
        "  - {id: d, pattern: concurrency, concurrency: 2, duration: 5s, max_tokens: 5}",
        price=price,
    )
    (unit,) = plan_estimate(plan)
    assert unit.usd is None
    assert not unit.bounded
    assert unit.basis == "unbounded: requests until its duration, their number unknown"
    doc = estimate_to_dict(plan)
    assert doc["total_usd"] is None
    assert doc["unbounded"] == ["d/gpu"]
    assert not doc["complete"]
    text = plan_text({**plan_to_dict(plan), "cost_estimate": doc})
    assert "estimated cost: unbounded: d/gpu: unbounded: requests until its duration" in text
    assert "unbounded  " in text  # the table's cost column


def test_a_budget_that_cannot_be_kept_is_refused_where_it_is_written() -> None:
    with pytest.raises(PlanError) as err:
        plan_of(
            "  - {id: b, pattern: burst, requests: 2}",
            extra="budget: $5",
            price="{input: 1, output: 2}",
        )
    (problem,) = err.value.problems
    assert str(problem).startswith("s.yaml:14:9: budget: cannot be kept: stage 'b' sends")
    assert "no output limit" in str(problem)
    # with an output limit, or GPU-hour pricing, it is a bound the run keeps
    plan_of(
        "  - {id: b, pattern: burst, requests: 2, max_tokens: 9}",
        extra="budget: $5",
        price="{input: 1, output: 2}",
    )
    plan_of("  - {id: b, pattern: burst, requests: 2}", extra="budget: $5")


def test_plan_text_says_what_the_budget_will_do() -> None:
    def text(budget: str) -> str:
        plan = plan_of(
            "  - {id: b, pattern: burst, requests: 4}\n  - {id: c, pattern: burst, requests: 1}",
            extra=f"budget: {budget}",
        )
        return plan_text({**plan_to_dict(plan), "cost_estimate": estimate_to_dict(plan)})

    assert "estimated cost: at most $40 (GPU time with every request at its timeout" in text("$50")
    assert "budget: $50, a hard bound" in text("$50")
    # the bound and the guard's 1 s margin for lens's own work after the last deadline
    assert "the whole plan fits within it" in text("$41")
    assert "the run may stop early to stay within it" in text("$40.99")
    # set-up (10 s), one request (10 s) and the margin: $21 before anything is sent
    assert "the run may stop early" in text("$21")
    assert "the first request's worst case ($21) is above it: the run would send nothing" in text(
        "$20.99"
    )

"""Load patterns compiled from YAML: arrival processes, burst waves, ramps and sweeps."""

from __future__ import annotations

import dataclasses
import math

import pytest

from lens.plan.compile import PRECISE_SPIN_S, concurrency_step, rate_step
from lens.plan.describe import plan_to_dict
from lens.plan.model import ClosedLoop, OpenLoop
from lens.records import SweepStep
from tests.plan.test_compile import BASE, arrivals_of, plan_of, plan_problems

WARM = "  - id: warm\n    pattern: burst\n    requests: 2\n"


def with_load(load: str, sla: str = "") -> str:
    return BASE.replace(WARM, load) + (f"sla:\n{sla}" if sla else "")


def test_burst_waves() -> None:
    plan = plan_of(with_load("  - {id: w, pattern: burst, requests: 2, waves: 3, interval: 2s}\n"))
    unit = plan.stages[0]
    assert arrivals_of(unit).offsets_s == (0.0, 0.0, 2.0, 2.0, 4.0, 4.0)
    assert unit.planned_requests == 6


def test_seeded_arrivals_are_shared_by_providers_differ_by_stage_and_repeat() -> None:
    text = with_load(
        "  - {id: p, pattern: constant-rate, rate: 20/s, duration: 5s, arrival: poisson}\n"
        "  - {id: q, pattern: constant-rate, rate: 20/s, duration: 5s, arrival: poisson}\n"
    )
    sim, other, next_stage, _ = plan_of(text).stages
    assert sim.provider != other.provider
    assert arrivals_of(sim).offsets_s == arrivals_of(other).offsets_s  # a fair comparison
    assert arrivals_of(sim).offsets_s != arrivals_of(next_stage).offsets_s
    assert arrivals_of(plan_of(text).stages[0]) == arrivals_of(sim)
    reseeded = plan_of(text.replace("arrival: poisson", "arrival: poisson, seed: 9"))
    assert arrivals_of(reseeded.stages[0]) != arrivals_of(sim)
    assert (arrivals_of(sim).process, arrivals_of(sim).seed) == ("poisson", 0)


def test_gamma_arrivals_take_burstiness() -> None:
    text = with_load(
        "  - {id: g, pattern: constant-rate, rate: 5/s, requests: 50, arrival: gamma,"
        " burstiness: 0.25, seed: 3, providers: [sim]}\n"
    )
    (unit,) = plan_of(text).stages
    assert (arrivals_of(unit).count, arrivals_of(unit).burstiness, arrivals_of(unit).seed) == (
        50,
        0.25,
        3,
    )


def test_ramp_compiles_to_its_schedule() -> None:
    text = with_load(
        "  - {id: r, pattern: ramp, from: 1/s, to: 3/s, duration: 2s, max_concurrency: 4,"
        " providers: [sim]}\n"
    )
    (unit,) = plan_of(text).stages
    expected = [math.sqrt(1 + 2 * i) - 1 for i in range(4)]
    assert arrivals_of(unit).offsets_s == pytest.approx(expected, abs=1e-12)
    assert unit.pattern == "ramp"
    assert unit.load == OpenLoop(arrivals_of(unit), max_concurrency=4)
    stepped = plan_of(text.replace("duration: 2s", "duration: 3s, steps: 3")).stages[0]
    assert arrivals_of(stepped).offsets_s == pytest.approx((0, 1, 1.5, 2, 7 / 3, 8 / 3), abs=1e-12)


RATE_SWEEP = "  - {id: ladder, pattern: sweep, rates: [1/s, 2/s, 0.5/s], duration: 2s, pause: 3s}\n"


def test_rate_sweep_expands_into_steps_then_providers() -> None:
    plan = plan_of(with_load(RATE_SWEEP))
    assert [(u.stage, u.provider, u.pause_before_s) for u in plan.stages] == [
        ("ladder.1rps", "sim", 0.0),
        ("ladder.1rps", "other", 0.0),
        ("ladder.2rps", "sim", 3.0),  # the pause is before each later step, once
        ("ladder.2rps", "other", 0.0),
        ("ladder.0.5rps", "sim", 3.0),
        ("ladder.0.5rps", "other", 0.0),
    ]
    step = plan.stages[2]
    assert step.sweep == SweepStep("ladder", 1, 3, rate_per_s=2.0)
    assert arrivals_of(step).offsets_s == (0.0, 0.5, 1.0, 1.5)
    assert step.pattern == "sweep"
    doc = plan_to_dict(plan)
    assert doc["stages"][2]["sweep"] == {"id": "ladder", "step": 1, "steps": 3, "rate_per_s": 2.0}
    assert doc["stages"][2]["pause_before_s"] == 3.0
    assert "pause_before_s" not in doc["stages"][0]
    units = sum(s["expected_duration_s"] for s in doc["stages"])
    assert doc["expected_duration_s"] == pytest.approx(units + 6.0)


def test_rate_sweep_takes_the_arrival_settings() -> None:
    text = with_load(
        "  - {id: s, pattern: sweep, rates: [4/s, 8/s], requests: 10, arrival: gamma,"
        " burstiness: 2, seed: 1, max_concurrency: 3, providers: [sim]}\n"
    )
    units = plan_of(text).stages
    assert [u.load.max_concurrency for u in units if isinstance(u.load, OpenLoop)] == [3, 3]
    for unit in units:
        assert (arrivals_of(unit).count, arrivals_of(unit).process, arrivals_of(unit).seed) == (
            10,
            "gamma",
            1,
        )
    assert arrivals_of(units[0]) != arrivals_of(units[1])


def test_concurrency_sweep_is_closed_loop() -> None:
    text = with_load(
        "  - {id: c, pattern: sweep, concurrencies: [1, 16], requests: 20, duration: 9s,"
        " providers: [other]}\n"
    )
    plan = plan_of(text)
    assert [(u.stage, u.provider, u.load) for u in plan.stages] == [
        ("c.c1", "other", ClosedLoop(1, 20, 9.0)),
        ("c.c16", "other", ClosedLoop(16, 20, 9.0)),
    ]
    assert plan.stages[1].sweep == SweepStep("c", 1, 2, concurrency=16)
    assert plan_to_dict(plan)["stages"][1]["sweep"]["concurrency"] == 16


def test_sla_scoped_to_a_sweep_covers_its_steps() -> None:
    plan = plan_of(
        with_load(
            RATE_SWEEP,
            '  - {assert: "ttft.p50 < 1s", stage: ladder}\n'
            '  - {assert: "ttft.p50 < 1s", stage: ladder.2rps}\n'
            '  - {assert: "ttft.p50 < 1s", stage: ladder, provider: sim}\n',
        )
    )
    whole, one, scoped = plan.slas
    assert whole.steps == ("ladder.1rps", "ladder.2rps", "ladder.0.5rps")
    assert whole.covers("ladder.0.5rps")
    assert not whole.covers("other")
    assert one.steps == ()
    assert one.covers("ladder.2rps")
    assert not one.covers("ladder.1rps")
    assert scoped.steps == whole.steps


def test_sla_scope_must_name_a_stage_sweep_or_step() -> None:
    text = with_load(
        RATE_SWEEP.replace("}", ", providers: [sim]}"),
        '  - {assert: "ttft.p50 < 1s", stage: ladder.3rps}\n'
        '  - {assert: "ttft.p50 < 1s", stage: ladder.1rps, provider: other}\n',
    )
    first, second = plan_problems(text)
    assert first.startswith("s.yaml:15:38: sla[0].stage: unknown stage 'ladder.3rps'")
    assert "known stages: 'ladder', 'ladder.1rps', 'ladder.2rps', 'ladder.0.5rps'" in first
    assert "stage 'ladder.1rps' does not run provider 'other'" in second


def test_step_ids_must_not_collide_with_stage_ids() -> None:
    text = with_load("  - {id: ladder.c2, pattern: burst, requests: 1}\n" + RATE_SWEEP).replace(
        "rates: [1/s, 2/s, 0.5/s]", "concurrencies: [1, 2]"
    )
    text = text.replace(", pause: 3s", ", pause: 3s, requests: 2")
    (problem,) = plan_problems(text)
    assert problem.startswith("s.yaml:14:53: load[1].concurrencies[1]: this step of sweep")
    assert "stage 'ladder.c2', an id already taken at load[0].id" in problem


ADAPTIVE = (
    "  - {id: search, pattern: sweep, rates: {from: 10/s, to: 80/s}, duration: 2s,"
    " find_max_rate: ['ttft.p95 < 1s', 'error_rate < 1%'], precision: 5%, max_steps: 6,"
    " pause: 1s}\n"
    "  - {id: auto, pattern: sweep, auto: {steps: 4, saturation: 8}, requests: 20}\n"
    "  - {id: ladder, pattern: sweep, rates: [1/s, 2/s], duration: 1s,"
    " stop_when: 'ttft.p95 > 2s'}\n"
)


def test_adaptive_sweeps_plan_their_known_steps() -> None:
    plan = plan_of(with_load(ADAPTIVE, sla="  - {assert: 'error_rate < 1%', stage: search}\n"))
    sim = [u for u in plan.stages if u.provider == "sim"]
    assert [u.stage for u in sim] == [
        "search.10rps",
        "search.80rps",
        "auto.c1",
        "auto.c8",
        "ladder.1rps",
        "ladder.2rps",
    ]
    assert sim[1].sweep == SweepStep("search", 1, None, rate_per_s=80.0)
    assert sim[3].sweep == SweepStep("auto", 1, None, concurrency=8)
    assert sim[3].load == ClosedLoop(concurrency=8, requests=20)
    assert sim[5].sweep == SweepStep("ladder", 1, 2, rate_per_s=2.0)
    search, auto, ladder = plan.sweeps
    assert (search.kind, search.search_range, search.max_steps) == ("find_max_rate", (10, 80), 6)
    assert [c.expr.text for c in search.conditions] == ["ttft.p95 < 1s", "error_rate < 1%"]
    assert search.conditions[1].where == "s.yaml:13:112"
    assert str(search.precision) == "5%"
    assert (auto.kind, auto.auto_steps) == ("auto", 4)
    assert (ladder.kind, ladder.conditions[0].where) == ("stop_when", "s.yaml:15:78")
    assert plan.slas[0].steps == ("search.10rps", "search.80rps")  # more are added at run time
    assert plan_to_dict(plan)["adaptive_sweeps"][0] == {
        "id": "search",
        "kind": "find_max_rate",
        "decided_at_run_time": True,
        "conditions": ["ttft.p95 < 1s", "error_rate < 1%"],
        "rate_from_per_s": 10.0,
        "rate_to_per_s": 80.0,
        "precision": "5%",
        "max_steps": 6,
    }


def test_a_rate_step_chosen_at_run_time_is_made_like_a_listed_one() -> None:
    listed = plan_of(
        with_load(
            "  - {id: search, pattern: sweep, rates: [10/s, 45/s], requests:"
            " 30, arrival: poisson, seed: 3, max_concurrency: 4, pause: 2s}\n"
        )
    )
    plan = plan_of(
        with_load(
            "  - {id: search, pattern: sweep, rates: {from: 10/s, to: 80/s},"
            " requests: 30, arrival: poisson, seed: 3, max_concurrency: 4,"
            " pause: 2s, find_max_rate: 'ttft.p95 < 1s', max_steps: 3}\n"
        )
    )
    (sweep,) = plan.sweeps
    made = rate_step(plan.stages[0], sweep, 45.0, 1, pause=True)
    # The listed 45/s step of the same provider, but for the count of steps, which only the
    # run will know.
    assert dataclasses.replace(made, sweep=listed.stages[2].sweep) == listed.stages[2]
    assert made.sweep == SweepStep("search", 1, None, rate_per_s=45.0)


CONCURRENCY_SEARCH = (
    "  - {id: conc, pattern: sweep, concurrencies: {from: 2, to: 32}, requests: 40,"
    " warmup: 4 requests, find_max_concurrency: 'ttft.p95 < 1s', precision: 2,"
    " max_steps: 5, pause: 1s}\n"
)


def test_a_concurrency_search_plans_its_two_bounds() -> None:
    plan = plan_of(
        with_load(CONCURRENCY_SEARCH, sla="  - {assert: 'error_rate < 1%', stage: conc}\n")
    )
    sim = [u for u in plan.stages if u.provider == "sim"]
    assert [u.stage for u in sim] == ["conc.c2", "conc.c32"]
    assert sim[1].sweep == SweepStep("conc", 1, None, concurrency=32)
    assert sim[1].load == ClosedLoop(concurrency=32, requests=40)
    (sweep,) = plan.sweeps
    assert (sweep.kind, sweep.concurrency_range, sweep.concurrency_precision) == (
        "find_max_concurrency",
        (2, 32),
        2,
    )
    assert (sweep.max_steps, sweep.precision, sweep.search_range) == (5, None, None)
    assert plan.slas[0].steps == ("conc.c2", "conc.c32")  # more are added at run time
    assert plan_to_dict(plan)["adaptive_sweeps"][0] == {
        "id": "conc",
        "kind": "find_max_concurrency",
        "decided_at_run_time": True,
        "conditions": ["ttft.p95 < 1s"],
        "concurrency_from": 2,
        "concurrency_to": 32,
        "precision": 2,
        "max_steps": 5,
    }
    # Without a precision the search ends on neighbours: the exact edge.
    exact = plan_of(with_load(CONCURRENCY_SEARCH.replace(" precision: 2,", "")))
    assert exact.sweeps[0].concurrency_precision == 1


def test_a_concurrency_step_chosen_at_run_time_is_made_like_a_listed_one() -> None:
    listed = plan_of(
        with_load(
            "  - {id: conc, pattern: sweep, concurrencies: [2, 9], requests: 40,"
            " warmup: 4 requests, cooldown: 2 requests, pause: 1s}\n"
        )
    )
    plan = plan_of(
        with_load(
            CONCURRENCY_SEARCH.replace(
                "warmup: 4 requests", "warmup: 4 requests, cooldown: 2 requests"
            )
        )
    )
    (sweep,) = plan.sweeps
    made = concurrency_step(plan.stages[0], sweep, 9, 2, pause=True)
    assert dataclasses.replace(made, sweep=listed.stages[2].sweep) == listed.stages[2]
    assert made.sweep == SweepStep("conc", 2, None, concurrency=9)
    assert made.phases.warmup_requests == 4
    assert made.pause_before_s == 1.0
    assert concurrency_step(plan.stages[0], sweep, 9, 2, pause=False).pause_before_s == 0.0


def test_auto_sweep_step_ids_must_be_free() -> None:
    (problem,) = plan_problems(
        with_load(
            "  - {id: auto.c1, pattern: burst, requests: 1}\n"
            "  - {id: auto, pattern: sweep, auto: {steps: 2}, requests: 4}\n"
        )
    )
    assert problem.startswith("s.yaml:14:38: load[1].auto: this step of sweep 'auto' is stage")


def test_precise_pacing_is_a_default_for_every_unit() -> None:
    text = with_load("  - {id: p, pattern: constant-rate, rate: 20/s, duration: 1s}\n")
    assert all(u.spin_s == 0.0 for u in plan_of(text).stages)
    precise = plan_of(text.replace("version: 1\n", "version: 1\ndefaults: {pacing: precise}\n"))
    assert all(u.spin_s == PRECISE_SPIN_S for u in precise.stages)
    (first, *_) = plan_to_dict(precise)["stages"]
    assert first["pacing"] == {"mode": "precise", "spin_s": PRECISE_SPIN_S}

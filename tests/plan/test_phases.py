"""Warmup, cooldown, drain and idle probes compiled from YAML, with positioned errors."""

from __future__ import annotations

import pytest

from lens.errors import ScenarioError
from lens.plan.describe import plan_to_dict
from lens.plan.model import IdleProbe, Phases
from lens.scenario.load import parse_scenario
from tests.plan.test_compile import BASE, plan_of, plan_problems

WARM = "  - id: warm\n    pattern: burst\n    requests: 2\n"


def with_load(load: str, defaults: str = "") -> str:
    text = BASE.replace(WARM, load)
    return (
        text.replace("providers:\n", f"defaults:\n{defaults}providers:\n", 1) if defaults else text
    )


def test_open_loop_phases_resolve_to_arrival_indices() -> None:
    text = with_load(
        "  - {id: s, pattern: constant-rate, rate: 5/s, duration: 60s, warmup: 10s,"
        " cooldown: 5 requests}\n"
    )
    unit = plan_of(text).stages[0]
    # 5/s for 60 s: 300 arrivals; those due before 10 s are warmup, the last 5 cooldown.
    assert unit.phases == Phases(warmup_requests=50, cooldown_from_index=295)
    assert (unit.drain, unit.drain_timeout_s, unit.cutoff_s) == ("wait", None, 60.0)
    assert plan_to_dict(plan_of(text))["stages"][0]["phases"] == {
        "warmup_requests": 50,
        "cooldown_from_request": 295,
        "sla_includes_warmup": False,
    }


def test_cooldown_in_seconds_counts_back_from_the_stage_end() -> None:
    text = with_load(
        "  - {id: s, pattern: constant-rate, rate: 10/s, duration: 2s, cooldown: 0.5s}\n"
    )
    assert plan_of(text).stages[0].phases.cooldown_from_index == 15
    # Without a duration the end is the last arrival (at 1.9 s): 1.4 s and later.
    text = with_load(
        "  - {id: s, pattern: constant-rate, rate: 10/s, requests: 20, cooldown: 0.5s}\n"
    )
    unit = plan_of(text).stages[0]
    assert unit.phases.cooldown_from_index == 14
    assert unit.cutoff_s is None


def test_defaults_apply_and_a_stage_overrides_them() -> None:
    text = with_load(
        "  - {id: a, pattern: burst, requests: 10}\n"
        "  - {id: b, pattern: burst, requests: 10, warmup: 0 requests, drain: wait,"
        " sla_includes_warmup: false}\n"
        "  - {id: i, pattern: idle-probe, gaps: [0s, 2m]}\n",
        defaults="  warmup: 3 requests\n  drain: cancel\n  drain_timeout: 2s\n"
        "  sla_includes_warmup: true\n",
    )
    a, _, b, _, idle, _ = plan_of(text).stages
    assert a.phases == Phases(warmup_requests=3, pooled=True)
    assert (a.drain, a.drain_grace_s) == ("cancel", 2.0)
    assert b.phases == Phases()
    assert (b.drain, b.drain_grace_s) == ("wait", 2.0)
    # An idle probe has no phases and no drain: defaults leave it alone.
    assert (idle.phases, idle.drain, idle.load) == (Phases(), "wait", IdleProbe((0.0, 120.0)))
    assert idle.planned_requests == 3


def test_closed_loop_phases() -> None:
    text = with_load(
        "  - {id: c, pattern: concurrency, concurrency: 2, duration: 30s, warmup: 5s,"
        " cooldown: 5s}\n"
        "  - {id: d, pattern: concurrency, concurrency: 2, requests: 20, warmup: 2 requests,"
        " cooldown: 4 requests}\n"
    )
    c, _, d, _ = plan_of(text).stages
    assert c.phases == Phases(warmup_s=5.0, cooldown_from_s=25.0)
    assert c.cutoff_s == 30.0
    assert d.phases == Phases(warmup_requests=2, cooldown_from_index=16)


@pytest.mark.parametrize(
    ("load", "defaults", "expected"),
    [
        (
            "  - {id: b, pattern: burst, requests: 3, drain: cancel}\n",
            "",
            "s.yaml:13:49: load[0].drain: drain: cancel cuts off the requests in flight when "
            "the stage's duration ends, and this stage has no duration: give 'drain_timeout' "
            "(a grace after the last request is sent) or a 'duration'",
        ),
        (
            "  - {id: b, pattern: burst, requests: 3}\n",
            "  drain: cancel\n",
            "s.yaml:4:10: defaults.drain: drain: cancel cuts off",
        ),
        (
            "  - {id: c, pattern: concurrency, concurrency: 2, duration: 5s,"
            " cooldown: 2 requests}\n",
            "",
            "s.yaml:13:75: load[0].cooldown: 'cooldown: N requests' needs 'requests'",
        ),
        (
            "  - {id: c, pattern: concurrency, concurrency: 2, requests: 5, cooldown: 2s}\n",
            "",
            "s.yaml:13:74: load[0].cooldown: 'cooldown: <time>' needs 'duration'",
        ),
        (
            "  - {id: b, pattern: burst, requests: 3, warmup: 2 requests, cooldown: 1 request}\n",
            "",
            "s.yaml:13:50: load[0].warmup: warmup and cooldown leave none of the stage's "
            "3 arrivals to measure",
        ),
        (
            "  - {id: c, pattern: concurrency, concurrency: 1, duration: 5s, warmup: 5s}\n",
            "",
            "s.yaml:13:73: load[0].warmup: warmup and cooldown leave none of the stage's 5s",
        ),
        (
            "  - {id: c, pattern: concurrency, concurrency: 1, requests: 4,"
            " cooldown: 4 requests}\n",
            "",
            "s.yaml:13:22: load[0].pattern: warmup and cooldown leave none of the stage's 4",
        ),
    ],
)
def test_phase_and_drain_problems_are_positioned(load: str, defaults: str, expected: str) -> None:
    (problem,) = plan_problems(with_load(load, defaults))
    assert problem.startswith(expected)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("'5 sec'", "expected a duration like 10s or a count like '5 requests', got '5 sec'"),
        ("-1", "expected a duration like 10s or a count like '5 requests', got -1"),
    ],
)
def test_bad_spans_are_input_errors(value: str, message: str) -> None:
    text = with_load(f"  - {{id: b, pattern: burst, requests: 3, warmup: {value}}}\n")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, file="s.yaml", env={})
    (problem,) = info.value.problems
    assert str(problem).endswith(message)
    assert problem.pos is not None


def test_idle_probe_takes_no_phases() -> None:
    text = with_load("  - {id: i, pattern: idle-probe, gaps: [1s], warmup: 1 request}\n")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, file="s.yaml", env={})
    assert "unknown field 'warmup'" in str(info.value.problems[0])

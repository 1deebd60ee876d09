"""``repeat: N`` compiles into N repetitions per provider, interleaved, each the stage's own
units under ``<id>#k``; what lens cannot repeat is refused where it is written."""

from __future__ import annotations

import pytest

from lens.errors import PlanError
from lens.export.plan_view import plan_text
from lens.metrics.estimate import estimate_to_dict
from lens.plan.compile import compile_plan
from lens.plan.describe import plan_to_dict
from lens.plan.model import OpenLoop, Plan
from lens.records import Repetition
from tests.scenario.helpers import BASE, only_problem, parse

TWO = """\
version: 1
name: t
providers:
  a: {type: simulated}
  b: {type: simulated}
prompts:
  - id: q
    messages: [{role: user, content: hi}]
load:
  - {id: steady, pattern: constant-rate, rate: 10/s, requests: 5, arrival: poisson, seed: 3,
     repeat: 3}
  - {id: once, pattern: concurrency, concurrency: 2, requests: 4}
sla:
  - {assert: "ttft.p95 < 1s", stage: steady}
  - ttft.p50 < 1s
"""


def _plan(text: str, repeat: int | None = None) -> Plan:
    return compile_plan(parse(text), env={}, repeat=repeat)


def test_repetitions_are_interleaved_units_with_their_own_ids() -> None:
    plan = _plan(TWO)
    assert [(u.stage, u.provider) for u in plan.stages] == [
        ("steady#1", "a"),
        ("steady#1", "b"),
        ("steady#2", "a"),
        ("steady#2", "b"),
        ("steady#3", "a"),
        ("steady#3", "b"),
        ("once", "a"),
        ("once", "b"),
    ]
    assert [u.repetition for u in plan.stages[:6]] == [
        Repetition("steady", k, 3) for k in (1, 1, 2, 2, 3, 3)
    ]
    assert plan.stages[6].repetition is None
    # Every repetition (and provider) faces the very schedule of the stage: the seeded draw
    # is the stage's, so repetitions differ by the system's noise alone.
    loads = {u.load for u in plan.stages[:6]}
    assert len(loads) == 1
    (load,) = loads
    assert isinstance(load, OpenLoop)
    assert load.arrivals.process == "poisson"


def test_an_sla_scoped_to_the_stage_covers_its_repetitions() -> None:
    scoped, unscoped = _plan(TWO).slas
    assert scoped.steps == ("steady#1", "steady#2", "steady#3")
    assert scoped.covers("steady")
    assert scoped.covers("steady#2")
    assert not scoped.covers("once")
    assert unscoped.steps == ()


def test_defaults_repeat_and_the_flag_apply_to_stages_without_their_own() -> None:
    text = TWO.replace("load:\n", "defaults: {repeat: 2}\nload:\n")
    plan = _plan(text)
    assert [u.stage for u in plan.stages].count("steady#3") == 2  # its own repeat: 3
    assert [u.stage for u in plan.stages[6:]] == ["once#1", "once#1", "once#2", "once#2"]
    # --repeat replaces defaults.repeat, never a stage's own.
    flagged = _plan(text, repeat=1)
    assert [u.stage for u in flagged.stages[6:]] == ["once", "once"]
    assert len([u for u in flagged.stages if u.repetition is not None]) == 6
    assert len(_plan(TWO, repeat=4).stages) == 6 + 8


def test_the_flag_is_refused_out_of_range() -> None:
    with pytest.raises(PlanError, match="--repeat takes a whole number from 1 to 100"):
        _plan(TWO, repeat=0)


def test_defaults_repeat_passes_sweeps_and_idle_probes_by_with_a_warning() -> None:
    text = BASE.replace("load:\n", "defaults: {repeat: 2}\nload:\n") + (
        "  - {id: ladder, pattern: sweep, rates: [1/s, 2/s], requests: 2}\n"
        "  - {id: idle, pattern: idle-probe, gaps: [1s]}\n"
    )
    plan = _plan(text)
    assert [u.stage for u in plan.stages] == [
        "warm#1", "warm#2", "ladder.1rps", "ladder.2rps", "idle",
    ]  # fmt: skip
    assert any("'ladder' (sweep) runs once: defaults.repeat 2" in w for w in plan.warnings)
    assert any("'idle' (idle-probe) runs once" in w for w in plan.warnings)
    flagged = _plan(BASE + "  - {id: idle, pattern: idle-probe, gaps: [1s]}\n", repeat=3)
    assert any("--repeat 3 does not apply" in w for w in flagged.warnings)


def test_repeat_on_a_sweep_or_an_idle_probe_is_refused_where_it_is_written() -> None:
    sweep = BASE + "  - {id: ladder, pattern: sweep, rates: [1/s], requests: 2, repeat: 2}\n"
    assert only_problem(sweep).startswith(
        "s.yaml:14:61: load[1].repeat: 'repeat' is not supported on a sweep"
    )
    probe = BASE + "  - id: idle\n    pattern: idle-probe\n    gaps: [1s]\n    repeat: 2\n"
    assert only_problem(probe).startswith(
        "s.yaml:17:5: load[1].repeat: 'repeat' is not supported on an idle probe"
    )


@pytest.mark.parametrize("value", ["0", "101", "1.5", "'3'"])
def test_repeat_must_be_a_whole_number_in_range(value: str) -> None:
    text = BASE.replace("    requests: 2\n", f"    requests: 2\n    repeat: {value}\n")
    assert "load[0].repeat" in only_problem(text)


def test_lens_plan_shows_and_counts_the_repetitions() -> None:
    plan = _plan(TWO)
    doc = plan_to_dict(plan)
    assert [s.get("repetition") for s in doc["stages"][:2]] == [
        {"stage": "steady", "index": 1, "count": 3}
    ] * 2
    # Durations and requests count every repetition.
    once = _plan(TWO.replace("     repeat: 3}", "     repeat: 1}"))
    assert doc["total_requests"] == once_total(once) + 2 * 2 * 5
    assert doc["expected_duration_s"] > plan_to_dict(once)["expected_duration_s"]
    doc["cost_estimate"] = estimate_to_dict(plan)
    text = plan_text(doc)
    assert "steady#2" in text
    assert "repeat: steady runs 3 times, interleaved across providers" in text


def once_total(plan: Plan) -> int:
    total = plan_to_dict(plan)["total_requests"]
    assert isinstance(total, int)
    return total

"""Mangled scenario text gives a ScenarioError (or a PlanError), never a traceback."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lens.errors import PlanError, Problem, ScenarioError
from lens.plan.compile import compile_plan
from lens.scenario import parse_scenario

SCENARIOS = Path(__file__).parents[2] / "scenarios"
TEXT = (SCENARIOS / "example.yaml").read_text(encoding="utf-8")
NASTY = (
    *("${X}", "${", "&a ", "*a", "<<: *a", "[", "{", "\n  - ", ": ", "9" * 400, "\t"),
    *("!!binary ", "? ", "---\n", "\x00", "'", '"'),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mangled_scenarios_fail_cleanly(data: st.DataObject) -> None:
    text = TEXT
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        start = data.draw(st.integers(min_value=0, max_value=len(text)))
        end = min(len(text), start + data.draw(st.integers(min_value=0, max_value=20)))
        insert = data.draw(st.one_of(st.text(max_size=8), st.sampled_from(NASTY)))
        text = text[:start] + insert + text[end:]
    problems: tuple[Problem, ...] = ()
    try:
        scenario = parse_scenario(text, file="f.yaml", base_dir=SCENARIOS, env={"X": "1"})
        compile_plan(scenario, env={"OPENAI_API_KEY": "k"})
    except (ScenarioError, PlanError) as exc:
        problems = exc.problems
        assert problems, "an error must say what is wrong"
    assert all(p.message for p in problems)

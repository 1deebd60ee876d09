"""The scenario's ``regression:`` block: validated with positions, compiled into the plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from lens.export.plan_view import plan_text
from lens.metrics.estimate import estimate_to_dict
from lens.plan.compile import compile_plan
from lens.plan.describe import plan_to_dict
from lens.scenario import load_scenario
from tests.scenario.helpers import BASE, parse, problems

BLOCK = (
    BASE
    + """\
regression:
  baseline: baselines/nightly.json
  thresholds:
    ttft.p95: +10%
    itl.p50: +2ms
    error_rate: +0.5%
"""
)


def test_compiles_into_the_plan_with_the_baseline_beside_the_scenario(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(BLOCK)
    plan = compile_plan(load_scenario(tmp_path / "s.yaml", env={}), env={})
    spec = plan.regression
    assert spec is not None
    assert spec.baseline == str(tmp_path.resolve() / "baselines/nightly.json")
    assert spec.base_dir == str(tmp_path.resolve())
    assert [(label, t.value, t.relative) for label, t in spec.thresholds] == [
        ("ttft.p95", 0.1, True),
        ("itl.p50", 2.0, False),
        ("error_rate", 0.005, False),
    ]
    where = f"{tmp_path / 's.yaml'}:15:3"
    assert spec.where == where
    assert plan_to_dict(plan)["regression"] == {
        "baseline": spec.baseline,
        "thresholds": {"ttft.p95": "+10%", "itl.p50": "+2ms", "error_rate": "+0.5%"},
        "where": where,
    }


def test_a_git_baseline_is_kept_as_written_and_the_baseline_is_optional() -> None:
    plan = compile_plan(parse(BASE + "regression: {baseline: 'git:origin/main:b/n.json'}"), env={})
    assert plan.regression is not None
    assert plan.regression.baseline == "git:origin/main:b/n.json"
    assert plan.regression.thresholds == ()
    bare = compile_plan(parse(BASE + "regression: {thresholds: {ttft.p50: 5%}}"), env={})
    assert bare.regression is not None
    assert bare.regression.baseline is None


def test_no_block_no_regression_key_in_the_plan() -> None:
    plan = compile_plan(parse(BASE), env={})
    assert plan.regression is None
    assert "regression" not in plan_to_dict(plan)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("ttft.p95: -10%", "expected a change like +10%"),
        ("ttft.max: +10%", "cannot be compared: use one of ttft.mean, ttft.p50"),
        ("input_tokens.p50: +10%", "input_tokens has no better direction"),
        ("ttf.p95: +1ms", "did you mean 'ttft'"),
        ("error_rate: +2ms", "is a ratio"),
    ],
)
def test_bad_thresholds_are_positioned(line: str, expected: str) -> None:
    found = problems(BASE + f"regression:\n  thresholds:\n    {line}\n")
    assert len(found) == 1, found
    assert found[0].startswith("s.yaml:16:")
    assert expected in found[0]


def test_unknown_keys_are_positioned() -> None:
    found = problems(BASE + "regression:\n  baseline: b.json\n  treshold: {}\n")
    assert len(found) == 1, found
    assert found[0].startswith("s.yaml:16:3")


def _text(block: str) -> str:
    plan = compile_plan(parse(BASE + block), env={})
    return plan_text({**plan_to_dict(plan), "cost_estimate": estimate_to_dict(plan)})


def test_the_plan_text_names_the_baseline_and_thresholds() -> None:
    text = _text("regression: {baseline: 'git:main:b.json'}")
    assert "regression: against git:main:b.json; thresholds none named" in text
    text = _text("regression: {thresholds: {ttft.p50: 5%}}")
    assert "regression: against --baseline (none in the scenario); thresholds ttft.p50 +5%" in text

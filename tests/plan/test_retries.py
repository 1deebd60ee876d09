from __future__ import annotations

import pytest

from lens.errors import ScenarioError
from lens.plan.compile import compile_plan
from lens.plan.model import RetryPolicy
from lens.scenario import parse_scenario

BASE = """\
version: 1
name: r
defaults:
  retries: {max: 2, on: [http_429, overloaded], backoff: 200ms}
providers:
  v: {type: openai-compatible, base_url: 'http://127.0.0.1:9/v1', model: m}
prompts: [{id: q, messages: [{role: user, content: hi}]}]
load:
  - {id: a, pattern: burst, requests: 1}
  - {id: b, pattern: burst, requests: 1, retries: {max: 0}}
  - {id: c, pattern: burst, requests: 1, retries: {max: 1, on: [timeout], max_wait: 2s}}
"""


def test_retry_policies_compile_per_stage() -> None:
    plan = compile_plan(parse_scenario(BASE, file="r.yaml"), env={})
    policies = {u.stage: u.retries for u in plan.stages}
    assert policies["a"] == RetryPolicy(
        max_retries=2, on=frozenset({"http_429", "overloaded"}), backoff_s=0.2, max_wait_s=30.0
    )
    assert policies["b"] is None  # max: 0 turns them off
    assert policies["c"] == RetryPolicy(
        max_retries=1, on=frozenset({"timeout"}), backoff_s=1.0, max_wait_s=2.0
    )


def test_no_retries_by_default() -> None:
    text = BASE.replace(
        "defaults:\n  retries: {max: 2, on: [http_429, overloaded], backoff: 200ms}\n", ""
    )
    plan = compile_plan(parse_scenario(text, file="r.yaml"), env={})
    assert plan.stages[0].retries is None


def test_unknown_retry_class_is_a_positioned_error() -> None:
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(BASE.replace("on: [timeout]", "on: [http_4xx]"), file="r.yaml")
    (problem,) = exc.value.problems
    assert problem.pos is not None
    assert problem.pos.line == 11
    assert "load[2].retries.on[0]" in problem.path

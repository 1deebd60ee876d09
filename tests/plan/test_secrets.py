"""A credential never shows up in a repr, a str, an error message or a dump of the plan."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import TypeAdapter

from lens.errors import InputError, PlanError
from lens.plan.compile import compile_plan
from lens.plan.model import Plan, Secret
from lens.scenario import parse_scenario

KEY = "sk-very-secret-0123456789"
TEXT = """\
version: 1
name: t
providers:
  gpt:
    type: openai
    model: m
  local:
    type: openai-compatible
    base_url: http://127.0.0.1:1/v1
    model: m
    api_key: ${LOCAL_KEY}
prompts:
  - {id: q, messages: [{role: user, content: hi}]}
load:
  - {id: w, pattern: burst, requests: 1}
"""
ENV = {"OPENAI_API_KEY": KEY, "LOCAL_KEY": KEY}


def _plan() -> Plan:
    return compile_plan(parse_scenario(TEXT, env=ENV), env=ENV)


def test_plan_never_shows_the_key() -> None:
    plan = _plan()
    assert plan.providers["gpt"].api_key is not None
    assert plan.providers["gpt"].api_key.reveal() == KEY
    assert KEY not in repr(plan)
    assert KEY not in str(plan)
    dumped = TypeAdapter(Plan).dump_json(plan).decode()
    assert KEY not in dumped
    assert '"api_key":"Secret(${OPENAI_API_KEY})"' in dumped
    assert "Secret(${LOCAL_KEY})" in dumped
    assert KEY not in str(TypeAdapter(Plan).dump_python(plan, mode="json"))


def test_secret_repr_and_str() -> None:
    assert repr(Secret(KEY, source="${K}")) == "Secret(${K})"
    assert repr(Secret(KEY)) == "Secret(***)"
    assert str(Secret(KEY)) == "***"
    assert "masked credential" in str(TypeAdapter(Secret).json_schema())


def test_scenario_never_shows_the_key() -> None:
    scenario = parse_scenario(TEXT, env=ENV)
    assert KEY not in repr(scenario)
    assert KEY not in scenario.model_dump_json()
    assert KEY not in str(scenario.model_dump())


def _errors(text: str, env: dict[str, str]) -> str:
    with pytest.raises(InputError) as info:
        compile_plan(parse_scenario(text, env=env), env=env)
    return str(info.value) + repr(info.value.problems)


def test_validation_errors_never_quote_a_key() -> None:
    # A key that YAML types as a number fails validation: the message must not echo it.
    numeric = "98765432109876"
    text = TEXT.replace(
        "    api_key: ${LOCAL_KEY}\n",
        "    api_key: ${LOCAL_KEY}\n    headers:\n      A: ${LOCAL_KEY}\n",
    )
    message = _errors(text, {**ENV, "LOCAL_KEY": numeric})
    assert "api_key: expected a string" in message
    assert numeric not in message


def test_plan_errors_never_quote_a_key() -> None:
    text = TEXT.replace("model: m\n  local", "model: m\n    api_key: '${GPT_KEY:-}'\n  local", 1)
    with pytest.raises(PlanError) as info:
        compile_plan(parse_scenario(text, env=ENV), env=ENV)
    assert "empty api_key (from ${GPT_KEY})" in str(info.value)
    assert KEY not in str(info.value)


def test_the_dataclass_field_is_hidden_from_repr() -> None:
    (value_field,) = [f for f in dataclasses.fields(Secret) if f.name == "_value"]
    assert value_field.repr is False

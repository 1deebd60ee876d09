"""What lens plan shows of a workload before anything is sent: each prompt source's count
and input lengths with the tokenizer that counted them, bodies, output control."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from lens.api import describe_plan
from lens.errors import ScenarioError
from lens.export.plan_view import plan_text
from lens.plan.compile import compile_plan
from lens.scenario import parse_scenario
from tests.workloads.test_datasets import sharegpt

SCENARIO = """\
version: 1
name: w
providers:
  vllm:
    type: openai-compatible
    base_url: http://127.0.0.1:9/v1
    model: m
    output_tokens: exact
    body: {temperature: 0, api_token: sk-body-secret-123}
prompts:
  - id: chat
    dataset: {path: share.json, format: sharegpt, sample: 10, seed: 2}
  - id: syn
    synthetic:
      input_tokens: {dist: normal, mean: 200, stdev: 40, min: 50}
      output_tokens: 64
      count: 30
  - id: hi
    messages: [{role: user, content: hello there}]
load:
  - {id: s, pattern: burst, requests: 40, max_tokens: 100, body: {top_p: 0.5}}
"""


def _doc(tmp_path: Path, text: str = SCENARIO) -> dict[str, Any]:
    (tmp_path / "share.json").write_text(json.dumps(sharegpt(25)))
    scenario = parse_scenario(text, file=str(tmp_path / "s.yaml"), base_dir=tmp_path)
    return describe_plan(compile_plan(scenario, env={}), env={})


def test_the_plan_lists_each_source_with_its_lengths(tmp_path: Path) -> None:
    doc = _doc(tmp_path)
    sources = {s["id"]: s for s in doc["prompt_sources"]}
    assert sources["chat"]["prompts"] == 10
    assert sources["syn"]["prompts"] == 30
    assert sources["hi"]["prompts"] == 1
    syn = sources["syn"]["input_tokens"]
    assert 50 <= syn["min"] <= syn["p50"] <= syn["p90"] <= syn["max"]
    assert sources["syn"]["tokenizer"] == "estimate"
    assert sources["hi"]["input_tokens"] == {"min": 3, "p50": 3, "p90": 3, "max": 3}
    text = plan_text(doc)
    assert "prompt sources (input tokens min/p50/p90/max):" in text
    assert "  chat: 10 dataset prompts, " in text
    assert "  syn: 30 synthetic prompts, " in text
    assert "25 read, sampled 10 (seed 2)" in text
    # 41 prompt ids fold into one entry per source in the stage table.
    assert "chat#* (10), hi, syn#* (30)" in text


def test_bodies_and_exact_output_show_and_secrets_in_them_do_not(tmp_path: Path) -> None:
    # A body is not a place for credentials, but the plan goes through the redactor all the
    # same: a provider's key copied into a body is masked there too.
    text = SCENARIO.replace("    model: m\n", "    model: m\n    api_key: sk-body-secret-123\n", 1)
    doc = _doc(tmp_path, text)
    (stage,) = doc["stages"]
    assert stage["body"]["temperature"] == 0
    assert stage["body"]["top_p"] == 0.5
    shown = plan_text(doc)
    assert "output: vllm asks for exactly max_tokens (ignore_eos: true" in shown
    assert "body: s/vllm adds {temperature: 0, api_token: " in shown
    assert "sk-body-secret-123" not in shown
    assert "sk-body-secret-123" not in json.dumps(doc)


def test_exact_output_without_a_limit_is_a_plan_warning(tmp_path: Path) -> None:
    text = SCENARIO.replace(", max_tokens: 100", "")
    doc = _doc(tmp_path, text)
    assert any("output_tokens: exact, but stage 's'" in w for w in doc["warnings"])


@pytest.mark.parametrize("field", ["stream", "model", "messages", "max_tokens"])
def test_a_body_may_not_set_what_lens_owns(tmp_path: Path, field: str) -> None:
    text = textwrap.dedent(SCENARIO).replace("body: {top_p: 0.5}", f"body: {{{field}: 1}}")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, file="s.yaml", base_dir=tmp_path)
    (problem,) = info.value.problems
    assert f"load[0].body: '{field}' is set by lens" in str(problem)
    assert str(problem).startswith("s.yaml:21:66:")


def test_include_usage_in_a_body_points_at_the_setting(tmp_path: Path) -> None:
    text = SCENARIO.replace("body: {top_p: 0.5}", "body: {stream_options: {include_usage: false}}")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, file="s.yaml", base_dir=tmp_path)
    assert "use the provider's include_usage:" in str(info.value.problems[0])


def test_bedrock_sends_a_body_so_the_plan_no_longer_warns(tmp_path: Path) -> None:
    text = textwrap.dedent(
        """\
        version: 1
        name: b
        providers:
          br: {type: bedrock, model: m, region: us-east-1, api_key: k}
        prompts:
          - {id: q, messages: [{role: user, content: hi}], body: {temperature: 0}}
        load:
          - {id: s, pattern: burst, requests: 1, max_tokens: 5}
        """
    )
    doc = _doc(tmp_path, text)
    assert not [w for w in doc["warnings"] if "body:" in w]
    assert "temperature" in json.dumps(doc["prompts"])

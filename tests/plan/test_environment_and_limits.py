"""What ``lens plan`` says about a scenario's reach outside itself: the environment variables
it reads (names and fields, never values), headers (secret values masked), size limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lens.cli import main
from lens.errors import ScenarioError
from lens.export.plan_view import plan_text
from lens.metrics.estimate import estimate_to_dict
from lens.plan.compile import compile_plan
from lens.plan.describe import plan_to_dict
from lens.plan.model import EnvRead, Limits, Plan
from lens.scenario import parse_scenario

SECRET = "sk-very-secret-0123456789"
TEXT = """\
version: 1
name: t
providers:
  local:
    type: openai-compatible
    base_url: http://${HOST}:8000/v1
    model: m
    price: {input: 1, output: 2}
    api_key: ${LOCAL_KEY}
    headers:
      X-Trace: lens
      X-Custom: {value: "${CUSTOM}", secret: true}
      X-Plain-Mapping: {value: plain}
      Authorization: "Bearer ${LOCAL_KEY}"
      X-Session-Token: "${CUSTOM}"
  gpt:
    type: openai
    model: gpt-4o-mini
  bed:
    type: bedrock
    model: us.amazon.nova-micro-v1:0
prompts:
  - id: q
    messages: [{role: user, content: "${NOT_READ}"}]
load:
  - {id: w, pattern: burst, requests: 1, max_tokens: 64}
budget: ${BUDGET:-5}
"""
ENV = {
    "HOST": "10.1.2.3",
    "LOCAL_KEY": SECRET,
    "CUSTOM": SECRET + "-custom",
    "OPENAI_API_KEY": SECRET + "-openai",
    "AWS_REGION": "eu-west-3",
}


def plan_of(text: str = TEXT, env: dict[str, str] | None = None) -> Plan:
    env = ENV if env is None else env
    return compile_plan(parse_scenario(text, file="s.yaml", env=env), env=env)


def test_every_variable_read_is_listed_with_its_field() -> None:
    assert plan_of().environment == (
        EnvRead("HOST", "providers.local.base_url"),
        EnvRead("LOCAL_KEY", "providers.local.api_key"),
        EnvRead("CUSTOM", "providers.local.headers.X-Custom.value"),
        EnvRead("LOCAL_KEY", "providers.local.headers.Authorization"),
        EnvRead("CUSTOM", "providers.local.headers.X-Session-Token"),
        EnvRead("BUDGET", "budget"),
        EnvRead("OPENAI_API_KEY", "providers.gpt.api_key", default=True),
        EnvRead("AWS_REGION", "providers.bed.region", default=True),
    )


def test_plan_json_lists_names_and_never_values() -> None:
    doc = plan_to_dict(plan_of())
    assert doc["environment"][0] == {
        "variable": "HOST",
        "field": "providers.local.base_url",
        "default": False,
    }
    assert {e["variable"] for e in doc["environment"]} == {
        "HOST",
        "LOCAL_KEY",
        "CUSTOM",
        "BUDGET",
        "OPENAI_API_KEY",
        "AWS_REGION",
    }
    assert "NOT_READ" not in json.dumps(doc["environment"])  # prompt text is not read
    assert SECRET not in json.dumps(doc)


def test_headers_are_shown_with_secret_values_masked() -> None:
    plan = plan_of()
    local = plan.providers["local"]
    assert local.secret_headers == frozenset({"x-custom"})
    assert dict(local.headers)["X-Custom"] == SECRET + "-custom"  # sent as is
    assert plan_to_dict(plan)["providers"][0]["headers"] == {
        "X-Trace": "lens",
        "X-Custom": "***",  # marked secret: true
        "X-Plain-Mapping": "plain",
        "Authorization": "***",  # named like a credential
        "X-Session-Token": "***",
    }


def _text(plan: Plan) -> str:
    doc = plan_to_dict(plan)
    doc["cost_estimate"] = estimate_to_dict(plan)
    return plan_text(doc)


def test_plan_text_lists_variables_headers_and_limits() -> None:
    text = _text(plan_of())
    assert (
        "environment: HOST -> providers.local.base_url; LOCAL_KEY -> providers.local.api_key, "
        "providers.local.headers.Authorization; CUSTOM -> providers.local.headers.X-Custom.value, "
        "providers.local.headers.X-Session-Token; BUDGET -> budget; OPENAI_API_KEY -> "
        "providers.gpt.api_key (default); AWS_REGION -> providers.bed.region (default)"
    ) in text
    assert (
        "headers of local: X-Trace: lens, X-Custom: ***, X-Plain-Mapping: plain, "
        "Authorization: ***, X-Session-Token: ***"
    ) in text
    assert "limits: events up to 1MiB, responses up to 64MiB" in text
    assert SECRET not in text


def test_lens_plan_prints_no_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "s.yaml"
    path.write_text(TEXT)
    for argv in (["plan", str(path)], ["plan", "--json", str(path)]):
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "LOCAL_KEY" in out
        assert "providers.local.api_key" in out
        assert SECRET not in out
    assert "10.1.2.3" in out  # JSON: a base_url is configuration, shown as expanded


def test_a_scenario_reading_nothing_says_so() -> None:
    text = TEXT.split("  gpt:", maxsplit=1)[0].replace("${HOST}", "h").replace("${LOCAL_KEY}", "k")
    text = text.replace("${CUSTOM}", "c").split("    headers:")[0]
    text += "prompts:\n  - {id: q, messages: [{role: user, content: hi}]}\n"
    text += "load:\n  - {id: w, pattern: burst, requests: 1}\n"
    plan = plan_of(text, {})
    assert plan.environment == ()
    assert "environment: none read" in _text(plan)


# --- limits ----------------------------------------------------------------------------------

SMALL = """\
version: 1
name: t
providers:
  sim: {type: simulated}
prompts:
  - {id: q, messages: [{role: user, content: hi}]}
load:
  - {id: w, pattern: burst, requests: 1}
"""


def test_limits_default_to_1mib_and_64mib() -> None:
    plan = plan_of(SMALL, {})
    assert plan.limits == Limits(max_event_bytes=1 << 20, max_response_bytes=64 << 20)
    assert plan_to_dict(plan)["limits"] == {
        "max_event_bytes": 1048576,
        "max_response_bytes": 67108864,
    }


@pytest.mark.parametrize(
    ("written", "event", "response", "shown"),
    [
        ("{max_event_bytes: 64KiB, max_response_bytes: 2GiB}", 65536, 2 << 30, "64KiB, 2GiB"),
        ("{max_event_bytes: 4096}", 4096, 64 << 20, "4KiB, 64MiB"),
        ("{max_response_bytes: 10MB}", 1 << 20, 10_000_000, "1MiB, 10000000B"),
        ("{max_event_bytes: '1.5 KiB'}", 1536, 64 << 20, "1536B, 64MiB"),
    ],
)
def test_limits_are_overridden(written: str, event: int, response: int, shown: str) -> None:
    plan = plan_of(SMALL + f"limits: {written}\n", {})
    assert plan.limits == Limits(event, response)
    events, responses = shown.split(", ")
    assert f"limits: events up to {events}, responses up to {responses}" in _text(plan)


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("{max_event_bytes: 0}", "s.yaml:9:27: limits.max_event_bytes: must be at least one byte"),
        (
            "{max_response_bytes: 1TB}",
            "s.yaml:9:30: limits.max_response_bytes: expected a size like 1MiB",
        ),
        ("{max_event_bytes: 1.5}", "s.yaml:9:27: limits.max_event_bytes: expected a size"),
        ("{max_events: 1MiB}", "s.yaml:9:10: limits.max_events: unknown field 'max_events'"),
    ],
)
def test_bad_limits_are_positioned(written: str, message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        plan_of(SMALL + f"limits: {written}\n", {})
    (problem,) = info.value.problems
    assert str(problem).startswith(message)


# --- literal ${...} in prompts ---------------------------------------------------------------


def test_a_literal_variable_in_a_prompt_is_sent_as_written_with_a_warning() -> None:
    plan = plan_of()
    assert plan.prompts["q"].messages[0].content == "${NOT_READ}"
    assert plan.warnings[0] == (
        "prompt 'q' contains '${' (s.yaml:24:38): sent as written; prompts read environment "
        "variables only with allow_env_in_prompts: true"
    )


def test_no_warning_once_prompts_may_read_the_environment() -> None:
    plan = plan_of(TEXT + "allow_env_in_prompts: true\n", {**ENV, "NOT_READ": "x"})
    assert plan.prompts["q"].messages[0].content == "x"
    assert not any("allow_env_in_prompts" in w for w in plan.warnings)
    assert EnvRead("NOT_READ", "prompts[0].messages[0].content") in plan.environment


def test_prompt_file_lines_with_a_literal_variable_are_named(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_text(
        "".join(
            f'{{"messages": [{{"role": "user", "content": "{c}"}}]}}\n'
            for c in ("a", "${A}", "b", "${B}", "$${C}", "${D}", "${E}")
        )
    )
    text = SMALL.replace(
        "  - {id: q, messages: [{role: user, content: hi}]}", "  - {id: f, file: p.jsonl}"
    )
    scenario = parse_scenario(text, file="s.yaml", base_dir=tmp_path, env={})
    (warning,) = compile_plan(scenario, env={}).warnings
    assert warning.startswith(
        "prompt 'f' contains '${' (p.jsonl:2, p.jsonl:4, p.jsonl:5 and 2 more): sent as written"
    )

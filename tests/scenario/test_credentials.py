"""Credentials and headers that could not be sent are input errors when the scenario loads,
at their file:line:col, naming the field and never the value; secret header syntax."""

from __future__ import annotations

import pytest

from lens.errors import PlanError
from lens.plan.compile import compile_plan
from lens.scenario import parse_scenario
from lens.scenario.headers import header_name_problem, unsendable
from lens.scenario.model import OpenAICompatibleProvider, SecretHeader
from tests.scenario.helpers import parse, problems

SECRET = "sk-0123456789abcdef"
TEXT = """\
version: 1
name: t
providers:
  local:
    type: openai-compatible
    base_url: http://127.0.0.1:1/v1
    model: m
{extra}
prompts:
  - {{id: q, messages: [{{role: user, content: hi}}]}}
load:
  - {{id: w, pattern: burst, requests: 1}}
"""


def scenario(extra: str) -> str:
    return TEXT.format(extra=extra)


@pytest.mark.parametrize(
    ("value", "what"),
    [
        (SECRET + "\n", "contains a line break (LF) at character 20 (a trailing newline"),
        (SECRET + "\r\n", "contains a line break (CR) at character 20 (a trailing newline"),
        ("sk-01\n23", "contains a line break (LF) at character 6: it"),
        (SECRET[:5] + "é" + SECRET[5:], "contains a non-ASCII character at character 6"),
        (SECRET + "\x00", "contains a control character at character 20"),
    ],
)
def test_an_unsendable_api_key_is_an_input_error(value: str, what: str) -> None:
    found = problems(scenario("    api_key: ${KEY}"), {"KEY": value})
    assert len(found) == 1
    assert found[0].startswith(f"s.yaml:8:14: providers.local.api_key: api_key {what}")
    assert found[0].endswith("it could not be sent in an HTTP header")
    assert SECRET not in found[0]
    assert SECRET[:5] not in found[0].split("api_key")[-1]


def test_an_inline_api_key_is_checked_too() -> None:
    (found,) = problems(scenario('    api_key: "sk-ü"'))
    assert found.startswith("s.yaml:8:14: providers.local.api_key: api_key contains a non-ASCII")
    assert "sk-" not in found


def test_an_empty_or_plain_api_key_is_fine() -> None:
    assert parse(scenario("    api_key: ${KEY:-}")).providers["local"]
    assert parse(scenario("    api_key: ${KEY}"), {"KEY": "sk- with space\tand tab"})


def test_an_unsendable_header_value_is_an_input_error() -> None:
    extra = (
        "    headers:\n      X-Plain: ${TOKEN}\n      X-Secret: {value: '${TOKEN}', secret: true}"
    )
    found = problems(scenario(extra), {"TOKEN": SECRET + "\n"})
    assert [f.split(": the header value")[0] for f in found] == [
        "s.yaml:9:16: providers.local.headers.X-Plain",
        "s.yaml:10:25: providers.local.headers.X-Secret.value",
    ]
    assert all("contains a line break (LF)" in f for f in found)
    assert not any(SECRET in f for f in found)


@pytest.mark.parametrize("name", ["X Bad", "X-Bad:", "X-Ünicode", "'X-\\r\\nInjected'"])
def test_a_bad_header_name_is_an_error_at_the_name(name: str) -> None:
    quoted = f'"{name}"' if "\\" not in name else name.replace("'", '"')
    (found,) = problems(scenario(f"    headers:\n      {quoted}: v"))
    assert found.startswith("s.yaml:9:7: providers.local.headers.")
    assert "is not an HTTP header name" in found


def test_anthropic_version_is_a_header_value() -> None:
    text = (
        scenario("")
        .replace(
            "type: openai-compatible\n    base_url: http://127.0.0.1:1/v1",
            "type: anthropic\n    api_key: k\n    anthropic_version: '2023\\n'",
        )
        .replace("'2023\\n'", '"2023\\n"')
    )
    (found,) = problems(text)
    assert found.startswith("s.yaml:7:24: providers.local.anthropic_version: the header value")


def test_a_credential_from_the_environment_default_is_checked_when_compiling() -> None:
    text = scenario("").replace("type: openai-compatible", "type: openai")
    env = {"OPENAI_API_KEY": SECRET + "\n"}
    with pytest.raises(PlanError) as info:
        compile_plan(parse_scenario(text, file="s.yaml", env=env), env=env)
    (problem,) = info.value.problems
    assert str(problem) == (
        "s.yaml:4:3: providers.local: openai provider 'local' takes its api key from "
        "OPENAI_API_KEY, which contains a line break (LF) at character 20 (a trailing newline "
        "from the variable or file it came from?): it could not be sent in an HTTP header"
    )


# --- secret headers --------------------------------------------------------------------------


def test_headers_take_a_plain_value_or_a_secret_mapping() -> None:
    extra = (
        "    headers:\n      X-Plain: a\n      X-Token: {value: '${T}', secret: true}\n"
        "      X-Other: {value: b}"
    )
    local = parse(scenario(extra), {"T": SECRET}).providers["local"]
    assert isinstance(local, OpenAICompatibleProvider)
    assert local.headers == {
        "X-Plain": "a",
        "X-Token": SecretHeader(value=SECRET, secret=True),
        "X-Other": SecretHeader(value="b", secret=False),
    }


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (
            "{secret: true}",
            "s.yaml:9:12: providers.local.headers.X-T.value: missing required field 'value'",
        ),
        (
            "{value: v, secret: 'yes'}",
            "s.yaml:9:31: providers.local.headers.X-T.secret: expected true or false",
        ),
        ("{value: v, hidden: true}", "s.yaml:9:23: providers.local.headers.X-T.hidden: unknown"),
        ("[a]", "s.yaml:9:12: providers.local.headers.X-T: expected a string"),
    ],
)
def test_secret_header_mistakes_are_positioned(mapping: str, message: str) -> None:
    (found,) = problems(scenario(f"    headers:\n      X-T: {mapping}"))
    assert found.startswith(message)


def test_header_checks_never_echo_the_value() -> None:
    (found,) = problems(scenario(f"    headers:\n      X-T: [{SECRET}]"))
    assert SECRET not in found


def test_the_helpers() -> None:
    assert unsendable("Bearer abc\tdef ~") is None
    assert unsendable("a\nb") == "contains a line break (LF) at character 2"
    assert header_name_problem("X-Api-Key_1.v2") is None
    assert header_name_problem("") is not None

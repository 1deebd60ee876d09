"""``${VAR}`` is expanded only in configuration fields; in prompts (and everywhere else) it is
literal text unless the scenario says ``allow_env_in_prompts: true``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel

from lens.scenario.env_scope import FROM_ENV, EnvScope, describe_fields, env_fields
from lens.scenario.model import (
    AzureOpenAIProvider,
    BedrockProvider,
    FilePrompt,
    MessagesPrompt,
    OpenAICompatibleProvider,
    Scenario,
    SecretHeader,
    TokenPrice,
)
from tests.scenario.helpers import parse, problems

SECRET = "AKIA-very-secret-value"
ENV = {"AWS_SECRET_ACCESS_KEY": SECRET, "HOST": "10.0.0.1", "KEY": "sk-x", "M": "llama"}

PROMPT_SCENARIO = """\
version: 1
name: t
providers:
  sim:
    type: simulated
prompts:
  - id: q
    messages:
      - {role: system, content: "$$HOME and ${HOST}"}
      - {role: user, content: "${AWS_SECRET_ACCESS_KEY}"}
load:
  - {id: w, pattern: burst, requests: 1}
"""


def contents(scenario: Scenario) -> list[str]:
    prompt = scenario.prompts[0]
    assert isinstance(prompt, MessagesPrompt)
    return [m.content for m in prompt.messages]


def test_prompt_content_is_literal_text() -> None:
    s = parse(PROMPT_SCENARIO, ENV)
    assert contents(s) == ["$$HOME and ${HOST}", "${AWS_SECRET_ACCESS_KEY}"]
    assert s.source_map.variables == {}  # nothing was read


def test_an_unset_variable_in_a_prompt_is_not_an_error() -> None:
    assert contents(parse(PROMPT_SCENARIO, {}))[1] == "${AWS_SECRET_ACCESS_KEY}"


def test_allow_env_in_prompts_expands_prompt_content() -> None:
    s = parse(PROMPT_SCENARIO + "allow_env_in_prompts: true\n", ENV)
    assert s.allow_env_in_prompts is True
    assert contents(s) == ["$HOME and 10.0.0.1", SECRET]
    assert s.source_map.env_variables(("prompts", 0, "messages", 1, "content")) == (
        "AWS_SECRET_ACCESS_KEY",
    )


def test_the_switch_may_come_before_the_prompts() -> None:
    s = parse("allow_env_in_prompts: true\n" + PROMPT_SCENARIO, ENV)
    assert contents(s)[1] == SECRET


def test_allow_env_in_prompts_false_keeps_them_literal() -> None:
    s = parse(PROMPT_SCENARIO + "allow_env_in_prompts: false\n", ENV)
    assert contents(s)[1] == "${AWS_SECRET_ACCESS_KEY}"


def test_allow_env_in_prompts_reports_unset_variables_at_their_dollar() -> None:
    found = problems(PROMPT_SCENARIO + "allow_env_in_prompts: true\n", {"HOST": "h"})
    assert found == [
        "s.yaml:10:32: prompts[0].messages[1].content: environment variable "
        "AWS_SECRET_ACCESS_KEY is not set (set it, or give a default: "
        "'${AWS_SECRET_ACCESS_KEY:-default}')"
    ]


def test_allow_env_in_prompts_does_not_open_other_fields() -> None:
    text = PROMPT_SCENARIO.replace("name: t", "name: ${HOST}") + "allow_env_in_prompts: true\n"
    assert parse(text, ENV).name == "${HOST}"


def test_allow_env_in_prompts_is_a_strict_boolean() -> None:
    (found,) = problems(PROMPT_SCENARIO + "allow_env_in_prompts: 'yes'\n", ENV)
    assert found.startswith("s.yaml:13:23: allow_env_in_prompts: expected true or false")


def test_a_literal_variable_in_a_prompt_field_says_how_to_expand_it() -> None:
    text = PROMPT_SCENARIO.replace("role: system", "role: '${ROLE}'")
    (found,) = problems(text, {"ROLE": "system"})
    assert found.startswith("s.yaml:9:16: prompts[0].messages[0].role: expected one of")
    assert found.endswith("(${...} in prompts is literal text unless allow_env_in_prompts: true)")


def test_other_fields_are_literal_and_say_why_when_that_breaks_them() -> None:
    text = PROMPT_SCENARIO.replace("requests: 1", "requests: '${N}'")
    (found,) = problems(text, {"N": "3"})
    assert found.startswith("s.yaml:12:39: load[0].requests: expected a whole number")
    assert "lens expands environment variables only in configuration fields" in found


# --- configuration fields expand -------------------------------------------------------------

CONFIG = """\
version: 1
name: t
providers:
  local:
    type: openai-compatible
    base_url: http://${HOST}:8000/v1
    model: ${M}
    api_key: ${KEY}
    headers:
      X-Plain: "${HOST}"
      X-Token: {value: "Bearer ${KEY}", secret: true}
    price: {input: "${PRICE_IN:-0.5}", output: 1}
  bed:
    type: bedrock
    model: ${M}
    region: ${REGION:-us-west-2}
    profile: ${PROFILE:-default}
    endpoint: https://${HOST}
  az:
    type: azure-openai
    deployment: ${DEPLOYMENT:-dep}
    endpoint: https://${HOST}
    api_version: ${API_VERSION:-2024-10-21}
    api_key: ${KEY}
prompts:
  - {id: q, messages: [{role: user, content: hi}]}
load:
  - {id: w, pattern: burst, requests: 1}
pricing:
  - {provider: openai-compatible, model: "${M}", input: 1, output: "${PRICE_OUT:-2}"}
budget: ${BUDGET:-$5}
export:
  - csv=${OUT_DIR:-out}/requests.csv
"""


def test_configuration_fields_expand() -> None:
    s = parse(CONFIG, ENV)
    local = s.providers["local"]
    assert isinstance(local, OpenAICompatibleProvider)
    assert (local.base_url, local.model) == ("http://10.0.0.1:8000/v1", "llama")
    assert local.api_key is not None
    assert local.api_key.get_secret_value() == "sk-x"
    assert local.headers["X-Plain"] == "10.0.0.1"
    assert local.headers["X-Token"] == SecretHeader(value="Bearer sk-x", secret=True)
    assert isinstance(local.price, TokenPrice)
    assert str(local.price.input) == "0.5"
    bed = s.providers["bed"]
    assert isinstance(bed, BedrockProvider)
    assert (bed.model, bed.region, bed.profile, bed.endpoint) == (
        "llama",
        "us-west-2",
        "default",
        "https://10.0.0.1",
    )
    az = s.providers["az"]
    assert isinstance(az, AzureOpenAIProvider)
    assert (az.deployment, az.api_version, az.endpoint) == ("dep", "2024-10-21", "https://10.0.0.1")
    assert s.pricing[0].model == "llama"
    assert str(s.pricing[0].output) == "2"
    assert str(s.budget) == "5"
    assert s.export == ("csv=out/requests.csv",)


def test_variables_read_are_recorded_per_field() -> None:
    variables = parse(CONFIG, ENV).source_map.variables
    assert variables[("providers", "local", "headers", "X-Token", "value")] == ("KEY",)
    assert variables[("providers", "bed", "region")] == ("REGION",)
    assert variables[("budget",)] == ("BUDGET",)
    assert variables[("export", 0)] == ("OUT_DIR",)
    assert all(path[0] != "prompts" for path in variables)


def test_the_opted_in_fields() -> None:
    assert describe_fields(Scenario) == [
        "budget",
        "export",
        "pricing",
        "providers[*].anthropic_version",
        "providers[*].api_key",
        "providers[*].api_version",
        "providers[*].base_url",
        "providers[*].deployment",
        "providers[*].endpoint",
        "providers[*].headers",
        "providers[*].model",
        "providers[*].price",
        "providers[*].profile",
        "providers[*].proxy",
        "providers[*].region",
        "providers[*].server_metrics.url",
        "providers[*].tls",
        "regression",
    ]


def test_a_new_field_opts_in_with_the_marker() -> None:
    """How a configuration field added later (a proxy, a TLS bundle) reads the environment."""

    class Tls(BaseModel):
        ca_bundle: str | None = None

    class Provider(BaseModel):
        proxy: Annotated[str | None, FROM_ENV] = None
        tls: Annotated[Tls | None, FROM_ENV] = None
        keep_alive: bool = True

    class Doc(BaseModel):
        providers: dict[str, Provider]

    assert env_fields(Doc) == {("providers", "*", "proxy"), ("providers", "*", "tls")}
    scope = EnvScope(Doc)
    assert scope({}, ("providers", "p", "tls", "ca_bundle"))
    assert not scope({}, ("providers", "p", "keep_alive"))
    assert not scope({}, ("prompts", 0))
    assert scope({"allow_env_in_prompts": True}, ("prompts", 0, "messages", 0, "content"))


# --- prompt files ----------------------------------------------------------------------------

FILE_SCENARIO = """\
version: 1
name: t
providers:
  sim: {type: simulated}
prompts:
  - id: f
    file: p.jsonl
load:
  - {id: w, pattern: burst, requests: 1}
"""
LINE = (
    '{"messages": [{"role": "user", "content": "hi ${HOST}"}, '
    '{"role": "user", "content": "${X}"}]}\n'
)


def _file_contents(scenario: Scenario) -> list[str]:
    prompt = scenario.prompts[0]
    assert isinstance(prompt, FilePrompt)
    return [m.content for r in prompt.requests for m in r.messages]


def test_prompt_files_are_literal_text(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_text(LINE)
    s = parse(FILE_SCENARIO, ENV, base_dir=tmp_path)
    assert _file_contents(s) == ["hi ${HOST}", "${X}"]


def test_prompt_files_expand_with_allow_env_in_prompts(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_text(LINE)
    s = parse(FILE_SCENARIO + "allow_env_in_prompts: true\n", {**ENV, "X": "y"}, tmp_path)
    assert _file_contents(s) == ["hi 10.0.0.1", "y"]
    assert s.source_map.env_variables(("prompts", 0, "file")) == ("HOST", "X")


def test_an_unset_variable_in_a_prompt_file_is_positioned(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_text("\n" + LINE)
    found = problems(FILE_SCENARIO + "allow_env_in_prompts: true\n", ENV, tmp_path)
    assert found == [
        f"p.jsonl:2:{LINE.index('${X}') + 1}: f#2.messages[1].content: environment variable X "
        "is not set (set it, or give a default: '${X:-default}')"
    ]

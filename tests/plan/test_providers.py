"""Compiling the hosted provider types: every field into ``ProviderSpec``, credentials from
the environment, and the positioned errors for what cannot work."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from lens.cli import main
from lens.errors import PlanError
from lens.plan.compile import compile_plan
from lens.plan.describe import plan_to_dict, provider_to_dict
from lens.plan.model import (
    AnthropicSettings,
    AzureSettings,
    BedrockSettings,
    Plan,
    ProviderSpec,
    Secret,
    SimSettings,
)
from lens.scenario import parse_scenario

SCENARIOS = Path(__file__).parents[2] / "scenarios"
HEAD = "version: 1\nname: t\nproviders:\n"
TAIL = """\
prompts:
  - {id: q, messages: [{role: user, content: hi}]}
load:
  - {id: w, pattern: burst, requests: 1}
"""
KEY = "sk-very-secret-0123456789"


def text_of(block: str) -> str:
    """A scenario whose providers are ``block``: the first provider id is on line 4."""
    return HEAD + block + TAIL


def plan_of(block: str, env: dict[str, str] | None = None) -> Plan:
    env = env or {}
    return compile_plan(parse_scenario(text_of(block), file="s.yaml", env=env), env=env)


def spec_of(block: str, env: dict[str, str] | None = None) -> ProviderSpec:
    """The compiled provider, without its price (tests/plan/test_prices.py covers those)."""
    (spec,) = plan_of(block, env).providers.values()
    return replace(spec, price=None)


def plan_problems(block: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(PlanError) as info:
        plan_of(block, env)
    return [str(p) for p in info.value.problems]


# --- every field, per type -------------------------------------------------------------------


def test_anthropic() -> None:
    block = (
        "  c:\n    type: anthropic\n    model: claude-haiku-4-5\n"
        "    base_url: http://127.0.0.1:9\n    headers: {X-A: '1'}\n"
        "    anthropic_version: '2023-01-01'\n"
    )
    assert spec_of(block, {"ANTHROPIC_API_KEY": KEY}) == ProviderSpec(
        id="c",
        type="anthropic",
        model="claude-haiku-4-5",
        base_url="http://127.0.0.1:9",
        api_key=Secret(KEY, source="${ANTHROPIC_API_KEY}"),
        headers=(("X-A", "1"),),
        settings=AnthropicSettings(version="2023-01-01"),
    )
    default = spec_of("  c:\n    type: anthropic\n    model: m\n    api_key: inline-key\n")
    assert (default.base_url, default.settings) == (
        "https://api.anthropic.com",
        AnthropicSettings(version="2023-06-01"),
    )
    assert default.api_key == Secret("inline-key", source="inline")


def test_gemini_key_variables_in_order() -> None:
    block = "  g:\n    type: gemini\n    model: gemini-2.5-flash\n    headers: {X-A: b}\n"
    both = {"GEMINI_API_KEY": "gem", "GOOGLE_API_KEY": "goo"}
    assert spec_of(block, both) == ProviderSpec(
        id="g",
        type="gemini",
        model="gemini-2.5-flash",
        base_url="https://generativelanguage.googleapis.com",
        api_key=Secret("gem", source="${GEMINI_API_KEY}"),
        headers=(("X-A", "b"),),
    )
    for env in ({"GOOGLE_API_KEY": "goo"}, {"GEMINI_API_KEY": "", "GOOGLE_API_KEY": "goo"}):
        assert spec_of(block, env).api_key == Secret("goo", source="${GOOGLE_API_KEY}")


def test_openai_responses() -> None:
    block = "  r:\n    type: openai-responses\n    model: gpt-4.1-mini\n"
    assert spec_of(block, {"OPENAI_API_KEY": KEY}) == ProviderSpec(
        id="r",
        type="openai-responses",
        model="gpt-4.1-mini",
        base_url="https://api.openai.com/v1",
        api_key=Secret(KEY, source="${OPENAI_API_KEY}"),
    )


def test_bedrock_every_field() -> None:
    block = (
        "  b:\n    type: bedrock\n    model: us.amazon.nova-micro-v1:0\n    region: eu-west-3\n"
        "    profile: dev\n    api: invoke\n    endpoint: https://vpce.example.com\n"
        "    headers: {X-Amzn-Bedrock-Trace: ENABLED}\n"
    )
    assert spec_of(block, {"AWS_REGION": "us-east-1"}) == ProviderSpec(
        id="b",
        type="bedrock",
        model="us.amazon.nova-micro-v1:0",
        base_url="https://vpce.example.com",
        headers=(("X-Amzn-Bedrock-Trace", "ENABLED"),),
        settings=BedrockSettings(region="eu-west-3", aws_profile="dev", api="invoke"),
    )


def test_bedrock_defaults() -> None:
    spec = spec_of("  b:\n    type: bedrock\n    model: m\n    region: us-east-1\n")
    assert (spec.base_url, spec.api_key, spec.settings) == (
        None,  # the adapter uses the region's bedrock-runtime endpoint
        None,  # SigV4 with the AWS credential chain
        BedrockSettings(region="us-east-1", aws_profile=None, api="converse"),
    )


def test_bedrock_region_from_the_environment() -> None:
    block = "  b:\n    type: bedrock\n    model: m\n"
    both = {"AWS_REGION": "eu-central-1", "AWS_DEFAULT_REGION": "us-west-2"}
    assert spec_of(block, both).settings == BedrockSettings(region="eu-central-1")
    assert spec_of(block, {"AWS_REGION": "", "AWS_DEFAULT_REGION": "us-west-2"}).settings == (
        BedrockSettings(region="us-west-2")
    )
    # With an endpoint a region is optional (the adapter reads it from the host, or the
    # request carries a Bedrock API key).
    assert spec_of(block + "    base_url: http://127.0.0.1:9\n").settings == BedrockSettings()


def test_bedrock_api_key_switches_to_bearer_auth() -> None:
    block = "  b:\n    type: bedrock\n    model: m\n    region: us-east-1\n"
    # A key is sent as a bearer token; without one, requests are signed (SigV4).
    from_env = spec_of(block, {"AWS_BEARER_TOKEN_BEDROCK": KEY})
    assert from_env.api_key == Secret(KEY, source="${AWS_BEARER_TOKEN_BEDROCK}")
    assert provider_to_dict(from_env)["auth"] == "bearer"
    written = spec_of(block + "    api_key: ${BK}\n", {"BK": KEY})
    assert written.api_key == Secret(KEY, source="${BK}")
    # Written but empty: no key, even when the default variable is set.
    empty = spec_of(block + "    api_key: ''\n", {"AWS_BEARER_TOKEN_BEDROCK": KEY})
    assert empty.api_key is None
    assert provider_to_dict(empty)["auth"] == "aws-sigv4"
    # ${VAR:-} unquoted is null, i.e. not written: the default variable applies.
    unset = spec_of(block + "    api_key: ${BK:-}\n", {"AWS_BEARER_TOKEN_BEDROCK": KEY})
    assert unset.api_key == Secret(KEY, source="${AWS_BEARER_TOKEN_BEDROCK}")


def test_azure_every_field() -> None:
    block = (
        "  az:\n    type: azure-openai\n    deployment: prod-4o\n"
        "    base_url: https://myres.openai.azure.com\n    api_version: 2024-10-21\n"
        "    headers: {X-A: b}\n    max_tokens_field: max_tokens\n    include_usage: false\n"
        "    model: gpt-4o\n"
    )
    assert spec_of(block, {"AZURE_OPENAI_API_KEY": KEY}) == ProviderSpec(
        id="az",
        type="azure-openai",
        model="gpt-4o",
        base_url="https://myres.openai.azure.com",
        api_key=Secret(KEY, source="${AZURE_OPENAI_API_KEY}"),
        headers=(("X-A", "b"),),
        settings=AzureSettings(
            deployment="prod-4o",
            api_version="2024-10-21",
            auth="key",
            max_tokens_field="max_tokens",
            include_usage=False,
        ),
    )


def test_azure_defaults_and_entra() -> None:
    block = (
        "  az:\n    type: azure-openai\n    deployment: prod-4o\n"
        "    endpoint: https://myres.openai.azure.com\n"
    )
    env = {"AZURE_OPENAI_API_KEY": "az-key", "AZURE_OPENAI_AD_TOKEN": "entra-token"}
    spec = spec_of(block, env)
    assert (spec.model, spec.base_url) == ("prod-4o", "https://myres.openai.azure.com")
    assert spec.settings == AzureSettings(
        deployment="prod-4o",
        api_version=None,
        auth="key",
        max_tokens_field="max_completion_tokens",
        include_usage=True,
    )
    assert spec.api_key == Secret("az-key", source="${AZURE_OPENAI_API_KEY}")
    entra = spec_of(block + "    auth: entra\n", env)
    assert isinstance(entra.settings, AzureSettings)
    assert (entra.settings.auth, entra.api_key) == (
        "entra",
        Secret("entra-token", source="${AZURE_OPENAI_AD_TOKEN}"),
    )
    written = spec_of(block + "    auth: entra\n    api_key: ${TOKEN}\n", {"TOKEN": "t"})
    assert isinstance(written.settings, AzureSettings)
    assert (written.settings.auth, written.api_key) == ("entra", Secret("t", source="${TOKEN}"))


def test_simulated_protocol_reaches_the_sim_settings() -> None:
    spec = spec_of("  s:\n    type: simulated\n    protocol: bedrock\n    ttft: 1ms\n")
    assert spec.settings == SimSettings(ttft_s=0.001, protocol="bedrock")
    assert spec_of("  s:\n    type: simulated\n").settings == SimSettings(protocol="openai")


# --- errors ----------------------------------------------------------------------------------

ALL_HOSTED = (
    "  c:\n    type: anthropic\n    model: m\n"  # line 4
    "  g:\n    type: gemini\n    model: m\n"  # line 7
    "  r:\n    type: openai-responses\n    model: m\n"  # line 10
    "  o:\n    type: openai\n    model: m\n"  # line 13
    "  az:\n    type: azure-openai\n    deployment: d\n"  # line 16
    "    endpoint: https://x.openai.azure.com\n"
    "  en:\n    type: azure-openai\n    deployment: d\n"  # line 20
    "    endpoint: https://x.openai.azure.com\n    auth: entra\n"
    "  b:\n    type: bedrock\n    model: m\n"  # line 25
)


def test_every_missing_credential_is_reported_with_its_variables() -> None:
    assert plan_problems(ALL_HOSTED) == [
        "s.yaml:4:3: providers.c: anthropic provider 'c' has no api key: set "
        "ANTHROPIC_API_KEY, or give api_key:",
        "s.yaml:7:3: providers.g: gemini provider 'g' has no api key: set GEMINI_API_KEY or "
        "GOOGLE_API_KEY, or give api_key:",
        "s.yaml:10:3: providers.r: openai-responses provider 'r' has no api key: set "
        "OPENAI_API_KEY, or give api_key:",
        "s.yaml:13:3: providers.o: openai provider 'o' has no api key: set OPENAI_API_KEY, "
        "or give api_key:",
        "s.yaml:16:3: providers.az: azure-openai provider 'az' has no api key: set "
        "AZURE_OPENAI_API_KEY, or give api_key:",
        "s.yaml:24:11: providers.en.auth: azure-openai provider 'en' uses auth: entra but has "
        "no token: set AZURE_OPENAI_AD_TOKEN to a Microsoft Entra ID access token, or give "
        "api_key:",
        "s.yaml:25:3: providers.b: bedrock provider 'b' has no region: give region: (e.g. "
        "us-east-1), set AWS_REGION or AWS_DEFAULT_REGION, or give endpoint:",
    ]


def test_credentials_are_required_even_for_providers_no_stage_uses() -> None:
    block = "  s:\n    type: simulated\n  c:\n    type: anthropic\n    model: m\n"
    text = text_of(block).replace("requests: 1}", "requests: 1, providers: [s]}")
    with pytest.raises(PlanError, match="anthropic provider 'c' has no api key"):
        compile_plan(parse_scenario(text, env={}), env={})


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        ("anthropic", "    model: m\n"),
        ("gemini", "    model: m\n"),
        ("openai-responses", "    model: m\n"),
        ("azure-openai", "    deployment: d\n    endpoint: https://x.example.com\n"),
    ],
)
def test_an_empty_written_key_is_an_error(kind: str, extra: str) -> None:
    block = f"  p:\n    type: {kind}\n{extra}    api_key: '${{EMPTY:-}}'\n"
    (problem,) = plan_problems(block, {"EMPTY": ""})
    assert problem.endswith(
        f"providers.p.api_key: {kind} provider 'p' has an empty api_key (from ${{EMPTY}})"
    )
    assert problem.startswith(f"s.yaml:{6 + extra.count(chr(10))}:14: ")


def test_a_malformed_region_variable() -> None:
    block = "  b:\n    type: bedrock\n    model: m\n"
    assert plan_problems(block, {"AWS_REGION": "US East"}) == [
        "s.yaml:4:3: providers.b: bedrock provider 'b' takes its region from AWS_REGION, but "
        "'US East' is not an AWS region name such as us-east-1: fix the variable, or give "
        "region:"
    ]
    # A written region wins, so the variable is not looked at.
    written = spec_of(block + "    region: us-east-1\n", {"AWS_REGION": "x"})
    assert written.settings == BedrockSettings(region="us-east-1")


# --- secrets ---------------------------------------------------------------------------------


def test_no_credential_leaks_from_a_plan_or_its_errors() -> None:
    env = {
        "ANTHROPIC_API_KEY": KEY,
        "GEMINI_API_KEY": KEY,
        "OPENAI_API_KEY": KEY,
        "AZURE_OPENAI_API_KEY": KEY,
        "AZURE_OPENAI_AD_TOKEN": KEY,
        "AWS_BEARER_TOKEN_BEDROCK": KEY,
        "AWS_REGION": "us-east-1",
    }
    plan = plan_of(ALL_HOSTED, env)
    assert all(spec.api_key is not None for spec in plan.providers.values())
    for shown in (
        repr(plan),
        str(plan),
        TypeAdapter(Plan).dump_json(plan).decode(),
        str(plan_to_dict(plan)),
    ):
        assert KEY not in shown
    assert "Secret(${AZURE_OPENAI_AD_TOKEN})" in repr(plan.providers["en"])
    with pytest.raises(PlanError) as info:
        plan_of(ALL_HOSTED, {**env, "AWS_REGION": "nowhere"})
    assert "'nowhere' is not an AWS region name" in str(info.value)
    assert KEY not in str(info.value)


# --- the shipped scenario, through `lens validate` -------------------------------------------

CREDENTIALS = ("ANTHROPIC_API_KEY", "GEMINI_API_KEY", "AZURE_OPENAI_API_KEY", "OPENAI_API_KEY")


def test_lens_validate_accepts_the_providers_scenario(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in CREDENTIALS:
        monkeypatch.setenv(name, f"test-{name.lower()}")
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)
    path = str(SCENARIOS / "providers.yaml")
    assert main(["validate", path]) == 0
    assert capsys.readouterr().out == f"{path}: ok (6 providers, 6 stage runs)\n"


def test_lens_validate_names_the_missing_variables(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in (*CREDENTIALS, "GOOGLE_API_KEY", "AWS_BEARER_TOKEN_BEDROCK"):
        monkeypatch.delenv(name, raising=False)
    path = str(SCENARIOS / "providers.yaml")
    assert main(["validate", path]) == 2
    err = capsys.readouterr().err
    assert f"{path}:26:3: providers.claude: anthropic provider 'claude' has no api key" in err
    assert "set GEMINI_API_KEY or GOOGLE_API_KEY" in err
    assert "set AZURE_OPENAI_API_KEY" in err
    assert "set OPENAI_API_KEY" in err
    assert "nova" not in err  # Bedrock falls back to the AWS credential chain


def test_a_base_url_python_cannot_split_is_a_problem_at_its_place_not_a_traceback() -> None:
    # An unclosed IPv6 bracket: urlsplit raises ValueError (found by the mangling test).
    block = '  v: {type: openai-compatible, base_url: "http://[::1/v1", model: m}\n'
    assert plan_problems(block) == [
        "s.yaml:4:42: providers.v.base_url: base_url is not a valid URL (Invalid IPv6 URL)"
    ]

"""The hosted provider types of scenario v1: what each accepts, its defaults, its errors."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from pydantic import ValidationError

from lens.plan.model import ProviderType, SimProtocol
from lens.scenario import Scenario, load_scenario
from lens.scenario.model import (
    PROVIDER_TYPE_ALIASES,
    PROVIDER_TYPES,
    AnthropicProvider,
    AzureOpenAIProvider,
    BedrockProvider,
    GeminiProvider,
    OpenAIResponsesProvider,
    Provider,
    SimProtocolName,
    SimulatedProvider,
)
from lens.scenario.schema import schema_errors
from lens.suggest import did_you_mean
from tests.scenario.helpers import BASE, only_problem, parse, problems

SCENARIOS = Path(__file__).parents[2] / "scenarios"
SIM = "  sim:\n    type: simulated\n"
TYPES = (
    "'anthropic', 'azure-openai', 'bedrock', 'gemini', 'openai', 'openai-compatible', "
    "'openai-responses', 'simulated'"
)


def with_provider(block: str) -> str:
    """BASE with its provider replaced by ``block``: the provider's id is on line 4, column 3,
    and its first field on line 5, column 5."""
    assert SIM in BASE
    return BASE.replace(SIM, block)


def provider(block: str) -> Provider:
    (only,) = parse(with_provider(block)).providers.values()
    return only


# --- contract --------------------------------------------------------------------------------


def test_provider_types_match_the_plan_and_the_union() -> None:
    assert set(PROVIDER_TYPES) == set(typing.get_args(ProviderType))
    assert list(PROVIDER_TYPES) == sorted(PROVIDER_TYPES)
    assert set(typing.get_args(SimProtocolName)) == set(typing.get_args(SimProtocol))


# --- each type, valid ------------------------------------------------------------------------


def test_anthropic_defaults_and_fields() -> None:
    p = provider("  c:\n    type: anthropic\n    model: claude-haiku-4-5\n")
    assert isinstance(p, AnthropicProvider)
    assert (p.model, p.base_url, p.api_key, p.headers, p.anthropic_version) == (
        "claude-haiku-4-5",
        "https://api.anthropic.com",
        None,
        {},
        "2023-06-01",
    )
    p = provider(
        "  c:\n    type: anthropic\n    model: m\n    base_url: http://127.0.0.1:9/\n"
        "    api_key: k\n    headers: {anthropic-beta: x}\n    anthropic_version: '2023-01-01'\n"
    )
    assert isinstance(p, AnthropicProvider)
    assert p.base_url == "http://127.0.0.1:9/"
    assert p.api_key is not None
    assert p.api_key.get_secret_value() == "k"
    assert (p.headers, p.anthropic_version) == ({"anthropic-beta": "x"}, "2023-01-01")


def test_gemini_defaults() -> None:
    p = provider("  g:\n    type: gemini\n    model: gemini-2.5-flash\n")
    assert isinstance(p, GeminiProvider)
    assert (p.model, p.base_url, p.api_key, p.headers) == (
        "gemini-2.5-flash",
        "https://generativelanguage.googleapis.com",
        None,
        {},
    )


def test_openai_responses_defaults() -> None:
    p = provider("  r:\n    type: openai-responses\n    model: gpt-4.1-mini\n")
    assert isinstance(p, OpenAIResponsesProvider)
    assert (p.base_url, p.api_key) == ("https://api.openai.com/v1", None)


def test_bedrock_defaults_and_fields() -> None:
    p = provider("  b:\n    type: bedrock\n    model: us.amazon.nova-micro-v1:0\n")
    assert isinstance(p, BedrockProvider)
    assert p.model == "us.amazon.nova-micro-v1:0"
    assert (p.region, p.profile, p.api, p.base_url, p.endpoint, p.url, p.api_key) == (
        None,
        None,
        "converse",
        None,
        None,
        None,
        None,
    )
    p = provider(
        "  b:\n    type: bedrock\n    model: arn:aws:bedrock:us-east-1:1:inference-profile/x\n"
        "    region: us-gov-west-1\n    profile: dev\n    api: invoke\n"
        "    endpoint: https://vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com\n"
    )
    assert isinstance(p, BedrockProvider)
    assert (p.region, p.profile, p.api) == ("us-gov-west-1", "dev", "invoke")
    assert p.url == "https://vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com"
    p = provider("  b:\n    type: bedrock\n    model: m\n    base_url: http://127.0.0.1:9\n")
    assert isinstance(p, BedrockProvider)
    assert p.url == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    "region", ["us-east-1", "eu-west-3", "ap-southeast-2", "us-gov-east-1", "us-isob-east-1"]
)
def test_bedrock_region_shapes_accepted(region: str) -> None:
    p = provider(f"  b:\n    type: bedrock\n    model: m\n    region: {region}\n")
    assert isinstance(p, BedrockProvider)
    assert p.region == region


def test_azure_defaults_and_fields() -> None:
    p = provider(
        "  az:\n    type: azure-openai\n    deployment: gpt-4o-mini\n"
        "    endpoint: https://myres.openai.azure.com\n"
    )
    assert isinstance(p, AzureOpenAIProvider)
    assert (p.deployment, p.url, p.api_version, p.auth, p.model) == (
        "gpt-4o-mini",
        "https://myres.openai.azure.com",
        None,
        "key",
        None,
    )
    assert (p.max_tokens_field, p.include_usage, p.headers) == ("max_completion_tokens", True, {})
    p = provider(
        "  az:\n    type: azure-openai\n    deployment: d\n"
        "    base_url: https://gw.example.com/azure\n    api_version: 2024-10-21\n"
        "    auth: entra\n    max_tokens_field: max_tokens\n    include_usage: false\n"
        "    model: gpt-4o\n"
    )
    assert isinstance(p, AzureOpenAIProvider)
    assert p.url == "https://gw.example.com/azure"
    # An unquoted date stays text: scenarios read YAML timestamps as strings.
    assert (p.api_version, p.auth, p.model) == ("2024-10-21", "entra", "gpt-4o")
    assert (p.max_tokens_field, p.include_usage) == ("max_tokens", False)


def test_simulated_protocol() -> None:
    p = provider(SIM)
    assert isinstance(p, SimulatedProvider)
    assert p.protocol == "openai"
    for protocol in typing.get_args(SimProtocolName):
        p = provider(f"{SIM}    protocol: {protocol}\n")
        assert isinstance(p, SimulatedProvider)
        assert p.protocol == protocol


def test_shipped_providers_scenario_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)
    s = load_scenario(SCENARIOS / "providers.yaml")
    assert [p.type for p in s.providers.values()] == [
        "simulated",
        "anthropic",
        "gemini",
        "bedrock",
        "azure-openai",
        "openai-responses",
    ]
    nova = s.providers["nova"]
    assert isinstance(nova, BedrockProvider)
    assert nova.api_key is None  # ${AWS_BEARER_TOKEN_BEDROCK:-} with the variable unset


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "suggested"),
    [
        ("antropic", "anthropic"),
        ("Anthropic", "anthropic"),
        ("gemni", "gemini"),
        ("bedrok", "bedrock"),
        ("azure_openai", "azure-openai"),
        ("openai-response", "openai-responses"),
        ("azure", "azure-openai"),
        ("claude", "anthropic"),
        ("google", "gemini"),
        ("aws", "bedrock"),
    ],
)
def test_misspelled_type_names_suggest_the_type(written: str, suggested: str) -> None:
    assert only_problem(with_provider(f"  p:\n    type: {written}\n    model: m\n")) == (
        f"s.yaml:5:11: providers.p.type: unknown type {written!r} (did you mean {suggested!r}?); "
        f"expected one of {TYPES}"
    )


def test_aliases_only_suggest_what_is_offered() -> None:
    assert did_you_mean("azure", ["burst", "concurrency"], PROVIDER_TYPE_ALIASES) == ""
    assert did_you_mean("nothing-like-it", list(PROVIDER_TYPES), PROVIDER_TYPE_ALIASES) == ""
    assert did_you_mean("azure", list(PROVIDER_TYPES), PROVIDER_TYPE_ALIASES) != ""


def test_required_model() -> None:
    for kind in ("anthropic", "gemini", "bedrock", "openai-responses"):
        assert only_problem(with_provider(f"  p:\n    type: {kind}\n")).startswith(
            "s.yaml:5:5: providers.p.model: missing required field 'model'"
        )


def test_azure_missing_deployment() -> None:
    block = "  az:\n    type: azure-openai\n    endpoint: https://myres.openai.azure.com\n"
    assert only_problem(with_provider(block)) == (
        "s.yaml:5:5: providers.az.deployment: missing required field 'deployment' "
        "(Deployment name; it selects the model)"
    )


def test_azure_missing_endpoint() -> None:
    block = "  az:\n    type: azure-openai\n    deployment: d\n"
    assert only_problem(with_provider(block)) == (
        "s.yaml:5:5: providers.az.endpoint: missing required field 'endpoint' (the resource "
        "URL, e.g. https://myres.openai.azure.com; base_url is another name for it)"
    )


@pytest.mark.parametrize(
    "block",
    [
        "  p:\n    type: azure-openai\n    deployment: d\n",
        "  p:\n    type: bedrock\n    model: m\n",
    ],
)
def test_both_base_url_and_endpoint(block: str) -> None:
    text = with_provider(
        block + "    base_url: https://a.example.com\n    endpoint: https://b.example.com\n"
    )
    assert only_problem(text) == (
        "s.yaml:8:5: providers.p.endpoint: give either 'endpoint' or 'base_url', not both: "
        "they are two names of one setting"
    )


@pytest.mark.parametrize("region", ["US-East-1", "us-east1", "useast-1", "us-east-1 ", "east"])
def test_bad_bedrock_region(region: str) -> None:
    text = with_provider(f"  b:\n    type: bedrock\n    model: m\n    region: '{region}'\n")
    assert only_problem(text) == (
        "s.yaml:7:13: providers.b.region: expected an AWS region name such as us-east-1 or "
        f"eu-west-3, got {region!r}"
    )


def test_bad_enumerations_suggest_values() -> None:
    text = with_provider(
        "  b:\n    type: bedrock\n    model: m\n    api: invok\n"
        "  az:\n    type: azure-openai\n    deployment: d\n"
        "    endpoint: https://x.openai.azure.com\n    auth: entr\n"
        "  s:\n    type: simulated\n    protocol: antropic\n"
    )
    assert problems(text) == [
        "s.yaml:7:10: providers.b.api: expected one of 'converse' or 'invoke', got 'invok' "
        "(did you mean 'invoke'?)",
        "s.yaml:12:11: providers.az.auth: expected one of 'key' or 'entra', got 'entr' "
        "(did you mean 'entra'?)",
        "s.yaml:15:15: providers.s.protocol: expected one of 'openai', 'openai-responses', "
        "'anthropic', 'gemini', 'bedrock' or 'azure-openai', got 'antropic' "
        "(did you mean 'anthropic'?)",
    ]


def test_fields_of_other_types_are_unknown() -> None:
    # deployment belongs to azure-openai; a Bedrock profile is not "aws_profile".
    text = with_provider("  b:\n    type: bedrock\n    model: m\n    aws_profile: dev\n")
    assert only_problem(text) == (
        "s.yaml:7:5: providers.b.aws_profile: unknown field 'aws_profile' (did you mean 'profile'?)"
    )
    text = with_provider("  g:\n    type: gemini\n    model: m\n    max_tokens_field: max_tokens\n")
    assert only_problem(text).startswith(
        "s.yaml:7:5: providers.g.max_tokens_field: unknown field 'max_tokens_field'; allowed here:"
    )


def test_bad_urls() -> None:
    text = with_provider(
        "  az:\n    type: azure-openai\n    deployment: d\n    endpoint: myres.openai.azure.com\n"
    )
    assert only_problem(text) == (
        "s.yaml:7:15: providers.az.endpoint: expected an http:// or https:// URL such as "
        "http://127.0.0.1:8000/v1, got 'myres.openai.azure.com'"
    )


def test_api_key_is_never_echoed() -> None:
    secret = "98765432109876"
    for block in (
        "  a:\n    type: anthropic\n    model: m\n",
        "  b:\n    type: bedrock\n    model: m\n    region: us-east-1\n",
        "  z:\n    type: azure-openai\n    deployment: d\n    endpoint: https://x.example.com\n",
    ):
        text = with_provider(block + "    api_key: ${K}\n")
        found = problems(text, env={"K": secret})
        assert len(found) == 1
        assert "api_key: expected a string" in found[0]
        assert secret not in found[0]


def test_scenario_reprs_hide_keys() -> None:
    secret = "sk-ant-very-secret"
    s = parse(
        with_provider(
            "  a:\n    type: anthropic\n    model: m\n    api_key: ${K}\n"
            "  b:\n    type: bedrock\n    model: m\n    region: us-east-1\n    api_key: ${K}\n"
            "  z:\n    type: azure-openai\n    deployment: d\n    endpoint: https://x.example.com\n"
            "    auth: entra\n    api_key: ${K}\n"
        ),
        env={"K": secret},
    )
    assert secret not in repr(s)
    assert secret not in s.model_dump_json()
    assert secret not in str(s.model_dump())


# --- the published schema says the same --------------------------------------------------

_URL_CASES: list[tuple[dict[str, object], bool]] = [
    ({"type": "azure-openai", "deployment": "d", "endpoint": "https://x"}, True),
    ({"type": "azure-openai", "deployment": "d", "base_url": "https://x"}, True),
    ({"type": "azure-openai", "deployment": "d", "endpoint": None, "base_url": "https://x"}, True),
    (
        {
            "type": "azure-openai",
            "deployment": "d",
            "endpoint": "https://x",
            "base_url": "https://y",
        },
        False,
    ),
    ({"type": "azure-openai", "deployment": "d"}, False),
    ({"type": "azure-openai", "deployment": "d", "endpoint": None}, False),
    ({"type": "bedrock", "model": "m"}, True),
    ({"type": "bedrock", "model": "m", "endpoint": None, "base_url": "https://x"}, True),
    ({"type": "bedrock", "model": "m", "endpoint": "https://x", "base_url": "https://y"}, False),
    ({"type": "bedrock", "model": "m", "region": "us-east1"}, False),
]


@pytest.mark.parametrize(("entry", "valid"), _URL_CASES)
def test_models_and_schema_agree_on_provider_rules(entry: dict[str, object], valid: bool) -> None:
    doc = {
        "version": 1,
        "name": "t",
        "providers": {"p": entry},
        "prompts": [{"id": "q", "messages": [{"role": "user", "content": "x"}]}],
        "load": [{"id": "w", "pattern": "burst", "requests": 1}],
    }
    try:
        Scenario.model_validate(doc)
    except ValidationError:
        accepted = False
    else:
        accepted = True
    assert accepted is valid
    assert (schema_errors(doc) == []) is valid

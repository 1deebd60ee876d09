"""Each adapter reads its own type's settings (lens.plan.model.ProviderSettings) and refuses
another type's with a ProviderError naming both, never an AttributeError."""

from __future__ import annotations

import pytest

from lens.errors import ProviderError
from lens.plan.model import (
    AnthropicSettings,
    AzureSettings,
    BedrockSettings,
    OpenAISettings,
    ProviderSettings,
    ProviderSpec,
    Secret,
    SimSettings,
)
from lens.providers.registry import adapter_for
from lens.run.simulators import simulated_client_spec

OWN: dict[str, ProviderSettings] = {
    "openai": OpenAISettings(),
    "openai-compatible": OpenAISettings(),
    "anthropic": AnthropicSettings(),
    "bedrock": BedrockSettings(region="us-east-1"),
    "azure-openai": AzureSettings(deployment="d"),
    "gemini": None,
    "openai-responses": None,
}


def spec(kind: str, settings: ProviderSettings) -> ProviderSpec:
    return ProviderSpec(
        id="p",
        type=kind,
        model="m",
        base_url="http://127.0.0.1:9",
        api_key=Secret("k"),
        settings=settings,
    )


@pytest.mark.parametrize("kind", sorted(OWN))
def test_an_adapter_takes_its_own_settings(kind: str) -> None:
    assert adapter_for(spec(kind, OWN[kind])) is not None


@pytest.mark.parametrize("kind", sorted(OWN))
def test_an_adapter_refuses_another_types_settings(kind: str) -> None:
    wrong = AnthropicSettings() if kind != "anthropic" else OpenAISettings()
    with pytest.raises(ProviderError) as info:
        adapter_for(spec(kind, wrong))
    message = str(info.value)
    assert message.startswith(f"provider 'p' ({kind}) ")
    assert type(wrong).__name__ in message
    own = OWN[kind]
    if own is not None:
        assert type(own).__name__ in message
        with pytest.raises(ProviderError, match=f"needs {type(own).__name__} settings, not "):
            adapter_for(spec(kind, None))


@pytest.mark.parametrize(
    ("protocol", "client", "settings"),
    [
        ("openai", "openai-compatible", OpenAISettings()),
        ("openai-responses", "openai-responses", None),
        ("anthropic", "anthropic", AnthropicSettings()),
        ("gemini", "gemini", None),
        ("bedrock", "bedrock", BedrockSettings(region="us-east-1")),
        ("azure-openai", "azure-openai", AzureSettings(deployment="sim-model")),
    ],
)
def test_a_simulators_client_gets_its_protocols_settings(
    protocol: str, client: str, settings: ProviderSettings
) -> None:
    sim = SimSettings(protocol=protocol)  # type: ignore[arg-type]
    planned = ProviderSpec(id="s", type="simulated", model="sim-model", base_url=None, settings=sim)
    live = simulated_client_spec(planned, "http://127.0.0.1:9")
    assert (live.type, live.settings) == (client, settings)
    assert adapter_for(live) is not None
    # A simulated spec given an address directly (a test's transport) speaks OpenAI Chat.
    assert adapter_for(spec("simulated", sim)) is not None

"""Provider types → adapter factories: the built-in ones in a plain dict, then the
installed provider plugins (entry point group ``lens.providers``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from lens.entry_points import provider_plugins
from lens.errors import ProviderError, describe
from lens.plan.model import OpenAISettings, ProviderSpec
from lens.providers.anthropic import AnthropicAdapter
from lens.providers.azure_openai import AzureOpenAIAdapter
from lens.providers.base import ProviderAdapter
from lens.providers.bedrock import BedrockAdapter
from lens.providers.gemini import GeminiAdapter
from lens.providers.openai_endpoints import openai_adapter
from lens.providers.openai_responses import OpenAIResponsesAdapter

AdapterFactory = Callable[[ProviderSpec], ProviderAdapter]


def _simulated(spec: ProviderSpec) -> ProviderAdapter:
    """A ``simulated`` spec given an address without ``live_providers`` (a test's own
    transport): the OpenAI Chat client, with its defaults."""
    return openai_adapter(dataclasses.replace(spec, settings=OpenAISettings()))


ADAPTERS: dict[str, AdapterFactory] = {
    "openai": openai_adapter,
    "openai-compatible": openai_adapter,
    "simulated": _simulated,
    "bedrock": BedrockAdapter,
    "anthropic": AnthropicAdapter,
    "gemini": GeminiAdapter,
    "openai-responses": OpenAIResponsesAdapter,
    "azure-openai": AzureOpenAIAdapter,
}


def adapter_for(spec: ProviderSpec) -> ProviderAdapter:
    factory = ADAPTERS.get(spec.type)
    if factory is None:
        plugin = provider_plugins().get(spec.type)
        if plugin is None:
            raise ProviderError(f"no adapter for provider type {spec.type!r}")
        try:
            return plugin.adapter_factory(spec)  # type: ignore[no-any-return]
        except ProviderError:
            raise
        except Exception as exc:  # third-party code: name the plugin, not a traceback
            raise ProviderError(
                f"provider plugin {spec.type!r} cannot make an adapter for {spec.id!r}: "
                f"{describe(exc)}"
            ) from exc
    return factory(spec)

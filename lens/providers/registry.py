"""Provider types → adapter factories, in a plain dict so plugins can add entries."""

from __future__ import annotations

from collections.abc import Callable

from lens.plan.model import ProviderSpec
from lens.providers.base import ProviderAdapter
from lens.providers.openai_chat import OpenAIChatAdapter

AdapterFactory = Callable[[ProviderSpec], ProviderAdapter]

ADAPTERS: dict[str, AdapterFactory] = {
    "openai": OpenAIChatAdapter,
    "openai-compatible": OpenAIChatAdapter,
    "simulated": OpenAIChatAdapter,
}


def adapter_for(spec: ProviderSpec) -> ProviderAdapter:
    try:
        factory = ADAPTERS[spec.type]
    except KeyError:
        raise ValueError(f"no adapter for provider type {spec.type!r}") from None
    return factory(spec)

"""Start the built-in simulated servers a plan needs, and hand back live provider specs."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager

from lens.plan.model import (
    AnthropicSettings,
    AzureSettings,
    BedrockSettings,
    OpenAISettings,
    Plan,
    ProviderSettings,
    ProviderSpec,
    ProviderType,
    Secret,
    SimProtocol,
    SimSettings,
)
from lens.sim.process import SimServerProcess

# The provider type whose adapter speaks each simulated protocol, and whether its base URL
# includes the ``/v1`` prefix (OpenAI-style) or is the bare origin (Anthropic, Gemini,
# Azure and Bedrock adapters add their own paths).
_CLIENT_FOR: dict[SimProtocol, tuple[ProviderType, bool]] = {
    "openai": ("openai-compatible", True),
    "openai-responses": ("openai-responses", True),
    "anthropic": ("anthropic", False),
    "gemini": ("gemini", False),
    "bedrock": ("bedrock", False),
    "azure-openai": ("azure-openai", False),
}

# The simulator accepts any credential; the adapters insist on one, so they get this.
_SIM_KEY = Secret("lens-sim-key", "simulated")


def _client_settings(protocol: SimProtocol, model: str) -> ProviderSettings:
    """The client type's settings, its defaults (the simulator takes any region, and
    its Azure deployment is the model)."""
    match protocol:
        case "openai":
            return OpenAISettings()
        case "anthropic":
            return AnthropicSettings()
        case "bedrock":
            return BedrockSettings(region="us-east-1")
        case "azure-openai":
            return AzureSettings(deployment=model)
        case "gemini" | "openai-responses":
            return None


def simulated_client_spec(spec: ProviderSpec, url: str) -> ProviderSpec:
    """The spec a real client of the simulator's protocol needs to talk to it at ``url``.

    ``url`` is the server's origin (``http://127.0.0.1:PORT``).  The client is the very
    adapter used for the hosted provider, so the simulator exercises real parsing code.
    The simulator's own settings stay in the plan (``plan.providers``), which is what
    bounds and prices its requests.
    """
    assert isinstance(spec.settings, SimSettings)
    protocol = spec.settings.protocol
    client_type, v1 = _CLIENT_FOR[protocol]
    scraped = spec.server_metrics
    if scraped is not None and scraped.url is None:
        # server_metrics without a url: the simulator's own endpoint.
        scraped = dataclasses.replace(scraped, url=f"{url}/metrics")
    return dataclasses.replace(
        spec,
        server_metrics=scraped,
        type=client_type,
        base_url=f"{url}/v1" if v1 else url,
        api_key=_SIM_KEY,
        settings=_client_settings(protocol, spec.model),
    )


@contextmanager
def live_providers(plan: Plan) -> Iterator[Mapping[str, ProviderSpec]]:
    """Every provider of ``plan`` with a reachable address and a client type.

    Each ``simulated`` provider that a stage uses gets its own server process on an
    ephemeral loopback port, so its CPU never competes with the client's event loop and
    every measurement crosses a real socket.  The servers stop when the block exits.
    """
    used = {unit.provider for unit in plan.stages}
    live: dict[str, ProviderSpec] = dict(plan.providers)
    with ExitStack() as stack:
        for pid, spec in plan.providers.items():
            if not isinstance(spec.settings, SimSettings) or pid not in used:
                continue
            server = stack.enter_context(SimServerProcess(spec.settings, model=spec.model))
            live[pid] = simulated_client_spec(spec, server.url)
        yield live

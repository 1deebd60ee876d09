"""Every protocol the simulator speaks, by its ``SimSettings.protocol`` name."""

from __future__ import annotations

from typing import get_args

from lens.plan.model import SimProtocol as ProtocolName
from lens.sim.anthropic import AnthropicMessages
from lens.sim.azure_openai import AzureOpenAIChat
from lens.sim.bedrock import BedrockRuntime
from lens.sim.gemini import GeminiGenerateContent
from lens.sim.openai_chat import OpenAIChat
from lens.sim.openai_responses import OpenAIResponses
from lens.sim.protocol_base import SimProtocol

PROTOCOL_NAMES: tuple[ProtocolName, ...] = get_args(ProtocolName)

_PROTOCOLS: dict[str, SimProtocol] = {
    p.name: p
    for p in (
        OpenAIChat(),
        OpenAIResponses(),
        AzureOpenAIChat(),
        AnthropicMessages(),
        GeminiGenerateContent(),
        BedrockRuntime(),
    )
}


def get_protocol(name: str) -> SimProtocol:
    try:
        return _PROTOCOLS[name]
    except KeyError:
        raise ValueError(
            f"unknown protocol {name!r}; expected one of {', '.join(PROTOCOL_NAMES)}"
        ) from None

"""The scenario file, version 1, as frozen pydantic models: the user contract in code.

Field names are exactly the YAML keys.  Every model forbids unknown keys (typos must fail
loudly) and is frozen.  Durations, rates and percentages are parsed into seconds, per-second
rates and fractions here, so nothing downstream sees unit strings.  The JSON Schema in
``schemas/scenario-v1.json`` is generated from these classes: descriptions written here are
what editors show.

Checks that need to look at several items at once (unique ids) live in ``checks.py`` because
they report the positions of two nodes; references between sections (a stage naming a
provider) are resolved by ``lens.plan.compile``.

One module per section of the file, each importing only those before it: ``base`` (shared
field types, ``FrozenModel``), ``wire`` (credentials and headers), ``defaults``, ``prices``,
``network``, ``providers``, ``prompts``, ``stages``, ``assertions`` (SLA), ``integrity``,
``limits``, ``exports``, ``scenario`` (the root model) and ``plugins`` (``scenario_model()``).
This package re-exports the names the rest of lens uses.
"""

from __future__ import annotations

from lens.scenario.model.base import (
    PATTERN_HINTS,
    REGION_PATTERN,
    FieldError,
    FrozenModel,
    PositiveInt,
    Span,
)
from lens.scenario.model.defaults import MAX_REPEAT, Defaults, Retries
from lens.scenario.model.monitor import Monitor, Retention
from lens.scenario.model.plugins import scenario_model
from lens.scenario.model.prices import GpuHourPrice, TokenPrice
from lens.scenario.model.prompts import (
    PROMPT_KINDS,
    ChatMessage,
    ConversationPrompt,
    DatasetPrompt,
    DatasetRequest,
    FilePrompt,
    FileRequest,
    MessagesPrompt,
    SyntheticPrompt,
)
from lens.scenario.model.providers import (
    PROVIDER_TYPE_ALIASES,
    PROVIDER_TYPES,
    AnthropicProvider,
    AnyProvider,
    AzureOpenAIProvider,
    BedrockProvider,
    GeminiProvider,
    HostedProvider,
    OpenAICompatibleProvider,
    OpenAIEndpoint,
    OpenAIProvider,
    OpenAIResponsesProvider,
    PluginProviderSettings,
    Provider,
    SimProtocolName,
    SimulatedProvider,
)
from lens.scenario.model.scenario import Scenario
from lens.scenario.model.stages import (
    BurstStage,
    ConcurrencyRange,
    ConcurrencyStage,
    ConstantRateStage,
    IdleProbeStage,
    PhasedStage,
    RampStage,
    RateRange,
    Stage,
    SweepStage,
)
from lens.scenario.model.wire import SecretHeader
from lens.scenario.model.workloads import (
    OWNED_BODY_FIELDS,
    ConversationSpec,
    DatasetSpec,
    LengthDist,
    SessionOptions,
    ThinkDist,
    TokenizerRef,
)

__all__ = [
    "MAX_REPEAT",
    "OWNED_BODY_FIELDS",
    "PATTERN_HINTS",
    "PROMPT_KINDS",
    "PROVIDER_TYPES",
    "PROVIDER_TYPE_ALIASES",
    "REGION_PATTERN",
    "AnthropicProvider",
    "AnyProvider",
    "AzureOpenAIProvider",
    "BedrockProvider",
    "BurstStage",
    "ChatMessage",
    "ConcurrencyRange",
    "ConcurrencyStage",
    "ConstantRateStage",
    "ConversationPrompt",
    "ConversationSpec",
    "DatasetPrompt",
    "DatasetRequest",
    "DatasetSpec",
    "Defaults",
    "FieldError",
    "FilePrompt",
    "FileRequest",
    "FrozenModel",
    "GeminiProvider",
    "GpuHourPrice",
    "HostedProvider",
    "IdleProbeStage",
    "LengthDist",
    "MessagesPrompt",
    "Monitor",
    "OpenAICompatibleProvider",
    "OpenAIEndpoint",
    "OpenAIProvider",
    "OpenAIResponsesProvider",
    "PhasedStage",
    "PluginProviderSettings",
    "PositiveInt",
    "Provider",
    "RampStage",
    "RateRange",
    "Retention",
    "Retries",
    "Scenario",
    "SecretHeader",
    "SessionOptions",
    "SimProtocolName",
    "SimulatedProvider",
    "Span",
    "Stage",
    "SweepStage",
    "SyntheticPrompt",
    "ThinkDist",
    "TokenPrice",
    "TokenizerRef",
    "scenario_model",
]

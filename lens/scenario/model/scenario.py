"""The scenario: the root model of a scenario file, version 1."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, PrivateAttr, model_validator

from lens.scenario.env_scope import FROM_ENV
from lens.scenario.model.assertions import SlaEntry
from lens.scenario.model.base import (
    SUPPORTED_VERSIONS,
    FieldError,
    FrozenModel,
    Ident,
    NonEmptyStr,
)
from lens.scenario.model.defaults import Defaults
from lens.scenario.model.exports import ExportEntry
from lens.scenario.model.integrity import Integrity
from lens.scenario.model.limits import Limits
from lens.scenario.model.monitor import Monitor
from lens.scenario.model.prices import PricingEntry, Usd
from lens.scenario.model.prompts import Prompt
from lens.scenario.model.providers import Provider
from lens.scenario.model.regression import Regression
from lens.scenario.model.results import ResultsOptions
from lens.scenario.model.stages import Stage, TraceStage
from lens.scenario.model.workloads import TOKENIZER_DESCRIPTION, TokenizerSpec
from lens.scenario.tokenizers import ESTIMATE, Tokenizer
from lens.scenario.units import show
from lens.scenario.yaml_nodes import SourceMap


def _version(value: Any) -> Any:
    if type(value) is not int or value not in SUPPORTED_VERSIONS:
        supported = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
        raise ValueError(
            f"unsupported scenario version {show(value)}; this lens reads version {supported}"
        )
    return value


def _ids_as_property_names(schema: dict[str, Any]) -> None:
    """pydantic renders constrained dict keys as patternProperties, which lets keys that do
    not match through unchecked; propertyNames + additionalProperties rejects them."""
    (pattern, value_schema), *_ = schema.pop("patternProperties").items()
    schema["propertyNames"] = {"pattern": pattern}
    schema["additionalProperties"] = value_schema


class Scenario(FrozenModel):
    """A load test: providers to call, prompts to send, load stages, and SLA assertions."""

    model_config = ConfigDict(
        title="lens scenario (version 1)",
        json_schema_extra={"$id": "https://lens.dev/schemas/scenario-v1.json"},
    )

    version: Annotated[Literal[1], BeforeValidator(_version)] = Field(
        description="Scenario format version; this lens reads 1."
    )
    name: NonEmptyStr = Field(description="Short name, used in results and reports.")
    description: str = Field("", description="What this scenario measures, for humans.")
    defaults: Defaults = Field(
        default=Defaults.model_validate({}), description="Values stages inherit."
    )
    providers: dict[Ident, Provider] = Field(
        min_length=1,
        description="The endpoints to load, by id.",
        json_schema_extra=_ids_as_property_names,
    )
    prompts: tuple[Prompt, ...] = Field(
        (),
        description="What to send; stages use them round-robin. Needed unless every stage "
        "is a trace replay (which sends its rows' own).",
    )
    load: tuple[Stage, ...] = Field(min_length=1, description="Stages, run in order.")
    sla: tuple[SlaEntry, ...] = Field(
        (), description="Assertions on the results; a failing one fails the run."
    )
    pricing: Annotated[tuple[PricingEntry, ...], FROM_ENV] = Field(
        (), description="Prices that replace or extend the built-in catalog (USD per 1M tokens)."
    )
    integrity: Integrity = Field(
        default=Integrity.model_validate({}),
        description="Thresholds of lens's self-checks (harness overload, cold starts).",
    )
    limits: Limits = Field(
        default=Limits.model_validate({}),
        description="Caps on event and response sizes; a response past one ends as "
        "protocol_error (sizes like 1MiB, 64MiB).",
    )
    allow_env_in_prompts: bool = Field(
        False,
        strict=True,
        description="Expand ${VAR} in prompts (inline messages and prompt files) too. By "
        "default only configuration fields (credentials, URLs, headers, model, region, "
        "export, budget, prices) read the environment, so a scenario cannot send a variable "
        "to its server as prompt text.",
    )
    budget: Annotated[Usd | None, FROM_ENV] = Field(
        None,
        description="Spending cap in USD, e.g. $10: lens stops scheduling new requests "
        "before the run's cost could pass it.",
    )
    regression: Annotated[Regression | None, FROM_ENV] = Field(
        None,
        description="Compare each run with a baseline results file and fail on a "
        "regression beyond the thresholds (lens compare).",
    )
    tokenizer: TokenizerSpec | None = Field(
        None,
        description=TOKENIZER_DESCRIPTION + " This one counts prompts (synthetic lengths, "
        "dataset filters, the plan's length statistics) and, unless a provider names its own, "
        "responses.",
    )
    results: ResultsOptions = Field(
        default=ResultsOptions.model_validate({}),
        description="What results.json keeps beyond its summaries: records: all | none | N.",
    )
    monitor: Monitor | None = Field(
        None,
        description="How lens monitor repeats this scenario: interval, jitter, deadline, "
        "stages, listen address, rolling windows, store (docs/monitoring.md).",
    )
    export: Annotated[tuple[ExportEntry, ...], FROM_ENV] = Field(
        (),
        description="Where lens run also sends its results, as KIND=DEST strings "
        "(added to any --export flags).",
    )

    # Where each value was written; set by the loader, empty for scenarios built in code.
    _source: SourceMap = PrivateAttr(default_factory=SourceMap)
    # The tokenizers the loader resolved: "" the scenario's, else by provider id.
    _tokenizers: dict[str, Tokenizer] = PrivateAttr(default_factory=dict)

    def tokenizer_for(self, provider: str | None = None) -> Tokenizer:
        """The provider's own tokenizer, else the scenario's, else the estimate."""
        if provider is not None and provider in self._tokenizers:
            return self._tokenizers[provider]
        return self._tokenizers.get("", ESTIMATE)

    @model_validator(mode="after")
    def _prompts_needed(self) -> Scenario:
        if not self.prompts and any(not isinstance(s, TraceStage) for s in self.load):
            raise FieldError(
                "a scenario needs prompts: at least one (only trace replays send their own)",
                "prompts",
            )
        return self

    @property
    def source_map(self) -> SourceMap:
        return self._source

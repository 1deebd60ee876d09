"""Plugin objects that break the contract, each in its own way."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from lens.plugins import ProviderAdapter, ProviderPlugin, ProviderSettings, ProviderSpec, Results
from lens.targets import ExportTarget


class NotSettings(BaseModel):
    type: Literal["plain-model"]


class WrongName(ProviderSettings):
    type: Literal["other-name"] = Field(description="Provider kind.")


class Builtin(ProviderSettings):
    type: Literal["openai"] = Field(description="Provider kind.")


class Crashing(ProviderSettings):
    type: Literal["crashing"] = Field(description="Provider kind.")


def _crash(spec: ProviderSpec) -> ProviderAdapter:
    raise RuntimeError(f"cannot talk to {spec.base_url}")


NOT_SETTINGS = ProviderPlugin(settings_model=NotSettings, adapter_factory=_crash)  # type: ignore[arg-type]
WRONG_NAME = ProviderPlugin(settings_model=WrongName, adapter_factory=_crash)
BUILTIN = ProviderPlugin(settings_model=Builtin, adapter_factory=_crash)
CRASHING = ProviderPlugin(settings_model=Crashing, adapter_factory=_crash)
NO_FACTORY = object()
NOT_CALLABLE = 42


def failing_exporter(results: Results, target: ExportTarget) -> None:
    raise KeyError("oops")

"""What a lens plugin is made of: the public contract for provider and exporter plugins.

A plugin is an installed distribution that declares entry points (see README, "Plugins",
and ``examples/plugin/``)::

    [project.entry-points."lens.providers"]
    my-proto = "my_plugin:PROVIDER"          # a ProviderPlugin; the name is the type

    [project.entry-points."lens.exporters"]
    my-summary = "my_plugin:export_summary"  # (results, target) -> None; the name is KIND

A provider plugin's ``settings_model`` subclasses ``ProviderSettings`` with
``type: Literal["my-proto"]`` and its own fields: ``lens validate`` checks them with
positioned errors, ``lens schema`` documents them, and ``${VAR}`` expands in the fields
marked ``FROM_ENV`` (the common ``model``, ``base_url``, ``api_key`` and ``headers``
are).  lens compiles such a provider to a ``ProviderSpec`` with the common fields filled
in and ``plugin_settings`` holding the validated settings instance (its ``settings``
is a ``lens.plan.model.PluginSettings`` wrapping it), then calls
``adapter_factory(spec)`` once per provider for a ``ProviderAdapter``.

An adapter stamps nothing itself: lens owns the clock and the socket and feeds the
decoder each network read with its arrival time; failures of the server are returned as
an ``ErrorClass`` (never raised).  An exporter raises ``ExportError`` for a failure the
user should read (an ``OSError`` is reported too); other exports still run.

A plugin that cannot be imported, or whose objects break this contract, is reported as
``PluginError`` naming the plugin and its distribution.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lens import entry_points
from lens.entry_points import EXPORTER_GROUP, PROVIDER_GROUP, PluginError
from lens.errors import ExportError
from lens.export.results import Results
from lens.plan.model import PromptSpec, ProviderSpec
from lens.providers.base import (
    ProviderAdapter,
    StreamDecoder,
    StreamOutcome,
    TokenTimeline,
    Usage,
    classify_status,
    error_text,
    header_facts,
    masked_request,
)
from lens.records import ErrorClass
from lens.scenario import schema
from lens.scenario.env_scope import FROM_ENV
from lens.scenario.model import PluginProviderSettings as ProviderSettings
from lens.scenario.model import scenario_model
from lens.targets import ExportTarget

__all__ = [
    "EXPORTER_GROUP",
    "FROM_ENV",
    "PROVIDER_GROUP",
    "ErrorClass",
    "ExportError",
    "ExportTarget",
    "Exporter",
    "PluginError",
    "PromptSpec",
    "ProviderAdapter",
    "ProviderPlugin",
    "ProviderSettings",
    "ProviderSpec",
    "Results",
    "StreamDecoder",
    "StreamOutcome",
    "TokenTimeline",
    "Usage",
    "classify_status",
    "error_text",
    "header_facts",
    "masked_request",
    "rediscover",
]

Exporter = Callable[[Results, ExportTarget], None]


@dataclass(frozen=True, slots=True)
class ProviderPlugin:
    """What a ``lens.providers`` entry point loads to."""

    settings_model: type[ProviderSettings]
    adapter_factory: Callable[[ProviderSpec], ProviderAdapter]


def rediscover() -> None:
    """Forget the plugins found so far, so the next scenario loaded finds them again: for
    a long-lived process (a notebook) that installed or removed one since."""
    entry_points.clear_cache()
    scenario_model.cache_clear()
    schema.clear_cache()

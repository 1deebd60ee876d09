"""Provider and exporter plugins: ``scenario_model()``, the ``Scenario`` widened by what is
installed."""

from __future__ import annotations

import functools
from typing import Annotated, Any, Union, get_args

from pydantic import AfterValidator, Field, create_model

from lens.entry_points import PluginError, provider_plugin_origin, provider_plugins
from lens.scenario.model.base import Ident
from lens.scenario.model.exports import check_export_target, export_json_schema
from lens.scenario.model.providers import PROVIDER_TYPES, PluginProviderSettings, Provider
from lens.scenario.model.scenario import Scenario
from lens.targets import EXPORT_KINDS, known_kinds


def plugin_provider_models() -> tuple[type[PluginProviderSettings], ...]:
    """The settings models of the installed provider plugins (``lens.entry_points``),
    each checked: a ``PluginProviderSettings`` whose ``type`` is the entry point's name."""
    builtin = set(PROVIDER_TYPES)
    models = []
    for name, plugin in provider_plugins().items():
        model = plugin.settings_model
        where = provider_plugin_origin(name)
        if not (isinstance(model, type) and issubclass(model, PluginProviderSettings)):
            raise PluginError(
                f"{where}: settings_model must subclass lens.plugins.ProviderSettings"
            )
        if name in builtin:
            raise PluginError(f"{where}: provider type {name!r} is built into lens")
        if get_args(model.model_fields["type"].annotation) != (name,):
            raise PluginError(
                f"{where}: settings_model must declare type: Literal[{name!r}], "
                "the entry point's name"
            )
        models.append(model)
    return tuple(models)


@functools.cache
def scenario_model() -> type[Scenario]:
    """``Scenario``, or with plugins installed a subclass whose ``providers`` also accept
    the provider plugins' types and whose ``export`` also the exporter plugins' kinds:
    what the loader validates and ``lens schema`` describes.  Built once per process."""
    plugins = plugin_provider_models()
    kinds = known_kinds()
    if not plugins and kinds == EXPORT_KINDS:
        return Scenario
    fields: dict[str, Any] = {}
    if plugins:
        builtin = get_args(get_args(Provider)[0])
        union = Annotated[Union[(*builtin, *plugins)], Field(discriminator="type")]  # type: ignore[valid-type]
        fields["providers"] = _widened("providers", dict[Ident, union])
    if kinds != EXPORT_KINDS:
        entry = Annotated[str, AfterValidator(check_export_target), export_json_schema(kinds)]
        fields["export"] = _widened("export", tuple[entry, ...])
    return create_model("Scenario", __base__=Scenario, __module__=__name__, **fields)


def _widened(name: str, annotation: Any) -> tuple[Any, Any]:
    """``Scenario`` field ``name`` (constraints, markers, default, description) with the
    wider type ``annotation``, for ``create_model``."""
    info = Scenario.model_fields[name]
    field = Field(
        info.default, description=info.description, json_schema_extra=info.json_schema_extra
    )
    return Annotated[(annotation, *info.metadata)], field

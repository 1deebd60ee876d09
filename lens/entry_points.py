"""Installed plugins, found by entry point: provider types and exporter kinds.

A leaf module (stdlib and ``lens.errors`` only), so every layer can ask it: the scenario
loader for the plugins' settings models, the plan for nothing, ``lens.providers.registry``
for adapter factories, ``lens.targets`` for exporter kinds, ``lens.export.registry`` for
exporter functions.  What a plugin object must look like is ``lens.plugins`` (the public
side); this module only finds and loads them, once per process.

- ``lens.providers``: the entry point's name is the provider ``type`` a scenario writes;
  it loads to an object with ``settings_model`` and ``adapter_factory``.
- ``lens.exporters``: the name is the ``KIND`` of ``KIND=DEST``; it loads to a callable
  ``(results, target) -> None``.

A plugin that cannot be imported (or loads to the wrong thing) is a ``PluginError`` naming
the plugin and its distribution, never a traceback: it is the environment's fault, not
the scenario's, and the user needs to know which package to fix or uninstall.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from lens.errors import InputError, describe

PROVIDER_GROUP = "lens.providers"
EXPORTER_GROUP = "lens.exporters"


class PluginError(InputError):
    """An installed plugin cannot be used: it fails to import, or loads to the wrong thing."""


def _where(ep: EntryPoint) -> str:
    dist = ep.dist
    origin = f" (from {dist.name} {dist.version})" if dist is not None else ""
    return f"plugin {ep.name!r} of {ep.group}{origin}, {ep.value}"


def _entry_points(group: str) -> dict[str, EntryPoint]:
    # Two distributions may declare the same name (say, an editable and an installed copy
    # of one plugin): the first wins, as importlib.metadata lists them in sys.path order.
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        found.setdefault(ep.name, ep)
    return found


def _load(ep: EntryPoint) -> Any:
    try:
        return ep.load()
    except Exception as exc:  # any failure of third-party import code: name the plugin
        raise PluginError(f"{_where(ep)} cannot be loaded: {describe(exc)}") from exc


@functools.cache
def provider_plugins() -> dict[str, Any]:
    """Provider type -> the loaded plugin object, for every installed provider plugin.

    Loaded on first call, once per process: the scenario model needs every settings model
    to build its union of provider types."""
    loaded: dict[str, Any] = {}
    for name, ep in sorted(_entry_points(PROVIDER_GROUP).items()):
        plugin = _load(ep)
        for attribute in ("settings_model", "adapter_factory"):
            if not hasattr(plugin, attribute):
                raise PluginError(
                    f"{_where(ep)} has no {attribute}: a provider plugin is an object with "
                    "settings_model and adapter_factory (see lens.plugins.ProviderPlugin)"
                )
        if not callable(plugin.adapter_factory):
            raise PluginError(f"{_where(ep)}: adapter_factory is not callable")
        loaded[name] = plugin
    return loaded


def provider_plugin_origin(name: str) -> str:
    """How messages name provider plugin ``name``."""
    ep = _entry_points(PROVIDER_GROUP).get(name)
    return _where(ep) if ep is not None else f"plugin {name!r} of {PROVIDER_GROUP}"


@functools.cache
def exporter_kinds() -> tuple[str, ...]:
    """Kinds that installed exporter plugins add, without importing them (a ``KIND=DEST``
    is checked long before anything is exported)."""
    return tuple(sorted(_entry_points(EXPORTER_GROUP)))


@functools.cache
def exporter_plugin(kind: str) -> Callable[..., None]:
    """The exporter function of plugin ``kind``; a ``PluginError`` if it cannot be used."""
    ep = _entry_points(EXPORTER_GROUP)[kind]
    function = _load(ep)
    if not callable(function):
        raise PluginError(f"{_where(ep)} is not callable: an exporter is (results, target) -> None")
    return function  # type: ignore[no-any-return]


def clear_cache() -> None:
    """Forget what was discovered (tests that install a plugin mid-process)."""
    provider_plugins.cache_clear()
    exporter_kinds.cache_clear()
    exporter_plugin.cache_clear()

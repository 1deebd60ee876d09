"""Exporters by kind: a plain dict from the ``KIND`` of ``KIND=DEST`` to a function.

The keys must be exactly ``lens.targets.EXPORT_KINDS`` (a test checks), which is what the
scenario loader and the CLI accept; installed exporter plugins (entry point group
``lens.exporters``) add kinds after them, never replacing a built-in one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lens.entry_points import PluginError, exporter_plugin
from lens.errors import ExportError, describe
from lens.export.csvfile import export_csv
from lens.export.influx import export_influx
from lens.export.junit import export_junit
from lens.export.markdown import export_markdown
from lens.export.prometheus import export_prometheus
from lens.export.report import export_html
from lens.export.results import Results
from lens.targets import ExportTarget

Exporter = Callable[[Results, ExportTarget], None]

EXPORTERS: dict[str, Exporter] = {
    "csv": export_csv,
    "prometheus": export_prometheus,
    "influx": export_influx,
    "junit": export_junit,
    "markdown": export_markdown,
    "html": export_html,
}


def exporter_for(kind: str) -> Exporter:
    """The exporter of ``kind``: built in, else an installed plugin's (a ``PluginError``
    naming the plugin if it cannot be loaded)."""
    return EXPORTERS.get(kind) or _plugin_exporter(kind)


def _plugin_exporter(kind: str) -> Exporter:
    try:
        function = exporter_plugin(kind)
    except PluginError as exc:
        raise ExportError(str(exc)) from exc

    def export(results: Results, target: ExportTarget) -> None:
        try:
            function(results, target)
        except (ExportError, OSError):
            raise
        except Exception as exc:  # a bug of third-party code: one failed export, named
            raise ExportError(
                f"exporter plugin {kind!r} failed: {target.scrub(describe(exc))}"
            ) from exc

    return export


@dataclass(frozen=True, slots=True)
class ExportFailure:
    target: ExportTarget
    reason: str  # credentials already masked

    def __str__(self) -> str:
        return f"export {self.target.kind} to {self.target.masked}: {self.reason}"


def export_all(results: Results, targets: Sequence[ExportTarget]) -> list[ExportFailure]:
    """Run every export; one that fails does not stop the others."""
    failures = []
    for target in targets:
        try:
            exporter_for(target.kind)(results, target)
        except ExportError as exc:
            failures.append(ExportFailure(target, str(exc)))
        except OSError as exc:  # a file destination: missing permission, a directory...
            reason = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
            failures.append(ExportFailure(target, target.scrub(reason)))
    return failures

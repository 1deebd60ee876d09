"""Plugins installed for one test: fake entry points, the example plugin's code on sys.path."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import lens.entry_points
from lens.plugins import rediscover

EXAMPLE_SRC = Path(__file__).resolve().parents[2] / "examples" / "plugin" / "src"
EXAMPLE_PROVIDER = ("ndjson-tokens", "lens_example_plugin.provider:PLUGIN")
EXAMPLE_EXPORTER = ("summary-line", "lens_example_plugin.exporter:export_summary_line")

Install = Callable[..., None]


@pytest.fixture
def install(monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """``install(providers=[(name, "module:attr")], exporters=[...])``: what
    ``importlib.metadata`` reports from now on, with every discovery cache cleared."""
    monkeypatch.syspath_prepend(str(EXAMPLE_SRC))

    def installed(
        providers: list[tuple[str, str]] = [],  # noqa: B006 (never mutated)
        exporters: list[tuple[str, str]] = [],  # noqa: B006
    ) -> None:
        found = {
            lens.entry_points.PROVIDER_GROUP: [
                EntryPoint(n, v, lens.entry_points.PROVIDER_GROUP) for n, v in providers
            ],
            lens.entry_points.EXPORTER_GROUP: [
                EntryPoint(n, v, lens.entry_points.EXPORTER_GROUP) for n, v in exporters
            ],
        }
        monkeypatch.setattr(lens.entry_points, "entry_points", lambda group: found[group])
        rediscover()

    yield installed
    monkeypatch.undo()
    rediscover()

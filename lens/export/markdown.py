"""Markdown summary, appended (``$GITHUB_STEP_SUMMARY`` collects what each step appends)."""

from __future__ import annotations

from pathlib import Path

from lens.export.results import Results
from lens.export.sink import append_text
from lens.export.table import render
from lens.targets import ExportTarget


def export_markdown(results: Results, target: ExportTarget) -> None:
    append_text(Path(target.dest), render(results, "github") + "\n")

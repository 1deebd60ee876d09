"""``lens report``: one self-contained HTML file (tables and inline SVG charts) per run.

Charts need the optional extra ``llm-latency-lens[report]`` (matplotlib); without it every
entry point raises ``ExportError`` with the install hint.
"""

from __future__ import annotations

from pathlib import Path

from lens.errors import ExportError
from lens.export.report.charts import MISSING_MATPLOTLIB, draw_charts
from lens.export.report.page import assemble
from lens.export.results import Results
from lens.targets import ExportTarget

__all__ = ["MISSING_MATPLOTLIB", "export_html", "render_html", "write_html"]


def render_html(results: Results) -> str:
    return assemble(results, draw_charts(results))


def write_html(results: Results, path: Path) -> None:
    html = render_html(results)  # before touching the file: a missing extra leaves no stub
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise ExportError(f"cannot write the HTML report to {path}: {exc.strerror or exc}") from exc


def export_html(results: Results, target: ExportTarget) -> None:
    """The ``html`` exporter of ``lens run --export html=DEST``."""
    write_html(results, Path(target.dest))

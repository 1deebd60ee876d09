#!/usr/bin/env python3
"""Write ``docs/metrics.md`` from the metric catalogue (``lens/metric_catalog.py``).

Each metric is defined once, in the catalogue; this renders its tables into the page's
prose (``tools/metrics.md.tmpl``), so the documentation cannot drift from what lens
computes.  ``make docs`` runs it before building the site; a test checks the committed
page is current::

    python tools/gen_metrics_doc.py            # rewrite docs/metrics.md
    python tools/gen_metrics_doc.py --check    # exit 1 if it is stale
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout, with or without lens installed

from lens.metric_catalog import REQUEST_METRICS, STAGE_METRICS, MetricInfo  # noqa: E402

TEMPLATE = ROOT / "tools" / "metrics.md.tmpl"
PAGE = ROOT / "docs" / "metrics.md"
_UNITS = {"usd": "USD"}
_OVER = {"ok": "successful", "all": "all"}
_SERIES = " (each gap)"


def _cell(text: str) -> str:
    return text.replace("|", "\\|") or " "


def request_table(metrics: list[MetricInfo]) -> str:
    rows = [
        "| metric | formula | unit | over | known elsewhere as |",
        "|---|---|---|---|---|",
    ]
    for m in metrics:
        over = _OVER[m.counts] + (_SERIES if m.kind == "series" else "")
        rows.append(
            f"| `{m.name}` | {_cell(m.formula)} | {_UNITS.get(m.unit, m.unit)} | {over} "
            f"| {_cell(m.elsewhere)} |"
        )
    return "\n".join(rows)


def stage_table(metrics: list[MetricInfo]) -> str:
    rows = ["| metric | formula | unit |", "|---|---|---|"]
    rows += [f"| `{m.name}` | {_cell(m.formula)} | {_UNITS.get(m.unit, m.unit)} |" for m in metrics]
    return "\n".join(rows)


def render() -> str:
    text = TEMPLATE.read_text(encoding="utf-8")
    text = text.split("-->\n", 1)[1]  # the template's own note is not part of the page
    return text.replace(
        "{{ request_metrics }}", request_table(list(REQUEST_METRICS.values()))
    ).replace("{{ stage_metrics }}", stage_table(list(STAGE_METRICS.values())))


def main(argv: list[str]) -> int:
    page = render()
    if "--check" in argv:
        if PAGE.read_text(encoding="utf-8") != page:
            print(f"{PAGE} is stale: run python tools/gen_metrics_doc.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(page, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

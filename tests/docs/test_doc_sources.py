"""The generated parts of the documentation site: the scenario reference and README includes.

``make docs`` (part of ``make test``) builds the whole site with ``--strict``; these tests
pin what the generators must produce, and name the broken include when the README changes.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import pytest

from lens.metric_catalog import CATALOGUE

ROOT = Path(__file__).resolve().parents[2]


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _load(ROOT / "tools" / "gen_scenario_ref.py")
readme_hook = _load(ROOT / "docs" / "hooks" / "readme_sections.py")
SCHEMA = json.loads((ROOT / "schemas" / "scenario-v1.json").read_text(encoding="utf-8"))


def test_the_scenario_reference_has_a_section_and_a_row_for_everything_in_the_schema() -> None:
    page = gen.render(SCHEMA)
    headings = re.findall(r"^## (.+)$", page, flags=re.MULTILINE)
    assert headings == ["Scenario file", *headings[1:]]
    assert sorted(headings[1:]) == sorted(SCHEMA["$defs"])
    for name, node in [("", SCHEMA), *SCHEMA["$defs"].items()]:
        section = page.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0] if name else page
        for field in node.get("properties", {}):
            assert f"| `{field}` |" in section, f"{name or 'top level'}.{field} missing"
    # every link points at a section of the page
    for target in re.findall(r"\]\(#([^)]+)\)", page):
        assert target in {gen.anchor(h) for h in SCHEMA["$defs"]}, target


def test_the_scenario_reference_names_each_provider_type_and_pattern() -> None:
    page = gen.render(SCHEMA)
    for kind in ("simulated", "openai", "anthropic", "gemini", "bedrock", "azure-openai"):
        assert f"`{kind}` → [" in page
    for pattern in ("burst", "constant-rate", "concurrency", "ramp", "sweep", "idle-probe"):
        assert f"`{pattern}` → [" in page


def test_table_cells_stay_one_line_without_column_breaks() -> None:
    node = {
        "properties": {"x": {"type": "string", "description": "a | b\n<metric>", "default": ""}}
    }
    (row,) = gen.field_table(node)[2:]
    assert row == '| `x` | string | `""` | a \\| b &lt;metric&gt; |'


def test_every_readme_include_of_the_docs_resolves() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    markers = [
        m
        for page in sorted((ROOT / "docs").glob("*.md"))
        for m in readme_hook._MARKER.finditer(page.read_text(encoding="utf-8"))
    ]
    assert len(markers) >= 10
    for m in markers:
        text = readme_hook.readme_section(readme, m.group(1), intro_only=m.group(2) == "intro")
        assert text.strip(), m.group(0)
        assert "](#" not in text  # README anchors do not exist on the docs page
        assert "](docs/" not in text  # a README link to a docs page is that page on the site


def test_a_readme_link_to_a_docs_page_lands_on_that_page() -> None:
    readme = "## A\nsee [the page](docs/workloads.md) and [that](docs/shards.md#merge)\n"
    assert readme_hook.readme_section(readme, "## A") == (
        "see [the page](workloads.md) and [that](shards.md#merge)"
    )


def test_an_include_takes_its_section_only_and_rebases_its_headings() -> None:
    readme = "# t\n## A\na\n### A.1\nx\n```\n## not a heading\n```\n## B\nb\n"
    assert readme_hook.readme_section(readme, "## A") == (
        "a\n### A.1\nx\n```\n## not a heading\n```"
    )
    assert readme_hook.readme_section(readme, "### A.1") == "x\n```\n## not a heading\n```"
    assert readme_hook.readme_section(readme, "## A", intro_only=True) == "a"
    with pytest.raises(Exception, match="no heading '## C'"):
        readme_hook.readme_section(readme, "## C")


metrics_doc = _load(ROOT / "tools" / "gen_metrics_doc.py")


def test_the_metrics_page_is_generated_from_the_catalogue_and_current() -> None:
    page = metrics_doc.render()
    assert (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8") == page, (
        "docs/metrics.md is stale: run make metrics-doc"
    )
    for m in CATALOGUE:
        assert f"| `{m.name}` | {m.formula} |" in page
    assert "{{" not in page
    assert "<!--" not in page.split("\n", 1)[0]  # the template's own note stays out

"""mkdocs hook: the "Scenario reference" page, generated from the JSON Schema at build time.

The page exists only in the build (``reference/scenario.md``); its text is
``tools/gen_scenario_ref.py``'s rendering of ``schemas/scenario-v1.json``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

_ROOT = Path(__file__).resolve().parents[2]
_PAGE = "reference/scenario.md"


def _render() -> str:
    script = _ROOT / "tools" / "gen_scenario_ref.py"
    spec = importlib.util.spec_from_file_location("gen_scenario_ref", script)
    if spec is None or spec.loader is None:
        raise PluginError(f"cannot load {script}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    schema = json.loads((_ROOT / "schemas" / "scenario-v1.json").read_text(encoding="utf-8"))
    text: str = module.render(schema)
    return text


def on_files(files: Files, config: Any) -> Files:
    files.append(File.generated(config, _PAGE, content=_render()))
    return files

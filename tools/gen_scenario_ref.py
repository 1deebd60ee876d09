#!/usr/bin/env python3
"""Render the scenario JSON Schema (``schemas/scenario-v1.json``) as a Markdown reference.

The documentation site's "Scenario reference" page is this script's output, generated at
every ``mkdocs build`` (``docs/hooks/scenario_ref.py``), so the page cannot drift from the
schema, and the schema cannot drift from the model (a test checks that ``lens schema``
reproduces it).  Run by hand to see the page::

    python tools/gen_scenario_ref.py [schemas/scenario-v1.json] > scenario-reference.md

Only the standard library: the docs build needs nothing from lens's own environment.
"""

from __future__ import annotations

import json
import re
import sys
from collections import deque
from pathlib import Path
from typing import Any

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "scenario-v1.json"
_REF_PREFIX = "#/$defs/"
_MAX_DEFAULT = 60  # longer defaults are shown in the section's own table of its fields


def anchor(name: str) -> str:
    """The heading id mkdocs gives ``## Name`` (its default slugify: lower case)."""
    return re.sub(r"[^a-z0-9_-]", "", name.lower())


def _ref_name(ref: str) -> str:
    if not ref.startswith(_REF_PREFIX):
        raise ValueError(f"unsupported $ref {ref!r}: only local {_REF_PREFIX}... refs")
    return ref.removeprefix(_REF_PREFIX)


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: one line, no column separator, no HTML."""
    text = " ".join(text.split())
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _code(value: Any) -> str:
    text = value if isinstance(value, str) and value else json.dumps(value, ensure_ascii=False)
    text = text.replace("|", "\\|").replace("`", "'")
    return f"`{text}`"


def type_of(node: dict[str, Any]) -> str:
    """A short human type: ``string``, ``list of [BurstStage](#burststage) | ...``."""
    if "$ref" in node:
        name = _ref_name(node["$ref"])
        return f"[{name}](#{anchor(name)})"
    if "const" in node:
        return _code(node["const"])
    if "enum" in node:
        return " \\| ".join(_code(v) for v in node["enum"])
    for key in ("oneOf", "anyOf"):
        if key in node:
            parts: list[str] = []
            for sub in node[key]:
                text = type_of(sub)
                if text not in parts:
                    parts.append(text)
            return " \\| ".join(parts)
    kind = node.get("type")
    if kind == "array":
        return f"list of {type_of(node.get('items', {}))}"
    if kind == "object":
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            return f"map of name → {type_of(extra)}"
        return "object"
    if isinstance(kind, list):
        return " \\| ".join(str(k) for k in kind)
    if kind is None:
        return "any"
    text = str(kind)
    if node.get("pattern") and kind == "string":
        text += " (pattern)"
    return text


def _limits(node: dict[str, Any]) -> list[str]:
    """Bounds a value must keep, e.g. ``> 0``, ``at least 1 item``."""
    out: list[str] = []
    for key, word in (
        ("minimum", "≥"),
        ("exclusiveMinimum", ">"),
        ("maximum", "≤"),
        ("exclusiveMaximum", "<"),
    ):
        if key in node:
            out.append(f"{word} {node[key]}")
    if "minItems" in node:
        out.append(f"at least {node['minItems']} item(s)")
    if node.get("minLength"):
        out.append("not empty")
    for sub in node.get("anyOf", []):
        out.extend(x for x in _limits(sub) if x not in out)
    return out


def field_table(node: dict[str, Any]) -> list[str]:
    props: dict[str, dict[str, Any]] = node.get("properties", {})
    if not props:
        return []
    required = set(node.get("required", []))
    lines = ["| field | type | required / default | description |", "|---|---|---|---|"]
    for name, prop in props.items():
        if name in required:
            need = "**required**"
        elif "default" in prop:
            default = json.dumps(prop["default"], ensure_ascii=False)
            need = _code(prop["default"]) if len(default) <= _MAX_DEFAULT else "see description"
        else:
            need = "optional"
        desc = prop.get("description", "")
        limits = _limits(prop)
        if limits:
            desc = f"{desc} ({', '.join(limits)})" if desc else ", ".join(limits)
        lines.append(f"| `{name}` | {type_of(prop)} | {need} | {_cell(desc)} |")
    return lines


def _refs(node: Any) -> list[str]:
    """Every ``$defs`` name ``node`` refers to, in document order."""
    found: list[str] = []
    if isinstance(node, dict):
        if "$ref" in node:
            found.append(_ref_name(node["$ref"]))
        for value in node.values():
            found.extend(_refs(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_refs(value))
    return found


def _order(schema: dict[str, Any]) -> list[str]:
    """``$defs`` in the order a reader meets them from the top (breadth first), then the rest."""
    defs: dict[str, Any] = schema.get("$defs", {})
    seen: list[str] = []
    queue = deque(_refs(schema.get("properties", {})))
    while queue:
        name = queue.popleft()
        if name in seen or name not in defs:
            continue
        seen.append(name)
        queue.extend(_refs(defs[name]))
    return seen + sorted(set(defs) - set(seen))


def _discriminators(node: Any) -> list[str]:
    lines: list[str] = []
    if isinstance(node, dict):
        disc = node.get("discriminator")
        if isinstance(disc, dict) and "mapping" in disc:
            pairs = ", ".join(
                f"`{key}` → [{_ref_name(ref)}](#{anchor(_ref_name(ref))})"
                for key, ref in sorted(disc["mapping"].items())
            )
            lines.append(f"Chosen by `{disc['propertyName']}`: {pairs}.")
        for value in node.values():
            lines.extend(x for x in _discriminators(value) if x not in lines)
    elif isinstance(node, list):
        for value in node:
            lines.extend(x for x in _discriminators(value) if x not in lines)
    return lines


def render(schema: dict[str, Any]) -> str:
    """The whole reference page, as Markdown."""
    title = schema.get("title", "Scenario")
    out = [
        "# Scenario reference",
        "",
        f"Generated from `schemas/scenario-v1.json` ({_cell(title)}) at every docs build: "
        "every field lens accepts, with its type, default and meaning. Point your editor's "
        "YAML plugin at the same schema to get completion and checks while you type; "
        "`lens validate` reports the same rules with the file:line:col of each problem.",
        "",
        "Durations are written `150ms`, `30s`, `2m` or a bare number of seconds; rates "
        "`10/s` or `600/m`; sizes `1MiB`, `64MiB`. Unknown fields are errors.",
        "",
        "## Scenario file",
        "",
        _cell(schema.get("description", "")),
        "",
        *field_table(schema),
        "",
    ]
    for line in _discriminators(schema.get("properties", {})):
        out += [line, ""]
    defs: dict[str, Any] = schema.get("$defs", {})
    for name in _order(schema):
        node = defs[name]
        out += [f"## {name}", ""]
        desc = node.get("description")
        if desc:
            out += [" ".join(str(desc).split()), ""]
        table = field_table(node)
        if table:
            out += [*table, ""]
        elif "properties" not in node:
            out += [f"A value of type {type_of(node)}.", ""]
        for line in _discriminators(node.get("properties", {})):
            out += [line, ""]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else SCHEMA
    sys.stdout.write(render(json.loads(path.read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

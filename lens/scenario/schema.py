"""The JSON Schema of scenario v1, generated from the pydantic models, and a check against it.

The schema is a contract for editors and other tools, so it is generated (never hand-edited)
and checked in as ``schemas/scenario-v1.json``; a test fails when the two drift apart.  The
loader also validates every scenario against it: pydantic gives the messages, the schema is
a consistency check that the published contract accepts what lens accepts (see load.py).
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# jsonschema ships no type information; the second code keeps mypy quiet once stubs exist.
from jsonschema import Draft202012Validator  # type: ignore[import-untyped, unused-ignore]
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode
from pydantic_core import CoreSchema

from lens.scenario.messages import SENSITIVE_KEYS, Explained
from lens.scenario.model import scenario_model

SCHEMA_ID = "https://lens.dev/schemas/scenario-v1.json"
SCHEMA_FILE = "scenario-v1.json"
_DIALECT = "https://json-schema.org/draft/2020-12/schema"


class _Generator(GenerateJsonSchema):
    """pydantic's generator without per-property titles ("Max Tokens"): they repeat the key
    and crowd out the descriptions in editor tooltips."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def generate(self, schema: CoreSchema, mode: JsonSchemaMode = "validation") -> Any:
        result = super().generate(schema, mode)
        return {"$schema": _DIALECT, **result}


@functools.cache
def _generated() -> dict[str, Any]:
    # scenario_model(): with provider plugins installed, their types and fields are in it.
    schema = scenario_model().model_json_schema(schema_generator=_Generator, mode="validation")
    assert schema.get("$id") == SCHEMA_ID, "Scenario.model_config must carry the schema $id"
    return schema


def scenario_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of scenario files, version 1. A fresh copy each call."""
    return copy.deepcopy(_generated())


def schema_text(doc: Mapping[str, Any]) -> str:
    """A schema document as the checked-in ``schemas/*.json`` files hold it: two-space
    indent, stable key order, trailing newline.  Every schema lens writes (scenario and
    results, by ``lens schema`` and ``write_schemas``) goes through here."""
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def write_schemas(directory: str | Path) -> list[Path]:
    """Write every schema lens/scenario owns into ``directory``; return the paths written."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    target = out / SCHEMA_FILE
    target.write_text(schema_text(_generated()), encoding="utf-8")
    return [target]


@functools.cache
def _validator() -> Any:
    return Draft202012Validator(_generated())


def schema_errors(data: Any) -> list[Explained]:
    """Every place where ``data`` breaks the JSON Schema, as paths and messages."""
    found: list[Explained] = []
    for error in _validator().iter_errors(data):
        path = tuple(error.absolute_path)
        at_key = False
        instance = error.instance
        if error.validator == "required" and isinstance(instance, dict):
            missing = [k for k in error.validator_value if k not in instance]
            path = (*path, *missing[:1])
        elif error.validator == "additionalProperties" and isinstance(instance, dict):
            known = error.schema.get("properties", {})
            extra = sorted(k for k in instance if k not in known)
            path, at_key = (*path, *extra[:1]), True
        found.append(Explained(path, f"{_message(error, path)} (JSON Schema)", at_key))
    return found


def _message(error: Any, path: tuple[Any, ...]) -> str:
    """jsonschema's message, unless it would quote a whole mapping or list (long, and it may
    hold an api_key) or a credential itself."""
    if error.validator in ("oneOf", "anyOf"):
        return "does not match any of the forms the schema allows"
    if error.validator == "required":
        return f"missing required field {path[-1]!r}"
    if error.validator == "additionalProperties":
        return f"unknown field {path[-1]!r}"
    if any(seg in SENSITIVE_KEYS for seg in path) or isinstance(error.instance, dict | list):
        return f"breaks the schema's {error.validator!r} rule"
    return str(error.message)


def clear_cache() -> None:
    """Forget the generated schema (lens.plugins.rediscover: the plugins changed)."""
    _generated.cache_clear()
    _validator.cache_clear()

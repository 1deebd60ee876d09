from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator  # type: ignore[import-untyped, unused-ignore]
from pydantic import ValidationError

from lens.scenario import Scenario, scenario_json_schema, write_schemas
from lens.scenario import load as load_module
from lens.scenario.messages import Explained
from lens.scenario.schema import SCHEMA_FILE, SCHEMA_ID, schema_errors, schema_text
from tests.scenario.helpers import BASE, only_problem, parse

ROOT = Path(__file__).parents[2]
SCENARIO_FILES = sorted((ROOT / "scenarios").glob("*.yaml"))


def test_checked_in_schema_is_up_to_date() -> None:
    checked_in = (ROOT / "schemas" / SCHEMA_FILE).read_text(encoding="utf-8")
    assert checked_in == schema_text(scenario_json_schema()), (
        "schemas/scenario-v1.json is stale: the scenario models changed. "
        "Run `make schema` and commit the result."
    )


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = scenario_json_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$id"] == SCHEMA_ID
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "lens scenario (version 1)"


def _properties(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = list(schema.get("properties", {}).items())
    for name, sub in schema.get("$defs", {}).items():
        found += [(f"{name}.{key}", value) for key, value in sub.get("properties", {}).items()]
    return found


def test_every_field_has_a_description_and_no_generated_title() -> None:
    for name, prop in _properties(scenario_json_schema()):
        assert prop.get("description"), f"{name} has no description"
        assert "title" not in prop, name


def test_no_secret_has_a_default() -> None:
    for name, prop in _properties(scenario_json_schema()):
        if name.endswith("api_key"):
            assert prop.get("default") is None, name


def test_scenario_json_schema_returns_a_copy() -> None:
    scenario_json_schema()["title"] = "changed"
    assert scenario_json_schema()["title"] == "lens scenario (version 1)"


def test_write_schemas(tmp_path: Path) -> None:
    (written,) = write_schemas(tmp_path / "out")
    assert written == tmp_path / "out" / SCHEMA_FILE
    text = written.read_text(encoding="utf-8")
    assert text == schema_text(scenario_json_schema())
    assert text.endswith("}\n")
    assert json.loads(text) == scenario_json_schema()


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: p.name)
def test_shipped_scenarios_validate_against_the_schema(path: Path) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    # ${VAR:-} interpolates to null before validation, as the loader does.
    for provider in data["providers"].values():
        if str(provider.get("api_key", "")).startswith("${"):
            provider["api_key"] = None
    Draft202012Validator(scenario_json_schema()).validate(data)


def test_there_are_shipped_scenarios() -> None:
    assert {p.name for p in SCENARIO_FILES} >= {"quickstart.yaml", "example.yaml"}


# --- the two validators agree --------------------------------------------------------------

VALID: dict[str, Any] = yaml.safe_load(
    (ROOT / "scenarios" / "example.yaml")
    .read_text(encoding="utf-8")
    .replace("${VLLM_API_KEY:-}", "k")
)


def _pydantic_accepts(data: Any) -> bool:
    try:
        Scenario.model_validate(data)
    except ValidationError:
        return False
    return True


def test_valid_example_passes_both() -> None:
    assert _pydantic_accepts(VALID)
    assert schema_errors(VALID) == []


_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=3),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-2, max_value=2),
    st.sampled_from(
        ["", "x", "5", "1%", "150ms", "5/s", "simulated", "burst", "openai", "http://h/v1", "a b"]
    ),
    st.builds(list),  # fresh objects: a shared one would carry mutations across examples
    st.builds(dict),
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, (*prefix, i))
    return found


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_whatever_pydantic_accepts_the_schema_accepts(data: st.DataObject) -> None:
    """Mutate the example at random: pydantic may be stricter than the schema (SLA syntax,
    unique ids), never looser, so the published contract covers every valid scenario."""
    doc = copy.deepcopy(VALID)
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        path = data.draw(st.sampled_from(_paths(doc)[1:]))
        parent = doc
        for seg in path[:-1]:
            parent = parent[seg]
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = data.draw(_LEAF)
        elif action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent[path[-1]], dict):
            parent[path[-1]][data.draw(st.sampled_from(["extra", "ttft", "rate", "id"]))] = (
                data.draw(_LEAF)
            )
    if _pydantic_accepts(doc):
        assert schema_errors(doc) == [], doc


@pytest.mark.parametrize(
    "mutation",
    [
        lambda d: d.update(version=2),
        lambda d: d.pop("name"),
        lambda d: d.update(extra=1),
        lambda d: d["providers"].update({"bad id": {"type": "simulated"}}),
        lambda d: d["providers"]["sim"].update(type="nope"),
        lambda d: d["providers"]["sim"].update(ttft="fast"),
        lambda d: d["prompts"][0].update(file="x.jsonl"),
        lambda d: d["load"][0].update(requests=0),
        lambda d: d["load"][1].update(rate="5/h"),
        lambda d: d["sla"].append(5),
    ],
)
def test_structural_errors_fail_both(mutation: Any) -> None:
    doc = copy.deepcopy(VALID)
    mutation(doc)
    assert not _pydantic_accepts(doc)
    assert schema_errors(doc) != []


def test_schema_messages_never_quote_whole_mappings_or_secrets() -> None:
    doc = copy.deepcopy(VALID)
    doc["providers"]["vllm"]["api_key"] = 12345
    doc["providers"]["vllm"]["bogus"] = 1
    doc.pop("name")
    messages = [e.message for e in schema_errors(doc)]
    assert "missing required field 'name' (JSON Schema)" in messages
    assert all("12345" not in m for m in messages)
    assert "does not match any of the forms the schema allows (JSON Schema)" in messages
    doc = copy.deepcopy(VALID)
    doc["defaults"]["bogus"] = 1
    doc["providers"]["vllm"]["headers"] = {"Authorization": 5}
    messages = [e.message for e in schema_errors(doc)]
    assert "unknown field 'bogus' (JSON Schema)" in messages
    doc = copy.deepcopy(VALID)
    doc["prompts"][0]["messages"] = {"role": "user"}
    assert [e.message for e in schema_errors(doc)] == [
        "does not match any of the forms the schema allows (JSON Schema)"
    ]
    doc["prompts"] = {"a": 1}
    assert [e.message for e in schema_errors(doc)] == [
        "breaks the schema's 'type' rule (JSON Schema)"
    ]


def test_schema_message_hides_credentials() -> None:
    doc = copy.deepcopy(VALID)
    doc["providers"]["gpt"]["headers"] = {"Authorization": 12345}
    found = [e for e in schema_errors(doc) if e.path[-1:] == ("Authorization",)]
    assert all("12345" not in e.message for e in found)


def test_a_schema_only_error_is_still_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the schema and the models ever drift apart, the user sees the schema's complaint
    rather than a silently accepted file."""

    def drifted(data: Any) -> list[Explained]:
        return [Explained(("load", 0, "requests"), "2 is too small (JSON Schema)")]

    monkeypatch.setattr(load_module, "schema_errors", drifted)
    assert only_problem(BASE) == "s.yaml:13:15: load[0].requests: 2 is too small (JSON Schema)"


def test_schema_errors_near_a_reported_problem_are_not_repeated() -> None:
    # pydantic reports load[0].requests; the schema's oneOf error at load[0] is the same one.
    assert only_problem(BASE.replace("requests: 2", "requests: 0")).endswith("got 0")
    assert parse(BASE).name == "t"

"""Scenario files: YAML -> validated, frozen ``Scenario`` with every value's position kept.

The names are imported lazily: ``lens.plan.model`` needs only ``lens.scenario.sla``, and the
simulated server (which imports the plan model) should not pay for pydantic and the
loader at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lens.scenario.load import load_scenario, parse_scenario
    from lens.scenario.model import Scenario
    from lens.scenario.schema import scenario_json_schema, write_schemas

__all__ = ["Scenario", "load_scenario", "parse_scenario", "scenario_json_schema", "write_schemas"]

_HOMES = {
    "Scenario": "lens.scenario.model",
    "load_scenario": "lens.scenario.load",
    "parse_scenario": "lens.scenario.load",
    "scenario_json_schema": "lens.scenario.schema",
    "write_schemas": "lens.scenario.schema",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'lens.scenario' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)

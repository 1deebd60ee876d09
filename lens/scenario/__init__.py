"""Scenario files: YAML -> validated, frozen ``Scenario`` with every value's position kept."""

from lens.scenario.load import load_scenario, parse_scenario
from lens.scenario.model import Scenario
from lens.scenario.schema import scenario_json_schema, write_schemas

__all__ = ["Scenario", "load_scenario", "parse_scenario", "scenario_json_schema", "write_schemas"]

"""Corners of the pydantic-error translation that real scenarios rarely reach."""

from __future__ import annotations

from typing import Any

from pydantic_core import ErrorDetails

from lens.scenario.messages import explain, union_tags
from lens.scenario.model import Scenario
from tests.scenario.helpers import BASE, only_problem


def _error(
    kind: str, loc: tuple[str | int, ...], msg: str = "raw message", **ctx: Any
) -> ErrorDetails:
    return ErrorDetails(type=kind, loc=loc, msg=msg, input=None, ctx=ctx)


def test_unknown_error_kinds_fall_back_to_pydantic_wording() -> None:
    explained = explain(_error("some_new_kind", ("name",)), Scenario)
    assert explained is not None
    assert explained.message == "raw message"


def test_locations_deeper_than_the_models_still_make_a_path() -> None:
    explained = explain(_error("some_new_kind", ("name", "deeper", 0)), Scenario)
    assert explained is not None
    assert explained.path == ("name", "deeper", 0)


def test_union_without_tags() -> None:
    assert union_tags(int | str) == {}
    assert union_tags(int) == {}


SIM = "    type: simulated\n"


def test_number_bounds_and_types() -> None:
    assert only_problem(BASE.replace(SIM, SIM + "    jitter: -1\n")) == (
        "s.yaml:6:13: providers.sim.jitter: must be at least 0, got -1"
    )
    assert only_problem(BASE.replace(SIM, SIM + "    jitter: lots\n")) == (
        "s.yaml:6:13: providers.sim.jitter: expected a number, got 'lots'"
    )
    weight = BASE.replace("  - id: q\n", "  - id: q\n    weight: 5000\n")
    assert only_problem(weight) == "s.yaml:8:13: prompts[0].weight: must be at most 1000, got 5000"


def test_escaped_dollar_in_double_quotes_points_at_the_scalar() -> None:
    text = BASE.replace("type: simulated", 'type: simulated\n    model: "\\x24{NOPE}"')
    assert only_problem(text).startswith(
        "s.yaml:6:12: providers.sim.model: environment variable NOPE is not set"
    )

"""Checks across items that pydantic validates one at a time: ids must be unique.

They run after model validation and report the position of the *second* occurrence, naming
the first, which needs the source map; a model validator could only point at the list.
``lens.plan.compile`` runs them again so scenarios built in code get the same guarantee.
"""

from __future__ import annotations

from collections.abc import Iterable

from lens.errors import Problem
from lens.scenario.model import Scenario
from lens.scenario.yaml_nodes import PathT, SourceMap, format_path


def _duplicates(items: Iterable[tuple[str, PathT]], what: str, source: SourceMap) -> list[Problem]:
    first: dict[str, PathT] = {}
    problems = []
    for value, path in items:
        if value in first:
            problems.append(
                Problem(
                    f"duplicate {what} {value!r} (first at {format_path(first[value])}); "
                    f"each {what} may appear only once",
                    pos=source.value_pos(path),
                    path=format_path(path),
                )
            )
        else:
            first[value] = path
    return problems


def duplicate_problems(scenario: Scenario) -> list[Problem]:
    """Repeated prompt ids, stage ids, and repeated entries in a stage's lists."""
    source = scenario.source_map
    problems = _duplicates(
        ((p.id, ("prompts", i, "id")) for i, p in enumerate(scenario.prompts)), "prompt id", source
    )
    problems += _duplicates(
        ((s.id, ("load", i, "id")) for i, s in enumerate(scenario.load)), "stage id", source
    )
    for i, stage in enumerate(scenario.load):
        for field in ("providers", "prompts"):
            ids: tuple[str, ...] = getattr(stage, field) or ()
            entries = ((v, ("load", i, field, j)) for j, v in enumerate(ids))
            problems += _duplicates(entries, f"entry in load[{i}].{field}", source)
    return problems

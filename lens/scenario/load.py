"""Scenario file -> validated, frozen ``Scenario``, or one ``ScenarioError`` listing every
problem with ``file:line:col``, field path and what was expected.

Steps, each collecting problems rather than stopping at the first:
1. read and decode the file;
2. compose the YAML with positions, rejecting duplicate keys and expanding ``${VAR}``
   (yaml_nodes.py);
3. validate with pydantic (the messages users read, see messages.py) *and* with the
   published JSON Schema (schema.py).  A schema error is only shown when pydantic said
   nothing about that spot: normally they agree, and a shown schema error means the two have
   drifted, which a test guards against;
4. read JSONL prompt files (prompts.py) and check that ids are unique (checks.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lens.errors import Problem, ScenarioError, SourcePos
from lens.scenario.checks import duplicate_problems
from lens.scenario.messages import Explained, explain
from lens.scenario.model import FilePrompt, FileRequest, Scenario
from lens.scenario.prompts import read_prompt_file
from lens.scenario.schema import schema_errors
from lens.scenario.units import show
from lens.scenario.yaml_nodes import PathT, SourceMap, format_path, parse_yaml


def load_scenario(path: str | Path, *, env: Mapping[str, str] | None = None) -> Scenario:
    """Load and validate a scenario file; ``env`` defaults to ``os.environ``."""
    file = str(path)
    try:
        data = Path(path).read_bytes()
    except IsADirectoryError:
        raise ScenarioError(f"{file} is a directory, not a scenario file") from None
    except FileNotFoundError:
        raise ScenarioError(f"{file}: no such scenario file") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = getattr(exc, "strerror", "") or str(exc)
        raise ScenarioError(f"cannot read {file}: {reason}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        col = len(before) - (before.rfind(b"\n") + 1) + 1
        message = f"not valid UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8"
        raise ScenarioError(Problem(message, pos=SourcePos(file, line, col))) from None
    return parse_scenario(text, file=file, base_dir=Path(path).parent, env=env)


def parse_scenario(
    text: str,
    *,
    file: str = "<scenario>",
    base_dir: str | Path = ".",
    env: Mapping[str, str] | None = None,
) -> Scenario:
    """Validate scenario text; ``file`` names it in messages, ``base_dir`` anchors prompt
    files."""
    doc = parse_yaml(text, file, os.environ if env is None else env)
    if doc.data is None or not isinstance(doc.data, dict):
        problems = list(doc.problems)
        if not problems:
            got = "an empty file" if doc.data is None else show(doc.data)
            expected = "expected a mapping with version, name, providers, prompts and load"
            pos = doc.source.value_pos(()) or SourcePos(file, 1, 1)
            problems.append(Problem(f"{expected}, got {got}", pos=pos))
        raise ScenarioError(problems)

    report = _Report(doc.data, doc.source, list(doc.problems), set(doc.problem_paths))
    scenario: Scenario | None = None
    try:
        scenario = Scenario.model_validate(doc.data)
    except ValidationError as exc:
        for error in exc.errors():
            explained = explain(error, Scenario)
            if explained is not None:
                report.add(explained, schema=False)
    for explained in schema_errors(doc.data):
        report.add(explained, schema=True)
    requests = _read_prompt_files(doc.data, doc.source, Path(base_dir), report)

    if scenario is not None:
        scenario._source = doc.source
        for i, prompt in enumerate(scenario.prompts):
            if isinstance(prompt, FilePrompt):
                prompt._requests = requests.get(i, ())
        report.problems += duplicate_problems(scenario)
    if report.problems:
        raise ScenarioError(sorted(report.problems, key=lambda p: _position_order(p, file)))
    assert scenario is not None
    return scenario


class _Report:
    """Problems so far, and the paths they cover, so one spot is not reported twice."""

    def __init__(self, data: Any, source: SourceMap, problems: list[Problem], paths: set[PathT]):
        self.data = data
        self.source = source
        self.problems = problems
        self.paths = paths
        self.node_paths = frozenset(paths)  # duplicate keys, bad ${VAR}: found while parsing

    def add(self, explained: Explained, *, schema: bool) -> None:
        """Record a validation problem unless an earlier one already covers its spot.

        A pydantic error is dropped only at or under a parse problem (an unset ${VAR} also
        fails its field).  A schema error is dropped near any reported spot: its union and
        "required" errors sit on the parent of the field pydantic names.
        """
        if schema:
            covered = any(_is_related(explained.path, seen) for seen in self.paths)
        else:
            covered = any(_is_under(explained.path, seen) for seen in self.node_paths)
        if covered:
            return
        path = _existing_path(self.data, explained.path)
        pos = self.source.key_pos(path) if explained.at_key else self.source.value_pos(path)
        self.problems.append(Problem(explained.message, pos=pos, path=format_path(path)))
        self.paths.add(explained.path)


def _is_under(path: PathT, reported: PathT) -> bool:
    return path[: len(reported)] == reported


def _is_related(path: PathT, reported: PathT) -> bool:
    return _is_under(path, reported) or _is_under(reported, path)


def _existing_path(data: Any, path: PathT) -> PathT:
    """The part of ``path`` present in ``data``, plus a missing key of a mapping (so
    "missing field" messages name it): ``sla[0].assert`` on a string entry is ``sla[0]``."""
    node = data
    for depth, seg in enumerate(path):
        if isinstance(node, dict) and isinstance(seg, str):
            if seg not in node:
                return path[: depth + 1]
            node = node[seg]
        elif isinstance(node, list) and isinstance(seg, int) and 0 <= seg < len(node):
            node = node[seg]
        else:
            return path[:depth]
    return path


def _read_prompt_files(
    data: dict[str, Any], source: SourceMap, base_dir: Path, report: _Report
) -> dict[int, tuple[FileRequest, ...]]:
    """Read every ``file:`` prompt that looks usable, even when other parts are invalid,
    so its problems are reported in the same run."""
    found: dict[int, tuple[FileRequest, ...]] = {}
    prompts = data.get("prompts")
    if not isinstance(prompts, list):
        return found
    for i, item in enumerate(prompts):
        if not (isinstance(item, dict) and isinstance(item.get("file"), str) and item["file"]):
            continue
        written = item["file"]
        display = os.path.normpath(os.path.join(os.path.dirname(source.file), written))
        prompt_id = str(item["id"]) if isinstance(item.get("id"), str) else f"prompts[{i}]"
        requests, problems = read_prompt_file(
            base_dir / written,
            display,
            prompt_id=prompt_id,
            where=source.value_pos(("prompts", i, "file")),
        )
        found[i] = requests
        report.problems += problems
    return found


def _position_order(problem: Problem, file: str) -> tuple[int, str, int, int]:
    """The scenario's own problems first, top to bottom, then those in prompt files."""
    pos = problem.pos
    if pos is None:
        return (2, "", 0, 0)
    return (0 if pos.file == file else 1, pos.file, pos.line, pos.col)

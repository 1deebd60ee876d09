"""Hostile YAML in a scenario file ends fast with one positioned error (issue 10): an alias
bomb, nested merge keys, deep nesting.  The time bounds are hang guards only."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from lens.cli import main
from lens.errors import ScenarioError
from lens.scenario import load_scenario

HEAD = """\
version: 1
name: t
providers:
  sim: {type: simulated}
prompts:
  - {id: q, messages: [{role: user, content: hi}]}
load:
  - {id: w, pattern: burst, requests: 1}
"""


def merge_bomb(levels: int = 40) -> str:
    """The 1.2 KB file from the issue: each level merges the one before twice."""
    lines = ["a0: &a0 {k: v}"]
    lines += [f"a{n}: &a{n} {{<<: [*a{n - 1}, *a{n - 1}]}}" for n in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def alias_bomb() -> str:
    lines = ["x0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"x{n}: &x{n} [{', '.join([f'*x{n - 1}'] * 10)}]" for n in range(1, 9)]
    return "\n".join(lines) + "\n"


def load_problems(path: Path) -> list[str]:
    start = time.perf_counter()
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, env={})
    assert time.perf_counter() - start < 5  # a hang guard only
    return [str(p) for p in info.value.problems]


def test_the_merge_bomb_from_the_issue_validates_in_linear_time(tmp_path: Path) -> None:
    path = tmp_path / "merge.yaml"
    path.write_text(merge_bomb())
    assert 1100 < path.stat().st_size < 1300
    found = load_problems(path)
    # It expands to 41 small mappings: a normal (if wrong) scenario, reported as such.
    assert found[0].startswith(f"{path}:1:1: version: missing required field 'version'")
    unknown = [p.split(";")[0] for p in found if "unknown field" in p]
    assert unknown == [f"{path}:{n + 1}:1: a{n}: unknown field 'a{n}'" for n in range(41)]


def test_the_merge_bomb_inside_a_scenario(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(HEAD + "x-" + merge_bomb().replace("\na", "\nx-a"))
    found = load_problems(path)
    assert found[0].startswith(f"{path}:9:1: x-a0: unknown field 'x-a0'")


def test_merged_values_past_the_limit_name_the_alias(tmp_path: Path) -> None:
    lines = ["m0: &m0 {k: v}"]
    lines += [f"m{n}: &m{n} {{<<: *m{n - 1}, k{n}: *m{n - 1}}}" for n in range(1, 41)]
    path = tmp_path / "s.yaml"
    path.write_text(HEAD + "\n".join(lines) + "\n")
    (found,) = load_problems(path)
    m = re.match(rf"{re.escape(str(path))}:(\d+):(\d+): the YAML alias '\*m\d+' expands", found)
    assert m is not None, found
    line, col = int(m[1]), int(m[2])
    assert path.read_text().splitlines()[line - 1][col - 1 :].startswith("*m")


def test_an_alias_bomb_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(HEAD + alias_bomb())
    (found,) = load_problems(path)
    assert re.match(
        rf"{re.escape(str(path))}:13:45: the YAML alias '\*x3' expands the document "
        r"past 100000 values \(an alias or merge-key bomb\?\)",
        found,
    ), found


def test_deep_nesting_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(HEAD + "deep: " + "[" * 3000 + "]" * 3000 + "\n")
    (found,) = load_problems(path)
    assert found == f"{path}:9:106: nested more than 100 levels deep: too deep to be a scenario"


def test_lens_validate_reports_a_bomb_as_invalid_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(HEAD + alias_bomb())
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}:")
    assert "Traceback" not in err

"""``file:`` prompts may not leave the scenario's folder (``..``, absolute paths, symbolic
links) unless ``--allow-files-outside``; the error points at the ``file:`` value."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lens.cli import build_parser, main
from lens.errors import ScenarioError
from lens.scenario import load_scenario
from lens.scenario.model import FilePrompt, Scenario

LINE = '{"messages": [{"role": "user", "content": "hello"}]}\n'
TEMPLATE = """\
version: 1
name: t
providers:
  sim: {{type: simulated}}
prompts:
  - id: f
    file: {file}
load:
  - {{id: w, pattern: burst, requests: 1}}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """tmp/scenario holds the scenario and p.jsonl; tmp/outside.jsonl lies outside it."""
    inside = tmp_path / "scenario"
    inside.mkdir()
    (inside / "p.jsonl").write_text(LINE)
    (tmp_path / "outside.jsonl").write_text(LINE)
    return inside


def write(folder: Path, file: str) -> Path:
    path = folder / "s.yaml"
    path.write_text(TEMPLATE.format(file=file))
    return path


def lines_read(scenario: Scenario) -> int:
    prompt = scenario.prompts[0]
    assert isinstance(prompt, FilePrompt)
    return len(prompt.requests)


def only_problem(path: Path, **kwargs: bool) -> str:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, env={}, **kwargs)
    (problem,) = info.value.problems
    return str(problem)


@pytest.mark.parametrize("file", ["p.jsonl", "./p.jsonl", "sub/../p.jsonl"])
def test_files_in_the_folder_are_read(folder: Path, file: str) -> None:
    (folder / "sub").mkdir()
    assert lines_read(load_scenario(write(folder, file), env={})) == 1


def test_an_absolute_path_inside_the_folder_is_read(folder: Path) -> None:
    assert lines_read(load_scenario(write(folder, str(folder / "p.jsonl")), env={})) == 1


def test_climbing_out_is_an_error_at_the_file_value(folder: Path) -> None:
    path = write(folder, "../outside.jsonl")
    display = os.path.normpath(folder / "../outside.jsonl")
    assert only_problem(path) == (
        f"{path}:7:11: prompts[0].file: prompts file {display} climbs out of the scenario's "
        "folder: a scenario may only read files in its own folder (pass --allow-files-outside "
        "to lens validate/plan/run to read it anyway)"
    )


def test_an_absolute_path_outside_is_an_error(folder: Path) -> None:
    outside = folder.parent / "outside.jsonl"
    message = only_problem(write(folder, str(outside)))
    assert message.startswith(f"{folder / 's.yaml'}:7:11: prompts[0].file: prompts file")
    assert "is an absolute path outside the scenario's folder" in message


def test_a_symlink_pointing_outside_is_an_error(folder: Path) -> None:
    (folder / "link.jsonl").symlink_to(folder.parent / "outside.jsonl")
    message = only_problem(write(folder, "link.jsonl"))
    assert ":7:11: prompts[0].file: " in message
    assert "leads outside the scenario's folder through a symbolic link" in message


def test_a_symlinked_folder_pointing_outside_is_an_error(folder: Path) -> None:
    (folder / "data").symlink_to(folder.parent, target_is_directory=True)
    message = only_problem(write(folder, "data/outside.jsonl"))
    assert "through a symbolic link" in message


def test_a_symlink_inside_the_folder_is_fine(folder: Path) -> None:
    (folder / "link.jsonl").symlink_to(folder / "p.jsonl")
    assert lines_read(load_scenario(write(folder, "link.jsonl"), env={})) == 1


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_allow_files_outside_reads_them(folder: Path, kind: str) -> None:
    (folder / "link.jsonl").symlink_to(folder.parent / "outside.jsonl")
    file = {
        "dotdot": "../outside.jsonl",
        "absolute": str(folder.parent / "outside.jsonl"),
        "symlink": "link.jsonl",
    }[kind]
    scenario = load_scenario(write(folder, file), env={}, allow_files_outside=True)
    assert lines_read(scenario) == 1


def test_a_missing_file_outside_is_refused_before_it_is_looked_for(folder: Path) -> None:
    message = only_problem(write(folder, "../../../etc/nothing-here.jsonl"))
    assert "climbs out of the scenario's folder" in message
    assert "No such file" not in message


# --- the flag on the command line ------------------------------------------------------------


def test_validate_refuses_then_accepts_with_the_flag(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(write(folder, "../outside.jsonl"))
    assert main(["validate", path]) == 2
    assert "--allow-files-outside" in capsys.readouterr().err
    assert main(["validate", "--allow-files-outside", path]) == 0
    assert main(["plan", path]) == 2
    assert main(["plan", "--allow-files-outside", path]) == 0


def test_run_takes_the_flag() -> None:
    args = build_parser().parse_args(["run", "s.yaml", "--allow-files-outside"])
    assert args.allow_files_outside is True
    assert build_parser().parse_args(["run", "s.yaml"]).allow_files_outside is False

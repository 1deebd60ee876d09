"""Baselines: read from a path, or from a Git commit without a checkout."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lens.errors import ResultsError
from lens.export.baseline import read_baseline
from tests.export._results import hand_results

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository whose first commit holds baselines/nightly.json; the working tree has
    moved on (the file is changed and not committed)."""
    (tmp_path / "baselines").mkdir()
    (tmp_path / "baselines/nightly.json").write_text(hand_results().to_json())
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "baseline")
    (tmp_path / "baselines/nightly.json").write_text("not the committed one")
    return tmp_path


def test_a_path_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text(hand_results().to_json())
    assert read_baseline(str(path)).to_json() == hand_results().to_json()


def test_git_reads_the_committed_file_not_the_working_tree(repo: Path) -> None:
    got = read_baseline("git:main:baselines/nightly.json", cwd=repo / "baselines")
    assert got.to_json() == hand_results().to_json()
    # ./PATH is relative to the directory git runs in.
    got = read_baseline("git:HEAD:./nightly.json", cwd=repo / "baselines")
    assert got.to_json() == hand_results().to_json()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("git:nosuchref:baselines/nightly.json", "git show failed: .*nosuchref"),
        ("git:main:baselines/missing.json", "git show failed: .*missing.json"),
        ("git:main", "expected git:REF:PATH"),
        ("git::x.json", "expected git:REF:PATH"),
        ("git:--output=/tmp/pwned:x", "cannot start with '-'"),
    ],
)
def test_git_errors_name_the_baseline(repo: Path, spec: str, expected: str) -> None:
    with pytest.raises(ResultsError, match=expected) as info:
        read_baseline(spec, cwd=repo)
    assert str(info.value).startswith(spec)


def test_a_committed_file_that_is_not_results_is_a_results_error(repo: Path) -> None:
    (repo / "x.json").write_text('{"schema_version": "other"}')
    _git(repo, "add", "x.json")
    _git(repo, "commit", "-q", "-m", "x")
    with pytest.raises(ResultsError, match=r"git:HEAD:x.json: not a lens results file"):
        read_baseline("git:HEAD:x.json", cwd=repo)


def test_outside_a_repository_git_says_so(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="git show failed"):
        read_baseline("git:HEAD:x.json", cwd=tmp_path)

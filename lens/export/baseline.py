"""Reading a baseline results file: from a path, or from Git without a checkout.

``git:REF:PATH`` runs ``git show REF:PATH`` in the scenario's directory (any directory of
the repository will do), so a nightly job can compare with the baseline committed on
``origin/main`` while it has another branch checked out.  PATH is from the repository's
root, as ``git show`` takes it; ``git:REF:./PATH`` is relative to that directory.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from lens.errors import ResultsError
from lens.export.results import Results, load_results, results_from_text
from lens.plan.model import GIT_BASELINE_PREFIX

GIT_TIMEOUT_S = 30.0


def read_baseline(spec: str, *, cwd: Path | None = None) -> Results:
    """The results named by ``spec`` (a path, or ``git:REF:PATH``); ``ResultsError`` says
    why they cannot be read."""
    if not spec.startswith(GIT_BASELINE_PREFIX):
        return load_results(Path(spec))
    ref, sep, path = spec[len(GIT_BASELINE_PREFIX) :].partition(":")
    if not sep or not ref or not path:
        raise ResultsError(
            f"{spec}: expected git:REF:PATH, e.g. git:origin/main:baselines/nightly.json"
        )
    if ref.startswith("-"):
        # `git show --output=FILE...` would write a file: a ref is never an option.
        raise ResultsError(f"{spec}: a git ref cannot start with '-'")
    return results_from_text(_git_show(ref, path, cwd or Path.cwd(), spec), spec)


def _git_show(ref: str, path: str, cwd: Path, spec: str) -> str:
    git = shutil.which("git")
    if git is None:
        raise ResultsError(f"{spec}: git is not installed, so a git: baseline cannot be read")
    try:
        done = subprocess.run(
            [git, "show", f"{ref}:{path}"],
            cwd=cwd,
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (FileNotFoundError, NotADirectoryError):
        raise ResultsError(f"{spec}: {cwd} is not a directory") from None
    except subprocess.TimeoutExpired:
        raise ResultsError(f"{spec}: git show took more than {GIT_TIMEOUT_S:.0f} s") from None
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ResultsError(f"{spec}: git show failed: {said[-1] if said else done.returncode}")
    try:
        return done.stdout.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ResultsError(f"{spec}: not a JSON file: {exc}") from None

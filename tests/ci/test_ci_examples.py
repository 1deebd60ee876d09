"""The CI examples run: the shell of every step of ``examples/ci/*.yml`` that calls lens is
executed as the CI system would (bash, in a checkout-like folder, lens on PATH) against
the simulated server, night after night: the first night has no baseline and passes, a
second night of the same server is compared and passes, a night whose server got slower
fails the job.

The scenario is ``scenarios/nightly.yaml`` with its load shrunk (fewer, shorter
responses) so three nights take seconds; its SLAs and regression thresholds are the
shipped ones.  Steps that only fetch or upload artifacts (``gh``, ``curl``, upload
actions) are the CI system's business and are stood in for by copying files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "ci"
NIGHTLY = ROOT / "scenarios" / "nightly.yaml"


def _fast_nightly(ttft: str) -> str:
    doc: dict[str, Any] = yaml.safe_load(NIGHTLY.read_text(encoding="utf-8"))
    doc["providers"]["prod"].update({"ttft": ttft, "itl": "5ms", "output_tokens": 8})
    for stage in doc["load"]:
        if stage["id"] == "steady":
            stage.update({"rate": "20/s", "duration": "4s"})
    return yaml.safe_dump(doc, sort_keys=False)


def _checkout(tmp_path: Path, ttft: str = "180ms") -> Path:
    folder = tmp_path / "checkout"
    (folder / "scenarios").mkdir(parents=True, exist_ok=True)
    (folder / "scenarios" / "nightly.yaml").write_text(_fast_nightly(ttft), encoding="utf-8")
    return folder


def _bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    bin_dir = str(Path(sys.executable).parent)  # the venv's lens
    full = {**os.environ, **env, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _github_lens_steps() -> list[str]:
    workflow = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text(encoding="utf-8"))
    (job,) = workflow["jobs"].values()
    scripts = [s["run"] for s in job["steps"] if "run" in s]
    # Installing and fetching are the CI system's; the rest is what lens does.
    return [s for s in scripts if "pip install" not in s and "gh run" not in s]


def _gitlab_lens_script() -> str:
    pipeline = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text(encoding="utf-8"))
    lines = pipeline["lens-nightly"]["script"]
    kept = [line for line in lines if "pip install" not in line and "curl" not in line]
    return "\n".join(kept)


def test_the_examples_call_lens_as_the_readme_documents() -> None:
    steps = _github_lens_steps()
    assert any("lens run scenarios/nightly.yaml" in s and "--baseline" in s for s in steps)
    assert "lens run scenarios/nightly.yaml" in _gitlab_lens_script()


def test_github_actions_nights(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path)
    summary = tmp_path / "step-summary.md"
    env = {"GITHUB_STEP_SUMMARY": str(summary)}

    def night() -> list[subprocess.CompletedProcess[str]]:
        return [_bash(script, checkout, env) for script in _github_lens_steps()]

    # Night 1: no baseline yet; the results become the first one.
    (checkout / "baseline").mkdir()
    first = night()
    assert [r.returncode for r in first] == [0, 0], [r.stderr for r in first]
    assert "no baseline yet" in first[0].stdout
    results = checkout / "out" / "nightly.json"
    assert results.exists()
    assert "## lens: nightly" in summary.read_text(encoding="utf-8")

    # Night 2, same server: compared, nothing regressed (inconclusive passes with a
    # warning in this example).
    shutil.copy(results, checkout / "baseline" / "nightly.json")
    second = night()
    assert second[0].returncode == 0, second[0].stderr + second[0].stdout
    shown = summary.read_text("utf-8")
    assert "## lens compare: `baseline/nightly.json` → `this run`" in shown
    assert "OK: nothing regressed" in shown or "INCONCLUSIVE" in shown
    suites = ET.parse(checkout / "out" / "junit.xml").getroot().findall("testsuite")
    assert len(suites) == 2  # the SLAs and the comparison

    # Night 3: the server's TTFT went from 180 ms to 300 ms: the job fails.
    shutil.copy(results, checkout / "baseline" / "nightly.json")
    (checkout / "scenarios" / "nightly.yaml").write_text(_fast_nightly("300ms"), "utf-8")
    third = night()
    assert third[0].returncode == 1, third[0].stderr + third[0].stdout
    assert "REGRESSED: ttft.p50" in third[0].stdout
    failed = ET.parse(checkout / "out" / "junit.xml").getroot().iter("failure")
    assert any(f.get("type") == "Regression" for f in failed)


def test_gitlab_ci_nights(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path)
    script = _gitlab_lens_script()
    first = _bash(script, checkout, {})
    assert first.returncode == 0, first.stderr + first.stdout
    assert "no baseline yet" in first.stdout
    # The artifact of the last successful night, as GitLab serves it.
    shutil.copy(checkout / "out" / "nightly.json", checkout / "baseline" / "nightly.json")
    (checkout / "scenarios" / "nightly.yaml").write_text(_fast_nightly("300ms"), "utf-8")
    slower = _bash(script, checkout, {})
    assert slower.returncode == 1, slower.stderr + slower.stdout
    assert (checkout / "out" / "junit.xml").exists()
    assert "REGRESSED" in (checkout / "out" / "summary.md").read_text(encoding="utf-8")

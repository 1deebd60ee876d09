"""``lens run --baseline`` and the scenario's ``regression:`` block: the run compared with
a baseline in one step, the verdicts of both kinds in every output, and the exit code of
both judgements."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

import lens
from lens import exitcodes
from lens.cli import main

pytestmark = pytest.mark.slow

# 150 requests, 15 in flight: about 2 s a run; TTFT far above a loaded machine's noise.
LOAD = {"id": "c", "pattern": "concurrency", "concurrency": 15, "requests": 150}


def _scenario(ttft: str, seed: int, **extra: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "name": "gate",
        "providers": {
            "sim": {
                "type": "simulated",
                "ttft": ttft,
                "itl": "20ms",
                "output_tokens": 4,
                "jitter": 0.1,
                "seed": seed,
            }
        },
        "prompts": [{"id": "q", "messages": [{"role": "user", "content": "hello"}]}],
        "load": [LOAD],
        "sla": ["ttft.p50 < 2s"],
        "integrity": {"max_cpu": "100%", "max_loop_lag": "10s"},
        **extra,
    }


def _write(folder: Path, name: str, doc: dict[str, Any]) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("baseline") / "base.json"
    path.write_text(lens.run(_scenario("100ms", 1)).to_json())
    return path


def _outcomes(doc: dict[str, Any]) -> dict[str, str]:
    return {c["statistic"]: c["outcome"] for c in doc["regressions"]["checks"]}


def test_a_regression_fails_the_run_and_shows_everywhere(
    baseline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = _write(tmp_path, "s.yaml", _scenario("130ms", 2))
    out = tmp_path / "out.json"
    code = main(
        [
            "run", str(scenario), "-o", str(out), "--baseline", str(baseline),
            "--export", f"junit={tmp_path / 'j.xml'}", "--export", f"markdown={tmp_path / 'm.md'}",
        ]
    )  # fmt: skip
    console = capsys.readouterr().out
    assert code == exitcodes.REGRESSED  # the SLA passed: the regression alone fails the run
    doc = json.loads(out.read_text())
    assert doc["exit_code"] == exitcodes.REGRESSED
    assert [v["outcome"] for v in doc["verdicts"]] == ["pass"]
    assert _outcomes(doc)["ttft.p50"] == "regressed"
    assert doc["regressions"]["baseline"] == str(baseline)
    assert "REGRESSED: ttft.p50" in console
    assert "baseline: " in console.splitlines()[-1]
    suites = ET.parse(tmp_path / "j.xml").getroot().findall("testsuite")
    assert [s.get("name", "").split(":")[0] for s in suites] == ["lens SLA", "lens compare"]
    failed = [c.get("name") for c in suites[1].iter("testcase") if c.find("failure") is not None]
    assert "ttft.p50 [stage=c provider=sim]" in failed
    assert "REGRESSED: ttft.p50" in (tmp_path / "m.md").read_text()
    # Read back as it was written, comparison included.
    assert lens.load_results(out).to_json() == out.read_text()


def test_an_unchanged_server_passes_at_its_median_and_the_block_names_thresholds(
    baseline: Path, tmp_path: Path
) -> None:
    block = {"baseline": str(baseline), "thresholds": {"ttft.p50": "+25%"}}
    scenario = _write(tmp_path, "s.yaml", _scenario("100ms", 3, regression=block))
    out = tmp_path / "out.json"
    main(["run", str(scenario), "-o", str(out), "-q"])
    doc = json.loads(out.read_text())
    checks = {c["statistic"]: c for c in doc["regressions"]["checks"]}
    assert checks["ttft.p50"]["outcome"] == "unchanged"
    assert checks["ttft.p50"]["threshold"]["text"] == "+25%"
    assert checks["ttft.p95"]["threshold"]["text"] == "+10%"  # lens compare's default
    assert "regressed" not in _outcomes(doc).values()


def test_the_flag_replaces_the_blocks_baseline_and_a_relative_block_path_is_the_scenarios(
    baseline: Path, tmp_path: Path
) -> None:
    shutil.copy(baseline, tmp_path / "beside.json")
    scenario = _write(
        tmp_path, "s.yaml", _scenario("100ms", 4, regression={"baseline": "beside.json"})
    )
    out = tmp_path / "out.json"
    main(["run", str(scenario), "-o", str(out), "-q"])
    assert json.loads(out.read_text())["regressions"]["baseline"] == str(tmp_path / "beside.json")
    main(["run", str(scenario), "-o", str(out), "-q", "--baseline", str(baseline)])
    assert json.loads(out.read_text())["regressions"]["baseline"] == str(baseline)


def test_an_unreadable_baseline_fails_before_anything_is_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = _write(tmp_path, "s.yaml", _scenario("100ms", 5))
    out = tmp_path / "out.json"
    code = main(["run", str(scenario), "-o", str(out), "--baseline", str(tmp_path / "nope.json")])
    err = capsys.readouterr().err
    assert code == exitcodes.INPUT
    assert "nope.json: no such results file" in err
    assert not out.exists()


def test_nothing_in_common_with_the_baseline_is_a_warning_and_at_best_inconclusive(
    baseline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = _scenario("100ms", 6)
    doc["load"] = [{**LOAD, "id": "other"}]
    scenario = _write(tmp_path, "s.yaml", doc)
    out = tmp_path / "out.json"
    code = main(["run", str(scenario), "-o", str(out), "-q", "--baseline", str(baseline)])
    assert code == exitcodes.INCONCLUSIVE
    assert "warning: not compared with the baseline" in capsys.readouterr().err
    assert json.loads(out.read_text())["regressions"] is None


def test_the_library_takes_results_as_the_baseline(baseline: Path) -> None:
    base = lens.load_results(baseline)
    results = lens.run(_scenario("130ms", 7), baseline=base)
    assert results.regressions is not None
    assert results.exit_code == exitcodes.REGRESSED
    by_stat = {c.statistic: c.outcome for c in results.regressions.checks}
    assert by_stat["ttft.p50"] == "regressed"


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_a_git_baseline_is_read_from_the_commit(baseline: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "baselines").mkdir(parents=True)
    shutil.copy(baseline, repo / "baselines" / "nightly.json")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "baseline"], cwd=repo, check=True)
    (repo / "baselines" / "nightly.json").unlink()  # only the commit has it now
    block = {"baseline": "git:main:baselines/nightly.json"}
    scenario = _write(repo, "s.yaml", _scenario("100ms", 8, regression=block))
    out = tmp_path / "out.json"
    main(["run", str(scenario), "-o", str(out), "-q"])
    regressions = json.loads(out.read_text())["regressions"]
    assert regressions["baseline"] == "git:main:baselines/nightly.json"
    assert regressions["checks"]

"""``lens run --repeat N`` end to end against the simulated server: the repetitions run
interleaved, results carry each one, the pooled summary and the spread, and validate
against the schema; ``lens.run(repeat=N)`` does the same."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

import lens
from lens.cli import main
from lens.export.results import results_json_schema

SCENARIO = """\
version: 1
name: repeat-cli
providers:
  a: {type: simulated, ttft: 5ms, itl: 1ms, output_tokens: 4}
  b: {type: simulated, ttft: 8ms, itl: 1ms, output_tokens: 4}
prompts:
  - id: q
    messages: [{role: user, content: hi}]
load:
  - {id: steady, pattern: burst, requests: 3}
  - {id: probe, pattern: idle-probe, providers: [a], gaps: [0s]}
sla:
  - {assert: "ttft.p50 < 5s", stage: steady}
"""


def test_the_repeat_flag_repeats_every_stage_that_can(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    out = tmp_path / "r.json"
    assert main(["run", "--quiet", str(path), "--repeat", "2", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "stage 'probe' (idle-probe) runs once: --repeat 2 does not apply" in err
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, results_json_schema())
    assert [(w["stage"], w["provider"]) for w in doc["stages"]] == [
        ("steady#1", "a"), ("steady#1", "b"), ("steady#2", "a"), ("steady#2", "b"),
        ("probe", "a"),
    ]  # fmt: skip
    pooled = [s for s in doc["summaries"] if s.get("repeated")]
    assert [(s["stage"], s["provider"], s["requests"]) for s in pooled] == [
        ("steady", "a", 6),
        ("steady", "b", 6),
    ]
    assert [(v["stage"], v["outcome"]) for v in doc["verdicts"]] == [
        ("steady", "pass"),
        ("steady", "pass"),
    ]
    spread = doc["repetitions"][0]
    assert (spread["stage"], spread["count"], spread["stages"]) == (
        "steady",
        2,
        ["steady#1", "steady#2"],
    )
    assert spread["spread"]["ttft.p50"]["n"] == 2
    # Without the flag, nothing repeats and the results have no repetitions section.
    assert main(["run", "--quiet", str(path), "-o", str(out)]) == 0
    assert "repetitions" not in json.loads(out.read_text())


def test_the_repeat_flag_is_checked_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    with pytest.raises(SystemExit) as info:
        main(["run", str(path), "--repeat", "x"])
    assert info.value.code == 2
    assert "--repeat: takes a whole number from 1 to 100, not 'x'" in capsys.readouterr().err


def test_lens_run_takes_repeat(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    results = lens.run(path, repeat=3)
    assert [s.stage for s in results.summaries if s.provider == "b"] == [
        "steady#1",
        "steady#2",
        "steady#3",
        "steady",
    ]
    plan = lens.compile_plan(lens.load_scenario(path))
    with pytest.raises(ValueError, match="repeat= needs a scenario"):
        lens.run(plan, repeat=2)

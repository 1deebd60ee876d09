"""``lens recommend``: a real three-provider run on the simulated server, then the choice."""

from __future__ import annotations

import contextlib
import io
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from lens.cli import main
from lens.export.results import RecommendationOut, load_results

pytestmark = pytest.mark.slow

# Same tokens for all three; cheap_slow is 10x cheaper than mid_fast, dear_fast 5x dearer.
SCENARIO = """\
version: 1
name: choose
integrity: {max_cpu: 100%, max_loop_lag: 10s}  # judged even on a busy test machine
defaults: {max_tokens: 8}
providers:
  cheap_slow: {type: simulated, model: small, ttft: 300ms, itl: 1ms, output_tokens: 8,
               price: {input: 0.1, output: 0.2}}
  mid_fast: {type: simulated, model: medium, ttft: 30ms, itl: 1ms, output_tokens: 8,
             price: {input: 1, output: 2}}
  dear_fast: {type: simulated, model: large, ttft: 80ms, itl: 1ms, output_tokens: 8,
              price: {input: 5, output: 10}}
prompts:
  - id: q
    messages: [{role: user, content: "hello"}]
load:
  - {id: warm, pattern: burst, requests: 2}
  - {id: main, pattern: concurrency, concurrency: 10, requests: 20}
sla:
  - {assert: "ttft.p95 < 150ms", stage: main}
"""


@dataclass(frozen=True)
class Run:
    results: Path
    table: str
    code: int


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    tmp = tmp_path_factory.mktemp("recommend")
    scenario, results = tmp / "s.yaml", tmp / "r.json"
    scenario.write_text(SCENARIO)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", "--quiet", "--format", "table", str(scenario), "-o", str(results)])
    return Run(results, out.getvalue(), code)


def recommend_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, RecommendationOut]:
    code = main(["recommend", *args, "--json"])
    return code, RecommendationOut.model_validate_json(capsys.readouterr().out)


def test_acceptance_mid_fast_is_the_cheapest_meeting_the_sla(
    run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run.code == 1  # cheap_slow failed the SLA
    code, rec = recommend_json(capsys, str(run.results))
    assert code == 0
    assert rec.best == "mid_fast"
    ranked = [(c.rank, c.provider, c.model) for c in rec.candidates]
    assert ranked == [
        (1, "mid_fast", "medium"),
        (2, "dear_fast", "large"),
        (None, "cheap_slow", "small"),
    ]
    slow = rec.candidates[2]
    assert not slow.eligible
    (why,) = slow.excluded_because
    assert (why.sla, why.stage, why.outcome) == ("ttft.p95 < 150ms", "main", "fail")
    assert why.reason.startswith("ttft.p95 = ")
    assert slow.sla_conforming == 2  # warm is not under the SLA; main's 300 ms are not
    assert {c.provider for c in rec.candidates if c.pareto} == {"cheap_slow", "mid_fast"}
    mid, dear = rec.candidates[0], rec.candidates[1]
    assert mid.requests == 22
    assert mid.sla_conforming >= 20  # a 30 ms TTFT: a 150 ms one would be a stall
    assert mid.per_1m_output_tokens_usd is not None
    assert dear.per_1m_output_tokens_usd is not None
    per_token = Decimal(dear.per_1m_output_tokens_usd) / Decimal(mid.per_1m_output_tokens_usd)
    assert per_token == 5  # the same tokens at 5x the price
    # the section stored in the results says the same
    assert load_results(run.results).recommendation == rec


def test_run_table_ends_with_the_recommendation(run: Run) -> None:
    assert "recommendation: mid_fast (medium)" in run.table
    assert re.search(r"\n  then dear_fast: \$0\.0000\d+ \((4\.\d|5\.\d)x\)\n", run.table)
    assert "excluded cheap_slow: ttft.p95 < 150ms (fail)" in run.table


def test_recommend_prints_a_table_and_the_excluded(
    run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["recommend", str(run.results)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("recommended: mid_fast (medium), the cheapest per SLA-conforming")
    lines = out.splitlines()
    rows = [line.split() for line in lines if line.split()[:1] in (["1"], ["2"], ["-"])]
    assert [r[:3] for r in rows] == [
        ["1", "mid_fast", "medium"],
        ["2", "dear_fast", "large"],
        ["-", "cheap_slow", "small"],
    ]
    assert [r[-1] == "*" for r in rows] == [True, False, True]
    assert rows[0][6].endswith("/22")
    assert rows[2][6] == "2/22"
    assert "excluded:" in lines
    assert "    ttft.p95 < 150ms [stage main] fail: ttft.p95 = " in out


def test_sla_override_rejudges_and_changes_the_winner(
    run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    code, rec = recommend_json(capsys, str(run.results), "--sla", "ttft.max < 1s")
    assert code == 0
    assert [c.provider for c in rec.candidates] == ["cheap_slow", "mid_fast", "dear_fast"]
    assert all(c.sla_conforming == 22 for c in rec.candidates)
    # stricter than the run's SLA, per request: only the fast ones conform, and ...
    code, rec = recommend_json(
        capsys, str(run.results), "--sla", "ttft.p50 < 150ms", "--sla", "e2e.max < 10s"
    )
    assert code == 0
    assert [c.rank for c in rec.candidates] == [1, 2, None]
    assert rec.candidates[2].provider == "cheap_slow"
    assert rec.candidates[2].sla_conforming == 0
    # ... nobody makes a 1 ms TTFT
    code, rec = recommend_json(capsys, str(run.results), "--sla", "ttft.p50 < 1ms")
    assert code == 1
    assert rec.best is None


def test_stage_filter(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    # the SLA only judges the main stage: on warm alone, the cheapest wins
    code, rec = recommend_json(capsys, str(run.results), "--stage", "warm")
    assert code == 0
    assert rec.stages == ("warm",)
    assert rec.best == "cheap_slow"
    assert all(c.stages == ("warm",) and c.requests == 2 for c in rec.candidates)
    assert main(["recommend", str(run.results), "--stage", "warm"]) == 0
    assert "recommended (stages: warm): cheap_slow (small)" in capsys.readouterr().out


def test_bad_input_exits_2_with_a_clear_message(
    run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["recommend", str(tmp_path / "missing.json")]) == 2
    assert "no such results file" in capsys.readouterr().err
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO)
    assert main(["recommend", str(scenario)]) == 2
    assert "not JSON" in capsys.readouterr().err
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": "world"}))
    assert main(["recommend", str(other)]) == 2
    assert "not a lens results file (schema_version None" in capsys.readouterr().err
    assert main(["recommend", str(run.results), "--sla", "ttft.p95 < fast"]) == 2
    err = capsys.readouterr().err
    assert "cannot parse SLA 'ttft.p95 < fast'" in err
    assert "Traceback" not in err
    assert main(["recommend", str(run.results), "--sla", "tfft.p95 < 1s"]) == 2
    assert "did you mean 'ttft'" in capsys.readouterr().err
    assert main(["recommend", str(run.results), "--stage", "nope"]) == 2
    assert "no stage nope in the results; stages: warm, main" in capsys.readouterr().err

"""``lens compare`` on runs of the simulated server: the four situations (TTFT unchanged,
+30 %, -30 %, +5 % on few samples), formats, exports, filters and bad input."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

import lens
from lens import exitcodes
from lens.cli import main
from lens.export.results import Results

pytestmark = pytest.mark.slow

# 200 requests, 20 in flight: ~2 s per run.  The ITL is long and the jitter small so a
# loaded test machine's scheduling noise stays small against them.  Even so, a starved
# client (another process hogging the CPU) really measures a worse tail: the assertions on
# real runs are on the median, which such hiccups leave alone, and on what must never
# happen (an unchanged server called regressed at its median).  Tails are tested on
# synthetic samples in tests/metrics/test_compare.py.
BIG = {"id": "c", "pattern": "concurrency", "concurrency": 20, "requests": 200}
FEW = {"id": "c", "pattern": "concurrency", "concurrency": 4, "requests": 12}


def _scenario(ttft: str, seed: int, load: dict[str, Any], jitter: float = 0.1) -> dict[str, Any]:
    return {
        "version": 1,
        "name": "compare",
        "providers": {
            "sim": {
                "type": "simulated",
                "ttft": ttft,
                "itl": "20ms",
                "output_tokens": 4,
                "jitter": jitter,
                "seed": seed,
                "price": {"input": 0.15, "output": 3},
            }
        },
        "prompts": [{"id": "q", "messages": [{"role": "user", "content": "hello"}]}],
        "load": [load],
        "integrity": {"max_cpu": "100%", "max_loop_lag": "10s"},
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("compare")
    plans = {
        "base": _scenario("100ms", 1, BIG),
        "same": _scenario("100ms", 2, BIG),
        "slower": _scenario("130ms", 3, BIG),
        "faster": _scenario("70ms", 4, BIG),
        "few_base": _scenario("100ms", 5, FEW, jitter=0.2),
        "few_plus5": _scenario("105ms", 6, FEW, jitter=0.2),
    }
    paths = {}
    for name, doc in plans.items():
        path = folder / f"{name}.json"
        path.write_text(lens.run(doc).to_json())
        paths[name] = path
    return paths


def _compare(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(["compare", *argv, "--format", "json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def _outcomes(doc: dict[str, Any]) -> dict[str, str]:
    return {c["statistic"]: c["outcome"] for c in doc["checks"]}


# --- the four situations -------------------------------------------------------------------


def test_ttft_unchanged(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, doc = _compare(capsys, str(runs["base"]), str(runs["same"]))
    found = _outcomes(doc)
    assert found["ttft.p50"] == "unchanged"
    assert found["error_rate"] == found["cost.mean"] == "unchanged"


def test_ttft_30_percent_worse_regressed(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc = _compare(capsys, str(runs["base"]), str(runs["slower"]))
    found = _outcomes(doc)
    assert found["ttft.p50"] == "regressed"
    check = next(c for c in doc["checks"] if c["statistic"] == "ttft.p50")
    assert 0.2 < check["relative_change"] < 0.4
    assert check["relative_interval"][0] > 0.10
    assert code == exitcodes.REGRESSED


def test_ttft_30_percent_better_improved(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, doc = _compare(capsys, str(runs["base"]), str(runs["faster"]))
    found = _outcomes(doc)
    assert found["ttft.p50"] == "improved"
    check = next(c for c in doc["checks"] if c["statistic"] == "ttft.p50")
    assert -0.4 < check["relative_change"] < -0.2


def test_five_percent_on_few_samples_is_inconclusive(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc = _compare(capsys, str(runs["few_base"]), str(runs["few_plus5"]))
    found = _outcomes(doc)
    assert found["ttft.p95"] == "inconclusive"
    p95 = next(c for c in doc["checks"] if c["statistic"] == "ttft.p95")
    assert p95["reason"] == "p95 needs >= 20 samples, the baseline has 12"
    assert found["ttft.p50"] == "inconclusive"
    assert "regressed" not in found.values()
    assert code == exitcodes.COMPARE_INCONCLUSIVE


def test_a_run_compared_with_itself_is_unchanged(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # Deterministic (the same file, a seeded bootstrap), though the run's own tail may be
    # too ragged to bound: then inconclusive, never anything else.
    code, doc = _compare(capsys, str(runs["base"]), str(runs["base"]))
    found = _outcomes(doc)
    assert set(found.values()) <= {"unchanged", "inconclusive"}, doc["checks"]
    assert found["ttft.p50"] == found["itl.p50"] == found["error_rate"] == "unchanged"
    assert [c["statistic"] for c in doc["checks"]] == [
        "ttft.p50",
        "ttft.p95",
        "itl.p50",
        "itl.p95",
        "e2e.p95",
        "output_tokens_per_s.p50",
        "error_rate",
        "cost.mean",
    ]
    assert code == (exitcodes.OK if set(found.values()) == {"unchanged"} else 3)


# --- thresholds ----------------------------------------------------------------------------


def test_thresholds_in_both_units(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base, slower = str(runs["base"]), str(runs["slower"])
    # +30 ms of TTFT: within a 100 ms threshold, beyond a 10 ms one; beyond 10 %, within 60 %.
    _, loose = _compare(capsys, base, slower, "--threshold", "ttft.p50=+100ms")
    _, tight = _compare(capsys, base, slower, "--threshold", "ttft.p50=+10ms")
    _, wide = _compare(capsys, base, slower, "--threshold", "ttft.p50=+60%")
    assert _outcomes(loose)["ttft.p50"] == "unchanged"
    assert _outcomes(tight)["ttft.p50"] == "regressed"
    assert _outcomes(wide)["ttft.p50"] == "unchanged"
    check = next(c for c in loose["checks"] if c["statistic"] == "ttft.p50")
    assert check["threshold"] == {"text": "+100ms", "value": 100.0, "relative": False}
    # A statistic not compared by default joins the checks when given a threshold.
    _, more = _compare(capsys, base, slower, "--threshold", "ttfb.p90=+20%")
    assert "ttfb.p90" in _outcomes(more)


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("ttft.p95", "expected METRIC.STAT=CHANGE"),
        ("ttft.p95=+5/s", "ttft is a time: use ms, s or m"),
        ("tftt.p95=+10%", "did you mean 'ttft'"),
    ],
)
def test_a_bad_threshold_is_bad_input(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str], flag: str, message: str
) -> None:
    code = main(["compare", str(runs["base"]), str(runs["same"]), "--threshold", flag])
    err = capsys.readouterr().err
    assert code == exitcodes.INPUT
    assert message in err
    assert "Traceback" not in err


# --- filters and what is only on one side --------------------------------------------------


def _with_extra_stage(results: Results, stage: str) -> Results:
    """``results`` plus a copy of its stage under another id."""
    summaries = results.summaries + tuple(
        s.model_copy(update={"stage": stage}) for s in results.summaries
    )
    records = results.records + tuple(
        r.model_copy(update={"stage": stage}) for r in results.records
    )
    return results.model_copy(update={"summaries": summaries, "records": records})


def test_only_in_one_side_and_filters(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    base = lens.load_results(runs["base"])
    two = tmp_path / "two.json"
    two.write_text(_with_extra_stage(base, "extra").to_json())
    code, doc = _compare(capsys, str(runs["base"]), str(two))
    assert doc["only_in_current"] == ["extra/sim"]
    assert {c["stage"] for c in doc["checks"]} == {"c"}
    assert code == exitcodes.OK
    main(["compare", str(runs["base"]), str(two)])
    assert "only in current (not compared): extra/sim" in capsys.readouterr().out

    # Both have both stages: --stage narrows the checks to one.
    _, both = _compare(capsys, str(two), str(two))
    assert {c["stage"] for c in both["checks"]} == {"c", "extra"}
    _, one = _compare(capsys, str(two), str(two), "--stage", "extra", "--provider", "sim")
    assert {(c["stage"], c["provider"]) for c in one["checks"]} == {("extra", "sim")}

    code = main(["compare", str(two), str(two), "--stage", "nope"])
    assert code == exitcodes.INPUT
    assert "--stage nope: in neither results file; stages: c, extra" in capsys.readouterr().err


def test_nothing_comparable_is_bad_input(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    base = lens.load_results(runs["base"])
    other = base.model_copy(
        update={
            "summaries": tuple(s.model_copy(update={"stage": "z"}) for s in base.summaries),
            "records": tuple(r.model_copy(update={"stage": "z"}) for r in base.records),
        }
    )
    path = tmp_path / "other.json"
    path.write_text(other.to_json())
    code = main(["compare", str(runs["base"]), str(path)])
    err = capsys.readouterr().err
    assert code == exitcodes.INPUT
    assert "nothing to compare: no stage/provider is in both results" in err
    assert "c/sim" in err
    assert "z/sim" in err


def test_unreadable_or_foreign_files_are_bad_input(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "missing.json"
    assert main(["compare", str(missing), str(runs["base"])]) == exitcodes.INPUT
    assert "no such results file" in capsys.readouterr().err
    future = tmp_path / "v2.json"
    doc = json.loads(runs["base"].read_text())
    doc["schema_version"] = "lens.results/v2"
    future.write_text(json.dumps(doc))
    assert main(["compare", str(runs["base"]), str(future)]) == exitcodes.INPUT
    assert "schema_version 'lens.results/v2'" in capsys.readouterr().err


# --- without records -----------------------------------------------------------------------


def test_results_without_records_compare_from_summaries(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bare = {}
    for name in ("base", "slower"):
        results = lens.load_results(runs[name]).model_copy(update={"records": ()})
        bare[name] = tmp_path / f"{name}.json"
        bare[name].write_text(results.to_json())
    code, doc = _compare(capsys, str(bare["base"]), str(bare["slower"]))
    p50 = next(c for c in doc["checks"] if c["statistic"] == "ttft.p50")
    assert p50["method"] == "summary order statistics"
    assert p50["outcome"] == "regressed"
    assert any("holds no per-request records" in n for n in doc["notes"])
    assert code == exitcodes.REGRESSED


# --- formats and exports -------------------------------------------------------------------


def test_formats_and_exports(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    base, slower = str(runs["base"]), str(runs["slower"])
    junit, md, js = tmp_path / "c.xml", tmp_path / "summary.md", tmp_path / "c.json"
    md.write_text("earlier step\n")
    exports = [f"junit={junit}", f"markdown={md}", f"json={js}"]
    code = main(["compare", base, slower, *(a for e in exports for a in ("--export", e))])
    table = capsys.readouterr().out
    assert code == exitcodes.REGRESSED
    assert table.splitlines()[1].startswith("REGRESSED: ttft.p50 +")
    assert "95% CI" in table
    assert "$0.0000" in table  # cost.mean in dollars with significant digits
    assert "0.00 " not in table

    markdown = md.read_text()
    assert markdown.startswith("earlier step\n## lens compare:")  # appended
    assert "**REGRESSED: ttft.p50" in markdown
    assert "### c / sim" in markdown
    assert "| ttft.p50" in markdown

    doc = json.loads(js.read_text())
    assert doc["exit_code"] == exitcodes.REGRESSED
    assert doc["counts"]["regressed"] >= 1  # ttft.p50; others (p99, e2e) depend on the load

    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == len(doc["checks"])
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert "ttft.p50 [stage=c provider=sim]" in failed
    assert suite.get("failures") == str(doc["counts"]["regressed"])
    assert suite.get("skipped") == str(doc["counts"]["inconclusive"])

    code = main(["compare", base, slower, "--format", "markdown"])
    assert capsys.readouterr().out.count("### c / sim") == 1


def test_an_export_kind_compare_cannot_write(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["compare", str(runs["base"]), str(runs["same"]), "--export", "csv=x.csv"])
    assert code == exitcodes.INPUT
    assert "lens compare writes junit=FILE, markdown=FILE, json=FILE" in capsys.readouterr().err


def test_an_export_that_cannot_be_written(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    target = f"junit={blocker}/c.xml"  # a folder that is a file
    code = main(["compare", str(runs["base"]), str(runs["base"]), "--export", target])
    assert code == exitcodes.EXPORT_FAILED
    assert f"error: junit={blocker}/c.xml:" in capsys.readouterr().err
    # A regression is the news: it wins over the failed export, as in lens run.
    code = main(["compare", str(runs["base"]), str(runs["slower"]), "--export", target])
    assert code == exitcodes.REGRESSED


def test_the_library_call_is_the_command(runs: dict[str, Path]) -> None:
    base, slower = lens.load_results(runs["base"]), lens.load_results(runs["slower"])
    by_dict = lens.compare(base, slower, thresholds={"ttft.p50": "+10ms"}, stages=["c"])
    by_list = lens.compare(runs["base"], runs["slower"], thresholds=["ttft.p50=+10ms"])
    assert isinstance(by_dict, lens.Comparison)
    assert by_dict.checks == by_list.checks
    assert by_dict.exit_code == exitcodes.REGRESSED
    assert (by_list.baseline, by_dict.baseline) == (str(runs["base"]), "baseline")

"""The public surface of ``import lens``: names, loading, results, and every error where
the API documents it."""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest
import yaml

import lens
from lens import exitcodes
from lens.cli import main
from lens.errors import InputError
from lens.plan.model import OpenLoop
from tests.export._results import rich_results

from .conftest import scenario

PUBLIC = [
    "Comparison",
    "ExportError",
    "LensError",
    "Plan",
    "PlanError",
    "ProviderError",
    "RequestRecord",
    "Results",
    "ResultsError",
    "Scenario",
    "ScenarioError",
    "__version__",
    "compare",
    "compile_plan",
    "describe_plan",
    "estimate",
    "export",
    "load_results",
    "load_scenario",
    "merge",
    "recommend",
    "report",
    "run",
    "run_async",
]
FUNCTIONS = [name for name in PUBLIC if name[0].islower() and name != "__version__"]
ERRORS = ["ScenarioError", "PlanError", "ProviderError", "ExportError", "ResultsError"]


def test_the_public_names_are_pinned_and_documented() -> None:
    assert lens.__all__ == PUBLIC
    for name in PUBLIC:
        assert getattr(lens, name) is not None, name
    api = importlib.import_module("lens.api")
    for name in FUNCTIONS:
        fn = getattr(api, name)
        assert inspect.getdoc(fn), f"lens.{name} has no docstring"
    for name in ERRORS:
        assert issubclass(getattr(lens, name), lens.LensError)
        assert inspect.getdoc(getattr(lens, name))


def test_run_and_export_stay_functions_although_subpackages_share_their_names() -> None:
    import lens.export.results  # noqa: PLC0415
    import lens.run.session  # noqa: PLC0415

    assert inspect.isfunction(lens.run)
    assert inspect.isfunction(lens.export)
    assert lens.run.__name__ == "run"


def test_import_lens_stays_cheap() -> None:
    # The simulated server imports parts of lens in every run's child process.
    heavy = "('pydantic', 'lens.api', 'httpx')"
    code = f"import lens, sys; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- load_scenario ---------------------------------------------------------------------------


def test_a_scenario_from_a_path_text_or_dict(tmp_path: Path) -> None:
    doc = scenario()
    text = yaml.safe_dump(doc, sort_keys=False)
    path = tmp_path / "s.yaml"
    path.write_text(text)
    for source in (path, str(path), text, doc):
        loaded = lens.load_scenario(source)
        assert isinstance(loaded, lens.Scenario)
        assert loaded.name == "tiny"


def test_scenario_errors_are_positioned_as_in_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "version: 1\nname: x\nproviders:\n  sim: {type: simulated, ttft: soon}\n"
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(lens.ScenarioError) as from_file:
        lens.load_scenario(str(path))
    assert main(["validate", str(path)]) == exitcodes.INPUT
    cli_lines = capsys.readouterr().err.splitlines()
    assert [f"error: {p}" for p in from_file.value.problems] == cli_lines
    ttft = next(p for p in from_file.value.problems if p.path == "providers.sim.ttft")
    assert ttft.pos is not None
    assert (ttft.pos.file, ttft.pos.line, ttft.pos.col) == (str(path), 4, 32)

    with pytest.raises(lens.ScenarioError) as from_text:
        lens.load_scenario(text)
    assert [str(p).replace("<scenario>", str(path)) for p in from_text.value.problems] == [
        str(p) for p in from_file.value.problems
    ]


def test_a_dict_scenario_names_fields_not_positions() -> None:
    bad = scenario()
    bad["providers"]["sim"]["ttft"] = "soon"
    with pytest.raises(lens.ScenarioError) as caught:
        lens.load_scenario(bad)
    (problem,) = caught.value.problems
    assert (problem.pos, problem.path) == (None, "providers.sim.ttft")
    assert str(problem).startswith("providers.sim.ttft: expected a duration")
    with pytest.raises(lens.ScenarioError, match="plain data"):
        lens.load_scenario({**scenario(), "name": object()})


def test_a_str_without_a_line_break_is_a_path() -> None:
    with pytest.raises(lens.ScenarioError, match="no such scenario file"):
        lens.load_scenario("scenarios/quickstrt.yaml")
    with pytest.raises(TypeError):
        lens.load_scenario(42)  # type: ignore[arg-type]


# --- compile_plan ----------------------------------------------------------------------------


def test_a_plan_is_inspectable_before_anything_is_sent() -> None:
    doc = scenario(
        load=[{"id": "paced", "pattern": "constant-rate", "rate": "10/s", "duration": "1s"}]
    )
    doc["providers"]["sim"]["price"] = {"input": 1, "output": 2}
    plan = lens.compile_plan(lens.load_scenario(doc))
    (unit,) = plan.stages
    assert isinstance(unit.load, OpenLoop)
    assert len(unit.load.arrivals.offsets_s) == 10
    assert plan.providers["sim"].price is not None
    estimate = lens.estimate(plan)
    assert estimate["complete"] is True
    assert estimate["total_usd"] is not None
    described = lens.describe_plan(plan, arrivals=True)
    assert described["cost_estimate"] == estimate
    assert described["stages"][0]["arrival_offsets_s"][:2] == [0.0, 0.1]


def test_describe_plan_masks_secrets() -> None:
    doc = scenario()
    doc["providers"] = {
        "remote": {
            "type": "openai-compatible",
            "base_url": "http://127.0.0.1:9/v1",
            "model": "m",
            "api_key": "sk-test-0123456789",
        }
    }
    plan = lens.compile_plan(lens.load_scenario(doc))
    assert "sk-test-0123456789" not in json.dumps(lens.describe_plan(plan))


def test_plan_errors_name_the_field() -> None:
    doc = scenario(load=[{"id": "b", "pattern": "burst", "requests": 1, "providers": ["nope"]}])
    with pytest.raises(lens.PlanError) as caught:
        lens.compile_plan(lens.load_scenario(doc))
    (problem,) = caught.value.problems
    assert problem.path == "load[0].providers[0]"
    assert "unknown provider 'nope'" in problem.message


def test_a_provider_that_cannot_be_called_fails_before_anything_is_sent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    doc = scenario(sla=[])
    doc["providers"] = {
        "br": {
            "type": "bedrock",
            "model": "anthropic.claude-3-haiku",
            "region": "us-east-1",
            "profile": "no-such-profile",
            "price": {"input": 1, "output": 1},
        }
    }
    with pytest.raises(lens.ProviderError, match="no-such-profile"):
        lens.run(doc)


# --- results ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def results() -> lens.Results:
    doc = scenario()
    doc["providers"]["sim"]["price"] = {"input": 1, "output": 2}  # recommend needs prices
    return lens.run(doc)


def test_results_round_trip_exactly(results: lens.Results, tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(results.to_json())
    again = lens.load_results(path)
    assert again == results
    assert again.to_json() == results.to_json()
    assert lens.load_results(str(path)) == results


@pytest.mark.parametrize("overloaded", [False, True])
def test_rich_results_round_trip_exactly(overloaded: bool, tmp_path: Path) -> None:
    rich = rich_results(overloaded=overloaded)  # costs, integrity, phases, ...
    path = tmp_path / "rich.json"
    path.write_text(rich.to_json())
    assert lens.load_results(path) == rich


def test_results_are_frozen(results: lens.Results) -> None:
    with pytest.raises(ValueError, match="frozen"):
        results.exit_code = 1
    with pytest.raises(FrozenInstanceError):
        results.verdicts[0].outcome = "fail"  # type: ignore[misc]


def test_the_cli_writes_what_to_json_returns(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(scenario(), sort_keys=False))
    out = tmp_path / "cli.json"
    assert main(["run", str(path), "-o", str(out), "-q"]) == exitcodes.OK
    assert lens.load_results(out).to_json() == out.read_text()


def test_a_summary_that_is_not_there_is_a_results_error(results: lens.Results) -> None:
    with pytest.raises(lens.ResultsError, match=r"no summary for stage='zz'.*hold: b/sim"):
        results.summary(stage="zz")
    with pytest.raises(lens.ResultsError, match="no summary"):
        results.summary(phase="warmup")


def test_unreadable_results_are_results_errors(tmp_path: Path) -> None:
    with pytest.raises(lens.ResultsError, match="no such results file"):
        lens.load_results(tmp_path / "missing.json")
    foreign = tmp_path / "foreign.json"
    foreign.write_text('{"schema_version": "other/v9"}')
    with pytest.raises(lens.ResultsError, match="not a lens results file"):
        lens.load_results(foreign)
    assert issubclass(lens.ResultsError, InputError)  # the CLI: exit 2, as before


def test_recommend(results: lens.Results) -> None:
    assert lens.recommend(results).best == "sim"
    assert lens.recommend(results, "ttft.p50 < 1ms").best is None
    strict = lens.recommend(results, ["error_rate < 1%", "ttft.p50 < 1ms"], stages=["b"])
    assert strict.best is None
    assert strict.candidates[0].excluded_because
    with pytest.raises(lens.ScenarioError, match="ttft"):
        lens.recommend(results, "ttft.p95 <")
    with pytest.raises(lens.ResultsError, match="no stage zz"):
        lens.recommend(results, stages=["zz"])


# --- export ----------------------------------------------------------------------------------


def test_export_writes_and_raises_on_failure(results: lens.Results, tmp_path: Path) -> None:
    dest = tmp_path / "r.csv"
    lens.export(results, f"csv={dest}", f"junit={tmp_path / 'j.xml'}")
    assert dest.exists()
    assert (tmp_path / "j.xml").exists()
    with pytest.raises(lens.ExportError) as caught:
        lens.export(results, f"csv={tmp_path}", f"junit={tmp_path / 'k.xml'}")
    (failure,) = caught.value.failures  # the other export still ran
    assert failure.startswith("export csv to ")
    assert (tmp_path / "k.xml").exists()
    with pytest.raises(lens.ExportError, match="exporters: "):
        lens.export(results, "nope=somewhere")


def test_an_export_target_reads_the_environment(results: lens.Results, tmp_path: Path) -> None:
    lens.export(results, "csv=${OUT}/e.csv", env={"OUT": str(tmp_path)})
    assert (tmp_path / "e.csv").exists()


def test_run_exports_and_keeps_the_results_when_an_export_fails(tmp_path: Path) -> None:
    dest = tmp_path / "run.csv"
    ran = lens.run(scenario(), exporters=[f"csv={dest}"])
    assert dest.exists()
    assert ran.exit_code == exitcodes.OK
    with pytest.raises(lens.ExportError) as caught:
        lens.run(scenario(), exporters=[f"csv={tmp_path}"])
    assert caught.value.results is not None
    assert len(caught.value.results.records) == 6
    with pytest.raises(lens.ExportError, match="exporters: "):  # before anything is sent
        lens.run(scenario(), exporters=["csv"])


def test_report_writes_html(results: lens.Results, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    written = lens.report(results, tmp_path / "r.html")
    assert written.read_text().startswith("<!DOCTYPE html>")

"""``lens run --export``, ``lens export`` and the scenario's ``export:`` block."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import httpx
import pytest

from lens.cli import main
from lens.errors import ScenarioError
from lens.export.results import write_results
from lens.plan.compile import compile_plan
from lens.plan.describe import plan_to_dict
from lens.scenario import parse_scenario
from tests.export._results import hand_results
from tests.export.servers import Server, create_database, free_port, influx_query

SCENARIO = """\
version: 1
name: exports
providers:
  sim: {type: simulated, ttft: 5ms, itl: 1ms, output_tokens: 4}
prompts:
  - id: q
    messages: [{role: user, content: hi}]
load:
  - {id: b, pattern: burst, requests: 3}
sla:
  - error_rate < 1%
"""
# What the tests that run it add: judged even when a busy test machine starves the client.
RUN_SCENARIO = SCENARIO + "integrity: {max_cpu: 100%, max_loop_lag: 10s}\n"


def test_export_re_exports_a_saved_results_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "r.json"
    write_results(hand_results(), saved)
    csv_dest, xml_dest = tmp_path / "r.csv", tmp_path / "sla.xml"
    # The saved run failed an SLA (exit_code 1); export's own exit code says it exported.
    assert main(["export", str(saved), "--to", f"csv={csv_dest}", "--to", f"junit={xml_dest}"]) == 0
    with csv_dest.open(newline="") as f:
        assert len(list(csv.reader(f))) == 6  # header + 5 requests
    assert xml_dest.exists()
    assert capsys.readouterr().err == ""


def test_a_failed_export_exits_4_and_leaves_the_results_file_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    results = hand_results().model_copy(update={"exit_code": 3})
    saved = tmp_path / "r.json"
    write_results(results, saved)
    before = saved.read_bytes()
    monkeypatch.setenv("LENS_TEST_TOKEN", "s3cr3t-token")
    dest = f"http://127.0.0.1:{free_port()}/write?db=x&token=${{LENS_TEST_TOKEN}}"
    code = main(
        ["export", str(saved), "--to", f"influx={dest}", "--to", f"csv={tmp_path / 'ok.csv'}"]
    )
    assert code == 4
    err = capsys.readouterr().err
    assert err.startswith(
        f"error: export influx to http://127.0.0.1:{dest.split(':')[2].split('/', maxsplit=1)[0]}"
        "/write?db=x&token=***: ConnectError"
    )
    assert "s3cr3t-token" not in err
    assert saved.read_bytes() == before
    assert (tmp_path / "ok.csv").exists()


def test_export_exit_codes_tell_a_failed_export_from_a_failed_sla(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "r.json"
    write_results(hand_results(), saved)  # exit_code 1: an SLA failed
    blocker = tmp_path / "f"
    blocker.write_text("")
    assert main(["export", str(saved), "--to", f"junit={blocker}/x.xml"]) == 4
    assert "error: export junit to" in capsys.readouterr().err
    # Asked to repeat the saved verdict, export answers as lens run would: 1 wins over 4.
    failing = ["export", str(saved), "--to", f"junit={blocker}/x.xml", "--exit-code-from-results"]
    assert main(failing) == 1
    ok = ["export", str(saved), "--to", f"csv={tmp_path / 'ok.csv'}", "--exit-code-from-results"]
    assert main(ok) == 1
    capsys.readouterr()


def test_help_lists_every_export_kind(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("run", "export"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        for kind in ("csv=", "prometheus=", "influx=", "junit=", "markdown=", "html="):
            assert kind in out, (command, kind)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such results file"),
        ("{not json", "not JSON"),
        ('{"schema_version": "lens.results/v1"}', "not a lens results file"),
    ],
)
def test_a_bad_results_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    assert main(["export", str(path), "--to", f"csv={tmp_path / 'x.csv'}"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("cvs=x.csv", "--export: unknown export kind 'cvs' (did you mean 'csv'?)"),
        (
            "csv=${LENS_UNSET_VARIABLE}",
            "--export: environment variable LENS_UNSET_VARIABLE is not set",
        ),
    ],
)
def test_bad_export_flags_fail_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str, message: str
) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(RUN_SCENARIO)
    assert main(["run", "-q", str(scenario), "--export", spec]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_run_exports_from_flags_and_the_scenario(
    tmp_path: Path, pushgateway: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(RUN_SCENARIO + f"export:\n  - junit={tmp_path}/sla.xml\n")
    out = tmp_path / "r.json"
    prom = f"prometheus={pushgateway.url}?job=lens-run"
    code = main(["run", "-q", str(scenario), "-o", str(out), "--export", prom])
    assert code == 0, capsys.readouterr().err
    assert json.loads(out.read_text())["plan"]["export"][0]["kind"] == "junit"
    assert (tmp_path / "sla.xml").exists()
    metrics = httpx.get(f"{pushgateway.url}/metrics").text
    assert (
        'lens_requests_total{instance="",job="lens-run",model="lens-sim",provider="sim",' in metrics
    )
    assert 'scenario="exports",stage="b"} 3' in metrics


@pytest.mark.slow
def test_a_failed_export_after_a_run_exits_4_with_results_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(RUN_SCENARIO)
    out = tmp_path / "r.json"
    dest = f"influx=http://127.0.0.1:{free_port()}/write?db=x"
    assert main(["run", "-q", str(scenario), "-o", str(out), "--export", dest]) == 4
    assert json.loads(out.read_text())["exit_code"] == 0
    assert "error: export influx to" in capsys.readouterr().err


def test_scenario_exports_are_checked_with_positions() -> None:
    text = SCENARIO + "export:\n  - csv=out.csv\n  - promethus=http://h:9091\n"
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, file="s.yaml")
    (problem,) = info.value.problems
    assert str(problem).startswith("s.yaml:14:5: export[1]: unknown export kind 'promethus'")


def test_the_plan_masks_tokens_of_scenario_exports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFLUX_SECRET", "tok-123")
    text = SCENARIO + (
        "export:\n  - influx=http://h:8086/api/v2/write?org=o&bucket=b&token=${INFLUX_SECRET}\n"
    )
    plan = compile_plan(parse_scenario(text, file="s.yaml"))
    (spec,) = plan.exports
    assert spec.dest.reveal().endswith("token=tok-123")
    doc = plan_to_dict(plan)
    assert doc["export"] == [
        {
            "kind": "influx",
            "dest": "http://h:8086/api/v2/write?org=o&bucket=b&token=***",
            "where": "s.yaml:13:5",
        }
    ]
    assert "tok-123" not in repr(plan)
    assert "tok-123" not in json.dumps(doc)


def test_lens_plan_prints_no_export_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INFLUX_SECRET", "tok-456")
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        SCENARIO + "export:\n  - influx=http://h/write?db=x&token=${INFLUX_SECRET}\n"
    )
    assert main(["plan", "--json", str(scenario)]) == 0
    out = capsys.readouterr().out
    assert "token=***" in out
    assert "tok-456" not in out


def test_an_export_entry_must_be_a_string() -> None:
    with pytest.raises(ScenarioError, match="export"):
        parse_scenario(SCENARIO + "export: [{csv: x}]\n", file="s.yaml")


@pytest.mark.slow
def test_every_format_from_one_run(
    tmp_path: Path, pushgateway: Server, influxdb: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    create_database(influxdb, "onerun")
    scenario = tmp_path / "s.yaml"
    scenario.write_text(RUN_SCENARIO.replace("name: exports", "name: onerun"))
    out = tmp_path / "out"
    flags = [
        f"csv={out}/requests.csv",
        f"prometheus={out}/lens.prom",
        f"prometheus={pushgateway.url}?job=onerun",
        f"influx={influxdb.url}/write?db=onerun",
        f"junit={out}/sla.xml",
        f"markdown={out}/summary.md",
        f"html={out}/report.html",
    ]
    args = ["run", "-q", str(scenario), "-o", str(out / "r.json")]
    code = main([*args, *(a for f in flags for a in ("--export", f))])
    assert code == 0, capsys.readouterr().err
    with (out / "requests.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 3
    assert (out / "requests.summary.csv").exists()
    assert "lens_requests_total{" in (out / "lens.prom").read_text()
    assert 'job="onerun"' in httpx.get(f"{pushgateway.url}/metrics").text
    (count,) = influx_query(influxdb, "onerun", "SELECT count(e2e_ms) FROM lens_request")
    assert count["count"] == 3
    assert "<testsuite" in (out / "sla.xml").read_text()
    assert "| stage" in (out / "summary.md").read_text()
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")

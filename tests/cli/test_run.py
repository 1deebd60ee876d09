"""``lens run`` end to end against the simulated server, over real sockets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest

from lens.cli import main
from lens.export.results import results_json_schema
from lens.plan.model import SimSettings
from lens.sim.process import SimServerProcess

pytestmark = pytest.mark.slow


def run_cli(args: list[str]) -> int:
    return main(["run", "--quiet", *args])


def test_run_writes_valid_results_and_records(
    write_scenario: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_scenario(
        load="  - {id: b, pattern: burst, requests: 6}\n"
        "  - {id: c, pattern: concurrency, concurrency: 2, requests: 6}",
        sla="  - error_rate < 1%\n  - itl.p50 < 50ms",
    )
    out, recs = tmp_path / "r.json", tmp_path / "r.jsonl"
    assert run_cli([str(path), "-o", str(out), "--records", str(recs), "--format", "table"]) == 0
    table = capsys.readouterr().out
    assert "TTFT p50 ms" in table
    assert "PASS" in table
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, results_json_schema())
    assert doc["schema_version"] == "lens.results/v1"
    assert doc["partial"] is False
    assert [(s["stage"], s["requests"], s["ok"]) for s in doc["summaries"]] == [
        ("b", 6, 6),
        ("c", 6, 6),
    ]
    assert len(doc["records"]) == 12
    assert len(recs.read_text().splitlines()) == 12
    rec = doc["records"][0]
    assert rec["status"] == "ok"
    assert rec["token_source"] == "usage"
    assert rec["output_tokens"] == 8
    assert rec["ttft"] > 0
    assert len(rec["chunk_offsets"]) == rec["chunks"] == 8
    assert rec["chunk_offsets"][0] == pytest.approx(rec["ttft"], abs=0.001)
    assert rec["chunk_tokens"] == [1] * 8
    assert rec["request_id"]
    assert rec["provider_facts"]["x-request-id"] == rec["request_id"]
    assert "openai-processing-ms" in rec["provider_facts"]
    assert {v["outcome"] for v in doc["verdicts"]} == {"pass"}
    assert doc["environment"]["python"]


@pytest.mark.no_cover  # a line tracer would add its own overhead to what is measured
def test_measured_ttft_and_itl_match_the_server(
    write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    path = write_scenario(
        ttft="100ms",
        itl="10ms",
        tokens=12,
        load="  - {id: c, pattern: concurrency, concurrency: 4, requests: 16}",
    )
    out = tmp_path / "r.json"
    assert run_cli([str(path), "-o", str(out)]) == 0
    (summary,) = json.loads(out.read_text())["summaries"]
    ttft, itl = summary["metrics"]["ttft"], summary["metrics"]["itl"]
    # Real sockets: the measurement can only add time, and not much of it.
    assert 99.0 <= ttft["p50"] <= 110.0
    assert 8.0 <= itl["p50"] <= 12.0
    assert summary["metrics"]["tpot"]["p50"] == pytest.approx(10.0, abs=1.5)


def test_failing_sla_exits_1_and_inconclusive_exits_3(
    write_scenario: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    failing = write_scenario(sla="  - ttft.p50 < 1ms")
    assert run_cli([str(failing)]) == 1
    too_few = write_scenario(sla="  - ttft.p99 < 10s", name="few.yaml")
    assert run_cli([str(too_few)]) == 3


@pytest.mark.parametrize(
    ("errors", "cls"),
    [
        ("rate_429: 100%", "http_429"),
        ("rate_500: 100%", "http_5xx"),
        ("cut_stream: 100%", "cut_stream"),
    ],
)
def test_injected_errors_are_classified_and_counted(
    write_scenario: Callable[..., Path], tmp_path: Path, errors: str, cls: str
) -> None:
    path = write_scenario(extra=f"errors: {{{errors}}}", sla="  - error_rate < 50%")
    out = tmp_path / "r.json"
    assert run_cli([str(path), "-o", str(out)]) == 1
    doc = json.loads(out.read_text())
    (summary,) = doc["summaries"]
    assert summary["error_counts"][cls] == 4
    assert summary["error_rate"] == 1.0
    assert summary["metrics"]["ttft"]["n"] == 0  # errors never feed latency percentiles
    assert {r["error_class"] for r in doc["records"]} == {cls}


def test_unreachable_server_is_a_connect_error(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "version: 1\nname: x\nproviders:\n  v: {type: openai-compatible, "
        "base_url: 'http://127.0.0.1:9/v1', model: m}\n"
        "prompts: [{id: q, messages: [{role: user, content: hi}]}]\n"
        "load: [{id: b, pattern: burst, requests: 2}]\n"
    )
    out = tmp_path / "r.json"
    assert run_cli([str(path), "-o", str(out)]) == 0  # no SLA: nothing to fail
    doc = json.loads(out.read_text())
    assert {r["error_class"] for r in doc["records"]} == {"connect"}


def test_markdown_and_json_formats(
    write_scenario: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_scenario()
    assert main(["run", str(path), "--format", "markdown"]) == 0
    assert "| stage" in capsys.readouterr().out
    assert main(["run", str(path), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["exit_code"] == 0


def test_sigterm_stops_cleanly_and_keeps_what_was_measured(
    write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    path = write_scenario(
        ttft="50ms",
        load="  - {id: r, pattern: constant-rate, rate: 20/s, duration: 30s}",
    )
    out, lines = tmp_path / "r.json", tmp_path / "records.jsonl"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lens.cli", "run", str(path), "-o", str(out), "--records", lines],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    # Signal once the run measures (its handlers are set by then), not after a fixed
    # sleep: on a loaded machine starting Python and lens alone can take 3 s.
    deadline = time.monotonic() + 30.0
    while not (lines.exists() and lines.read_text().count("\n") >= 10):
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 3, stderr.decode()  # a partial run is inconclusive at best
    doc = json.loads(out.read_text())
    assert doc["partial"] is True
    assert doc["interrupted_by"] == "SIGTERM"
    assert 10 <= len(doc["records"]) < 600
    assert b"PARTIAL" in stdout
    assert b"results are partial" in stderr


def test_every_error_class_over_real_sockets(tmp_path: Path) -> None:
    faults = {
        "hang": "timeout",
        "midstream-error": "stream_error",
        "empty": "empty",
        "cut": "cut_stream",
        "429": "http_429",
        "500": "http_5xx",
    }
    with SimServerProcess(SimSettings(ttft_s=0.01, itl_s=0.001, output_tokens=4)) as sim:
        providers = "".join(
            f"  f{i}: {{type: openai-compatible, base_url: '{sim.base_url}', model: m, "
            f"headers: {{x-lens-sim-fault: '{fault}'}}}}\n"
            for i, fault in enumerate(faults)
        )
        providers += (
            f"  notfound: {{type: openai-compatible, base_url: '{sim.url}/nope', model: m}}\n"
        )
        path = tmp_path / "s.yaml"
        path.write_text(
            "version: 1\nname: faults\ndefaults: {timeout: 500ms}\nproviders:\n"
            + providers
            + "prompts: [{id: q, messages: [{role: user, content: hi}]}]\n"
            "load: [{id: b, pattern: burst, requests: 2}]\n"
        )
        out = tmp_path / "r.json"
        assert run_cli([str(path), "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    got = {s["provider"]: {k for k, n in s["error_counts"].items() if n} for s in doc["summaries"]}
    expected = {f"f{i}": {cls} for i, cls in enumerate(faults.values())}
    expected["notfound"] = {"http_4xx"}
    assert got == expected
    by_class = {r["error_class"]: r for r in doc["records"]}
    assert by_class["stream_error"]["error_message"]
    assert by_class["timeout"]["e2e"] == pytest.approx(500, abs=50)
    assert by_class["http_429"]["http_status"] == 429
    assert by_class["http_429"]["provider_facts"]["retry-after"] == "1"
    assert all(r["status"] == "error" for r in doc["records"])


def test_priced_provider_shows_cost_in_records_summary_and_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    settings = SimSettings(ttft_s=0.005, itl_s=0.001, output_tokens=10, protocol="anthropic")
    with SimServerProcess(settings) as sim:
        path = tmp_path / "c.yaml"
        path.write_text(
            "version: 1\nname: cost\nproviders:\n"
            f"  haiku: {{type: anthropic, base_url: '{sim.url}', model: claude-3-5-haiku-latest}}\n"
            "prompts: [{id: q, messages: [{role: user, content: 'hello there'}]}]\n"
            "load: [{id: b, pattern: burst, requests: 3}]\n"
        )
        out = tmp_path / "r.json"
        assert main(["run", str(path), "-o", str(out), "--format", "table"]) == 0
    table = capsys.readouterr().out
    assert "cost (prices: see plan.providers[].price):" in table
    doc = json.loads(out.read_text())
    total = Decimal(0)
    for rec in doc["records"]:
        uncached = rec["input_tokens"] - (rec["cached_input_tokens"] or 0)
        uncached -= rec["cache_write_tokens"] or 0
        # claude-3-5-haiku list price: $0.80 input, $4 output per 1M tokens.
        expected = (Decimal(uncached) * Decimal("0.8") + rec["output_tokens"] * 4) / 1_000_000
        assert Decimal(rec["cost_usd"]) == expected
        total += expected
    (summary,) = doc["summaries"]
    assert Decimal(summary["cost"]["total_usd"]) == total
    assert summary["cost"]["priced_requests"] == 3

"""The CLI's offline commands: validate, plan, schema, version."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from lens.cli import main
from lens.export.results import results_json_schema
from lens.scenario.schema import schema_text

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-test-DO-NOT-PRINT-1234"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("lens ")


def test_validate_ok_and_invalid(
    write_scenario: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_scenario()
    assert main(["validate", str(good)]) == 0
    assert f"{good}: ok" in capsys.readouterr().out
    bad = write_scenario(ttft="soon", name="bad.yaml")
    assert main(["validate", str(good), str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:6:11: providers.sim.ttft: expected a duration" in err
    assert "Traceback" not in err


def test_compile_errors_exit_2(
    write_scenario: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_scenario(sla='  - {assert: "ttft.p50 < 1s", provider: nope}')
    assert main(["plan", str(path)]) == 2
    assert "nope" in capsys.readouterr().err


def test_plan_text_and_json(
    write_scenario: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_scenario(load="  - {id: r, pattern: constant-rate, rate: 4/s, duration: 1s}")
    assert main(["plan", str(path)]) == 0
    out = capsys.readouterr().out
    assert "4 arrivals over 0.75s (4.00/s)" in out
    assert "nothing was sent" in out
    assert main(["plan", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (stage,) = doc["stages"]
    assert stage["arrival_offsets_s"] == [0.0, 0.25, 0.5, 0.75]
    assert stage["loop"] == "open"
    assert doc["total_requests"] == 4


def test_plan_text_shows_each_patterns_shape(
    write_scenario: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_scenario(
        load="  - {id: up, pattern: ramp, from: 1/s, to: 20/s, duration: 4s}\n"
        "  - {id: p, pattern: constant-rate, rate: 5/s, requests: 9, arrival: gamma,"
        " burstiness: 0.5, seed: 3}\n"
        "  - {id: ladder, pattern: sweep, rates: [5/s, 10/s, 20/s], duration: 1s, pause: 2s}\n"
        "  - {id: w, pattern: burst, requests: 2, waves: 2, interval: 1s}\n"
        "  - {id: c, pattern: sweep, concurrencies: [1, 8], requests: 8}",
    )
    assert main(["plan", str(path)]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line}
    assert "1->20/s" in rows["up"]
    assert "gamma k=0.5 seed 3" in rows["p"]
    assert "10/s, step 2/3 of ladder (5-20/s), 2s pause first" in rows["ladder.10rps"]
    assert "0.1-0.1s" in rows["ladder.10rps"]  # the gaps
    assert "4 arrivals over 1.00s (3.00/s)" in rows["w"]
    assert "0-1s" in rows["w"]
    assert "step 2/2 of c (1-8 in flight)" in rows["c.c8"]
    assert main(["plan", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    by_id = {s["stage"]: s for s in doc["stages"]}
    assert len(by_id["up"]["arrival_offsets_s"]) == by_id["up"]["arrivals"]["count"] == 42
    assert by_id["ladder.20rps"]["arrival_offsets_s"] == [i / 20 for i in range(20)]
    assert by_id["w"]["arrival_offsets_s"] == [0.0, 0.0, 1.0, 1.0]
    assert by_id["p"]["arrivals"]["process"] == "gamma"
    assert "arrival_offsets_s" not in by_id["c.c1"]


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_scenario_validates(
    path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "AZURE_OPENAI_API_KEY"):
        monkeypatch.setenv(name, "test-key-not-real")
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith(f"{path}: ok")


def test_plan_never_prints_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("VLLM_API_KEY", SECRET)
    example = str(ROOT / "scenarios" / "example.yaml")
    assert main(["plan", example]) == 0
    assert main(["plan", example, "--json"]) == 0
    assert main(["validate", example]) == 0
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    assert "OPENAI_API_KEY" in captured.out


def test_schema_print_and_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"]
    assert main(["schema", "results"]) == 0
    assert "records" in json.loads(capsys.readouterr().out)["properties"]
    assert main(["schema", "--write", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results-v1.json", "scenario-v1.json"]


def test_checked_in_results_schema_is_current() -> None:
    checked_in = (ROOT / "schemas" / "results-v1.json").read_text()
    assert checked_in == schema_text(results_json_schema()), "stale: run `make schema`"


def test_serve_sim_runs_standalone_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lens.cli", "serve-sim", "--port", "0", "--ttft", "5ms"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("lens-sim listening on http://127.0.0.1:")
        url = line.split()[-1]
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        with httpx.Client() as client:
            r = client.post(f"{url}/v1/chat/completions", json=body)
        assert r.status_code == 200
        assert r.text.endswith("data: [DONE]\n\n")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()
    assert code == 0


def test_pricing_lists_filters_and_resolves_snapshots(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pricing"]) == 0
    listing = capsys.readouterr().out
    assert "claude-3-5-haiku-20241022" in listing
    assert "gemini-2.5-pro" in listing
    assert main(["pricing", "--provider", "openai", "--model", "gpt-4o-mini-2024-07-18"]) == 0
    out = capsys.readouterr().out
    assert "gpt-4o-mini  0.15     0.075" in out
    assert "-50%" in out  # OpenAI's batch API discount, shown, not applied
    assert main(["pricing", "--provider", "anthropic"]) == 0
    assert "openai" not in capsys.readouterr().out.split("\n", 1)[1]
    assert main(["pricing", "--model", "no-such-model"]) == 2
    assert "no price known" in capsys.readouterr().err


def test_plan_says_what_adaptive_sweeps_decide_at_run_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["plan", str(ROOT / "scenarios" / "capacity.yaml")]) == 0
    out = capsys.readouterr().out
    assert "search.40rps" in out
    assert "search.160rps" in out
    assert "step 2 of search (40-160/s)" in out  # no total: it is not known yet
    assert (
        "sweep search: searches 40-160/s for the highest rate meeting ttft.p95 < 150ms "
        "(precision 5/s); the table lists its two bounds, the steps between them are decided "
        "at run time"
    ) in out
    assert "sweep ladder: stops after the first step where ttft.p95 > 150ms holds" in out
    assert "sweep auto: after its synchronous and saturation steps, 3 rate steps" in out
    assert "step 2 of slots (1-16 in flight)" in out
    assert (
        "sweep slots: searches 1-16 in flight for the highest concurrency meeting "
        "ttft.p95 < 50ms (down to neighbours); the table lists its two bounds, the steps "
        "between them are decided at run time"
    ) in out

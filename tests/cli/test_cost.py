"""Cost from the command line: plan estimates, cost SLAs, budgets, GPU-hour prices."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from lens.cli import main

PRICE = "price: {input: 1, output: 2}"  # USD per 1M tokens


def test_plan_estimates_the_most_the_scenario_can_cost(
    write_scenario: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # "hello": ceil(5/3) + 4 = 6 input tokens at most, 8 output tokens (the simulator's):
    # 6 * $1/1M + 8 * $2/1M = $0.000022 per request, 4 requests.
    path = write_scenario(extra=PRICE, load="  - {id: b, pattern: burst, requests: 4}")
    assert main(["plan", str(path)]) == 0
    text = capsys.readouterr().out
    assert "$0.000088" in text
    assert "estimated cost: at most $0.000088 (every request at its output limit)" in text
    assert main(["plan", "--json", str(path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["cost_estimate"]["total_usd"] == "0.000088"
    assert doc["cost_estimate"]["complete"] is True
    assert doc["cost_estimate"]["units"][0]["basis"] == "4 requests at their limits"


def test_plan_of_an_unpriced_closed_loop_says_what_is_unknown(
    write_scenario: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_scenario(load="  - {id: c, pattern: concurrency, concurrency: 2, duration: 1s}")
    assert main(["plan", "--json", str(path)]) == 0
    estimate = json.loads(capsys.readouterr().out)["cost_estimate"]
    (unit,) = estimate["units"]
    assert unit["usd"] is None
    assert unit["basis"] == "no price known"
    assert unit["bounded"] is True  # nothing to bound: no price
    assert estimate["unpriced"] == ["c/sim"]
    assert estimate["complete"] is False


def test_plan_refuses_a_budget_it_could_not_keep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "b.yaml"
    path.write_text(
        "version: 1\nname: b\nbudget: $1\nproviders:\n"
        "  api: {type: openai-compatible, base_url: 'http://127.0.0.1:9/v1', model: m,"
        " price: {input: 1, output: 2}}\n"
        "prompts:\n  - {id: q, messages: [{role: user, content: hi}]}\n"
        "load:\n  - {id: b, pattern: burst, requests: 2}\n"
    )
    assert main(["plan", str(path)]) == 2
    err = capsys.readouterr().err
    assert "b.yaml:3:9: budget: cannot be kept: stage 'b' sends prompt 'q' to 'api'" in err
    assert "Traceback" not in err


def test_cost_slas_pass_and_fail_on_exact_totals(
    write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    # 8 output tokens * $2/1M = $0.000016 each, plus the prompt's input tokens.
    path = write_scenario(
        extra=PRICE,
        load="  - {id: b, pattern: burst, requests: 4}",
        sla="  - cost.total < $0.001\n  - cost.mean < $0.00001",
    )
    out = tmp_path / "r.json"
    assert main(["run", "--quiet", str(path), "-o", str(out)]) == 1
    doc = json.loads(out.read_text())
    total, mean = doc["verdicts"]
    assert total["outcome"] == "pass"
    assert mean["outcome"] == "fail"
    (summary,) = doc["summaries"]
    assert Decimal(summary["cost"]["total_usd"]) == Decimal(str(total["value"]))
    # every request cost more than $0.00001, so none conforms; yet they all cost money
    assert summary["sla_conforming"] == 0
    assert summary["cost"]["per_sla_conforming_usd"] is None
    assert summary["cost"]["priced_requests"] == 4
    assert summary["metrics"]["cost"]["unit"] == "usd"


def test_a_cost_sla_on_an_unpriced_provider_is_an_input_error(
    write_scenario: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_scenario(sla="  - cost.mean < $1")
    assert main(["run", "--quiet", str(path)]) == 2
    err = capsys.readouterr().err
    assert "the simulated provider 'sim' has no price, but the cost SLA" in err
    assert "s.yaml:16:5: sla[0]" in err


def test_budget_stops_the_run_before_it_overspends(
    write_scenario: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Each request holds $0.000022 and costs about $0.00002: $0.0001 allows 4 or 5.
    path = write_scenario(
        extra=PRICE,
        load="  - {id: c, pattern: concurrency, concurrency: 1, requests: 20}\n"
        "  - {id: later, pattern: burst, requests: 5}",
    )
    path.write_text("budget: $0.0001\n" + path.read_text())
    out = tmp_path / "r.json"
    assert main(["run", "--quiet", str(path), "-o", str(out)]) == 3  # partial never passes
    doc = json.loads(out.read_text())
    assert doc["partial"] is True
    assert doc["interrupted_by"] == "budget"
    assert {s["stage"] for s in doc["summaries"]} == {"c"}
    spent = sum(Decimal(r["cost_usd"]) for r in doc["records"])
    assert spent <= Decimal("0.0001")
    assert 4 <= len(doc["records"]) <= 5
    err = capsys.readouterr().err
    assert f"budget $0.0001 reached after {len(doc['records'])} requests" in err


def test_gpu_hour_bill_adds_up_exactly_from_records_to_stages_to_the_run(
    write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    # A burst, a sweep whose steps pause and warm up, an idle probe: every second of the
    # run's clock is billed once, and every level adds up exactly (to 10^-12 USD).
    path = write_scenario(
        extra="price: {gpu_hour: 3600, gpus: 2}",  # $2 per second of run time
        load="  - {id: b, pattern: burst, requests: 3}\n"
        "  - {id: sw, pattern: sweep, concurrencies: [1, 2], requests: 4, warmup: 1 requests,"
        " pause: 300ms}\n"
        "  - {id: idle, pattern: idle-probe, gaps: [100ms]}",
    )
    out = tmp_path / "r.json"
    assert main(["run", "--quiet", str(path), "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    records = doc["records"]
    assert all(r["cost_detail"]["pricing"] == "gpu-hour" for r in records)
    billing = doc["billing"]
    run_total = Decimal(billing["total_usd"])
    (provider,) = billing["providers"]
    assert Decimal(provider["total_usd"]) == run_total
    # rate x gpus x the run's billed time (its clock to the end of the last unit)
    run_ns = round(Decimal(repr(billing["run_billed_s"])) * 10**9)
    assert run_total == (Decimal(2) * run_ns / 10**9).quantize(Decimal("1e-12"))
    assert billing["run_billed_s"] * 1e3 == pytest.approx(doc["stages"][-1]["end_ms"], abs=1e-6)
    stages = doc["stages"]
    assert sum(Decimal(w["cost_usd"]) for w in stages) == run_total
    assert sum(w["billed_s"] for w in stages) == pytest.approx(billing["run_billed_s"], abs=1e-9)
    assert sum(Decimal(r["cost_usd"]) for r in records) == run_total
    summaries = doc["summaries"] + doc["phase_summaries"]
    assert sum(Decimal(s["cost"]["total_usd"]) for s in summaries) == run_total
    for w in stages:
        mine = [r for r in records if r["stage"] == w["stage"]]
        assert Decimal(w["unattributed_usd"]) == 0
        assert sum(Decimal(r["cost_usd"]) for r in mine) == Decimal(w["cost_usd"])
        parts = [s for s in summaries if s["stage"] == w["stage"]]
        assert sum(Decimal(s["cost"]["total_usd"]) for s in parts) == Decimal(w["cost_usd"])
        for s in parts:  # each phase's summary is its own records' costs
            own = [r for r in mine if r["phase"] == s["phase"]]
            assert Decimal(s["cost"]["total_usd"]) == sum(Decimal(r["cost_usd"]) for r in own)
        # billed: the lead-in (pause, set-up) and the window, nothing twice
        window_s = (w["end_ms"] - w["start_ms"]) / 1e3
        assert w["billed_s"] == pytest.approx(w["pause_s"] + w["setup_s"] + window_s, abs=1e-9)
    by_stage = {w["stage"]: w for w in stages}
    assert by_stage["sw.c1"]["pause_s"] == 0  # the sweep's first step does not pause
    assert by_stage["sw.c2"]["pause_s"] >= 0.3  # the pause before a step is billed to it
    assert sum(1 for s in doc["phase_summaries"] if s["phase"] == "warmup") == 2

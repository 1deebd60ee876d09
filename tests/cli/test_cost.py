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
    (unit,) = json.loads(capsys.readouterr().out)["cost_estimate"]["units"]
    assert unit == {"stage": "c", "provider": "sim", "usd": None, "basis": "no price known"}


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


def test_gpu_hour_priced_stage_costs_its_wall_time(
    write_scenario: Callable[..., Path], tmp_path: Path
) -> None:
    path = write_scenario(
        extra="price: {gpu_hour: 3600, gpus: 2}",  # $2 per second of stage time
        load="  - {id: b, pattern: burst, requests: 4}",
    )
    out = tmp_path / "r.json"
    assert main(["run", "--quiet", str(path), "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    (summary,) = doc["summaries"]
    cost = summary["cost"]
    assert cost["pricing"] == "gpu-hour"
    assert Decimal(cost["total_usd"]) == pytest.approx(Decimal(2) * Decimal(summary["duration_s"]))
    shares = [Decimal(r["cost_usd"]) for r in doc["records"]]
    assert sum(shares) == pytest.approx(Decimal(cost["total_usd"]))
    assert all(r["cost_detail"]["pricing"] == "gpu-hour" for r in doc["records"])

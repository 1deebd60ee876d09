"""Prometheus exposition: format details, textfile output, and a real Pushgateway."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest

from lens.errors import ExportError
from lens.export.prometheus import (
    escape_help,
    escape_label_value,
    export_prometheus,
    exposition,
    format_value,
    push_url,
)
from lens.targets import parse_target
from tests.export._results import SCENARIO_NAME, hand_results, rich_results
from tests.export.servers import Server, free_port


def samples(text: str) -> dict[str, float]:
    """``name{labels}`` -> value of every sample line."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def test_label_values_and_help_are_escaped() -> None:
    assert escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert escape_help("x\\y\nz") == "x\\\\y\\nz"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3, "3"),
        (0.25, "0.25"),
        (float("nan"), "NaN"),
        (float("inf"), "+Inf"),
        (-float("inf"), "-Inf"),
    ],
)
def test_values_use_the_exposition_spelling(value: float, text: str) -> None:
    assert format_value(value) == text


def test_exposition_has_help_type_base_units_and_labels() -> None:
    text = exposition(hand_results())
    lines = text.splitlines()
    # Every family: HELP then TYPE, once, before its samples.
    types = {line.split()[2]: line.split()[3] for line in lines if line.startswith("# TYPE")}
    assert types["lens_ttft_seconds"] == "summary"
    assert types["lens_requests_total"] == "counter"
    assert types["lens_sla_verdict"] == "gauge"
    assert len(types) == sum(1 for line in lines if line.startswith("# HELP"))
    scenario = escape_label_value(SCENARIO_NAME)
    base = f'scenario="{scenario}",stage="warm",provider="sim",model="lens-sim"'
    values = samples(text)
    assert values[f"lens_requests_total{{{base}}}"] == 3
    assert values[f'lens_request_errors_total{{{base},error_class="http_5xx"}}'] == 1
    # ttft of the two successes: 200 ms and 190 ms, in seconds (p50: nearest rank)
    assert values[f'lens_ttft_seconds{{{base},quantile="0.5"}}'] == pytest.approx(0.19)
    assert values[f"lens_ttft_seconds_count{{{base}}}"] == 2
    assert values[f"lens_ttft_seconds_sum{{{base}}}"] == pytest.approx(0.39)
    gpt = f'scenario="{scenario}",stage="warm",provider="gpt",model="gpt-4o-mini"'
    assert values[f"lens_cost_usd_total{{{gpt}}}"] == pytest.approx(0.0000084)
    assert f"lens_cost_usd_total{{{base}}}" not in values  # simulated: no price, no 0
    verdicts = {k: v for k, v in values.items() if k.startswith("lens_sla_verdict")}
    assert sorted(verdicts.values()) == [-1, -1, 0, 1, 1, 1]
    assert values[f'lens_sla_verdict{{{base},sla="error_rate < 1%"}}'] == 0


def test_pacing_drain_harness_cold_start_and_sweeps() -> None:
    text = exposition(rich_results())
    types = {line.split()[2]: line.split()[3] for line in text.splitlines() if "# TYPE" in line}
    assert types["lens_requests_drained_total"] == "counter"
    assert types["lens_pacing_dispatch_lag_seconds"] == "gauge"
    values = samples(text)
    scenario = f'scenario="{escape_label_value(SCENARIO_NAME)}"'
    sim = f'{scenario},stage="warm",provider="sim",model="lens-sim"'
    gpt = f'{scenario},stage="warm",provider="gpt",model="gpt-4o-mini"'
    assert values[f"lens_requests_drained_total{{{gpt}}}"] == 1
    assert values[f"lens_requests_drained_total{{{sim}}}"] == 0
    # sim: 2 of its 3 started requests conformed, over its measured window.
    assert values[f"lens_goodput_ratio{{{sim}}}"] == pytest.approx(2 / 3)
    assert values[f"lens_goodput_requests_per_second{{{sim}}}"] > 0
    assert values[f"lens_pacing_rate_error_ratio{{{sim}}}"] == pytest.approx(0.1)
    assert values[f"lens_pacing_achieved_rate_requests_per_second{{{sim}}}"] == 100
    lags = {
        q: values[f'lens_pacing_dispatch_lag_seconds{{{sim},quantile="{q}"}}']
        for q in ("0.5", "0.99", "1")
    }
    assert lags == pytest.approx({"0.5": 0.006, "0.99": 0.008, "1": 0.008})
    assert not any(k.startswith("lens_pacing") and 'provider="gpt"' in k for k in values)
    assert values[f"lens_harness_overloaded{{{scenario}}}"] == 0
    assert values[f'lens_harness_loop_lag_seconds{{{scenario},quantile="0.99"}}'] == 0.008
    assert values[f"lens_harness_cpu_ratio{{{scenario}}}"] == 0.25
    penalty = f'lens_cold_start_penalty_seconds{{{scenario},provider="sim",model="lens-sim"}}'
    assert values[penalty] == pytest.approx(0.010)
    sweep = f'{scenario},sweep="search",provider="gpt",model="gpt-4o-mini"'
    assert values[f"lens_sweep_max_rate_requests_per_second{{{sweep}}}"] == 85
    max_rates = [k for k in values if k.startswith("lens_sweep_max_rate")]
    assert max_rates == [f"lens_sweep_max_rate_requests_per_second{{{sweep}}}"]  # sim: cut short
    cut = f'{scenario},sweep="search",provider="sim",model="lens-sim"'
    assert values[f"lens_sweep_cut_short{{{cut}}}"] == 1
    assert values[f"lens_sweep_distrusted{{{sweep}}}"] == 0


def test_an_overloaded_client_leaves_no_max_rate_to_trust() -> None:
    values = samples(exposition(rich_results(overloaded=True)))
    scenario = f'scenario="{escape_label_value(SCENARIO_NAME)}"'
    assert values[f"lens_harness_overloaded{{{scenario}}}"] == 1
    sweep = f'{scenario},sweep="search",provider="gpt",model="gpt-4o-mini"'
    assert values[f"lens_sweep_distrusted{{{sweep}}}"] == 1
    assert not any(k.startswith("lens_sweep_max_rate") for k in values)


def test_families_never_measured_are_left_out() -> None:
    text = exposition(hand_results())  # no harness, no sweeps, no open loop
    for family in ("lens_harness_", "lens_sweep_", "lens_pacing_"):
        assert family not in text


def test_textfile_is_written_atomically(tmp_path: Path) -> None:
    dest = tmp_path / "textfile" / "lens.prom"
    export_prometheus(hand_results(), parse_target(f"prometheus={dest}"))
    assert dest.read_text().startswith("# HELP lens_requests_total")
    assert [p.name for p in dest.parent.iterdir()] == ["lens.prom"]  # no tmp file left


def test_grouping_key_uses_base64_when_a_value_needs_it() -> None:
    url, headers = push_url("http://gw:9091/base/?job=ci/nightly&instance=&branch=main&token=t0k")
    job = base64.urlsafe_b64encode(b"ci/nightly").decode()
    assert url == f"http://gw:9091/base/metrics/job@base64/{job}/instance@base64/=/branch/main"
    assert headers["Authorization"] == "Bearer t0k"
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")


def group_metrics(server: Server) -> list[dict[str, Any]]:
    response = httpx.get(f"{server.url}/api/v1/metrics")
    response.raise_for_status()
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def test_push_arrives_and_a_repush_replaces_the_group(pushgateway: Server) -> None:
    results = rich_results()
    target = parse_target(f"prometheus={pushgateway.url}?job=lens-test&instance=ci/1")
    export_prometheus(results, target)
    (group,) = [g for g in group_metrics(pushgateway) if g["labels"]["job"] == "lens-test"]
    assert group["labels"]["instance"] == "ci/1"
    requests = group["lens_requests_total"]["metrics"]
    by_provider = {m["labels"]["provider"]: float(m["value"]) for m in requests}
    assert by_provider == {"sim": 3.0, "gpt": 2.0}
    assert {m["labels"]["scenario"] for m in requests} == {SCENARIO_NAME}
    (ttft,) = [m for m in group["lens_ttft_seconds"]["metrics"] if m["labels"]["provider"] == "sim"]
    assert float(ttft["count"]) == 2
    assert {q: float(v) for q, v in ttft["quantiles"].items()}["0.5"] == pytest.approx(0.19)
    (overloaded,) = group["lens_harness_overloaded"]["metrics"]
    assert float(overloaded["value"]) == 0
    (max_rate,) = group["lens_sweep_max_rate_requests_per_second"]["metrics"]
    assert (max_rate["labels"]["sweep"], float(max_rate["value"])) == ("search", 85.0)
    lags = group["lens_pacing_dispatch_lag_seconds"]["metrics"]
    assert {m["labels"]["quantile"]: float(m["value"]) for m in lags} == {
        "0.5": 0.006,
        "0.99": 0.008,
        "1": 0.008,
    }

    # A second push of fewer series: PUT replaces the group, nothing stale is left.
    only_gpt = results.model_copy(
        update={"summaries": [s for s in results.summaries if s.provider == "gpt"], "verdicts": []}
    )
    export_prometheus(only_gpt, target)
    (group,) = [g for g in group_metrics(pushgateway) if g["labels"]["job"] == "lens-test"]
    providers = {m["labels"]["provider"] for m in group["lens_requests_total"]["metrics"]}
    assert providers == {"gpt"}
    assert "lens_sla_verdict" not in group


def test_an_unreachable_pushgateway_is_a_clear_error() -> None:
    dest = f"http://user:pa55@127.0.0.1:{free_port()}?job=x&token=t0ps3cret"
    with pytest.raises(ExportError, match="ConnectError") as info:
        export_prometheus(hand_results(), parse_target(f"prometheus={dest}"))
    assert "pa55" not in str(info.value)
    assert "t0ps3cret" not in str(info.value)

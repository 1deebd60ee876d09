"""A real Prometheus scrapes a real ``lens monitor`` on the simulator and evaluates
deploy/prometheus/lens-rules.yml; then every PromQL expression of the Grafana dashboard and
of the rules file is executed against it and must return data.

The expressions are read from the JSON and YAML (tests/deploy/promql.py), so a new panel or
rule is covered without touching this file.  Dashboard variables are replaced by real label
values (a misspelt label then selects nothing); an alert's condition is executed in its
``bool`` form (every comparison answers 0/1 instead of filtering), which returns data exactly
when the condition is valid PromQL and its inputs exist, whether or not it fires; that it
fires when it should is the job of the promtool unit tests (test_prometheus_rules.py), and
here of the one alert the simulated data must fire: the 50% of 429s of provider q burn the
error budget.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.deploy.conftest import Process
from tests.deploy.promql import (
    Expr,
    dashboard,
    dashboard_exprs,
    rule_exprs,
    rules,
    substitute,
    with_bool,
)

pytestmark = pytest.mark.slow
DATA_TIMEOUT_S = 45.0

DASHBOARD_EXPRS = dashboard_exprs()
RULE_EXPRS = rule_exprs()


def _rate_window() -> str:
    (var,) = [v for v in dashboard()["templating"]["list"] if v["name"] == "rate_window"]
    value: str = var["current"]["value"]
    return value


# Real label values of the monitored scenario (tests/deploy/conftest.py), and Grafana's
# built-in intervals as a dashboard at a 1-minute step would have them.
VARIABLES = {
    "scenario": "mon",
    "provider": "q",
    "window": "1h",
    "rate_window": _rate_window(),
    "__rate_interval": "30s",
    "__interval": "15s",
}


class Prometheus:
    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=10.0)

    def get(self, path: str, **params: Any) -> Any:
        response = self.client.get(path, params=params)
        body = response.json()
        assert response.status_code == 200, (path, params, body)
        assert body["status"] == "success", (path, params, body)
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", (expr, data)
        result: list[dict[str, Any]] = data["result"]
        return result


@pytest.fixture(scope="module")
def prom(prometheus: Process, lens_monitor: Process) -> Iterator[Prometheus]:
    """The Prometheus once it has scraped at least two cycles' increase and evaluated the
    rules on them (bounded: a monitor or Prometheus that never gets there fails)."""
    p = Prometheus(prometheus.url)
    seen = "max_over_time({0}[1m]) - min_over_time({0}[1m])".format(
        'lens_monitor_cycles_total{outcome="pass"}'
    )
    deadline = time.monotonic() + DATA_TIMEOUT_S
    while True:
        result = p.query(seen)
        cycles = float(result[0]["value"][1]) if result else 0.0
        if cycles >= 2 and p.query("provider:lens_monitor_ttft_seconds:p99_rate5m"):
            break
        if time.monotonic() > deadline:
            pytest.fail(
                f"Prometheus saw {cycles} cycles in {DATA_TIMEOUT_S}s; monitor log:\n"
                f"{lens_monitor.log.read_text()}\nprometheus log:\n{prometheus.log.read_text()}"
            )
        time.sleep(0.2)
    yield p
    p.client.close()


def test_prometheus_scrapes_the_monitor_and_its_series_carry_the_documented_labels(
    prom: Prometheus,
) -> None:
    (target,) = prom.get("/api/v1/targets")["activeTargets"]
    assert target["health"] == "up", target
    assert target["labels"]["job"] == "lens-monitor"
    names = set(prom.get("/api/v1/label/__name__/values"))
    for family in (
        "lens_monitor_cycles_total",
        "lens_monitor_cycle_duration_seconds_bucket",
        "lens_monitor_last_cycle_timestamp_seconds",
        "lens_monitor_last_success_timestamp_seconds",
        "lens_monitor_healthy",
        "lens_monitor_requests_total",
        "lens_monitor_request_errors_total",
        "lens_monitor_cost_usd_total",
        "lens_monitor_ttft_seconds_bucket",
        "lens_monitor_e2e_seconds_bucket",
        "lens_monitor_itl_seconds_bucket",
        "lens_monitor_window_ttft_seconds",
        "lens_monitor_window_error_ratio",
        "lens_sla_verdict",
        "lens_cost_per_request_usd",
    ):
        assert family in names, family
    base = {"__name__", "job", "instance", "scenario"}
    per_request = base | {"stage", "provider", "model"}
    expected = {
        "lens_monitor_cycles_total": base | {"outcome"},
        "lens_monitor_requests_total": per_request | {"status"},
        "lens_monitor_request_errors_total": per_request | {"error_class"},
        "lens_monitor_ttft_seconds_bucket": per_request | {"le"},
        "lens_monitor_window_ttft_seconds": per_request | {"window", "quantile"},
        "lens_monitor_last_success_timestamp_seconds": base | {"provider"},
        "lens_sla_verdict": per_request | {"sla"},
    }
    for name, labels in expected.items():
        series = prom.get("/api/v1/series", **{"match[]": name})
        assert series, name
        for s in series:
            assert set(s) == labels, s
    requests = prom.get("/api/v1/series", **{"match[]": "lens_monitor_requests_total"})
    providers = {s["provider"] for s in requests}
    assert providers == {"p", "q"}
    errors_429 = prom.query(
        'sum by (provider) (lens_monitor_request_errors_total{error_class="http_429"})'
    )
    by_provider = {r["metric"]["provider"]: float(r["value"][1]) for r in errors_429}
    assert by_provider["p"] == 0
    assert by_provider["q"] > 0


def test_every_recording_rule_is_evaluated(prom: Prometheus) -> None:
    recorded = [rule["record"] for rule in rules() if "record" in rule]
    assert len(recorded) >= 10
    for name in recorded:
        result = prom.query(name)
        assert result, f"{name}: no series recorded"
        for sample in result:
            assert set(sample["metric"]) == {"__name__", "scenario", "stage", "provider", "model"}


def _check(prom: Prometheus, expr: str, where: str) -> list[dict[str, Any]]:
    result = prom.query(expr)
    assert result, f"{where}: no data for {expr}"
    return result


@pytest.mark.parametrize("e", DASHBOARD_EXPRS, ids=[e.where for e in DASHBOARD_EXPRS])
def test_every_dashboard_expression_returns_data(prom: Prometheus, e: Expr) -> None:
    result = _check(prom, substitute(e.expr, VARIABLES), e.where)
    for sample in result:  # the variables select what they say
        assert sample["metric"].get("provider", "q") == "q", (e.where, sample)
        assert sample["metric"].get("scenario", "mon") == "mon", (e.where, sample)
        assert sample["metric"].get("window", "1h") == "1h", (e.where, sample)


@pytest.mark.parametrize("e", RULE_EXPRS, ids=[e.where for e in RULE_EXPRS])
def test_every_rule_expression_returns_data(prom: Prometheus, e: Expr) -> None:
    if e.kind == "record":
        _check(prom, e.expr, e.where)
    else:
        prom.query(e.expr)  # valid as written (firing or not)
        _check(prom, with_bool(e.expr), e.where)


def test_the_dashboard_variables_list_the_real_label_values(prom: Prometheus) -> None:
    queries = {
        v["name"]: v["query"]["query"]
        for v in dashboard()["templating"]["list"]
        if v["type"] == "query"
    }
    assert set(queries) == {"scenario", "provider", "window"}
    for name, query in queries.items():
        assert query.startswith("label_values("), query
        assert query.endswith(")"), query
        selector, label = substitute(query[len("label_values(") : -1], VARIABLES).rsplit(",", 1)
        values = prom.get(f"/api/v1/label/{label.strip()}/values", **{"match[]": selector})
        assert VARIABLES[name] in values, (name, values)
    assert set(VARIABLES) >= {
        v["name"] for v in dashboard()["templating"]["list"] if v["type"] != "datasource"
    }


def test_the_error_budget_burn_fires_for_the_failing_provider_only(prom: Prometheus) -> None:
    # q answers half of its probes with a 429: 50% errors burn a 1% budget 50x too fast.
    deadline = time.monotonic() + DATA_TIMEOUT_S
    while True:
        alerts = prom.get("/api/v1/alerts")["alerts"]
        # An overrun is what a loaded machine may truly cause (a cycle slower than its 2 s
        # interval): the data's statement, not the rules', so it is not judged here.
        firing = sorted(
            (a["labels"]["alertname"], a["labels"].get("provider", ""))
            for a in alerts
            if a["state"] == "firing" and a["labels"]["alertname"] != "LensMonitorOverrunning"
        )
        if len(firing) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    # Alerts with a `for:` cannot fire within the test's seconds; those without must fire
    # only where the data says so (p never fails, the monitor runs on time).
    assert firing == [("LensErrorBudgetFastBurn", "q"), ("LensErrorBudgetSlowBurn", "q")]

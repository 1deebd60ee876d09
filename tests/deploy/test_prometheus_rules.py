"""deploy/prometheus/lens-rules.yml: valid for Prometheus (`promtool check rules`), its
alerts unit-tested (`promtool test rules` on lens-rules.test.yml), and each alert tested
both firing and silent; the dashboard deploy/grafana/lens-dashboard.json well formed.

promtool is the Debian package prometheus (tools/install-test-servers installs it; the
tests skip only where it is missing, never on CI)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.promql import RULE_TESTS, RULES, dashboard, panels, rules


@pytest.fixture
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return path


def _promtool(promtool: str, *args: str, cwd: Path = RULES.parent) -> str:
    proc = subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def test_promtool_checks_the_rules(promtool: str) -> None:
    out = _promtool(promtool, "check", "rules", str(RULES))
    assert f"SUCCESS: {len(rules())} rules found" in out


def test_promtool_unit_tests_of_the_alerts_pass(promtool: str) -> None:
    assert "SUCCESS" in _promtool(promtool, "test", "rules", RULE_TESTS.name)


def test_promtool_unit_tests_fail_when_an_alert_changes(promtool: str, tmp_path: Path) -> None:
    # Without this, a test file that expected nothing would pass the test above.
    text = RULES.read_text(encoding="utf-8")
    (tmp_path / RULES.name).write_text(
        text.replace("rate15m > 0.144", "rate15m > 0.9"), encoding="utf-8"
    )
    (tmp_path / RULE_TESTS.name).write_text(RULE_TESTS.read_text(encoding="utf-8"))
    proc = subprocess.run(
        [promtool, "test", "rules", RULE_TESTS.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    assert "LensErrorBudgetFastBurn" in proc.stdout + proc.stderr


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    doc = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))
    firing: Counter[str] = Counter()
    silent: Counter[str] = Counter()
    for case in doc["tests"]:
        for alert in case.get("alert_rule_test", []):
            (firing if alert["exp_alerts"] else silent)[alert["alertname"]] += 1
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    assert alerts >= {"LensProviderDown", "LensMonitorStale", "LensErrorBudgetFastBurn"}
    assert set(firing) == alerts
    assert set(silent) == alerts


@pytest.mark.parametrize(
    "rule", [r for r in rules() if "alert" in r], ids=lambda r: str(r["alert"])
)
def test_every_alert_says_how_severe_and_what_happened(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"page", "ticket", "info"}
    assert set(rule["annotations"]) == {"summary", "description"}
    assert "{{ $labels." in rule["annotations"]["summary"]


def test_recorded_series_follow_the_naming_convention() -> None:
    for rule in rules():
        if "record" in rule:
            assert re.fullmatch(r"provider:lens_monitor_\w+:\w+", rule["record"]), rule["record"]


# --- the dashboard ------------------------------------------------------------------------


def test_the_dashboard_is_a_grafana_dashboard_on_a_prometheus_variable() -> None:
    doc = dashboard()
    assert doc["schemaVersion"] >= 39
    assert doc["uid"] == "lens-monitor"
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("scenario", "provider", "window"):
        assert variables[name]["type"] == "query"
        assert variables[name]["query"]["query"].startswith("label_values(")
    assert variables["provider"]["includeAll"]
    assert variables["provider"]["allValue"] == ".*"
    every = panels(doc)
    ids = [p["id"] for p in every]
    assert len(ids) == len(set(ids))
    for panel in every:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["description"], panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            # multi-value variables need a regex matcher
            for var in ("scenario", "provider", "window"):
                assert f'{var}="${var}"' not in target["expr"].replace(" ", "")
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24


def test_the_dashboard_covers_what_the_issue_asks() -> None:
    exprs = " ".join(t["expr"] for p in panels(dashboard()) for t in p.get("targets", []))
    for family in (
        "lens_monitor_ttft_seconds_bucket",
        "lens_monitor_e2e_seconds_bucket",
        "lens_monitor_itl_seconds_bucket",
        "lens_monitor_window_ttft_seconds",
        "lens_monitor_request_errors_total",
        "lens_monitor_requests_total",
        "lens_output_tokens_per_second",
        "lens_monitor_cost_usd_total",
        "lens_sla_verdict",
        "lens_monitor_cycles_total",
        "lens_monitor_cycle_duration_seconds_bucket",
        "lens_monitor_last_cycle_timestamp_seconds",
        "lens_monitor_cycles_skipped_total",
        "lens_monitor_cycle_overruns_total",
        "lens_monitor_healthy",
    ):
        assert family in exprs, family

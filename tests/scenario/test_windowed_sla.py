"""Windowed SLA entries and stop_on_fail in a scenario: parsed, compiled, errors positioned."""

from __future__ import annotations

from lens.export.plan_view import plan_text
from lens.metrics.estimate import estimate_to_dict
from lens.plan.compile import compile_plan
from lens.plan.describe import plan_to_dict
from tests.scenario.helpers import BASE, only_problem, parse


def test_window_allow_and_stop_on_fail_reach_the_plan() -> None:
    text = BASE + (
        "sla:\n"
        "  - ttft.p95 < 800ms\n"
        '  - {assert: "ttft.p95 < 500ms", window: 60s, allow: 1, stop_on_fail: true}\n'
        '  - {assert: "error_rate < 1%", window: 500ms}\n'
    )
    plan = compile_plan(parse(text))
    plain, windowed, errors = plan.slas
    assert (plain.window_s, plain.allow, plain.stop_on_fail) == (None, 0, False)
    assert (windowed.window_s, windowed.allow, windowed.stop_on_fail) == (60.0, 1, True)
    assert (errors.window_s, errors.allow) == (0.5, 0)


def test_bad_window_is_positioned() -> None:
    text = BASE + 'sla:\n  - {assert: "ttft.p95 < 500ms", window: soon}\n'
    assert only_problem(text).startswith("s.yaml:15:42: sla[0].window: ")


def test_negative_allow_is_positioned() -> None:
    text = BASE + 'sla:\n  - {assert: "ttft.p95 < 500ms", window: 10s, allow: -1}\n'
    problem = only_problem(text)
    assert problem.startswith("s.yaml:15:54: sla[0].allow: ")
    assert problem.endswith("must be at least 0, got -1")


def test_allow_without_window_is_positioned() -> None:
    text = BASE + 'sla:\n  - {assert: "ttft.p95 < 500ms", allow: 1}\n'
    assert only_problem(text) == (
        "s.yaml:15:34: sla[0].allow: 'allow' counts failed windows: it needs 'window'"
    )


def test_unknown_key_is_positioned() -> None:
    text = BASE + 'sla:\n  - {assert: "ttft.p95 < 500ms", windows: 10s}\n'
    problem = only_problem(text)
    assert problem.startswith("s.yaml:15:")
    assert "unknown field 'windows' (did you mean 'window'?)" in problem


def test_a_stage_rate_cannot_be_windowed() -> None:
    text = BASE + 'sla:\n  - {assert: "goodput > 5/s", window: 10s}\n'
    problem = only_problem(text)
    assert problem.startswith("s.yaml:15:")
    assert "goodput is a rate over the whole stage" in problem


def test_the_plan_view_shows_windows_and_stops() -> None:
    text = BASE + (
        "sla:\n"
        "  - ttft.p95 < 800ms\n"
        '  - {assert: "ttft.p95 < 500ms", window: 60s, allow: 1, stop_on_fail: true}\n'
    )
    doc = plan_to_dict(compile_plan(parse(text)))
    plain, windowed = doc["sla"]
    assert "window_s" not in plain
    assert (windowed["window_s"], windowed["allow"], windowed["stop_on_fail"]) == (60.0, 1, True)
    plan = compile_plan(parse(text))
    shown = plan_text({**doc, "cost_estimate": estimate_to_dict(plan)})
    assert "ttft.p95 < 500ms per 60s window (allow 1) [stop_on_fail]" in shown

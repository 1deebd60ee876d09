"""lens compare reads a repeated stage as one pooled side: every repetition's records, the
runs' spread; the repetitions themselves are not compared one by one."""

from __future__ import annotations

import dataclasses

from lens.export.comparison import compare_results, resolve_thresholds, sides
from lens.export.results import build_results
from lens.metrics.analysis import analyse_run
from lens.pipeline import judge_run, summarise
from lens.plan.compile import compile_plan
from lens.scenario import parse_scenario
from tests.export._repeat_results import REPEAT_SCENARIO, repeat_outcome, repeat_results


def test_a_repeated_stage_is_one_pooled_side_with_its_spread() -> None:
    results = repeat_results()
    found = sides(results)
    assert sorted(found) == [("once", "a"), ("steady", "a"), ("steady", "b")]
    a = found[("steady", "a")]
    assert a.values is not None
    assert sorted(v[0] for v in a.values["ttft"]) == [90.0, 100.0, 110.0, 120.0, 130.0, 200.0]
    assert a.spread["ttft.p50"].values == (100.0, 110.0, 90.0)
    assert found[("once", "a")].spread == {}
    # The 5xx of b's second run is the pooled side's.
    assert (found[("steady", "b")].requests, found[("steady", "b")].errors) == (7, 1)


def test_comparing_repeated_results_checks_pooled_stages_only() -> None:
    results = repeat_results()
    comparison = compare_results(results, results, checks=resolve_thresholds(None))
    assert {(c.stage, c.provider) for c in comparison.checks} <= {
        ("steady", "a"),
        ("steady", "b"),
        ("once", "a"),
    }
    assert comparison.only_in_baseline == comparison.only_in_current == ()
    spread = [c for c in comparison.checks if c.method.endswith("+ run-to-run spread")]
    assert spread
    assert all(c.stage == "steady" for c in spread)


def test_a_repeated_run_against_one_that_was_not() -> None:
    # The pooled summary has the stage's own id: a baseline run once matches it, and the
    # repetitions are not listed as "only in current".
    plan = compile_plan(parse_scenario(REPEAT_SCENARIO.replace("repeat: 3", "repeat: 1")), env={})
    full = repeat_outcome()
    records = tuple(
        dataclasses.replace(r, stage="steady") for r in full.records if r.stage == "steady#1"
    )
    windows = tuple(
        dataclasses.replace(w, stage="steady", repetition=None)
        for w in full.windows
        if w.stage == "steady#1"
    )
    outcome = dataclasses.replace(full, records=records, windows=windows)
    summaries, phases = summarise(plan, outcome, plan.slas)
    verdicts = judge_run(plan.slas, summaries, outcome)
    once = build_results(
        plan, outcome, summaries, verdicts, analyse_run(plan, outcome, summaries, verdicts), phases
    )
    comparison = compare_results(once, repeat_results(), checks=resolve_thresholds(None))
    assert {(c.stage, c.provider) for c in comparison.checks} == {("steady", "a"), ("steady", "b")}
    assert comparison.only_in_baseline == ()
    assert comparison.only_in_current == ("once/a",)

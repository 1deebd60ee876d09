"""Results written, read back and judged again."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from lens.errors import InputError
from lens.export.reload import rejudge, stage_cost_from_out, summary_from_out
from lens.export.results import Results, build_results, load_results, write_results
from lens.metrics.analysis import analyse_run
from lens.metrics.judge import judge
from lens.metrics.summary import SummaryBuilder
from lens.plan.compile import compile_plan
from lens.plan.model import SlaSpec
from lens.records import RunOutcome, StageWindow
from lens.scenario import parse_scenario
from lens.scenario.sla import parse_sla
from tests.export._reload_results import SCENARIO, built
from tests.metrics._factory import failed, ns, record


def test_summaries_and_verdicts_round_trip_through_their_stored_form() -> None:
    plan, summaries, results = built()
    assert [summary_from_out(s) for s in results.summaries] == summaries
    verdicts = judge(plan.slas, summaries)
    assert tuple(results.verdicts) == verdicts
    assert summaries[0].sla_conforming == 1  # a: only request 0 met both SLAs


def test_rejudging_with_the_runs_own_slas_reproduces_the_run() -> None:
    plan, summaries, results = built()
    again, verdicts = rejudge(results, plan.slas)
    assert again == summaries
    assert verdicts == judge(plan.slas, summaries)


def test_rejudging_with_other_slas_recounts_conforming_requests() -> None:
    _, _, results = built()
    looser = (SlaSpec(parse_sla("ttft.p50 < 1s")),)
    again, verdicts = rejudge(results, looser)
    assert [s.sla_conforming for s in again] == [3, 4]  # every successful request
    assert [s.cost.sla_conforming for s in again if s.cost is not None] == [3, 4]
    assert {v.outcome for v in verdicts} == {"pass"}
    gaps = (SlaSpec(parse_sla("itl.p99 < 15ms")), SlaSpec(parse_sla("icl.max < 15ms")))
    assert [s.sla_conforming for s in rejudge(results, gaps)[0]] == [2, 4]


def test_results_carry_the_recommendation_and_round_trip_through_a_file(tmp_path: Path) -> None:
    _, _, results = built()
    rec = results.recommendation
    assert rec is not None
    assert rec.best == "b"
    assert [(c.provider, c.rank) for c in rec.candidates] == [("b", 1), ("a", None)]
    a = rec.candidates[1]
    assert [e.sla for e in a.excluded_because] == ["ttft.max < 250ms", "itl.max < 15ms"]
    assert a.sla_conforming == 1
    assert a.total_usd is not None
    path = tmp_path / "r.json"
    write_results(results, path)
    loaded = load_results(path)
    assert loaded == results
    assert loaded.recommendation == rec


def test_older_results_without_a_recommendation_still_load(tmp_path: Path) -> None:
    _, _, results = built()
    doc = json.loads(results.model_dump_json())
    del doc["recommendation"]
    for s in doc["summaries"]:  # written before pooled cost parts were stored
        del s["cost"]["priced_ok_requests"]
        del s["cost"]["priced_output_tokens"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(doc))
    old = load_results(path)
    assert old.recommendation is None
    costs = [stage_cost_from_out(s) for s in old.summaries]
    assert costs == [s.cost for s in map(summary_from_out, results.summaries)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such results file"),
        ("{not json", "not JSON"),
        ('{"schema_version": "lens.results/v1"}', r"not a lens results file \(lens.results/v1\)"),
        (b"\xff\xfe", "not a JSON file"),
    ],
)
def test_unreadable_results_are_input_errors(
    tmp_path: Path, content: str | bytes | None, message: str
) -> None:
    path = tmp_path / "r.json"
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        load_results(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pricing": "barter"}, "pricing 'barter'"),
        ({"total_usd": "lots"}, "InvalidOperation"),
        ({"priced_requests": None}, "KeyError"),
    ],
)
def test_a_malformed_cost_entry_is_an_input_error(change: dict[str, object], message: str) -> None:
    _, _, results = built()
    s = results.summaries[0]
    assert s.cost is not None
    broken = s.model_copy(update={"cost": {**s.cost, **change}})
    with pytest.raises(InputError, match=message):
        stage_cost_from_out(broken)


def test_an_unpriced_summary_has_no_cost_after_reloading() -> None:
    _, _, results = built()
    s = results.summaries[0].model_copy(update={"cost": None})
    assert stage_cost_from_out(s) is None
    assert summary_from_out(s).cost is None


def test_rejudging_needs_the_records() -> None:
    _, _, results = built()
    stripped = results.model_copy(update={"records": []})
    with pytest.raises(InputError, match="no per-request records"):
        rejudge(stripped, (SlaSpec(parse_sla("ttft.p50 < 1s")),))


def test_per_request_cost_checks_use_the_stored_cost() -> None:
    _, _, results = built()
    # a request of a: 12 input, 4 output tokens at $1/$2 per 1M = $0.00002; b's: $0.0001
    cheap = (SlaSpec(parse_sla("cost.max < $0.00005")),)
    assert [s.sla_conforming for s in rejudge(results, cheap)[0]] == [3, 0]
    assert Decimal(str(results.records[0].cost_usd)) == Decimal("0.00002")


def _with_warmup(*, pooled: bool) -> Results:
    """Stage s of provider a: 2 warmup requests, then 3 measured ones of which 1 failed
    (b's records as in ``built``)."""
    plan = compile_plan(parse_scenario(SCENARIO), env={})
    recs = [
        *(record(provider="a", index=i, phase="warmup") for i in range(2)),
        *(record(provider="a", index=i) for i in range(2, 4)),
        failed(provider="a", index=4),
    ]
    builder = SummaryBuilder(
        providers=plan.providers, slas=plan.slas, pooled_stages=frozenset({"s"} if pooled else ())
    )
    builder.add_many(recs)
    summaries = builder.build({("s", "a"): (0, ns(1000))})
    phases = builder.build_phases({("s", "a", "warmup"): (0, ns(500))})
    outcome = RunOutcome(
        records=tuple(recs),
        windows=(StageWindow("s", "a", 0, ns(1000), 5, 5, t_measure_start=ns(500)),),
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        duration_s=1.0,
    )
    verdicts = judge(plan.slas, summaries)
    analysis = analyse_run(plan, outcome, summaries, verdicts)
    return build_results(plan, outcome, summaries, verdicts, analysis, phases)


def test_rejudging_counts_only_the_requests_each_summary_holds() -> None:
    loose = (SlaSpec(parse_sla("ttft.p50 < 1s")),)
    results = _with_warmup(pooled=False)
    assert [(s.phase, s.ok) for s in results.phase_summaries] == [("warmup", 2)]
    (again,), _ = rejudge(results, loose)
    # The 2 warmup requests conform too, but are not among the summary's 2 successes.
    assert (again.ok, again.sla_conforming) == (2, 2)
    assert again.cost is not None
    assert again.cost.sla_conforming == 2
    # Pooled with the measured ones (sla_includes_warmup), they are the summary's own.
    (pooled,), _ = rejudge(_with_warmup(pooled=True), loose)
    assert (pooled.ok, pooled.sla_conforming) == (4, 4)


def test_records_that_outnumber_the_summary_are_refused() -> None:
    results = _with_warmup(pooled=False)
    doubled = results.model_copy(update={"records": [*results.records, *results.records]})
    with pytest.raises(InputError, match=r"s/a: 4 of its stored records conform, but it has"):
        rejudge(doubled, (SlaSpec(parse_sla("ttft.p50 < 1s")),))

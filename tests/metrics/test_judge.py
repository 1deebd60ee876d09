"""SLA verdicts: every op, every inconclusive reason, scope matching, exit codes."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from lens.metrics.judge import (
    EXIT_FAIL,
    EXIT_INCONCLUSIVE,
    EXIT_PASS,
    Verdict,
    exit_code,
    format_value,
    judge,
)
from lens.metrics.summary import Summary, SummaryBuilder, aggregate
from lens.plan.model import SlaSpec
from lens.records import RequestRecord
from lens.scenario.sla import SlaExpr, parse_sla

from ._factory import failed, ns, record

WINDOW_2S = (ns(0), ns(2000))


def sla(text: str, provider: str | None = None, stage: str | None = None) -> SlaSpec:
    return SlaSpec(parse_sla(text), provider=provider, stage=stage, where="scn.yaml:3:5")


def ttft_records(n: int, **kw: object) -> list[RequestRecord]:
    """n successes with ttft 1, 2, ..., n ms (dispatch at 10 ms)."""
    return [
        record(index=i, t_first_token=ns(10 + i), t_first_visible=ns(10 + i), **kw)
        for i in range(1, n + 1)
    ]


def summaries(recs: list[RequestRecord], window: bool = True) -> tuple[Summary, ...]:
    keys = {(r.stage, r.provider) for r in recs}
    return aggregate(recs, stage_windows=dict.fromkeys(keys, WINDOW_2S) if window else {})


def one(slas: list[SlaSpec], sums: tuple[Summary, ...]) -> Verdict:
    (v,) = judge(slas, sums)
    return v


# ttft values 1..100: p50 = 50, p95 = 95, p99 = 99
@pytest.mark.parametrize(
    ("text", "outcome"),
    [
        ("ttft.p95 < 96ms", "pass"),
        ("ttft.p95 < 95ms", "fail"),
        ("ttft.p95 <= 95ms", "pass"),
        ("ttft.p95 <= 94.9ms", "fail"),
        ("ttft.p50 > 49", "pass"),
        ("ttft.p50 > 50", "fail"),
        ("ttft.p50 >= 50ms", "pass"),
        ("ttft.p50 >= 0.051s", "fail"),
        ("ttft.p99 < 0.1s", "pass"),
        ("ttft.max <= 100ms", "pass"),
        ("ttft.mean < 50ms", "fail"),
        ("ttft.n >= 100", "pass"),
    ],
)
def test_each_op_passes_and_fails(text: str, outcome: str) -> None:
    v = one([sla(text)], summaries(ttft_records(100)))
    assert v.outcome == outcome, v.reason
    assert v.n == 100
    assert v.value is not None
    assert v.exact


def test_pass_and_fail_reasons_show_value_and_threshold() -> None:
    sums = summaries(ttft_records(100))
    ok = one([sla("ttft.p95 < 800ms")], sums)
    assert ok.reason == "ttft.p95 = 95 ms < 800 ms"
    bad = one([sla("ttft.p95 < 0.09s")], sums)
    assert bad.reason == "ttft.p95 = 95 ms, not < 90 ms"
    assert (bad.value, bad.threshold, bad.label, bad.op) == (95.0, 90.0, "ttft.p95", "<")


def test_ratios_are_judged_as_fractions_and_shown_as_percent() -> None:
    recs = [*ttft_records(49), failed()]
    v = one([sla("error_rate < 1%")], summaries(recs))
    assert v.outcome == "fail"
    assert v.value == pytest.approx(0.02)
    assert v.threshold == pytest.approx(0.01)
    assert v.reason == "error_rate = 2%, not < 1%"
    assert v.n == 50
    assert one([sla("success_rate >= 0.98")], summaries(recs)).outcome == "pass"


def test_stage_rates_are_judged_over_the_window() -> None:
    sums = summaries(ttft_records(10))  # 10 ok over 2 s; 4 tokens each
    assert one([sla("rps >= 5/s")], sums).outcome == "pass"
    assert one([sla("rps > 5")], sums).outcome == "fail"
    v = one([sla("throughput >= 20 tokens/s")], sums)
    assert (v.outcome, v.reason) == ("pass", "throughput = 20 tokens/s >= 20 tokens/s")
    assert one([sla("requests >= 10")], sums).outcome == "pass"
    assert one([sla("errors < 1")], sums).outcome == "pass"


def test_too_few_samples_is_inconclusive_but_reports_the_value() -> None:
    v = one([sla("ttft.p99 < 800ms")], summaries(ttft_records(20)))
    assert v.outcome == "inconclusive"
    assert v.reason == "p99 needs >= 100 samples, got 20"
    assert (v.value, v.n) == (20.0, 20)  # p99 of 20 values: just the max
    assert one([sla("ttft.p90 < 800ms")], summaries(ttft_records(9))).outcome == "inconclusive"
    assert one([sla("ttft.p90 < 800ms")], summaries(ttft_records(10))).outcome == "pass"


def test_no_successful_requests_is_inconclusive_for_latency() -> None:
    v = one([sla("ttft.p50 < 800ms")], summaries([failed(), failed()]))
    assert v.outcome == "inconclusive"
    assert v.reason == "no successful requests (2 of 2 failed): ttft was never measured"
    assert (v.value, v.n) == (None, 0)


def test_a_metric_never_measured_in_successes_says_why() -> None:
    v = one([sla("dispatch_lag.p50 < 5ms")], summaries(ttft_records(10)))
    assert v.outcome == "inconclusive"
    assert v.reason == (
        "dispatch_lag was never measured in 10 successful requests: "
        "only open-loop stages have an intended send time"
    )
    single = [record(output_tokens=1), record(output_tokens=1)]
    t = one([sla("tpot.p50 < 50ms")], summaries(single))
    assert "at least 2 output tokens" in t.reason


def test_a_metric_without_a_hint_still_says_it_was_never_measured() -> None:
    recs = [record(input_tokens=None), record(input_tokens=None)]
    v = one([sla("input_tokens.max < 1000")], summaries(recs))
    assert (v.outcome, v.reason) == (
        "inconclusive",
        "input_tokens was never measured in 2 successful requests",
    )


def test_counts_are_measurements_even_when_zero() -> None:
    sums = summaries([failed(), failed()])
    v = one([sla("ttft.n >= 5")], sums)
    assert (v.outcome, v.value, v.reason) == ("fail", 0.0, "ttft.n = 0, not >= 5")
    empty = SummaryBuilder().build({("s", "p"): WINDOW_2S})
    r = one([sla("requests >= 100")], empty)
    assert (r.outcome, r.value) == ("fail", 0.0)


def test_zero_requests_is_inconclusive_for_rates_and_latencies() -> None:
    empty = SummaryBuilder().build({("s", "p"): WINDOW_2S})
    for text in ("error_rate < 1%", "rps > 1", "errors < 3", "ttft.p50 < 800ms"):
        v = one([sla(text)], empty)
        assert v.outcome == "inconclusive", text
        assert v.reason.startswith("no requests were started"), v.reason


def test_rates_without_a_window_are_inconclusive() -> None:
    v = one([sla("rps > 1")], summaries(ttft_records(5), window=False))
    assert v.outcome == "inconclusive"
    assert v.reason == "rps could not be computed (no stage window was recorded)"


def test_an_unknown_metric_is_inconclusive_not_a_crash() -> None:
    expr = SlaExpr(metric="latency", stat="p50", op="<", threshold=1.0, text="latency.p50 < 1")
    v = one([SlaSpec(expr)], summaries(ttft_records(5)))
    assert v.outcome == "inconclusive"
    assert "unknown metric" in v.reason


def test_digest_estimates_are_flagged() -> None:
    builder = SummaryBuilder(exact_limit=50)
    builder.add_many(ttft_records(200))
    v = one([sla("ttft.p99 < 1s")], builder.build({("s", "p"): WINDOW_2S}))
    assert v.outcome == "pass"
    assert not v.exact
    assert v.reason.endswith("(t-digest estimate over 200 values)")


def _grid() -> tuple[Summary, ...]:
    recs = [
        *ttft_records(10, stage="warm", provider="a"),
        *ttft_records(10, stage="warm", provider="b"),
        *ttft_records(10, stage="load", provider="a"),
    ]
    return summaries(recs)


@pytest.mark.parametrize(
    ("provider", "stage", "expected"),
    [
        (None, None, [("a", "warm"), ("b", "warm"), ("a", "load")]),
        ("a", None, [("a", "warm"), ("a", "load")]),
        (None, "warm", [("a", "warm"), ("b", "warm")]),
        ("b", "warm", [("b", "warm")]),
    ],
)
def test_scope_matching_gives_one_verdict_per_match(
    provider: str | None, stage: str | None, expected: list[tuple[str, str]]
) -> None:
    out = judge([sla("ttft.max < 1s", provider=provider, stage=stage)], _grid())
    assert [(v.provider, v.stage) for v in out] == expected
    assert all(v.outcome == "pass" and v.where == "scn.yaml:3:5" for v in out)


def test_a_scope_matching_nothing_is_inconclusive() -> None:
    v = one([sla("ttft.max < 1s", provider="b", stage="load")], _grid())
    assert v.outcome == "inconclusive"
    assert v.reason == "no stage x provider matches provider=b stage=load"
    assert (v.provider, v.stage, v.value, v.n) == ("b", "load", None, 0)
    assert v.scope == "provider=b stage=load"
    assert one([sla("ttft.max < 1s")], ()).reason == "no stage x provider matches all"


def test_a_sweep_scope_matches_each_of_its_steps() -> None:
    recs = [
        *ttft_records(10, stage="ladder.1rps", provider="a"),
        *ttft_records(10, stage="ladder.2rps", provider="a"),
        *ttft_records(10, stage="ladder.2rps", provider="b"),
        *ttft_records(10, stage="ladder.5rps", provider="a"),  # named alike, not a step
    ]
    spec = SlaSpec(parse_sla("ttft.max < 1s"), stage="ladder", steps=("ladder.1rps", "ladder.2rps"))
    out = judge([spec], summaries(recs))
    assert [(v.provider, v.stage) for v in out] == [
        ("a", "ladder.1rps"),
        ("a", "ladder.2rps"),
        ("b", "ladder.2rps"),
    ]
    scoped = SlaSpec(parse_sla("ttft.max < 1s"), provider="b", stage="ladder", steps=spec.steps)
    assert [(v.provider, v.stage) for v in judge([scoped], summaries(recs))] == [
        ("b", "ladder.2rps")
    ]


def test_verdicts_keep_sla_order_then_summary_order() -> None:
    out = judge([sla("ttft.max < 1s", provider="a"), sla("error_rate < 1%")], _grid())
    assert [(v.sla, v.provider, v.stage) for v in out] == [
        ("ttft.max < 1s", "a", "warm"),
        ("ttft.max < 1s", "a", "load"),
        ("error_rate < 1%", "a", "warm"),
        ("error_rate < 1%", "b", "warm"),
        ("error_rate < 1%", "a", "load"),
    ]


def test_verdict_serialises_as_a_results_document_holds_it_and_has_a_scope() -> None:
    v = one([sla("ttft.max < 1s", provider="a", stage="warm")], _grid())
    d = TypeAdapter(Verdict).dump_python(v, mode="json")
    assert TypeAdapter(Verdict).validate_python(d) == v
    assert (v.assertion, v.status) == (v.sla, v.outcome)
    assert d["outcome"] == "pass"
    assert d["threshold"] == 1000.0
    assert set(d) == {
        "sla",
        "label",
        "op",
        "threshold",
        "provider",
        "stage",
        "outcome",
        "value",
        "n",
        "reason",
        "exact",
        "where",
        "window",
        "stopped_run",
    }
    assert (d["window"], d["stopped_run"]) == (None, False)
    assert v.scope == "provider=a stage=warm"
    none = Verdict("x < 1", "x", "<", 1.0, None, None, "pass", 0.5, 1, "")
    assert none.scope == "all"


def _v(outcome: str) -> Verdict:
    return Verdict("x < 1", "x", "<", 1.0, "p", "s", outcome, None, 0, "")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("outcomes", "code"),
    [
        ([], EXIT_PASS),
        (["pass", "pass"], EXIT_PASS),
        (["pass", "fail"], EXIT_FAIL),
        (["inconclusive", "fail"], EXIT_FAIL),
        (["pass", "inconclusive"], EXIT_INCONCLUSIVE),
        (["inconclusive"], EXIT_INCONCLUSIVE),
    ],
)
def test_exit_codes(outcomes: list[str], code: int) -> None:
    assert exit_code([_v(o) for o in outcomes]) == code
    assert (EXIT_PASS, EXIT_FAIL, EXIT_INCONCLUSIVE) == (0, 1, 3)


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (812.5, "ms", "812.5 ms"),
        (0.025, "ratio", "2.5%"),
        (3.0, "count", "3"),
        (1 / 3, "req/s", "0.333 req/s"),
        (-0.0001, "", "0"),
    ],
)
def test_format_value(value: float, unit: str, text: str) -> None:
    assert format_value(value, unit) == text

"""Windowed SLA assertions judged on fixed records: windows by dispatch time, allow K."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import TypeAdapter

from lens.export.table import verdict_rows
from lens.metrics.judge import Verdict, WindowResult, judge
from lens.metrics.summary import aggregate
from lens.metrics.windows import combine, judge_all, window_index
from lens.plan.model import SlaSpec
from lens.records import RequestRecord
from lens.scenario.sla import parse_sla
from tests.metrics._factory import failed, ns, record

SPAN = (0, ns(3000))  # a 3 s measured phase


def at(dispatch_ms: float, ttft_ms: float, index: int = 0) -> RequestRecord:
    """A successful request dispatched at ``dispatch_ms`` with that TTFT."""
    first = dispatch_ms + ttft_ms
    return record(
        index=index,
        t_dispatch=ns(dispatch_ms),
        t_headers=ns(dispatch_ms + 1),
        t_first_chunk=ns(first),
        t_first_token=ns(first),
        t_first_visible=ns(first),
        t_last_token=ns(first + 30),
        t_end=ns(first + 40),
        chunk_times=(ns(first), ns(first + 10), ns(first + 20), ns(first + 30)),
    )


def slow_middle() -> list[RequestRecord]:
    """Four requests per second for 3 s; those dispatched in the second second are slow
    (900 ms TTFT, ending in the third second: judged by dispatch, not by end)."""
    out: list[RequestRecord] = []
    for second in range(3):
        ttft = 900.0 if second == 1 else 100.0
        out += [at(second * 1000 + 250 * i, ttft, index=len(out)) for i in range(4)]
    return out


def wins(v: Verdict) -> tuple[WindowResult, ...]:
    assert v.window is not None
    return v.window.windows


def verdicts(
    text: str, records: list[RequestRecord], window_s: float | None = None, allow: int = 0
) -> list[Verdict]:
    spec = SlaSpec(parse_sla(text), window_s=window_s, allow=allow)
    summaries = aggregate(records, stage_windows={("s", "p"): SPAN})
    return list(judge_all([spec], summaries, records, {("s", "p"): SPAN}))


def test_one_slow_window_fails_allow_0_and_passes_allow_1() -> None:
    (strict,) = verdicts("ttft.p50 < 500ms", slow_middle(), window_s=1.0, allow=0)
    assert strict.outcome == "fail"
    assert [w.outcome for w in wins(strict)] == ["pass", "fail", "pass"]
    assert [w.value for w in wins(strict)] == [100.0, 900.0, 100.0]
    assert [(w.start_s, w.end_s, w.n) for w in wins(strict)] == [(0, 1, 4), (1, 2, 4), (2, 3, 4)]
    assert strict.value == 900.0  # the worst window
    assert strict.reason.startswith("1 of 3 windows of 1s failed (allow 0), 0 inconclusive")
    assert "#1 [1s-2s] ttft.p50 = 900 ms" in strict.reason
    d = strict.window
    assert d is not None
    assert (d.seconds, d.allow, d.passed, d.failed, d.inconclusive) == (
        1.0,
        0,
        2,
        1,
        0,
    )
    (lenient,) = verdicts("ttft.p50 < 500ms", slow_middle(), window_s=1.0, allow=1)
    assert lenient.outcome == "pass"
    # The same records judged as a whole stage pass: the window is what catches it.
    (whole,) = verdicts("ttft.p50 < 500ms", slow_middle())
    assert whole.outcome == "pass"
    assert whole.window is None


def test_a_window_with_too_few_samples_is_inconclusive_not_a_pass() -> None:
    records = [*slow_middle()[:4], *slow_middle()[8:], at(1500, 100, index=99)]
    (v,) = verdicts("ttft.p50 < 500ms", records, window_s=1.0, allow=0)
    assert [w.outcome for w in wins(v)] == ["pass", "inconclusive", "pass"]
    assert v.outcome == "inconclusive"
    assert "p50 needs >= 2 samples, got 1" in wins(v)[1].reason
    (allowed,) = verdicts("ttft.p50 < 500ms", records, window_s=1.0, allow=1)
    assert allowed.outcome == "pass"  # the inconclusive window cannot decide it


def test_error_rate_per_window_and_failures_only_of_one_window() -> None:
    records = slow_middle()
    records += [failed(index=50 + i, t_dispatch=ns(2100 + i), t_end=ns(2200)) for i in range(2)]
    (v,) = verdicts("error_rate < 10%", records, window_s=1.0)
    assert [w.outcome for w in wins(v)] == ["pass", "pass", "fail"]
    assert wins(v)[2].value == pytest.approx(2 / 6)


def test_no_measured_request_or_no_window_is_inconclusive() -> None:
    summaries = aggregate([], stage_windows={("s", "p"): SPAN})
    spec = SlaSpec(parse_sla("ttft.p95 < 1s"), window_s=1.0)
    (v,) = judge_all([spec], summaries, [], {("s", "p"): SPAN})
    assert v.outcome == "inconclusive"
    assert "no window to judge" in v.reason
    # From summaries alone (re-judging a results file) a window cannot be judged.
    (alone,) = judge([spec], aggregate(slow_middle(), stage_windows={("s", "p"): SPAN}))
    assert alone.outcome == "inconclusive"
    assert alone.window is not None
    assert alone.window.seconds == 1.0


def test_window_grid_and_combination_rules() -> None:
    assert [window_index(t, ns(100), ns(1000)) for t in (0, ns(100), ns(1099), ns(1100))] == [
        0,
        0,
        0,
        1,
    ]
    assert combine([], 0) == "inconclusive"
    assert combine(["pass", "fail"], 0) == "fail"
    assert combine(["pass", "fail"], 1) == "pass"
    assert combine(["fail", "inconclusive"], 1) == "inconclusive"
    assert combine(["fail", "fail", "inconclusive"], 1) == "fail"


def test_windowed_verdict_round_trips_through_its_stored_form() -> None:
    (v,) = verdicts("ttft.p50 < 500ms", slow_middle(), window_s=1.0, allow=0)
    adapter = TypeAdapter(Verdict)
    assert adapter.validate_json(adapter.dump_json(v)) == v


def test_the_table_names_the_window_and_a_stop() -> None:
    (v,) = verdicts("ttft.p50 < 500ms", slow_middle(), window_s=1.0, allow=0)
    stopped = replace(v, stopped_run=True)
    _, (row,) = verdict_rows([stopped])
    assert row[:2] == ["FAIL", "ttft.p50 < 500ms [1s windows]"]
    assert row[3] == "900 ms"
    assert row[5].endswith("; stopped the run")

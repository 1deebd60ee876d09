"""Per-request formulas of docs/metrics.md, on hand-computed records."""

from __future__ import annotations

import dataclasses

import pytest

from lens.metric_catalog import REQUEST_METRICS, SCALAR_METRICS, SERIES_METRICS
from lens.metrics.request import (
    icl_values,
    itl_gaps,
    itl_values,
    output_tokens_per_s,
    request_metrics,
    tpot_ms,
)
from lens.records import EngineTimings, ErrorClass

from ._factory import failed, ns, record


def test_metric_names_cover_the_catalogue_exactly() -> None:
    # cost is the one metric a record cannot give alone: it needs a price (metrics.cost)
    assert set(SCALAR_METRICS) | set(SERIES_METRICS) | {"cost"} == set(REQUEST_METRICS)
    assert not set(SCALAR_METRICS) & set(SERIES_METRICS)


def test_engine_metrics_split_ttft_at_the_engines_prefill() -> None:
    rec = dataclasses.replace(
        record(), engine=EngineTimings(prompt_ms=150.0, per_token_ms=9.5, decode_tokens=4)
    )
    m = request_metrics(rec)
    assert (m["engine_prefill"], m["ttft_overhead"], m["engine_tpot"]) == (150.0, 50.0, 9.5)
    # No prefill reported (TGI): no split, the decode figure still kept.
    rec = dataclasses.replace(record(), engine=EngineTimings(per_token_ms=9.5))
    m = request_metrics(rec)
    assert (m["engine_prefill"], m["ttft_overhead"], m["engine_tpot"]) == (None, None, 9.5)
    # No first token: no TTFT to split.
    rec = dataclasses.replace(rec, t_first_token=None, engine=EngineTimings(prompt_ms=1.0))
    assert request_metrics(rec)["ttft_overhead"] is None


def test_every_formula_on_a_plain_stream() -> None:
    # dispatch 10, headers 60, tokens at 210/220/230/240 (one each), end 250 (ms)
    m = request_metrics(record())
    assert m == {
        "ttft": 200.0,  # 210 - 10
        "ttfot": 200.0,
        "ttfb": 50.0,  # 60 - 10
        "e2e": 240.0,  # 250 - 10
        "tpot": 10.0,  # (240 - 210) / (4 - 1)
        "dispatch_lag": None,  # closed loop: no intended time
        "ttft_from_intended": None,
        "e2e_from_intended": None,
        "output_tokens_per_s": 100.0,  # 3 tokens / 0.030 s
        "input_tokens": 12.0,
        "output_tokens": 4.0,
        "engine_prefill": None,  # the engine reported no timings
        "ttft_overhead": None,
        "engine_tpot": None,
    }
    assert itl_values(record()) == [10.0, 10.0, 10.0]
    assert icl_values(record()) == [10.0, 10.0, 10.0]


def test_sub_millisecond_precision_is_kept() -> None:
    m = request_metrics(record(t_dispatch=ns(10), t_headers=ns(10.0005)))
    assert m["ttfb"] == pytest.approx(0.0005)


def test_reasoning_first_delays_ttfot_not_ttft() -> None:
    m = request_metrics(record(t_first_visible=ns(900), t_end=ns(950)))
    assert (m["ttft"], m["ttfot"]) == (200.0, 890.0)


def test_open_loop_metrics_measure_from_the_intended_time() -> None:
    m = request_metrics(record(t_intended=ns(4)))
    assert m["dispatch_lag"] == 6.0  # 10 - 4
    assert m["ttft_from_intended"] == 206.0  # 210 - 4
    assert m["e2e_from_intended"] == 246.0  # 250 - 4


def test_itl_splits_a_k_token_chunk_into_k_gaps() -> None:
    # chunks at 210 (1 token), 220 (2 tokens), 250 (3 tokens)
    rec = record(
        chunk_times=(ns(210), ns(220), ns(250)),
        chunk_tokens=(1, 2, 3),
        t_last_token=ns(250),
        output_tokens=6,
    )
    assert itl_values(rec) == [5.0, 5.0, 10.0, 10.0, 10.0]
    assert icl_values(rec) == [10.0, 30.0]
    # tpot uses the token count, not the chunks: (250 - 210) / 5
    assert tpot_ms(rec) == 8.0
    # the itl values sum to the decode time, one value per token after the first chunk
    assert sum(itl_values(rec)) == 40.0


def test_itl_gaps_apply_the_same_rule_to_ms_offsets() -> None:
    # results.json keeps chunk arrivals as ms after dispatch, not ns stamps
    assert itl_gaps([200.0, 210.0, 240.0], [1, 2, 3]) == [5.0, 5.0, 10.0, 10.0, 10.0]
    assert itl_gaps([200.0, 210.0], [1, 0]) == [10.0]
    assert itl_gaps([200.0], [4]) == []


def test_itl_counts_a_zero_token_chunk_as_one() -> None:
    rec = record(chunk_times=(ns(210), ns(220), ns(250)), chunk_tokens=(1, 0, 2))
    assert itl_values(rec) == [10.0, 15.0, 15.0]


def test_itl_without_token_counts_takes_one_token_per_chunk() -> None:
    rec = record(chunk_times=(ns(210), ns(230), ns(240)), chunk_tokens=())
    assert itl_values(rec) == [20.0, 10.0]


def test_a_single_chunk_has_no_gaps() -> None:
    rec = record(chunk_times=(ns(210),), chunk_tokens=(4,), t_last_token=ns(210))
    assert itl_values(rec) == []
    assert icl_values(rec) == []


def test_tpot_and_tokens_per_second_need_two_tokens() -> None:
    one = record(output_tokens=1, t_last_token=ns(210), chunk_times=(ns(210),), chunk_tokens=(1,))
    m = request_metrics(one)
    assert m["tpot"] is None
    assert m["output_tokens_per_s"] is None
    assert m["output_tokens"] == 1.0


def test_tpot_is_absent_when_the_token_count_or_a_stamp_is_missing() -> None:
    for rec in (
        record(output_tokens=None),
        record(t_last_token=None),
        record(t_first_token=None),
    ):
        m = request_metrics(rec)
        assert m["tpot"] is None
        assert m["output_tokens_per_s"] is None


def test_all_tokens_in_one_chunk_give_zero_tpot_but_no_tokens_per_second() -> None:
    # a buffering gateway: 4 tokens arrive together, so the observed decode time is 0
    rec = record(chunk_times=(ns(210),), chunk_tokens=(4,), t_last_token=ns(210))
    m = request_metrics(rec)
    assert m["tpot"] == 0.0
    assert m["output_tokens_per_s"] is None
    assert output_tokens_per_s(rec) is None


def test_missing_stamps_are_none_never_zero() -> None:
    rec = record(
        t_headers=None,
        t_first_chunk=None,
        t_first_token=None,
        t_first_visible=None,
        t_last_token=None,
        chunk_times=(),
        chunk_tokens=(),
        input_tokens=None,
        output_tokens=None,
    )
    m = request_metrics(rec)
    assert m["e2e"] == 240.0  # the only stamp every request has
    assert {k for k, v in m.items() if v is not None} == {"e2e"}
    assert itl_values(rec) == []
    assert icl_values(rec) == []


def test_a_failed_request_contributes_only_dispatch_lag() -> None:
    rec = failed(ErrorClass.HTTP_5XX, t_intended=ns(8))
    m = request_metrics(rec)
    assert m["dispatch_lag"] == 2.0
    assert {k for k, v in m.items() if v is not None} == {"dispatch_lag"}


def test_a_cut_stream_keeps_its_stamps_out_of_the_latencies() -> None:
    # the stream broke after two tokens: its ttft and gaps were reached but do not count
    cut = record(
        ok=False,
        error_class=ErrorClass.CUT_STREAM,
        chunk_times=(ns(210), ns(220)),
        chunk_tokens=(1, 1),
        t_last_token=ns(220),
        output_tokens=2,
    )
    assert request_metrics(cut)["ttft"] is None
    assert itl_values(cut) == []
    assert icl_values(cut) == []
    # ...unless a per-request export asks for whatever was reached
    m = request_metrics(cut, include_failed=True)
    assert (m["ttft"], m["tpot"]) == (200.0, 10.0)
    assert itl_values(cut, include_failed=True) == [10.0]
    assert icl_values(cut, include_failed=True) == [10.0]


def test_include_failed_on_a_fast_500() -> None:
    m = request_metrics(failed(), include_failed=True)
    assert (m["ttfb"], m["e2e"], m["ttft"]) == (2.0, 3.0, None)

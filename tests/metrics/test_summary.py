"""Records -> Summary: counts, error classes, rates over windows, statistics, shards."""

from __future__ import annotations

import json

import pytest
from pydantic import TypeAdapter

from lens.metric_catalog import REQUEST_METRICS, REQUEST_STATS, STAGE_METRICS
from lens.metrics.sketch import MetricSketch
from lens.metrics.summary import (
    UNKNOWN_ERROR,
    MetricStats,
    StageAccumulator,
    Summary,
    SummaryBuilder,
    aggregate,
)
from lens.records import ErrorClass, RequestRecord, TokenSource

from ._factory import failed, ns, record

WINDOW_2S = (ns(0), ns(2000))


def only(summaries: tuple[Summary, ...]) -> Summary:
    assert len(summaries) == 1
    return summaries[0]


def test_every_error_class_counts_in_the_denominator() -> None:
    recs = [record(index=i) for i in range(3)]
    lens_cut_off = (ErrorClass.CANCELLED, ErrorClass.DRAINED, ErrorClass.LENS_LOST)
    sut_classes = [c for c in ErrorClass if c not in lens_cut_off]
    recs += [failed(cls, index=10 + i) for i, cls in enumerate(ErrorClass)]
    recs.append(failed(error_class=None, index=99))  # a failure nobody classified
    s = only(aggregate(recs, stage_windows={("s", "p"): WINDOW_2S}))
    n_classes = len(sut_classes)
    assert s.requests == 3 + n_classes + 1
    assert s.ok == 3
    assert s.errors == n_classes + 1
    assert s.error_counts == {**{c.value: 1 for c in ErrorClass}, UNKNOWN_ERROR: 1}
    assert s.error_rate == pytest.approx((n_classes + 1) / s.requests)
    assert s.success_rate == pytest.approx(3 / s.requests)
    assert s.get("errors") == float(n_classes + 1)


def test_drained_requests_are_listed_apart_and_not_in_any_rate() -> None:
    recs = [record(index=0), failed(index=1), failed(ErrorClass.DRAINED, index=2)]
    s = only(aggregate(recs, stage_windows={("s", "p"): WINDOW_2S}))
    assert (s.requests, s.ok, s.errors, s.drained) == (2, 1, 1, 1)
    assert (s.error_rate, s.success_rate) == (0.5, 0.5)
    assert s.error_counts[ErrorClass.DRAINED.value] == 1


def test_requests_cut_off_by_an_interruption_are_listed_but_not_counted() -> None:
    recs = [record(index=0), failed(ErrorClass.CANCELLED, index=1)]
    s = only(aggregate(recs, stage_windows={("s", "p"): WINDOW_2S}))
    assert (s.requests, s.ok, s.errors, s.error_rate) == (1, 1, 0, 0.0)
    assert s.error_counts["cancelled"] == 1


def test_error_counts_list_every_class_even_at_zero() -> None:
    s = only(aggregate([record()], stage_windows={}))
    assert s.error_counts == {c.value: 0 for c in ErrorClass}
    assert (s.errors, s.error_rate, s.success_rate) == (0, 0.0, 1.0)


def test_rps_and_throughput_count_successes_over_the_window() -> None:
    recs = [record(index=i) for i in range(3)] + [failed()]  # 3 ok x 4 tokens, 1 error
    s = only(aggregate(recs, stage_windows={("s", "p"): WINDOW_2S}))
    assert s.duration_s == 2.0
    assert s.rps == 1.5  # 3 ok / 2 s
    assert s.throughput == 6.0  # 12 tokens / 2 s
    assert s.output_tokens == 12
    assert s.token_sources == {"usage": 3}


def test_rates_are_absent_without_a_window_or_with_an_empty_one() -> None:
    s = only(aggregate([record()], stage_windows={}))
    assert (s.rps, s.throughput, s.duration_s) == (None, None, None)
    z = only(aggregate([record()], stage_windows={("s", "p"): (ns(5), ns(5))}))
    assert (z.rps, z.throughput, z.duration_s) == (None, None, 0.0)


def test_a_stage_of_failures_has_zero_rate_not_none() -> None:
    s = only(aggregate([failed(), failed()], stage_windows={("s", "p"): WINDOW_2S}))
    assert (s.rps, s.throughput, s.error_rate) == (0.0, 0.0, 1.0)
    assert s.metrics["ttft"].n == 0
    assert s.metrics["dispatch_lag"].n == 0  # closed loop: no intended times


def test_failed_requests_do_not_improve_latency_but_do_count_dispatch_lag() -> None:
    recs = [
        record(t_intended=ns(9)),  # ok: e2e 240, dispatch lag 1
        failed(t_intended=ns(7)),  # fast 500: e2e 3, dispatch lag 3
    ]
    s = only(aggregate(recs, stage_windows={}))
    assert s.metrics["e2e"].n == 1
    assert s.metrics["e2e"].min == 240.0
    assert s.metrics["ttfb"].n == 1
    assert s.metrics["dispatch_lag"].n == 2
    assert s.metrics["dispatch_lag"].max == 3.0


def test_statistics_are_nearest_rank_over_successes() -> None:
    # ttft of 10..100 ms in steps of 10 (dispatch at 10 ms)
    recs = [
        record(index=i, t_first_token=ns(10 + 10 * i), t_first_visible=ns(10 + 10 * i))
        for i in range(1, 11)
    ]
    s = only(aggregate(recs, stage_windows={}))
    ttft = s.metrics["ttft"]
    assert ttft == MetricStats(
        n=10, min=10.0, mean=55.0, p50=50.0, p90=90.0, p95=100.0, p99=100.0, max=100.0, unit="ms"
    )
    assert s.get("ttft", "p90") == 90.0
    assert s.get("ttft", "n") == 10.0
    assert s.samples("ttft", "p90") == 10


def test_itl_and_icl_collect_every_gap_of_every_success() -> None:
    recs = [
        record(),  # 3 gaps of 10 ms
        record(chunk_times=(ns(210), ns(220), ns(250)), chunk_tokens=(1, 2, 3)),
        failed(chunk_times=(ns(1), ns(2)), chunk_tokens=(1, 1)),  # ignored
    ]
    s = only(aggregate(recs, stage_windows={}))
    assert s.metrics["itl"].n == 3 + 5
    assert s.metrics["icl"].n == 3 + 2
    assert s.metrics["itl"].min == 5.0
    assert s.metrics["icl"].max == 30.0


def test_every_catalogue_metric_is_present_and_unmeasured_ones_are_empty() -> None:
    s = only(aggregate([record()], stage_windows={}))
    assert set(s.metrics) == set(REQUEST_METRICS)
    assert s.metrics["dispatch_lag"] == MetricStats(n=0, unit="ms")
    assert s.get("dispatch_lag", "p50") is None
    assert s.get("dispatch_lag", "n") == 0.0


def test_groups_come_in_first_seen_order_and_windows_add_empty_ones() -> None:
    recs = [
        record(stage="warm", provider="b"),
        record(stage="warm", provider="a"),
        record(stage="load", provider="b"),
        record(stage="warm", provider="b"),
    ]
    windows = {("warm", "a"): WINDOW_2S, ("idle", "a"): WINDOW_2S}
    out = aggregate(recs, stage_windows=windows)
    assert [(s.stage, s.provider, s.requests) for s in out] == [
        ("warm", "b", 2),
        ("warm", "a", 1),
        ("load", "b", 1),
        ("idle", "a", 0),
    ]
    idle = out[-1]
    assert (idle.error_rate, idle.success_rate, idle.rps) == (None, None, 0.0)
    assert out[1].rps == 0.5
    assert out[0].rps is None


def test_metric_stats_accessors() -> None:
    empty = MetricStats(n=0)
    assert all(empty.get(stat) is None for stat in REQUEST_STATS if stat != "n")
    assert empty.get("n") == 0.0
    with pytest.raises(KeyError, match="unknown statistic"):
        empty.get("p42")
    stats = MetricStats(n=1, min=1.0, mean=1.0, p50=1.0, p90=1.0, p95=1.0, p99=1.0, max=1.0)
    d = TypeAdapter(MetricStats).dump_python(stats)
    assert d == {**dict.fromkeys(REQUEST_STATS, 1.0), "n": 1, "exact": True, "unit": None}


def test_summary_get_and_samples() -> None:
    s = only(aggregate([record(), failed()], stage_windows={("s", "p"): WINDOW_2S}))
    for metric in STAGE_METRICS:
        assert s.samples(metric) == 2
    assert s.get("requests") == 2.0
    assert s.get("error_rate") == 0.5
    assert s.get("rps") == 0.5
    with pytest.raises(KeyError, match="takes no statistic"):
        s.get("error_rate", "p50")
    with pytest.raises(KeyError, match="name a statistic"):
        s.get("ttft")
    with pytest.raises(KeyError, match="unknown metric"):
        s.get("latency", "p50")
    with pytest.raises(KeyError, match="unknown metric"):
        s.samples("latency", "p50")
    no_window = only(aggregate([record()], stage_windows={}))
    assert no_window.get("rps") is None


def test_summary_statistics_carry_the_catalogues_units() -> None:
    s = only(aggregate([record(), failed()], stage_windows={("s", "p"): WINDOW_2S}))
    assert (s.stage, s.provider, s.requests, s.ok, s.errors) == ("s", "p", 2, 1, 1)
    assert s.error_counts["http_5xx"] == 1
    assert (s.metrics["ttft"].unit, s.metrics["ttft"].p50) == ("ms", 200.0)
    assert s.metrics["output_tokens_per_s"].unit == "tokens/s"
    assert all(s.metrics[m].unit == info.unit for m, info in REQUEST_METRICS.items())
    assert s.metrics["dispatch_lag"] == MetricStats(n=0, unit="ms")


def test_long_runs_switch_to_digests_and_say_so() -> None:
    builder = SummaryBuilder(exact_limit=50)
    for i in range(200):
        builder.add(record(index=i, t_end=ns(250 + i)))
    (s,) = builder.build()
    assert not s.metrics["e2e"].exact
    assert s.metrics["ttft"].exact is False
    assert s.metrics["e2e"].n == 200
    assert (s.metrics["e2e"].min, s.metrics["e2e"].max) == (240.0, 439.0)
    assert s.metrics["e2e"].p50 == pytest.approx(340, abs=3)
    sketch = builder.sketches[("s", "p")]["e2e"]
    assert sketch.count == 200
    assert not sketch.exact


def test_token_sources_are_counted_not_mixed() -> None:
    recs = [record(), record(token_source=TokenSource.ESTIMATED), record(token_source=None)]
    s = only(aggregate(recs, stage_windows={}))
    assert s.token_sources == {"usage": 1, "estimated": 1}


def test_accumulator_refuses_foreign_records_and_shards() -> None:
    acc = StageAccumulator("s", "p")
    with pytest.raises(ValueError, match="fed to the accumulator"):
        acc.add(record(stage="other"))
    with pytest.raises(ValueError, match="cannot merge"):
        acc.merge(StageAccumulator("s", "q"))


def _stream(n: int, provider: str = "p") -> list[RequestRecord]:
    out: list[RequestRecord] = []
    for i in range(n):
        if i % 7 == 3:
            out.append(failed(ErrorClass.HTTP_429, index=i, provider=provider))
        else:
            out.append(record(index=i, provider=provider, t_end=ns(250 + i % 13)))
    return out


def test_shards_merged_equal_one_aggregate() -> None:
    recs = _stream(60) + _stream(20, provider="q")
    windows = {("s", "p"): WINDOW_2S, ("s", "q"): WINDOW_2S}
    whole = aggregate(recs, stage_windows=windows)
    left, right = SummaryBuilder(), SummaryBuilder()
    left.add_many(recs[:37])
    right.add_many(recs[37:])
    left.merge(right)
    assert left.build(windows) == whole


def test_builder_round_trips_through_json_for_later_merging() -> None:
    recs = _stream(300)
    builder = SummaryBuilder(exact_limit=100)  # some sketches switch to digests
    builder.add_many(recs)
    back = SummaryBuilder.from_dict(json.loads(json.dumps(builder.to_dict())))
    assert back.build({("s", "p"): WINDOW_2S}) == builder.build({("s", "p"): WINDOW_2S})
    assert set(back.groups) == {("s", "p")}
    back.merge(builder)
    (merged,) = back.build()
    assert merged.requests == 600
    assert merged.error_counts["http_429"] == 2 * sum(1 for r in recs if not r.ok)


def test_builder_from_dict_rejects_foreign_forms() -> None:
    with pytest.raises(ValueError, match="summary builder"):
        SummaryBuilder.from_dict({"kind": "lens.metric_sketch", "v": 1})


def test_a_shard_from_a_newer_lens_keeps_its_unknown_metric() -> None:
    d = SummaryBuilder().to_dict()
    acc = StageAccumulator("s", "p")
    acc.add(record())
    g = acc.to_dict()
    extra = MetricSketch()
    extra.add(1.0)
    g["sketches"]["future_metric"] = extra.to_dict()
    d["groups"] = [g]
    (s,) = SummaryBuilder.from_dict(d).build()
    assert s.metrics["future_metric"].n == 1
    assert s.metrics["future_metric"].unit is None


def test_lens_lost_requests_are_listed_apart_and_not_in_any_rate() -> None:
    # In flight in a worker process that died: lens lost them, the server did not fail them.
    recs = [record(index=0), failed(index=1), failed(ErrorClass.LENS_LOST, index=2)]
    s = only(aggregate(recs, stage_windows={("s", "p"): WINDOW_2S}))
    assert (s.requests, s.ok, s.errors) == (2, 1, 1)
    assert s.error_rate == 0.5
    assert s.error_counts[ErrorClass.LENS_LOST.value] == 1

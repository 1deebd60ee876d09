"""What lens keeps of one exposition (lens.run.servermetrics.parse_exposition), and how a
stage's counter deltas add up scrape by scrape (resets, late-born samples)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from lens.plan.model import ServerMetricsSpec
from lens.run.clock import RunClock
from lens.run.servermetrics import ServerMetricsScraper, parse_exposition, wanted

VLLM = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="m"} 3.0
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{model_name="m"} 120.0
vllm:prompt_tokens_created{model_name="m"} 1.7e9
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{le="1.0",model_name="m"} 2.0
vllm:e2e_request_latency_seconds_bucket{le="+Inf",model_name="m"} 4.0
vllm:e2e_request_latency_seconds_sum{model_name="m"} 3.5
vllm:e2e_request_latency_seconds_count{model_name="m"} 4.0
# TYPE tgi_queue_size summary
tgi_queue_size{quantile="0.5"} 1.0
tgi_queue_size_sum 10.0
tgi_queue_size_count 5.0
untyped_thing 7
"""
M = (("model_name", "m"),)


def test_kinds_are_sorted_into_counters_and_gauges() -> None:
    got = parse_exposition(VLLM)
    assert got.gauges == {
        ("vllm:num_requests_running", M): 3.0,
        ("untyped_thing", ()): 7.0,
    }
    assert got.counters == {
        ("vllm:prompt_tokens_total", M): ("counter", 120.0),
        ("vllm:e2e_request_latency_seconds_sum", M): ("histogram", 3.5),
        ("vllm:e2e_request_latency_seconds_count", M): ("histogram", 4.0),
        ("tgi_queue_size_sum", ()): ("summary", 10.0),
        ("tgi_queue_size_count", ()): ("summary", 5.0),
    }


@pytest.mark.parametrize(
    ("names", "kept"),
    [
        (("vllm:num_requests_running",), {"vllm:num_requests_running"}),
        # A counter by its family name or its sample name.
        (("vllm:prompt_tokens",), {"vllm:prompt_tokens_total"}),
        (("vllm:prompt_tokens_total",), {"vllm:prompt_tokens_total"}),
        (
            ("vllm:*",),
            {
                "vllm:num_requests_running",
                "vllm:prompt_tokens_total",
                "vllm:e2e_request_latency_seconds_sum",
                "vllm:e2e_request_latency_seconds_count",
            },
        ),
        (
            ("tgi_*", "untyped_thing"),
            {"tgi_queue_size_sum", "tgi_queue_size_count", "untyped_thing"},
        ),
        (("nothing_like_it",), set()),
    ],
)
def test_names_select_families(names: tuple[str, ...], kept: set[str]) -> None:
    got = parse_exposition(VLLM, names)
    assert {name for name, _ in (*got.gauges, *got.counters)} == kept


def test_a_counter_keeps_the_name_the_engine_wrote() -> None:
    # llama-server writes some counters without _total; the parser would add it.
    text = (
        "# TYPE llamacpp:n_tokens_max counter\n"
        "llamacpp:n_tokens_max 300\n"
        "# TYPE llamacpp:n_decode_total counter\n"
        "llamacpp:n_decode_total 120\n"
    )
    assert parse_exposition(text).counters == {
        ("llamacpp:n_tokens_max", ()): ("counter", 300.0),
        ("llamacpp:n_decode_total", ()): ("counter", 120.0),
    }
    assert set(parse_exposition(text, ("llamacpp:n_tokens_max",)).counters) == {
        ("llamacpp:n_tokens_max", ())
    }


def test_wanted_is_case_sensitive_and_globbed() -> None:
    assert wanted("llamacpp:requests_processing", "gauge", ("llamacpp:requests_*",))
    assert not wanted("llamacpp:requests_processing", "gauge", ("LLAMACPP:*",))
    assert wanted("anything", "gauge", ())


@pytest.mark.parametrize("body", ["<html><body>Not Found</body></html>", "metric{ 1", "x one"])
def test_a_body_that_is_no_exposition_is_an_error(body: str) -> None:
    with pytest.raises(ValueError):
        parse_exposition(body)


def _exposition(tokens: float, running: float, extra: str = "") -> str:
    return (
        "# TYPE llamacpp:tokens_predicted_total counter\n"
        f"llamacpp:tokens_predicted_total {tokens}\n"
        "# TYPE llamacpp:requests_processing gauge\n"
        f"llamacpp:requests_processing {running}\n" + extra
    )


async def _scraped(bodies: list[str]) -> ServerMetricsScraper:
    """A scraper that saw ``bodies`` in one stage: the first before it, the last after."""
    pending = list(bodies)

    async def fetch(_url: str, _timeout: float) -> str:
        body = pending.pop(0)
        if body == "fail":
            raise OSError("connection refused")
        return body

    spec = ServerMetricsSpec(url="http://engine/metrics", every_s=1.0, timeout_s=0.5)
    scraper = ServerMetricsScraper("p", spec, RunClock(), fetch)
    await scraper.before("s")
    for _ in bodies[1:-1]:
        await scraper.scrape()
    await scraper.after()
    return scraper


async def test_delta_is_after_minus_before_without_reset() -> None:
    report = (await _scraped([_exposition(10, 0), _exposition(25, 4), _exposition(40, 0)])).report()
    (stage,) = report.stages
    (c,) = stage.counters
    assert (c.name, c.before, c.after, c.delta, c.reset) == (
        "llamacpp:tokens_predicted_total",
        10,
        40,
        30,
        False,
    )
    assert stage.scrapes == 3
    (g,) = report.gauges
    assert [v for _, v in g.points] == [0, 4, 0]


async def test_a_reset_mid_stage_counts_from_zero_and_is_flagged() -> None:
    # 10 -> 25 (+15), restart, 5 (+5), 12 (+7): 27, not 12 - 10.
    bodies = [_exposition(10, 0), _exposition(25, 0), _exposition(5, 0), _exposition(12, 0)]
    (c,) = (await _scraped(bodies)).report().stages[0].counters
    assert (c.delta, c.reset) == (27, True)


async def test_a_sample_born_during_the_stage_counts_from_zero() -> None:
    born = '# TYPE x_total counter\nx_total{a="1"} 4\n'
    bodies = [_exposition(0, 0), _exposition(3, 1, born), _exposition(6, 0, born)]
    counters = {c.name: c for c in (await _scraped(bodies)).report().stages[0].counters}
    assert counters["x_total"].delta == 4
    assert counters["x_total"].labels == (("a", "1"),)
    assert counters["llamacpp:tokens_predicted_total"].delta == 6


async def test_one_scrape_between_two_stages_closes_one_and_opens_the_other() -> None:
    bodies = [_exposition(1, 0), _exposition(4, 2), _exposition(6, 0), _exposition(10, 0)]

    async def fetch(_url: str, _timeout: float) -> str:
        return bodies.pop(0)

    spec = ServerMetricsSpec(url="http://engine/metrics", every_s=1.0, timeout_s=0.5)
    scraper = ServerMetricsScraper("p", spec, RunClock(), fetch)
    await scraper.before("one")
    await scraper.scrape()
    await scraper.between("two")
    await scraper.after()
    one, two = scraper.report().stages
    assert (one.stage, one.scrapes, one.counters[0].delta) == ("one", 3, 5)
    assert (two.stage, two.scrapes, two.counters[0].delta) == ("two", 2, 4)
    assert one.t_after is not None
    assert one.t_after == two.t_before
    assert scraper.report().scrapes == 4


async def test_failed_scrapes_leave_gaps_not_errors() -> None:
    scraper = await _scraped(["fail", _exposition(5, 1), _exposition(9, 0)])
    report = scraper.report()
    (stage,) = report.stages
    assert (report.scrapes, report.failed) == (3, 1)
    assert report.last_error == "OSError: connection refused"
    assert (stage.t_before, stage.failed, stage.scrapes) == (None, 1, 2)
    # The first value seen is the baseline: no scrape before it said it was absent.
    (c,) = stage.counters
    assert (c.before, c.delta) == (5, 4)


async def test_a_scrape_past_its_timeout_fails(autojump_clock: trio.testing.MockClock) -> None:
    async def slow(_url: str, _timeout: float) -> str:
        await trio.sleep(10)
        return _exposition(1, 1)

    spec = ServerMetricsSpec(url="http://u:pw@engine/metrics", every_s=1.0, timeout_s=0.5)
    scraper = ServerMetricsScraper("p", spec, RunClock(), slow)
    start = trio.current_time()
    assert await scraper.scrape() is None
    assert trio.current_time() - start == pytest.approx(0.5)
    report = scraper.report()
    assert report.last_error == "timed out after 0.5s"
    assert report.url == "http://***:***@engine/metrics"

"""Adaptive sweeps in the scenario: each misuse is one positioned, explained problem."""

from __future__ import annotations

import pytest

from lens.scenario.model import SweepStage
from tests.scenario.helpers import BASE, only_problem, parse


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        pytest.param(
            (
                "    pattern: sweep\n"
                "    rates: [1/s, 2/s]\n"
                "    duration: 1s\n"
                "    stop_when: 'ttft.p95 >> 2s'\n"
            ),
            (
                "s.yaml:15:16: load[0].stop_when: cannot parse SLA 'ttft.p95 >> 2s': "
                "expected '<metric>.<stat> <op> <value>[unit]', e.g. 'ttft.p95 < 800ms'"
                " or 'error_rate < 1%' (stop_when: the condition that ends the sweep, "
                "e.g. 'ttft.p95 > 2s')"
            ),
            id="stop-when-syntax",
        ),
        pytest.param(
            ("    pattern: sweep\n    rates: [1/s, 2/s]\n    duration: 1s\n    stop_when: [5]\n"),
            (
                "s.yaml:15:16: load[0].stop_when: 'stop_when' takes SLA expressions as "
                "strings (the condition that ends the sweep, e.g. 'ttft.p95 > 2s')"
            ),
            id="stop-when-not-string",
        ),
        pytest.param(
            (
                "    pattern: sweep\n"
                "    auto: {steps: 2}\n"
                "    duration: 1s\n"
                "    stop_when: 'ttft.p95 > 2s'\n"
            ),
            (
                "s.yaml:15:5: load[0].stop_when: 'stop_when' ends a sweep over listed "
                "'rates' or 'concurrencies'; auto decides its own steps"
            ),
            id="stop-when-with-auto",
        ),
        pytest.param(
            (
                "    pattern: sweep\n"
                "    rates: [1/s, 2/s]\n"
                "    duration: 1s\n"
                "    find_max_rate: 'ttft.p95 < 2s'\n"
                "    precision: 5%\n"
            ),
            (
                "s.yaml:13:5: load[0].rates: find_max_rate searches a range of rates: "
                "give rates: {from: 1/s, to: 64/s}"
            ),
            id="search-needs-range",
        ),
        pytest.param(
            (
                "    pattern: sweep\n"
                "    concurrencies: [1, 2]\n"
                "    duration: 1s\n"
                "    find_max_rate: 'ttft.p95 < 2s'\n"
                "    precision: 5%\n"
            ),
            (
                "s.yaml:15:5: load[0].find_max_rate: find_max_rate searches a range of "
                "rates: give rates: {from: 1/s, to: 64/s}"
            ),
            id="search-needs-rates",
        ),
        pytest.param(
            ("    pattern: sweep\n    rates: {from: 1/s, to: 4/s}\n    duration: 1s\n"),
            (
                "s.yaml:13:5: load[0].rates: a range of rates ({from, to}) is searched "
                "by 'find_max_rate'; to run fixed steps, list them: rates: [1/s, 2/s, "
                "5/s]"
            ),
            id="range-needs-search",
        ),
        pytest.param(
            (
                "    pattern: sweep\n"
                "    rates: {from: 8/s, to: 4/s}\n"
                "    duration: 1s\n"
                "    find_max_rate: 'ttft.p95 < 2s'\n"
                "    precision: 5%\n"
            ),
            (
                "s.yaml:13:5: load[0].rates: the search range must rise: 'from' (8/s) "
                "is not below 'to' (4/s)"
            ),
            id="falling-range",
        ),
        pytest.param(
            (
                "    pattern: sweep\n"
                "    rates: {from: 1/s, to: 4/s}\n"
                "    duration: 1s\n"
                "    find_max_rate: 'ttft.p95 < 2s'\n"
            ),
            (
                "s.yaml:15:5: load[0].find_max_rate: find_max_rate needs to know when "
                "to stop: give 'precision' (e.g. 5% or 0.5/s), 'max_steps' or both"
            ),
            id="search-unbounded",
        ),
        pytest.param(
            ("    pattern: sweep\n    rates: [1/s]\n    duration: 1s\n    precision: 5%\n"),
            (
                "s.yaml:15:5: load[0].precision: 'precision' tunes 'find_max_rate' or"
                " 'find_max_concurrency': add one, or remove 'precision'"
            ),
            id="precision-alone",
        ),
        pytest.param(
            (
                "    pattern: sweep\n"
                "    rates: {from: 1/s, to: 4/s}\n"
                "    duration: 1s\n"
                "    find_max_rate: 'ttft.p95 < 2s'\n"
                "    precision: 5 percent\n"
            ),
            (
                "s.yaml:16:16: load[0].precision: expected a precision like 5% (of the "
                "rate) or 0.5/s, got '5 percent'"
            ),
            id="bad-precision",
        ),
        pytest.param(
            (
                "    pattern: sweep\n"
                "    rates: {from: 1/s, to: 4/s}\n"
                "    duration: 1s\n"
                "    find_max_rate: 'ttft.p95 < 2s'\n"
                "    precision: 100%\n"
            ),
            (
                "s.yaml:16:16: load[0].precision: a relative precision must be above 0%"
                " and below 100%, got 100%"
            ),
            id="full-precision",
        ),
        pytest.param(
            (
                "    pattern: sweep\n"
                "    rates: {from: 1/s, to: 4/s}\n"
                "    duration: 1s\n"
                "    find_max_rate: 'ttft.p95 < 2s'\n"
                "    max_steps: 1\n"
            ),
            ("s.yaml:16:16: load[0].max_steps: must be at least 2, got 1"),
            id="one-step-search",
        ),
        pytest.param(
            ("    pattern: sweep\n    rates: []\n    duration: 1s\n"),
            ("s.yaml:13:5: load[0].rates: 'rates' needs at least one rate"),
            id="empty-rates",
        ),
        pytest.param(
            ("    pattern: sweep\n    concurrencies: {from: 1, to: 8}\n    requests: 9\n"),
            (
                "s.yaml:13:5: load[0].concurrencies: a range of concurrencies ({from, to}) is "
                "searched by 'find_max_concurrency'; to run fixed steps, list them: "
                "concurrencies: [1, 4, 16]"
            ),
            id="concurrency-range-needs-search",
        ),
        pytest.param(
            (
                "    pattern: sweep\n"
                "    concurrencies: [1, 8]\n"
                "    requests: 9\n"
                "    find_max_concurrency: 'ttft.p95 < 2s'\n"
            ),
            (
                "s.yaml:13:5: load[0].concurrencies: find_max_concurrency searches a range of "
                "concurrencies: give concurrencies: {from: 1, to: 64}"
            ),
            id="concurrency-search-needs-range",
        ),
        pytest.param(
            (
                "    pattern: sweep\n"
                "    rates: {from: 1/s, to: 4/s}\n"
                "    duration: 1s\n"
                "    find_max_concurrency: 'ttft.p95 < 2s'\n"
            ),
            (
                "s.yaml:13:5: load[0].rates: a range of rates ({from, to}) is searched by "
                "'find_max_rate'; to run fixed steps, list them: rates: [1/s, 2/s, 5/s]"
            ),
            id="concurrency-search-over-rates",
        ),
        pytest.param(
            (
                "    pattern: sweep\n"
                "    concurrencies: {from: 8, to: 8}\n"
                "    requests: 9\n"
                "    find_max_concurrency: 'ttft.p95 < 2s'\n"
            ),
            (
                "s.yaml:13:5: load[0].concurrencies: the search range must rise: 'from' (8) "
                "is not below 'to' (8)"
            ),
            id="flat-concurrency-range",
        ),
        pytest.param(
            (
                "    pattern: sweep\n"
                "    concurrencies: {from: 1, to: 8}\n"
                "    requests: 9\n"
                "    find_max_concurrency: 'ttft.p95 < 2s'\n"
                "    precision: 10%\n"
            ),
            (
                "s.yaml:16:5: load[0].precision: find_max_concurrency's precision counts "
                "requests in flight: give a whole number, e.g. 2 (got 10%)"
            ),
            id="relative-concurrency-precision",
        ),
        pytest.param(
            (
                "    pattern: sweep\n"
                "    concurrencies: {from: 1, to: 8}\n"
                "    requests: 9\n"
                "    find_max_concurrency: 'ttft.p95 < 2s'\n"
                "    precision: 1.5\n"
            ),
            (
                "s.yaml:16:5: load[0].precision: find_max_concurrency's precision counts "
                "requests in flight: give a whole number, e.g. 2 (got 1.5/s)"
            ),
            id="fractional-concurrency-precision",
        ),
        pytest.param(
            (
                "    pattern: sweep\n"
                "    concurrencies: {from: 0, to: 8}\n"
                "    requests: 9\n"
                "    find_max_concurrency: 'ttft.p95 < 2s'\n"
            ),
            ("s.yaml:13:27: load[0].concurrencies.from: must be greater than 0, got 0"),
            id="zero-concurrency",
        ),
        pytest.param(
            (
                "    pattern: sweep\n"
                "    concurrencies: {from: 1, to: 8}\n"
                "    requests: 9\n"
                "    find_max_concurrency: 'ttft.p95 < 2s'\n"
                "    stop_when: 'ttft.p95 > 2s'\n"
            ),
            (
                "s.yaml:16:5: load[0].stop_when: 'stop_when' ends a sweep over listed "
                "'rates' or 'concurrencies'; find_max_concurrency decides its own steps"
            ),
            id="stop-when-with-concurrency-search",
        ),
        pytest.param(
            (
                "    pattern: sweep\n"
                "    concurrencies: {from: 1, to: 8}\n"
                "    requests: 9\n"
                "    find_max_concurrency: 'ttft.p95 < 2s'\n"
                "    find_max_rate: 'ttft.p95 < 2s'\n"
            ),
            (
                "s.yaml:15:5: load[0].find_max_concurrency: give one of 'find_max_rate' "
                "(over 'rates') or 'find_max_concurrency' (over 'concurrencies'), not both"
            ),
            id="both-searches",
        ),
        pytest.param(
            (
                "    pattern: sweep\n"
                "    concurrencies: {from: 1, to: 8}\n"
                "    requests: 9\n"
                "    find_max_concurrency: 'ttft.p95 <'\n"
            ),
            (
                "s.yaml:15:27: load[0].find_max_concurrency: cannot parse SLA 'ttft.p95 <': "
                "expected '<metric>.<stat> <op> <value>[unit]', e.g. 'ttft.p95 < 800ms' or "
                "'error_rate < 1%' (find_max_concurrency: the SLAs every concurrency must "
                "meet, e.g. 'ttft.p95 < 500ms')"
            ),
            id="concurrency-search-syntax",
        ),
        pytest.param(
            ("    pattern: sweep\n    concurrencies: []\n    requests: 9\n"),
            ("s.yaml:13:20: load[0].concurrencies: needs at least 1 item(s)"),
            id="empty-concurrencies",
        ),
        pytest.param(
            ("    pattern: sweep\n    auto: {steps: 0}\n    duration: 1s\n"),
            ("s.yaml:13:19: load[0].auto.steps: must be greater than 0, got 0"),
            id="auto-zero",
        ),
    ],
)
def test_bad_adaptive_sweep(stage: str, expected: str) -> None:
    assert only_problem(BASE.replace("    pattern: burst\n    requests: 2\n", stage)) == expected


def test_adaptive_sweeps_parse() -> None:
    scenario = parse(
        BASE.replace(
            "    pattern: burst\n    requests: 2\n",
            "    pattern: sweep\n    rates: {from: 1/s, to: 64/s}\n    duration: 1s\n"
            "    find_max_rate: ['ttft.p95 < 2s', 'error_rate < 1%']\n    precision: 0.5/s\n"
            "  - {id: ladder, pattern: sweep, rates: [1/s, 2/s], requests: 5,"
            " stop_when: 'ttft.p95 > 2s'}\n"
            "  - {id: auto, pattern: sweep, auto: {steps: 4}, duration: 1s, arrival: poisson}\n",
        )
    )
    search, ladder, auto = scenario.load
    assert isinstance(search, SweepStage)
    assert isinstance(ladder, SweepStage)
    assert isinstance(auto, SweepStage)
    assert search.find_max_rate == ("ttft.p95 < 2s", "error_rate < 1%")
    assert str(search.precision) == "0.5/s"
    assert ladder.stop_when == ("ttft.p95 > 2s",)
    assert auto.auto is not None
    assert auto.auto.saturation == 64


def test_concurrency_search_parses_with_a_whole_precision() -> None:
    scenario = parse(
        BASE.replace(
            "    pattern: burst\n    requests: 2\n",
            "    pattern: sweep\n    concurrencies: {from: 1, to: 64}\n    requests: 20\n"
            "    find_max_concurrency: 'ttft.p95 < 2s'\n    precision: 2\n    max_steps: 6\n"
            "  - {id: rate, pattern: sweep, rates: {from: 1/s, to: 8/s}, duration: 1s,"
            " find_max_rate: 'ttft.p95 < 2s', precision: 2}\n",
        )
    )
    closed, rate = scenario.load
    assert isinstance(closed, SweepStage)
    assert isinstance(rate, SweepStage)
    assert closed.search_kind == "find_max_concurrency"
    assert closed.precision == 2
    assert closed.find_max_concurrency == ("ttft.p95 < 2s",)
    # For a rate search, a whole number is a rate (per second), as before.
    assert str(rate.rate_precision) == "2/s"

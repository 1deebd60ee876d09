"""The rate search as a pure function of a pass/fail oracle; precision; auto's rates."""

from __future__ import annotations

import math
from collections.abc import Generator

import pytest

from lens.metrics.sweep_outcomes import SweepProbe
from lens.plan.model import AdaptiveSweep
from lens.records import SweepStep
from lens.scenario.units import Precision, parse_precision
from lens.sweeps.search import (
    SearchResult,
    bisect_max_concurrency,
    bisect_max_rate,
    round_rate,
    search_max_rate,
)
from lens.sweeps.steps import NextStep, auto_steps, spread_rates


def test_bisection_brackets_the_limit_within_the_precision() -> None:
    tried: list[float] = []

    def passes(rate: float) -> bool:
        tried.append(rate)
        return rate <= 83.3

    result = search_max_rate(40.0, 160.0, Precision(5.0, relative=False), None, passes)
    # Both bounds, then halving [passing, failing): 100, 70, 85, 77.5, 81.25 (width 3.75).
    assert tried == [40.0, 160.0, 100.0, 70.0, 85.0, 77.5, 81.25]
    assert result.max_rate_per_s == 81.25
    assert (result.passing, result.failing) == (81.25, 85.0)
    assert result.probes == tuple((r, r <= 83.3) for r in tried)
    assert result.reason == "bracket within 5/s"


def test_relative_precision_is_a_share_of_the_passing_rate() -> None:
    result = search_max_rate(1.0, 64.0, Precision(0.05, relative=True), None, lambda r: r <= 20)
    assert result.passing is not None
    assert result.failing is not None
    assert result.passing <= 20 < result.failing
    assert result.failing - result.passing <= 0.05 * result.passing


def test_max_steps_caps_the_probes_both_bounds_included() -> None:
    result = search_max_rate(40.0, 160.0, Precision(0.1, relative=False), 4, lambda r: r <= 83)
    assert [rate for rate, _ in result.probes] == [40.0, 160.0, 100.0, 70.0]
    assert (result.passing, result.failing) == (70.0, 100.0)
    assert result.reason == "stopped after max_steps (4) steps"


def test_max_steps_alone_bounds_the_search() -> None:
    result = search_max_rate(10.0, 20.0, None, 3, lambda r: r < 20)
    assert [rate for rate, _ in result.probes] == [10.0, 20.0, 15.0]
    assert result.max_rate_per_s == 15.0


def test_open_below_when_even_the_lowest_rate_fails() -> None:
    result = search_max_rate(40.0, 160.0, Precision(5.0, relative=False), None, lambda r: False)
    assert result.max_rate_per_s is None
    assert (result.passing, result.failing) == (None, 40.0)
    assert len(result.probes) == 1
    assert "open below" in result.reason


def test_open_above_when_even_the_highest_rate_passes() -> None:
    result = search_max_rate(40.0, 160.0, Precision(5.0, relative=False), None, lambda r: True)
    assert result.max_rate_per_s == 160.0
    assert (result.passing, result.failing) == (160.0, None)
    assert "open above" in result.reason


def test_bisection_stops_at_the_rounding_step() -> None:
    # A precision finer than 4 significant digits can resolve: the midpoint rounds onto an
    # end of the bracket, and the search stops there instead of probing it again.
    result = search_max_rate(
        1000.0, 1001.0, Precision(1e-6, relative=False), None, lambda r: r < 1000.3
    )
    rates = [rate for rate, _ in result.probes]
    assert len(rates) == len(set(rates))
    assert (result.passing, result.failing) == (1000.0, 1001.0)  # 1000.5 rounds to 1000 or 1001
    assert result.reason == "bracket within 1e-06/s"


def test_the_generator_yields_rates_and_takes_answers() -> None:
    search = bisect_max_rate(2.0, 4.0, None, 2)
    assert next(search) == 2.0
    assert search.send(True) == 4.0
    with pytest.raises(StopIteration) as done:
        search.send(False)
    assert done.value.value.max_rate_per_s == 2.0


def test_round_rate_keeps_four_significant_digits() -> None:
    assert round_rate(81.2549) == 81.25
    assert round_rate(0.123456) == 0.1235
    assert round_rate(12345.0) == 12340.0


def test_precision() -> None:
    assert parse_precision("5%") == Precision(0.05, relative=True)
    assert parse_precision("0.5/s") == Precision(0.5, relative=False)
    assert parse_precision(2) == Precision(2.0, relative=False)  # a bare number is per second
    assert str(parse_precision("5%")) == "5%"
    assert Precision(0.05, relative=True).reached(100.0, 105.0)
    assert not Precision(0.05, relative=True).reached(100.0, 105.1)
    assert Precision(1.0, relative=False).reached(7.0, 8.0)
    for bad in ("0%", "fast", -1):
        with pytest.raises(ValueError, match="precision"):
            parse_precision(bad)


def test_auto_rates_spread_evenly_between_the_throughputs() -> None:
    assert spread_rates(20.0, 80.0, 3) == [35.0, 50.0, 65.0]
    assert spread_rates(20.0, 80.0, 1) == [50.0]


@pytest.mark.parametrize(("sync", "saturated"), [(None, 80.0), (20.0, None), (20.0, 20.0)])
def test_no_auto_rates_without_a_range(sync: float | None, saturated: float | None) -> None:
    assert spread_rates(sync, saturated, 3) == []


def test_auto_rates_merge_when_rounding_makes_them_equal() -> None:
    assert spread_rates(100.0, 100.001, 3) == [100.0]


def test_auto_without_a_range_runs_no_rate_steps() -> None:
    sweep = AdaptiveSweep("auto", "auto", auto_steps=3)
    planned = [SweepStep("auto", 0, None, concurrency=1), SweepStep("auto", 1, None, concurrency=8)]
    steps = auto_steps(sweep, "sim", planned)
    assert next(steps) == NextStep(concurrency=1)
    assert steps.send(SweepProbe("auto.c1", None, 1, False, 20.0, "")) == NextStep(concurrency=8)
    with pytest.raises(StopIteration) as done:
        steps.send(SweepProbe("auto.c8", None, 8, False, None, ""))  # every request failed
    outcome = done.value.value
    assert outcome.reason == (
        "no rate steps: the saturated throughput (not measured) is not above the synchronous "
        "one (20 req/s)"
    )
    assert len(outcome.probes) == 2


def answers(search: Generator[int, bool, SearchResult[int]], limit: int) -> SearchResult[int]:
    """Run a concurrency search against ``c <= limit``."""
    try:
        concurrency = next(search)
        while True:
            concurrency = search.send(concurrency <= limit)
    except StopIteration as done:
        result: SearchResult[int] = done.value
        return result


@pytest.mark.parametrize("limit", range(1, 16))
def test_concurrency_bisection_finds_every_edge_exactly(limit: int) -> None:
    result = answers(bisect_max_concurrency(1, 16), limit)
    assert result.found == limit
    assert (result.passing, result.failing) == (limit, limit + 1)
    tried = [c for c, _ in result.probes]
    assert tried[:2] == [1, 16]
    assert len(tried) == len(set(tried))
    assert len(tried) <= 2 + math.ceil(math.log2(15))  # halving 15 down to 1
    assert all(isinstance(c, int) for c in tried)
    assert result.reason == "bracket down to neighbours"


def test_concurrency_bisection_rounds_the_midpoint_down() -> None:
    result = answers(bisect_max_concurrency(2, 9), 5)
    assert [c for c, _ in result.probes] == [2, 9, 5, 7, 6]


def test_concurrency_precision_is_the_widest_bracket_allowed() -> None:
    result = answers(bisect_max_concurrency(1, 64, precision=8), 20)
    assert [c for c, _ in result.probes] == [1, 64, 32, 16, 24]
    assert (result.passing, result.failing) == (16, 24)
    assert result.reason == "bracket within 8 in flight"


def test_concurrency_max_steps_and_open_ends() -> None:
    capped = answers(bisect_max_concurrency(1, 64, max_steps=3), 20)
    assert [c for c, _ in capped.probes] == [1, 64, 32]
    assert capped.reason == "stopped after max_steps (3) steps"
    below = answers(bisect_max_concurrency(4, 8), 3)
    assert (below.found, below.passing, below.failing) == (None, None, 4)
    assert (
        below.reason == "even the lowest concurrency, 4 in flight, fails: the bracket is open below"
    )
    above = answers(bisect_max_concurrency(4, 8), 9)
    assert (above.found, above.failing) == (8, None)
    # Neighbouring bounds: nothing between them to try.
    adjacent = answers(bisect_max_concurrency(4, 5), 4)
    assert [c for c, _ in adjacent.probes] == [4, 5]
    assert (adjacent.passing, adjacent.failing) == (4, 5)

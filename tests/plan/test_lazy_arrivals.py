"""Lazy schedules: a plan keeps a schedule's parameters, and the offsets it generates are the
ones lens listed before (one float per arrival, held in the plan)."""

from __future__ import annotations

import itertools
import math
import pickle
import random
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from lens.api import compile_plan, describe_plan, load_scenario
from lens.plan.arrivals import (
    RANDOM_OFFSET_DECIMALS,
    RateProfile,
    _operational_times,
    burst_arrivals,
    paced_arrivals,
    stream_seed,
)
from lens.plan.describe import MAX_LISTED_ARRIVALS
from lens.plan.model import ArrivalProcess, ArrivalSchedule, OpenLoop


def listed_as_before(
    profile: RateProfile,
    requests: int | None,
    process: ArrivalProcess,
    burstiness: float,
    seed: int,
    names: tuple[str, ...],
) -> tuple[float, ...]:
    """The tuple paced_arrivals built before schedules were lazy (its code, verbatim)."""
    expected = profile.expected
    horizon = expected - 1e-9 * max(1.0, expected) if math.isfinite(expected) else expected
    rng = random.Random(stream_seed(seed, *names))
    operational: Iterator[float] = itertools.takewhile(
        lambda u: u == 0 or u < horizon, _operational_times(process, rng, burstiness)
    )
    if requests is not None:
        operational = itertools.islice(operational, requests)
    times = profile.times_at(operational)
    random_process = process != "uniform"
    return tuple(round(t, RANDOM_OFFSET_DECIMALS) if random_process else t for t in times)


PROFILES = [
    RateProfile.constant(10.0, 2.3),  # float product 22.999999999999996
    RateProfile.constant(10.0, 0.3),  # 3.0000000000000004
    RateProfile.constant(3.0, None),
    RateProfile.ramp(1.0, 50.0, 30.0, None),
    RateProfile.ramp(0.0, 20.0, 10.0, 4),
]


@pytest.mark.parametrize("process", ["uniform", "poisson", "gamma"])
@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("requests", [None, 7, 5000])
def test_lazy_offsets_equal_the_listed_ones(
    process: ArrivalProcess, profile: RateProfile, requests: int | None
) -> None:
    if requests is None and math.isinf(profile.expected):
        return  # an endless profile needs a request count (the scenario model says so)
    args = (profile, requests, process, 0.5, 7, ("stage", "sim"))
    before = listed_as_before(*args)
    schedule = paced_arrivals(
        profile, requests=requests, process=process, burstiness=0.5, seed=7, names=args[5]
    )
    assert schedule.source is not None
    assert schedule.listed == ()  # nothing held per arrival
    assert schedule.offsets_s == before
    assert tuple(schedule) == before  # walked twice: the same draws again
    assert schedule.count == len(before)
    assert schedule.last_s == before[-1]
    assert schedule.span_s == before[-1] - before[0]
    for i in range(0, len(before), max(1, len(before) // 40)):
        assert schedule.offset(i) == before[i]
    for t in (0.0, 0.5, 1.0, 2.0, before[-1], before[-1] + 1):
        assert schedule.index_at(t) == sum(1 for o in before if o < t)
    for count in (2, 3):  # shards and workers take every count-th arrival
        for index in range(count):
            part = schedule.stride(index, count)
            assert part.offsets_s == before[index::count]
            assert part.count == len(before[index::count])


def test_random_offsets_are_pinned_across_versions() -> None:
    """Offsets lens drew before schedules were lazy, for one seed: a change of the draw
    would make old plans (and their hashes) differ."""
    ramp = RateProfile.ramp(2.0, 40.0, 20.0, None)
    poisson = paced_arrivals(ramp, requests=None, process="poisson", seed=7, names=("soak", "sim"))
    assert poisson.count == 396
    assert poisson.offsets_s[:4] == (0.0, 0.94977, 1.204197, 1.426336)
    assert poisson.last_s == 19.994214
    gamma = paced_arrivals(
        ramp, requests=None, process="gamma", burstiness=0.5, seed=7, names=("soak", "sim")
    )
    assert gamma.count == 441
    assert gamma.offsets_s[:4] == (0.0, 1.204904, 1.303381, 1.623839)
    assert gamma.last_s == 19.997689


def test_burst_waves_are_lazy_too() -> None:
    schedule = burst_arrivals(3, waves=2, interval_s=1.5)
    assert schedule.offsets_s == (0.0, 0.0, 0.0, 1.5, 1.5, 1.5)
    assert (schedule.count, schedule.span_s, schedule.offset(4)) == (6, 1.5, 1.5)
    assert schedule.stride(1, 2).offsets_s == (0.0, 1.5, 1.5)
    assert schedule.index_at(1.5) == 3


def test_a_listed_schedule_still_works() -> None:
    schedule = ArrivalSchedule((0.0, 0.25, 0.5))
    assert (tuple(schedule), schedule.count, schedule.last_s) == ((0.0, 0.25, 0.5), 3, 0.5)
    assert schedule.stride(0, 2).offsets_s == (0.0, 0.5)


SOAK = """\
version: 1
name: soak
providers:
  sim: {type: simulated, ttft: 1ms, itl: 1ms, output_tokens: 4}
prompts:
  - id: p
    messages: [{role: user, content: hi}]
load:
  - id: soak
    pattern: constant-rate
    rate: 1000/s
    duration: 2000s
"""


def test_two_million_arrivals_compile_small_and_list_capped(tmp_path: Path) -> None:
    """The old cap (1,000,000 per stage) is gone: a plan holds parameters, not offsets."""
    path = tmp_path / "soak.yaml"
    path.write_text(SOAK)
    tracemalloc.start()
    try:
        plan = compile_plan(load_scenario(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8_000_000  # 2M listed floats alone took 64 MB
    load = plan.stages[0].load
    assert isinstance(load, OpenLoop)
    assert load.arrivals.count == 2_000_000
    assert load.arrivals.offset(1_999_999) == 1_999_999 / 1000
    assert len(pickle.dumps(plan)) < 20_000  # what a worker process is handed
    stage = describe_plan(plan, arrivals=True)["stages"][0]
    assert len(stage["arrival_offsets_s"]) == MAX_LISTED_ARRIVALS
    assert stage["arrival_offsets_truncated"] is True
    assert stage["arrivals"]["count"] == 2_000_000

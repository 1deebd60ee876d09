"""Arrival schedules: exact where they are deterministic, reproducible and well-shaped where
they are random."""

from __future__ import annotations

import itertools
import math
import statistics
from decimal import Decimal, localcontext

import pytest

from lens.plan.arrivals import RateProfile, burst_arrivals, paced_arrivals, stream_seed
from lens.plan.model import ArrivalProcess


def offsets(profile: RateProfile, requests: int | None = None, **kw: object) -> tuple[float, ...]:
    return paced_arrivals(profile, requests=requests, **kw).offsets_s  # type: ignore[arg-type]


def gaps(values: tuple[float, ...]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(values)]


# --- deterministic schedules ---------------------------------------------------------------


def test_burst_waves_are_released_an_interval_apart() -> None:
    schedule = burst_arrivals(2, waves=3, interval_s=1.5)
    assert schedule.offsets_s == (0.0, 0.0, 1.5, 1.5, 3.0, 3.0)
    assert schedule.process == "burst"
    assert schedule.rate_per_s is None
    assert burst_arrivals(3).offsets_s == (0.0, 0.0, 0.0)


def test_uniform_constant_rate_is_i_over_rate() -> None:
    assert offsets(RateProfile.constant(4.0, 1.0)) == (0.0, 0.25, 0.5, 0.75)
    assert offsets(RateProfile.constant(4.0, None), requests=3) == (0.0, 0.25, 0.5)
    # Both limits: whichever ends first.
    assert offsets(RateProfile.constant(4.0, 1.0), requests=2) == (0.0, 0.25)
    assert offsets(RateProfile.constant(4.0, 1.0), requests=9) == (0.0, 0.25, 0.5, 0.75)


@pytest.mark.parametrize(
    ("rate", "duration", "count"),
    [
        (10.0, 2.3, 23),  # 2.3 * 10 is 22.999999999999996: the arrival at 2.3 s is not before
        (10.0, 0.3, 3),  # 0.3 * 10 is 3.0000000000000004: nor is the one at 0.3 s
        (3.0, 3.5, 11),  # 10/3 s is before 3.5 s
        (0.1, 5.0, 1),  # only the arrival at 0
    ],
)
def test_duration_holds_every_arrival_due_before_it(
    rate: float, duration: float, count: int
) -> None:
    assert offsets(RateProfile.constant(rate, duration)) == tuple(i / rate for i in range(count))


def test_linear_ramp_solves_the_integrated_rate() -> None:
    # 1/s -> 3/s over 2 s: Lambda(t) = t + t^2/2 = i, so t_i = sqrt(1 + 2i) - 1.
    expected = tuple(math.sqrt(1 + 2 * i) - 1 for i in range(4))
    assert offsets(RateProfile.ramp(1.0, 3.0, 2.0, None)) == pytest.approx(expected, abs=1e-12)
    # Falling, 3/s -> 1/s: Lambda(t) = 3t - t^2/2, so t_i = 3 - sqrt(9 - 2i).
    expected = tuple(3 - math.sqrt(9 - 2 * i) for i in range(4))
    assert offsets(RateProfile.ramp(3.0, 1.0, 2.0, None)) == pytest.approx(expected, abs=1e-12)
    # From rest, 0 -> 4/s: Lambda(t) = t^2, so t_i = sqrt(i).
    assert offsets(RateProfile.ramp(0.0, 4.0, 2.0, None)) == pytest.approx(
        (0.0, 1.0, math.sqrt(2), math.sqrt(3)), abs=1e-12
    )


def test_flat_ramp_is_the_constant_rate_exactly() -> None:
    assert offsets(RateProfile.ramp(5.0, 5.0, 3.0, None)) == tuple(i / 5 for i in range(15))


def test_ramp_root_is_accurate_for_a_nearly_flat_ramp() -> None:
    # The textbook root (-b + sqrt(b^2 + 4ai)) / 2a loses most digits when a is tiny (here
    # ~1e-4 relative error); the exact root, in 50-digit decimals, is the reference.
    top = 10.0 + 1e-9
    with localcontext(prec=50):
        b = Decimal(10)
        a = (Decimal(top) - b) / 20
        exact = [float((-b + (b * b + 4 * a * i).sqrt()) / (2 * a)) for i in range(100)]
    ramp = offsets(RateProfile.ramp(10.0, top, 10.0, None))
    assert ramp == pytest.approx(exact, rel=1e-13, abs=1e-15)


def test_stepped_ramp_inverts_the_steps() -> None:
    # 1, 2, 3 /s for 1 s each: Lambda reaches 1 at 1 s, then 2/s, then 3/s.
    assert offsets(RateProfile.ramp(1.0, 3.0, 3.0, 3)) == pytest.approx(
        (0.0, 1.0, 1.5, 2.0, 2 + 1 / 3, 2 + 2 / 3), abs=1e-12
    )
    # Falling to rest: 2, 1, 0 /s; nothing is due in the last step.
    assert offsets(RateProfile.ramp(2.0, 0.0, 3.0, 3)) == (0.0, 0.5, 1.0)
    # Rising from rest: the 0/s step sends only the arrival at 0 (Lambda = 0 there).
    assert offsets(RateProfile.ramp(0.0, 2.0, 3.0, 3)) == (0.0, 2.0, 2.5)


def test_schedule_describes_its_origin() -> None:
    ramp = paced_arrivals(RateProfile.ramp(1.0, 20.0, 2.0, None), requests=None)
    assert (ramp.process, ramp.seed, ramp.burstiness, ramp.rate_per_s) == (
        "uniform",
        None,
        None,
        (1.0, 20.0),
    )
    gamma = paced_arrivals(
        RateProfile.constant(5.0, 2.0), requests=None, process="gamma", burstiness=0.5, seed=3
    )
    assert (gamma.process, gamma.seed, gamma.burstiness, gamma.rate_per_s) == (
        "gamma",
        3,
        0.5,
        (5.0, 5.0),
    )


# --- random schedules ----------------------------------------------------------------------


def test_stream_seed_is_stable_and_distinct() -> None:
    # A literal: the derivation must not depend on the process (hash() is salted) or machine.
    assert stream_seed(0, "steady", "sim") == 0xF57C79CBEC234BC1
    assert len({stream_seed(0, "a", "b"), stream_seed(0, "ab", ""), stream_seed(1, "a", "b")}) == 3


@pytest.mark.parametrize("process", ["poisson", "gamma"])
def test_random_schedules_are_reproducible(process: ArrivalProcess) -> None:
    profile = RateProfile.constant(50.0, 10.0)

    def draw(seed: int, names: tuple[str, ...] = ("s", "p")) -> tuple[float, ...]:
        return offsets(profile, process=process, burstiness=0.5, seed=seed, names=names)

    first = draw(7)
    assert first == draw(7)
    assert first != draw(8)
    assert first != draw(7, ("s", "other-provider"))
    assert first[0] == 0.0
    assert all(b >= a for a, b in itertools.pairwise(first))
    assert first[-1] < 10.0
    # Rounded to the microsecond, so the plan is the same whatever the platform's libm.
    assert all(round(t, 6) == t for t in first)


def test_poisson_schedule_is_pinned() -> None:
    """The exact offsets of one seed: a change here changes every user's plan."""
    first = offsets(RateProfile.constant(5.0, None), 6, process="poisson", seed=0, names=("a", "b"))
    assert first == PINNED_POISSON


PINNED_POISSON = (0.0, 0.126995, 0.199272, 0.446479, 0.558351, 0.662218)


@pytest.mark.parametrize("rate", [2.0, 50.0])
def test_poisson_gaps_have_the_rate_and_unit_cv(rate: float) -> None:
    values = offsets(RateProfile.constant(rate, None), 20_000, process="poisson", seed=1)
    g = gaps(values)
    mean = statistics.fmean(g)
    assert mean == pytest.approx(1 / rate, rel=0.03)
    assert statistics.pstdev(g) / mean == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("k", [0.25, 1.0, 4.0])
def test_gamma_gaps_have_the_rate_and_cv_one_over_sqrt_k(k: float) -> None:
    rate = 10.0
    values = offsets(
        RateProfile.constant(rate, None), 20_000, process="gamma", burstiness=k, seed=2
    )
    g = gaps(values)
    mean = statistics.fmean(g)
    assert mean == pytest.approx(1 / rate, rel=0.05)
    assert statistics.pstdev(g) / mean == pytest.approx(1 / math.sqrt(k), rel=0.06)


def test_poisson_with_duration_keeps_every_arrival_before_the_end() -> None:
    values = offsets(RateProfile.constant(100.0, 200.0), process="poisson", seed=4)
    assert len(values) == pytest.approx(20_000, rel=0.03)
    assert values[-1] < 200.0


def test_poisson_ramp_follows_the_integrated_rate() -> None:
    # 0 -> 400/s over 100 s: 20,000 expected, a quarter of them in the first half.
    values = offsets(RateProfile.ramp(0.0, 400.0, 100.0, None), process="poisson", seed=5)
    assert len(values) == pytest.approx(20_000, rel=0.03)
    first_half = sum(1 for t in values if t < 50.0)
    assert first_half / len(values) == pytest.approx(0.25, abs=0.01)
    assert values[-1] < 100.0


def test_poisson_stepped_ramp_has_each_steps_rate() -> None:
    values = offsets(RateProfile.ramp(100.0, 300.0, 150.0, 3), process="poisson", seed=6)
    per_step = [sum(1 for t in values if 50 * k <= t < 50 * (k + 1)) for k in range(3)]
    for count, rate in zip(per_step, (100, 200, 300), strict=True):
        assert count == pytest.approx(rate * 50, rel=0.05)

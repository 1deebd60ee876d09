"""MetricSketch: nearest-rank on exact values, t-digest beyond exact_limit, merge, JSON."""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lens.metrics.sketch import (
    FLUSH_AT,
    SKETCH_KIND,
    SKETCH_VERSION,
    MetricSketch,
    QuantileSketch,
    nearest_rank,
)

GRID = (0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0)
DETERMINISTIC = settings(derandomize=True, database=None, deadline=None)


def filled(xs: list[float], exact_limit: int = 10_000, **kw: Any) -> MetricSketch:
    s = MetricSketch(exact_limit, **kw)
    for x in xs:
        s.add(x)
    return s


def within_rank_error(sorted_xs: list[float], q: float, v: float, eps: float) -> bool:
    """``v`` lies between the true values at ranks (q - eps)n and (q + eps)n.

    Stated on values, not on the rank of ``v``, because a digest interpolates between
    tied values; a relative slack of 1e-9 absorbs the interpolation's float rounding.
    """
    n = len(sorted_xs)
    lo = sorted_xs[max(0, math.floor((q - eps) * n))]
    hi = sorted_xs[min(n - 1, math.ceil((q + eps) * n) - 1)]
    slack = 1e-9 * max(abs(lo), abs(hi), 1.0)
    return lo - slack <= v <= hi + slack


def test_satisfies_the_protocol() -> None:
    sketch: QuantileSketch = MetricSketch()
    assert sketch.count == 0


def test_empty_sketch_reports_nothing() -> None:
    s = MetricSketch()
    assert (s.count, s.min, s.max, s.mean, s.quantile(0.5), s.exact) == (
        0,
        None,
        None,
        None,
        None,
        True,
    )


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0.0, 1), (0.1, 1), (0.11, 2), (0.5, 5), (0.9, 9), (0.95, 10), (0.99, 10), (1.0, 10)],
)
def test_nearest_rank_on_one_to_ten(q: float, expected: float) -> None:
    xs = [float(i) for i in range(1, 11)]
    random.Random(3).shuffle(xs)
    assert filled(xs).quantile(q) == expected


@pytest.mark.parametrize("p", [7, 29, 57, 58, 99])
def test_rank_does_not_drift_on_float_products(p: int) -> None:
    # 0.07 * 100 == 7.000000000000001 in binary floating point; the rank must be 7.
    xs = [float(i) for i in range(1, 101)]
    assert filled(xs).quantile(p / 100) == p


def test_nearest_rank_helper_and_single_value() -> None:
    assert nearest_rank([4.0], 0.99) == 4.0
    assert nearest_rank([1.0, 2.0], 0.5) == 1.0


def test_exact_count_min_max_mean() -> None:
    s = filled([3.0, -1.5, 10.0, 0.5])
    assert (s.count, s.min, s.max, s.mean, s.sum) == (4, -1.5, 10.0, 3.0, 12.0)


def test_quantile_rejects_out_of_range_q() -> None:
    s = filled([1.0])
    for q in (-0.01, 1.01):
        with pytest.raises(ValueError, match="within"):
            s.quantile(q)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_refused(bad: float) -> None:
    s = MetricSketch()
    with pytest.raises(ValueError, match="non-finite"):
        s.add(bad)
    with pytest.raises(ValueError, match="non-finite"):
        s.add_many([1.0, bad])
    assert s.count == 0


def test_constructor_validates() -> None:
    with pytest.raises(ValueError, match="exact_limit"):
        MetricSketch(-1)
    with pytest.raises(ValueError, match="max_centroids"):
        MetricSketch(max_centroids=0)


def test_stays_exact_up_to_the_limit_then_switches_to_digest() -> None:
    s = filled([float(i) for i in range(1, 101)], exact_limit=100)
    assert s.exact
    assert s.quantile(0.9) == 90
    s.add(101.0)
    assert not s.exact
    assert s.exact_limit == 100
    assert "t-digest" in repr(s)
    # count, min, max and mean stay exact after the switch
    assert (s.count, s.min, s.max, s.mean) == (101, 1.0, 101.0, 51.0)
    assert s.quantile(0.5) == pytest.approx(51, abs=1)
    assert s.quantile(0.0) == 1.0
    assert s.quantile(1.0) == 101.0
    s.add(102.0)  # digest phase goes on taking values
    assert s.count == 102


def test_exact_limit_zero_is_a_pure_digest() -> None:
    s = filled([5.0], exact_limit=0)
    assert not s.exact
    assert s.quantile(0.5) == 5.0


def test_add_many_matches_add_and_crosses_the_limit() -> None:
    xs = [float(i % 37) for i in range(300)]
    one = filled(xs, exact_limit=1000)
    many = MetricSketch(1000)
    many.add_many(x for x in xs)  # any iterable
    many.add_many([])
    assert (many.count, many.min, many.max) == (one.count, one.min, one.max)
    assert many.mean == pytest.approx(one.mean)
    assert [many.quantile(q) for q in GRID] == [one.quantile(q) for q in GRID]

    crossing = MetricSketch(100)
    crossing.add_many(xs[:50])
    assert crossing.exact
    crossing.add_many(xs[50:])
    assert not crossing.exact
    crossing.add_many([1000.0])  # straight into the digest
    assert (crossing.count, crossing.max) == (301, 1000.0)


@settings(DETERMINISTIC, max_examples=40)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1_001, 30_000),
    shape=st.sampled_from(["lognormal", "uniform", "ties", "bimodal"]),
    batched=st.booleans(),
)
def test_digest_quantiles_within_rank_error(seed: int, n: int, shape: str, batched: bool) -> None:
    rng = random.Random(seed)
    draws: dict[str, Callable[[], float]] = {
        "lognormal": lambda: rng.lognormvariate(3.0, 1.5),
        "uniform": lambda: rng.uniform(-1e6, 1e6),
        "ties": lambda: float(rng.randint(0, 20)),
        "bimodal": lambda: rng.gauss(20, 2) if rng.random() < 0.9 else rng.gauss(900, 50),
    }
    xs = [draws[shape]() for _ in range(n)]
    s = MetricSketch(1_000)
    if batched:
        s.add_many(xs)
    else:
        for x in xs:
            s.add(x)
    assert not s.exact
    srt = sorted(xs)
    for q in GRID:
        v = s.quantile(q)
        assert v is not None
        assert within_rank_error(srt, q, v, eps=0.005), (q, v)


@settings(DETERMINISTIC, max_examples=150)
@given(
    xs=st.lists(st.floats(-1e9, 1e9, allow_nan=False), min_size=1, max_size=400),
    exact_limit=st.sampled_from([0, 1, 16, 10_000]),
)
def test_quantiles_are_bounded_monotone_and_close(xs: list[float], exact_limit: int) -> None:
    s = filled(xs, exact_limit)
    srt = sorted(xs)
    got = [s.quantile(q) for q in GRID]
    assert got[0] == srt[0]
    assert got[-1] == srt[-1]
    values = [v for v in got if v is not None]
    assert len(values) == len(GRID)
    # monotone in q, up to the digest's interpolation rounding (an ulp or so)
    assert all(a <= b + 1e-9 * max(abs(b), 1.0) for a, b in itertools.pairwise(values))
    for q, v in zip(GRID, values, strict=True):
        if s.exact:
            assert v == nearest_rank(srt, q)
        else:
            # a digest interpolates between neighbours: allow one rank on top of 1%
            assert within_rank_error(srt, q, v, eps=0.01 + 1 / len(xs))


# -- merge ---------------------------------------------------------------------------


def test_merge_exact_and_exact_stays_exact_when_it_fits() -> None:
    a, b = filled([1.0, 2.0, 3.0], 10), filled([4.0, 5.0], 10)
    a.merge(b)
    assert a.exact
    assert (a.count, a.min, a.max, a.mean) == (5, 1.0, 5.0, 3.0)
    assert a.quantile(0.5) == 3.0
    assert b.count == 2  # the other side is left alone


def test_merge_exact_and_exact_overflowing_becomes_digest() -> None:
    a, b = filled([float(i) for i in range(8)], 10), filled([float(i) for i in range(8, 16)], 10)
    a.merge(b)
    assert not a.exact
    assert (a.count, a.min, a.max) == (16, 0.0, 15.0)
    assert b.exact


def test_merge_exact_into_digest_and_digest_into_exact() -> None:
    xs = [float(i) for i in range(1, 2001)]
    digest = filled(xs[:1500], 100)
    exact = filled(xs[1500:], 1000)
    assert exact.exact
    assert not digest.exact

    d_plus_e = digest.copy()
    d_plus_e.merge(exact)
    e_plus_d = exact.copy()
    e_plus_d.merge(digest)
    for merged in (d_plus_e, e_plus_d):
        assert not merged.exact
        assert (merged.count, merged.min, merged.max) == (2000, 1.0, 2000.0)
        assert merged.mean == pytest.approx(1000.5)
        for q in GRID:
            v = merged.quantile(q)
            assert v is not None
            assert within_rank_error(xs, q, v, eps=0.005)


def test_digest_phase_batches_reach_the_digest_whatever_their_size() -> None:
    xs = [float(i) for i in range(10_000)]
    s = MetricSketch(10)
    s.add_many(xs[:11])  # crosses the limit
    s.add_many(xs[11:3000])  # more than FLUSH_AT at once
    assert FLUSH_AT < 3000 - 11
    big_exact = filled(xs[3000:], 10_000)  # 7 000 exact values merged into a digest
    s.merge(big_exact)
    assert s.count == 10_000
    restored = MetricSketch.from_dict(s.to_dict())
    for sketch in (s, restored, s.copy()):
        for q in GRID:
            v = sketch.quantile(q)
            assert v is not None
            assert within_rank_error(xs, q, v, eps=0.005)


def test_merge_digest_and_digest() -> None:
    rng = random.Random(11)
    xs = [rng.expovariate(1 / 50) for _ in range(20_000)]
    a, b = MetricSketch(500), MetricSketch(500)
    a.add_many(xs[:12_000])
    b.add_many(xs[12_000:])
    a.merge(b)
    assert a.count == 20_000
    assert a.mean == pytest.approx(sum(xs) / len(xs))
    srt = sorted(xs)
    for q in GRID:
        v = a.quantile(q)
        assert v is not None
        assert within_rank_error(srt, q, v, eps=0.005)


def test_merge_with_empty_and_with_itself() -> None:
    a = filled([1.0, 2.0])
    a.merge(MetricSketch())
    assert a.count == 2
    empty = MetricSketch()
    empty.merge(a)
    assert (empty.count, empty.quantile(1.0)) == (2, 2.0)
    a.merge(a)
    assert (a.count, a.quantile(0.5), a.mean) == (4, 1.0, 1.5)
    d = filled([float(i) for i in range(50)], 10)
    into_empty = MetricSketch()
    into_empty.merge(d)
    assert (into_empty.count, into_empty.exact, into_empty.min) == (50, False, 0.0)
    d.merge(d)
    assert (d.count, d.max) == (100, 49.0)


def test_copy_is_independent() -> None:
    a = filled([1.0, 2.0])
    b = a.copy()
    b.add(100.0)
    assert (a.count, a.max) == (2, 2.0)
    d = filled([float(i) for i in range(50)], 10)
    e = d.copy()
    e.add(1000.0)
    assert d.max == 49.0


# -- serialisation -------------------------------------------------------------------


def _roundtrip(s: MetricSketch) -> MetricSketch:
    return MetricSketch.from_dict(json.loads(json.dumps(s.to_dict())))


@pytest.mark.parametrize("n", [0, 3, 5_000])
def test_to_dict_from_dict_round_trip_through_json(n: int) -> None:
    rng = random.Random(n)
    s = filled([rng.uniform(0, 100) for _ in range(n)], 1_000)
    back = _roundtrip(s)
    d = s.to_dict()
    assert (d["kind"], d["v"]) == (SKETCH_KIND, SKETCH_VERSION)
    assert (back.count, back.min, back.max, back.mean, back.exact) == (
        s.count,
        s.min,
        s.max,
        s.mean,
        s.exact,
    )
    assert [back.quantile(q) for q in GRID] == [s.quantile(q) for q in GRID]
    # a restored sketch keeps working, and merges like the original
    back.merge(s)
    assert back.count == 2 * n


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"kind": "something.else"}, "not a lens sketch"),
        ({"v": 99}, "unsupported sketch version 99"),
        ({"values": None}, "either 'values' or 'digest'"),
        ({"count": 7}, "does not match"),
    ],
)
def test_from_dict_rejects_foreign_or_inconsistent_forms(
    patch: dict[str, Any], message: str
) -> None:
    d = filled([1.0, 2.0]).to_dict() | patch
    with pytest.raises(ValueError, match=message):
        MetricSketch.from_dict(d)


def test_from_dict_rejects_values_and_digest_together() -> None:
    d = filled([1.0, 2.0], 1).to_dict()
    d["values"] = [1.0, 2.0]
    with pytest.raises(ValueError, match="exactly one"):
        MetricSketch.from_dict(d)

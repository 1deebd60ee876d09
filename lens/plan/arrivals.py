"""Arrival schedules: pure functions from a stage's load shape to send offsets.

Every paced schedule is one construction.  A ``RateProfile`` is the intended rate over time
(piecewise linear); its integral Lambda(t) is the number of arrivals expected by time t.  An
arrival process gives "operational times" u_0 = 0 <= u_1 <= ...: the integers for uniform
arrivals, cumulative sums of unit-mean exponential (poisson) or gamma gaps otherwise.  Arrival
i is due at Lambda^-1(u_i), the first time the expected count reaches u_i.  For a constant rate
that is u_i / rate (i / rate exactly when uniform); for a ramp it solves a quadratic.

Schedules are computed from the index or the cumulative sum, never by adding up float gaps in
time, so error cannot drift over a long stage.  Random ones draw from ``random.Random`` seeded
from the scenario's seed and the unit's ids through SHA-256 (not ``hash()``, which is salted
per process), so the same file gives the same offsets on every machine.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from lens.plan.model import ArrivalProcess, ArrivalSchedule, OffsetSource

# Random offsets are rounded to the microsecond: the logarithms behind exponential and gamma
# draws come from the platform's libm, which may differ in the last bit between machines;
# rounding keeps the plan byte-identical everywhere (and a microsecond is far below what a
# scheduler can hit).
RANDOM_OFFSET_DECIMALS = 6


def burst_arrivals(requests: int, waves: int = 1, interval_s: float = 0.0) -> ArrivalSchedule:
    """``requests`` at once, in ``waves`` released ``interval_s`` apart from the stage start."""
    return ArrivalSchedule(process="burst", source=BurstOffsets(requests, waves, interval_s))


@dataclass(frozen=True, slots=True)
class BurstOffsets(OffsetSource):
    """Wave ``w`` (``requests`` arrivals) at ``w * interval_s``, computed per index."""

    requests: int
    waves: int
    interval_s: float

    @property
    def random_access(self) -> bool:
        return True

    def count(self) -> int:
        return self.requests * self.waves

    def offset(self, i: int) -> float:
        return (i // self.requests) * self.interval_s

    def __iter__(self) -> Iterator[float]:
        return (w * self.interval_s for w in range(self.waves) for _ in range(self.requests))

    def summary(self, start: int, step: int) -> tuple[int, float, float]:
        n = len(range(start, self.count(), step))
        if n == 0:
            return 0, 0.0, 0.0
        return n, self.offset(start), self.offset(start + (n - 1) * step)


@dataclass(frozen=True, slots=True)
class _Segment:
    """The rate going linearly from ``start_rate`` to ``end_rate`` over [start_s, start_s +
    duration_s); ``before`` arrivals are expected before it starts."""

    start_s: float
    duration_s: float
    start_rate: float
    end_rate: float
    before: float

    @property
    def expected(self) -> float:
        """Arrivals expected within the segment (the area under the rate)."""
        if math.isinf(self.duration_s):
            return math.inf
        return (self.start_rate + self.end_rate) / 2 * self.duration_s

    def time_at(self, u: float) -> float:
        """When Lambda reaches ``u``, for ``before <= u <= before + expected``."""
        v = u - self.before
        if v <= 0:
            return self.start_s
        b = self.start_rate
        if self.end_rate == b:
            return self.start_s + v / b
        # Lambda = b t + a t^2 over the segment; t = 2v / (b + sqrt(b^2 + 4 a v)) is the root
        # without the cancellation of (-b + sqrt(...)) / 2a when a is small, and needs no
        # special case for b = 0.  The discriminant is end_rate^2 at the end of the segment,
        # never negative but for rounding.
        a = (self.end_rate - b) / (2 * self.duration_s)
        return self.start_s + 2 * v / (b + math.sqrt(max(b * b + 4 * a * v, 0.0)))


@dataclass(frozen=True, slots=True)
class RateProfile:
    """The intended arrival rate over a stage, as linear segments end to end."""

    segments: tuple[_Segment, ...]

    @classmethod
    def of(cls, pieces: list[tuple[float, float, float]]) -> RateProfile:
        """Segments from (duration_s, start_rate, end_rate) pieces, in order."""
        segments: list[_Segment] = []
        start = before = 0.0
        for duration, start_rate, end_rate in pieces:
            segment = _Segment(start, duration, start_rate, end_rate, before)
            segments.append(segment)
            start += duration
            before += segment.expected
        return cls(tuple(segments))

    @classmethod
    def constant(cls, rate: float, duration_s: float | None) -> RateProfile:
        """``rate`` for ``duration_s`` (None: for as long as requests last)."""
        return cls.of([(math.inf if duration_s is None else duration_s, rate, rate)])

    @classmethod
    def ramp(
        cls, start_rate: float, end_rate: float, duration_s: float, steps: int | None
    ) -> RateProfile:
        """Linear from ``start_rate`` to ``end_rate``, or ``steps`` equal steps whose rates are
        evenly spaced from the one to the other, both included."""
        if steps is None:
            return cls.of([(duration_s, start_rate, end_rate)])
        rates = [start_rate + (end_rate - start_rate) * k / (steps - 1) for k in range(steps)]
        return cls.of([(duration_s / steps, r, r) for r in rates])

    @property
    def expected(self) -> float:
        """Arrivals expected over the whole profile: Lambda at its end."""
        last = self.segments[-1]
        return last.before + last.expected

    @property
    def rate_range(self) -> tuple[float, float]:
        return self.segments[0].start_rate, self.segments[-1].end_rate

    def times_at(self, operational: Iterator[float]) -> Iterator[float]:
        """Lambda^-1 of each of a non-decreasing series of expected counts."""
        segments = iter(self.segments)
        segment = next(segments)
        for u in operational:
            while u > segment.before + segment.expected:
                segment = next(segments)
            yield segment.time_at(u)


def _operational_times(
    process: ArrivalProcess, rng: random.Random, burstiness: float
) -> Iterator[float]:
    """0, then cumulative unit-mean gaps: 1 (uniform: exact integers), exponential, or
    gamma of shape k."""
    u = 0.0
    while True:
        yield u
        if process == "uniform":
            u += 1.0
        elif process == "poisson":
            u += rng.expovariate(1.0)
        else:
            u += rng.gammavariate(burstiness, 1.0 / burstiness)


def stream_seed(seed: int, *names: str) -> int:
    """A seed for one stage unit's stream: distinct per ids, identical on every machine."""
    text = "\x1f".join([str(seed), *names])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


@dataclass(frozen=True, slots=True)
class PacedOffsets(OffsetSource):
    """The offsets of ``paced_arrivals``, generated from its parameters when walked.

    Walking is the one construction (operational times through Lambda^-1), so a lazy
    schedule gives exactly the floats a listed one did.  Uniform arrivals are counted and
    indexed in closed form (arrival i is Lambda^-1(i)); random ones are drawn again from
    their seed when walked, and counted once by walking (cached: O(1) memory).
    """

    profile: RateProfile
    requests: int | None
    process: ArrivalProcess
    burstiness: float
    seed: int
    names: tuple[str, ...]
    _cache: dict[tuple[int, int], tuple[int, float, float]] = field(
        default_factory=dict, compare=False, repr=False, hash=False
    )

    @property
    def _horizon(self) -> float:
        expected = self.profile.expected
        return expected - 1e-9 * max(1.0, expected) if math.isfinite(expected) else expected

    def __iter__(self) -> Iterator[float]:
        horizon = self._horizon
        rng = random.Random(stream_seed(self.seed, *self.names))
        operational: Iterator[float] = itertools.takewhile(
            lambda u: u == 0 or u < horizon,
            _operational_times(self.process, rng, self.burstiness),
        )
        if self.requests is not None:
            operational = itertools.islice(operational, self.requests)
        times = self.profile.times_at(operational)
        if self.process == "uniform":
            return times
        return (round(t, RANDOM_OFFSET_DECIMALS) for t in times)

    @property
    def random_access(self) -> bool:
        return self.process == "uniform"

    def count(self) -> int:
        return self.summary(0, 1)[0]

    def _uniform_count(self) -> int:
        horizon = self._horizon
        if math.isinf(horizon):
            assert self.requests is not None, "an endless schedule needs a request count"
            return self.requests
        # Integers u with u == 0 or u < horizon: 0 .. ceil(horizon) - 1.
        n = max(1, math.ceil(horizon))
        return n if self.requests is None else min(n, self.requests)

    def offset(self, i: int) -> float:
        if self.process == "uniform":
            return next(self.profile.times_at(iter((float(i),))))
        return next(itertools.islice(self, i, None))

    def summary(self, start: int, step: int) -> tuple[int, float, float]:
        key = (start, step)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        if self.process == "uniform":
            n = len(range(start, self._uniform_count(), step))
            out = (n, self.offset(start), self.offset(start + (n - 1) * step)) if n else None
        else:
            n, first, last = 0, 0.0, 0.0
            for t in itertools.islice(self, start, None, step):
                if n == 0:
                    first = t
                n, last = n + 1, t
            out = (n, first, last)
        result = out if out is not None else (0, 0.0, 0.0)
        self._cache[key] = result
        return result


def paced_arrivals(
    profile: RateProfile,
    *,
    requests: int | None,
    process: ArrivalProcess = "uniform",
    burstiness: float = 1.0,
    seed: int = 0,
    names: tuple[str, ...] = (),
) -> ArrivalSchedule:
    """Arrivals of ``process`` under ``profile``: every one due before the profile ends,
    at most ``requests`` (at least one, at offset 0), generated lazily (``PacedOffsets``).

    The end is compared with a relative tolerance, so 2.3 s at 10/s (a float product of
    22.999999999999996) still ends before the arrival at exactly 2.3 s, and 0.3 s at 10/s
    (3.0000000000000004) before the one at 0.3 s.  ``names`` (stage and provider ids) give
    each unit its own random stream of the scenario's ``seed``.
    """
    random_process = process != "uniform"
    low, high = profile.rate_range
    return ArrivalSchedule(
        process=process,
        burstiness=burstiness if process == "gamma" else None,
        seed=seed if random_process else None,
        rate_per_s=(low, high),
        source=PacedOffsets(profile, requests, process, burstiness, seed, names),
    )

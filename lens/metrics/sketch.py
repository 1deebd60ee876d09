"""Quantile sketches: exact percentiles for small runs, a bounded t-digest beyond.

Why a sketch and not a list: a long run yields millions of inter-token gaps, and the
aggregator must keep bounded memory while records stream in.  Why not *only* a digest:
most load tests are small, and there a user can check a percentile by hand, so lens
reports the exact value and says which definition it used.

Percentile definition
---------------------
While a sketch holds at most ``exact_limit`` values (default 10 000) it keeps them all
and reports the **nearest-rank** percentile: with the ``n`` values sorted ascending,
``x_1 <= ... <= x_n``, the quantile ``q = p / 100`` is ``x_r`` where
``r = ceil(q * n)`` (1-based), and ``r = 1`` for ``q = 0``.  The result is always one of
the observed values, never an interpolation: for the values 1..10, p50 = 5, p90 = 9 and
p99 = 10 (a p99 on fewer than 100 values is simply the maximum, which is why SLAs on it
need ``MIN_SAMPLES``).  ``q * n`` is evaluated on the decimal written for ``q``
(``0.07 * 100`` is 7, not 7.000000000000001), so ranks never drift up by one.

Once the count crosses ``exact_limit`` the stored values are fed, once, into a
t-digest (``fastdigest.TDigest``) and dropped; later values reach the digest in batches
of at most ``FLUSH_AT`` (flushed before any read), so memory stays bounded.
From then on percentiles are t-digest *estimates* (interpolated between centroids,
clamped to the exact min/max) and ``exact`` is ``False`` so results can say so.
``count``, ``min``, ``max`` and ``mean`` stay exact in both modes (running values).

Serialised form (``to_dict``) is versioned JSON so shards measured on several machines
can be merged later: ``{"kind": "lens.metric_sketch", "v": 1, ...}``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any, Protocol, Self

from fastdigest import TDigest

DEFAULT_EXACT_LIMIT = 10_000
DEFAULT_MAX_CENTROIDS = 1000
# Digest-phase values wait in a list and reach the digest in batches of this size:
# ``TDigest.batch_update`` costs ~9 us per call however small the batch (it compresses),
# so feeding it the 3 gaps of one short response at a time would dominate the insert cost.
FLUSH_AT = 2048
SKETCH_KIND = "lens.metric_sketch"
SKETCH_VERSION = 1


class QuantileSketch(Protocol):
    """What the summary needs from a distribution: add, merge, ask, serialise."""

    def add(self, x: float) -> None: ...

    def add_many(self, xs: Iterable[float]) -> None: ...

    def merge(self, other: Self) -> None: ...

    def quantile(self, q: float) -> float | None:
        """Value at quantile ``q`` in [0, 1]; ``None`` when the sketch is empty."""
        ...

    @property
    def count(self) -> int: ...

    @property
    def min(self) -> float | None: ...

    @property
    def max(self) -> float | None: ...

    @property
    def mean(self) -> float | None: ...

    @property
    def exact(self) -> bool:
        """True while quantiles are computed on every stored value."""
        ...

    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self: ...


def nearest_rank(sorted_values: list[float], q: float) -> float:
    """Nearest-rank quantile of a non-empty ascending list (see the module docstring)."""
    n = len(sorted_values)
    rank = max(1, math.ceil(Fraction(repr(q)) * n))
    return sorted_values[rank - 1]


def _check_q(q: float) -> None:
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be within [0, 1], got {q!r}")


class MetricSketch:
    """Exact values up to ``exact_limit``, then a t-digest; exact count/min/max/mean.

    Non-finite values are refused with ``ValueError``: a NaN or infinity can only come
    from a bug upstream, and one of them would silently poison every statistic.
    """

    __slots__ = (
        "_count",
        "_digest",
        "_exact_limit",
        "_max",
        "_max_centroids",
        "_min",
        "_pending",
        "_sorted",
        "_sum",
        "_values",
    )

    def __init__(
        self,
        exact_limit: int = DEFAULT_EXACT_LIMIT,
        *,
        max_centroids: int = DEFAULT_MAX_CENTROIDS,
    ) -> None:
        if exact_limit < 0:
            raise ValueError(f"exact_limit must be >= 0, got {exact_limit}")
        if max_centroids < 1:
            raise ValueError(f"max_centroids must be >= 1, got {max_centroids}")
        self._exact_limit = exact_limit
        self._max_centroids = max_centroids
        self._values: list[float] | None = []  # None once the digest took over
        self._sorted = True
        self._digest: TDigest | None = None
        self._pending: list[float] = []  # digest phase: values not yet in the digest
        self._count = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf

    # -- feeding ---------------------------------------------------------------------

    def add(self, x: float) -> None:
        if not math.isfinite(x):
            raise ValueError(f"cannot add a non-finite value to a sketch: {x!r}")
        self._count += 1
        self._sum += x
        # Plain comparisons: min()/max() calls cost ~9x more on this hot path.
        if x < self._min:  # noqa: PLR1730
            self._min = x
        if x > self._max:  # noqa: PLR1730
            self._max = x
        values = self._values
        if values is not None:
            values.append(x)
            self._sorted = False
            if len(values) > self._exact_limit:
                self._promote()
        else:
            pending = self._pending
            pending.append(x)
            if len(pending) >= FLUSH_AT:
                self._flush()

    def add_many(self, xs: Iterable[float]) -> None:
        batch = xs if isinstance(xs, list) else list(xs)
        if not batch:
            return
        if not all(map(math.isfinite, batch)):
            raise ValueError("cannot add a non-finite value to a sketch")
        self._count += len(batch)
        self._sum += math.fsum(batch)
        self._min = min(self._min, *batch)
        self._max = max(self._max, *batch)
        values = self._values
        if values is not None:
            values.extend(batch)
            self._sorted = False
            if len(values) > self._exact_limit:
                self._promote()
        else:
            self._pending.extend(batch)
            if len(self._pending) >= FLUSH_AT:
                self._flush()

    def merge(self, other: Self) -> None:
        """Fold ``other`` into this sketch; ``other`` is left unchanged.

        Two exact sketches whose combined count fits ``exact_limit`` (of ``self``) stay
        exact; otherwise the result is a digest holding both.
        """
        if other is self:
            other = self.copy()
        if other._count == 0:
            return
        self._count += other._count
        self._sum += other._sum
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)
        mine, theirs = self._values, other._values
        if mine is not None and theirs is not None:
            mine.extend(theirs)
            self._sorted = False
            if len(mine) > self._exact_limit:
                self._promote()
            return
        if mine is not None:
            self._promote()
        if theirs is not None:
            self._pending.extend(theirs)
            if len(self._pending) >= FLUSH_AT:
                self._flush()
        else:
            other._flush()  # the data it holds is unchanged, only where it waits
            self._digest_or_fail().merge_inplace(other._digest_or_fail())

    def _promote(self) -> None:
        """Switch to the digest, feeding it the stored values once, and drop them."""
        values = self._values
        assert values is not None
        self._digest = TDigest.from_values(values, max_centroids=self._max_centroids)
        self._values = None
        self._sorted = True

    def _flush(self) -> None:
        """Move digest-phase values waiting in ``_pending`` into the digest."""
        if self._pending:
            self._digest_or_fail().batch_update(self._pending)
            self._pending = []

    def _digest_or_fail(self) -> TDigest:
        digest = self._digest
        if digest is None:  # pragma: no cover - guarded by the callers' mode checks
            raise AssertionError("sketch has no digest while not exact")
        return digest

    # -- asking ----------------------------------------------------------------------

    @property
    def count(self) -> int:
        return self._count

    @property
    def min(self) -> float | None:
        return self._min if self._count else None

    @property
    def max(self) -> float | None:
        return self._max if self._count else None

    @property
    def mean(self) -> float | None:
        return self._sum / self._count if self._count else None

    @property
    def sum(self) -> float:
        return self._sum

    @property
    def exact(self) -> bool:
        return self._values is not None

    @property
    def exact_limit(self) -> int:
        return self._exact_limit

    def quantile(self, q: float) -> float | None:
        _check_q(q)
        if self._count == 0:
            return None
        values = self._values
        if values is not None:
            if not self._sorted:
                values.sort()
                self._sorted = True
            return nearest_rank(values, q)
        self._flush()
        estimate = self._digest_or_fail().quantile(q)
        return min(max(estimate, self._min), self._max)

    # -- copying and serialising -----------------------------------------------------

    def copy(self) -> Self:
        self._flush()
        new = type(self)(self._exact_limit, max_centroids=self._max_centroids)
        new._count, new._sum, new._min, new._max = self._count, self._sum, self._min, self._max
        new._values = None if self._values is None else list(self._values)
        new._sorted = self._sorted
        new._digest = None if self._digest is None else self._digest.copy()
        return new

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable state; exact sketches carry their values, others the digest."""
        self._flush()
        return {
            "kind": SKETCH_KIND,
            "v": SKETCH_VERSION,
            "exact_limit": self._exact_limit,
            "max_centroids": self._max_centroids,
            "count": self._count,
            "sum": self._sum,
            "min": self.min,
            "max": self.max,
            "values": None if self._values is None else list(self._values),
            "digest": None if self._digest is None else self._digest.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        """Rebuild a sketch from ``to_dict`` output; ``ValueError`` on a foreign form."""
        if d.get("kind") != SKETCH_KIND:
            raise ValueError(f"not a lens sketch: kind={d.get('kind')!r}")
        if d.get("v") != SKETCH_VERSION:
            raise ValueError(
                f"unsupported sketch version {d.get('v')!r}; this lens reads v{SKETCH_VERSION}"
            )
        new = cls(int(d["exact_limit"]), max_centroids=int(d["max_centroids"]))
        count = int(d["count"])
        values: list[float] | None = d.get("values")
        digest: dict[str, Any] | None = d.get("digest")
        if values is not None and digest is None:
            if len(values) != count:
                raise ValueError(f"sketch count {count} does not match {len(values)} values")
            new._values = [float(v) for v in values]
            new._sorted = False
        elif digest is not None and values is None:
            new._values = None
            new._digest = TDigest.from_dict(dict(digest))
        else:
            raise ValueError("a sketch holds either 'values' or 'digest', exactly one")
        new._count = count
        new._sum = float(d["sum"])
        if count:
            new._min, new._max = float(d["min"]), float(d["max"])
        return new

    def __repr__(self) -> str:
        mode = "exact" if self.exact else "t-digest"
        return f"MetricSketch(count={self._count}, {mode}, exact_limit={self._exact_limit})"

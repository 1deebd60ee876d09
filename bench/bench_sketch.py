"""Cost of one insert into each quantile sketch lens could use (microseconds per value).

Why it matters: the aggregator adds every per-request metric and every inter-token gap
of a run to a sketch, on the same thread that drains the results channel, so the insert
cost bounds how many tokens per second lens can account for.  Compared:

* ``fastdigest.TDigest`` (Rust core): ``batch_update`` and one ``update`` per value;
* the pure-Python ``tdigest`` package: ``TDigest().update(x)``;
* ``lens.metrics.sketch.MetricSketch.add``, in its exact phase (values <= exact_limit)
  and its digest phase (exact_limit crossed, values go to fastdigest).

``run()`` returns ``(label, microseconds per insert)`` pairs; ``make bench`` prints them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from fastdigest import TDigest as FastDigest
from tdigest import TDigest as PyDigest

from lens.metrics.sketch import MetricSketch


def _values(n: int, seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    # Latency-like: log-normal around 20 ms with a long tail.
    return [rng.lognormvariate(3.0, 0.5) for _ in range(n)]


def _per_insert_us(n: int, body: Callable[[], object]) -> float:
    start = time.perf_counter()
    body()
    return (time.perf_counter() - start) / n * 1e6


def run(n: int = 200_000, n_pure: int = 20_000) -> list[tuple[str, float]]:
    """Microseconds per insert of each sketch; ``n_pure`` bounds the slow pure-Python one."""
    xs = _values(n)
    xs_pure = xs[:n_pure]

    def fast_batch() -> object:
        d = FastDigest()
        d.batch_update(xs)
        return d.quantile(0.99)

    def fast_single() -> object:
        d = FastDigest()
        for x in xs:
            d.update(x)
        return d.quantile(0.99)

    def pure() -> object:
        d = PyDigest()
        for x in xs_pure:
            d.update(x)
        return d.percentile(99)

    def sketch_exact() -> object:
        s = MetricSketch(exact_limit=n)
        for x in xs:
            s.add(x)
        return s.quantile(0.99)

    def sketch_digest() -> object:
        s = MetricSketch(exact_limit=1_000)
        for x in xs:
            s.add(x)
        return s.quantile(0.99)

    return [
        ("fastdigest TDigest.batch_update", _per_insert_us(n, fast_batch)),
        ("fastdigest TDigest.update", _per_insert_us(n, fast_single)),
        ("tdigest (pure Python) TDigest.update", _per_insert_us(n_pure, pure)),
        ("MetricSketch.add, exact phase", _per_insert_us(n, sketch_exact)),
        ("MetricSketch.add, digest phase", _per_insert_us(n, sketch_digest)),
    ]


def main() -> None:
    for label, us in run():
        print(f"{label:<40} {us:8.3f} us/insert")


if __name__ == "__main__":
    main()

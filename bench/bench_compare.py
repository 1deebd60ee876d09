"""How often ``lens compare`` cries wolf, and how small a TTFT regression it catches.

Two figures, each measured two ways:

* **false-alarm rate**: runs of the *same* simulated server (only the seed differs),
  compared pairwise on every default statistic at the default thresholds; a "regressed"
  check is a false alarm.
* **detection**: runs whose TTFT is 10, 15, 20, 30 % slower, compared against the
  unchanged runs; the share of comparisons whose ``ttft.p50`` / ``ttft.p95`` says
  "regressed".  "Detected reliably" = in at least 90 % of comparisons.

*simulator*: real runs of lens against its simulated server (``default-sized``: 200
requests of one stage x provider, 20 in flight, TTFT 150 ms, ITL 15 ms, 16 tokens, jitter
20 %), so the client's own noise is in the figures.  *model*: the same server drawn
offline (lognormal delays, as the simulator draws them), many more pairs, no client noise.

``python -m bench.bench_compare`` prints both; ``make bench`` runs the model part only
(the simulator part takes a few minutes).
"""

from __future__ import annotations

import itertools
import math
import random
import sys
import time
from collections.abc import Callable
from typing import Any

import lens
from lens.metrics.compare import (
    Options,
    Side,
    compare_sides,
)
from lens.metrics.sketch import nearest_rank
from lens.metrics.summary import MetricStats
from lens.scenario.thresholds import (
    DEFAULT_CHECKS,
    default_threshold,
)

REQUESTS = 200
CONCURRENCY = 20
TTFT_MS = 150.0
ITL_MS = 15.0
TOKENS = 16
JITTER = 0.2
LEVELS = (0.10, 0.15, 0.20, 0.30)
CHECKS = [(label, default_threshold(label)) for label in DEFAULT_CHECKS]

Emit = Callable[[str], None]


def _scenario(ttft_ms: float, seed: int) -> dict[str, Any]:
    return {
        "version": 1,
        "name": "bench-compare",
        "providers": {
            "sim": {
                "type": "simulated",
                "ttft": f"{ttft_ms:g}ms",
                "itl": f"{ITL_MS:g}ms",
                "output_tokens": TOKENS,
                "jitter": JITTER,
                "seed": seed,
                "price": {"input": 0.15, "output": 3},
            }
        },
        "prompts": [{"id": "q", "messages": [{"role": "user", "content": "hello"}]}],
        "load": [
            {"id": "c", "pattern": "concurrency", "concurrency": CONCURRENCY, "requests": REQUESTS}
        ],
        "integrity": {"max_cpu": "100%", "max_loop_lag": "10s"},
    }


def _lognormal(rng: random.Random, mean: float) -> float:
    sigma2 = math.log1p(JITTER * JITTER)
    return mean * math.exp(rng.gauss(-sigma2 / 2, math.sqrt(sigma2)))


def _stats(values: list[float]) -> MetricStats:
    xs = sorted(values)
    return MetricStats(
        n=len(xs),
        min=xs[0],
        mean=math.fsum(xs) / len(xs),
        p50=nearest_rank(xs, 0.5),
        p90=nearest_rank(xs, 0.9),
        p95=nearest_rank(xs, 0.95),
        p99=nearest_rank(xs, 0.99),
        max=xs[-1],
    )


def model_side(seed: int, ttft_ms: float = TTFT_MS, n: int = REQUESTS) -> Side:
    """A stage x provider drawn as the simulator draws it, without a client."""
    rng = random.Random(seed)
    ttft = [[_lognormal(rng, ttft_ms)] for _ in range(n)]
    gaps = [[_lognormal(rng, ITL_MS) for _ in range(TOKENS - 1)] for _ in range(n)]
    e2e = [[t[0] + math.fsum(g)] for t, g in zip(ttft, gaps, strict=True)]
    tps = [[(TOKENS - 1) * 1000 / math.fsum(g)] for g in gaps]
    cost = [[0.0000481] for _ in range(n)]
    values = {"ttft": ttft, "itl": gaps, "e2e": e2e, "output_tokens_per_s": tps, "cost": cost}
    stats = {k: _stats([x for c in v for x in c]) for k, v in values.items()}
    return Side("c", "sim", n, 0, stats, values)


def _rates(
    pairs: list[tuple[Side, Side]], options: Options
) -> tuple[dict[str, float], float, float]:
    """Share of pairs each default check calls regressed; share of pairs where *some*
    check does (the CI job fails, exit 1); share where every check is unchanged or
    improved (exit 0)."""
    hits = dict.fromkeys(DEFAULT_CHECKS, 0)
    failed = clean = 0
    for a, b in pairs:
        outcomes = {c.statistic: c.outcome for c in compare_sides(a, b, CHECKS, options)}
        for label, outcome in outcomes.items():
            hits[label] += outcome == "regressed"
        failed += "regressed" in outcomes.values()
        clean += set(outcomes.values()) <= {"unchanged", "improved"}
    n = len(pairs)
    return {k: v / n for k, v in hits.items()}, failed / n, clean / n


def model(emit: Emit, pairs: int = 200, options: Options | None = None) -> None:
    options = options or Options(resamples=500)
    emit(f"== lens compare on the model: {REQUESTS} requests a side, jitter {JITTER:.0%}")
    same = [(model_side(10_000 + i), model_side(20_000 + i)) for i in range(pairs)]
    per_check, any_check, clean = _rates(same, options)
    emit(f"false alarms, any default check, {pairs} pairs: {any_check:.1%} (exit 0: {clean:.0%})")
    emit("  per check: " + ", ".join(f"{k} {v:.1%}" for k, v in per_check.items()))
    for level in (0.05, *LEVELS):
        worse = [
            (model_side(30_000 + i), model_side(40_000 + i, TTFT_MS * (1 + level)))
            for i in range(pairs // 2)
        ]
        rates, _, _ = _rates(worse, options)
        emit(
            f"TTFT +{level:.0%}: regressed in ttft.p50 {rates['ttft.p50']:.0%}, "
            f"ttft.p95 {rates['ttft.p95']:.0%} of {len(worse)} pairs"
        )


def _side_of(results: lens.Results) -> Side:
    from lens.export.comparison import sides  # noqa: PLC0415  (the API's own reading)

    return next(iter(sides(results).values()))


def simulator(emit: Emit, unchanged: int = 6, per_level: int = 4) -> None:
    emit(
        f"== lens compare on the simulator: {REQUESTS} requests a side, {CONCURRENCY} in "
        f"flight, jitter {JITTER:.0%}"
    )
    start = time.perf_counter()
    base = [_side_of(lens.run(_scenario(TTFT_MS, seed))) for seed in range(1, unchanged + 1)]
    pairs = list(itertools.combinations(base, 2))
    per_check, any_check, clean = _rates(pairs, Options())
    emit(
        f"false alarms, any default check, {len(pairs)} pairs: {any_check:.1%} "
        f"(exit 0: {clean:.0%})"
    )
    emit("  per check: " + ", ".join(f"{k} {v:.1%}" for k, v in per_check.items()))
    for level in LEVELS:
        worse = [
            _side_of(lens.run(_scenario(TTFT_MS * (1 + level), 100 + i))) for i in range(per_level)
        ]
        rates, _, _ = _rates([(b, w) for b in base for w in worse], Options())
        emit(
            f"TTFT +{level:.0%}: regressed in ttft.p50 {rates['ttft.p50']:.0%}, "
            f"ttft.p95 {rates['ttft.p95']:.0%} of {len(base) * len(worse)} pairs"
        )
    emit(f"({time.perf_counter() - start:.0f} s)")


def main() -> int:
    def emit(line: str) -> None:
        print(line, flush=True)

    model(emit)
    if "--model-only" not in sys.argv:
        emit("")
        simulator(emit)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""When each token of a simulated response is due: pure functions, tested with exact times.

The schedule is absolute.  Token ``k`` is due at ``t0 + ttft*f0 + itl*(f1 + ... + fk)``
where the ``f`` are jitter factors; the server sleeps *until* each due time, so a late
wake-up never pushes later tokens back (no drift), and the intended timeline does not
depend on how busy the server was.
"""

from __future__ import annotations

import math
import random

from lens.plan.model import SimSettings


def jitter_factor(jitter: float, rng: random.Random) -> float:
    """A multiplicative factor with mean 1 and relative standard deviation ``jitter``.

    Lognormal rather than normal: latencies are right-skewed and never negative, and with
    ``sigma**2 = log(1 + jitter**2)`` and ``mu = -sigma**2 / 2`` the mean is exactly 1 and
    the standard deviation exactly ``jitter``, so the configured ITL stays the mean ITL.
    No random number is drawn when ``jitter`` is 0, so the factor is exactly 1.0.
    """
    if jitter <= 0.0:
        return 1.0
    sigma2 = math.log1p(jitter * jitter)
    return max(0.0, rng.lognormvariate(-sigma2 / 2.0, math.sqrt(sigma2)))


def token_due_times(t0: float, settings: SimSettings, n: int, rng: random.Random) -> list[float]:
    """Due times of ``n`` content tokens for a request whose body was read at ``t0``.

    Accumulates *intended* delays (never measured ones), so the result is the absolute
    timeline.  Draws exactly one factor per delay from ``rng`` (none without jitter).
    """
    if n <= 0:
        return []
    first = t0 + settings.ttft_s * jitter_factor(settings.jitter, rng)
    itl, jitter = settings.itl_s, settings.jitter
    if jitter <= 0.0:
        # Multiply instead of summing so the times are exactly ``first + k*itl``.
        return [first + k * itl for k in range(n)]
    times = [first]
    due = first
    for _ in range(n - 1):
        due += itl * jitter_factor(jitter, rng)
        times.append(due)
    return times

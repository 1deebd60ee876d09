"""Is lens itself the bottleneck?  A sampler of the client's own event-loop lag and CPU.

Every ``interval`` the monitor asks trio to wake it at an exact time and records how late
the wake-up came: a loop busy parsing streams, or a process starved of CPU (another
thread holding the GIL, a noisy neighbour), wakes late, and every timestamp taken in that
state is late by as much.  Process CPU time (all threads) over wall time says whether
the client had a core to itself.  The run's verdicts are only as good as these figures:
when they pass the thresholds the run is flagged ``overloaded`` and its SLA verdicts
become inconclusive rather than passing or failing on distorted timings.

Sampling costs one wake-up per interval (tens of microseconds): nothing next to a run.
Runs shorter than ``MIN_CPU_SPAN_S`` (or with fewer than ``MIN_LAG_SAMPLES`` samples) are
reported but not judged on that figure: their start-up work would dominate it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import trio

from lens.records import HarnessLimits, HarnessReport

DEFAULT_INTERVAL_S = 0.05


def _nearest_rank(ordered: list[float], q: float) -> float:
    return ordered[max(math.ceil(q * len(ordered)), 1) - 1]


class HarnessMonitor:
    def __init__(
        self,
        limits: HarnessLimits | None = None,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        cpu_clock: Callable[[], float] = time.process_time,
    ) -> None:
        self.limits = limits or HarnessLimits()
        self.interval_s = interval_s
        self._cpu_clock = cpu_clock
        self.lags_ms: list[float] = []
        self._start: tuple[float, float] | None = None  # (process CPU s, trio time s)
        self._end: tuple[float, float] | None = None

    async def run(self) -> None:
        """Samples until cancelled (it runs beside the executor in the run's nursery)."""
        self._start = (self._cpu_clock(), trio.current_time())
        try:
            due = trio.current_time()
            while True:
                due += self.interval_s
                await trio.sleep_until(due)
                now = trio.current_time()
                self.lags_ms.append(max(now - due, 0.0) * 1e3)
                # After a long stall, measure from now: one stall is one late sample.
                due = max(due, now)
        finally:
            self._end = (self._cpu_clock(), trio.current_time())

    def report(self) -> HarnessReport:
        ordered = sorted(self.lags_ms)
        cpu: float | None = None
        wall = 0.0
        if self._start is not None and self._end is not None:
            wall = self._end[1] - self._start[1]
            if wall > 0:
                cpu = (self._end[0] - self._start[0]) / wall
        return HarnessReport(
            samples=len(ordered),
            loop_lag_p50_ms=_nearest_rank(ordered, 0.5) if ordered else None,
            loop_lag_p99_ms=_nearest_rank(ordered, 0.99) if ordered else None,
            loop_lag_max_ms=ordered[-1] if ordered else None,
            cpu=cpu,
            limits=self.limits,
            span_s=wall,
        )

"""The run's monotonic clock: trio's clock, read as integer nanoseconds since run start.

Using trio's clock (not the wall clock) for every stamp means schedules and measurements
share one timeline: ``trio.sleep_until`` deadlines and the stamps that measure lateness
against them agree exactly, and ``trio.testing.MockClock`` drives both in tests.
"""

from __future__ import annotations

import trio


class RunClock:
    __slots__ = ("t0",)

    def __init__(self) -> None:
        self.t0 = trio.current_time()

    def now_ns(self) -> int:
        # Rounded, not truncated: a stamp taken at an intended time (t0 + offset, as a float)
        # must equal the intended time in ns, not fall one ns short of it.
        return round((trio.current_time() - self.t0) * 1e9)

    def at_ns(self, offset_ns: int) -> float:
        return self.t0 + offset_ns / 1e9

    def ns_at(self, instant: float) -> int:
        """``instant`` (trio's clock) on the run clock, ns: the inverse of ``at_ns``."""
        return round((instant - self.t0) * 1e9)

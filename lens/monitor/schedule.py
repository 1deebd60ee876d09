"""When each cycle starts: slots ``every`` apart, each started up to ``jitter`` late.

Pure arithmetic on one clock (seconds, any origin), so the service's loop can run under
``trio.testing.MockClock`` and these rules can be tested without sleeping.  Slot ``k``
starts at ``origin + k * every + jitter_k``, ``jitter_k`` uniform in ``[0, jitter * every]``,
drawn once per slot from a seeded generator.  Cycles never overlap: after a cycle ends, the
next one runs in the first slot not yet run; if that slot's start already passed (the
cycle overran), it starts at once, late, in the *latest* slot whose start passed, and the
slots in between are skipped (counted, never run).
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class NextCycle:
    slot: int  # the slot the next cycle runs in
    start: float  # when it starts (now, when late)
    skipped: int  # slots passed over entirely
    late_s: float  # how far past its slot's start it begins (0 when on time)

    @property
    def overran(self) -> bool:
        return self.late_s > 0


class Schedule:
    def __init__(self, every: float, jitter: float, origin: float, seed: int | None = None):
        if every <= 0:
            raise ValueError(f"every must be positive, got {every}")
        if not 0 <= jitter <= 1:
            raise ValueError(f"jitter must be a fraction in [0, 1], got {jitter}")
        self.every = every
        self.jitter = jitter
        self.origin = origin
        self._random = random.Random(seed)
        self._offsets: dict[int, float] = {}

    def offset(self, slot: int) -> float:
        """Slot ``slot``'s jitter, drawn once (``after`` forgets the slots behind it)."""
        if slot not in self._offsets:
            self._offsets[slot] = self._random.uniform(0.0, self.jitter * self.every)
        return self._offsets[slot]

    def start_of(self, slot: int) -> float:
        return self.origin + slot * self.every + self.offset(slot)

    def first(self) -> NextCycle:
        return NextCycle(slot=0, start=self.start_of(0), skipped=0, late_s=0.0)

    def after(self, slot: int, ended: float) -> NextCycle:
        """The cycle after the one run in ``slot``, which ended at ``ended``."""
        following = slot + 1
        for old in [s for s in self._offsets if s < slot]:  # bounded memory
            del self._offsets[old]
        start = self.start_of(following)
        if start >= ended:
            return NextCycle(following, start, 0, 0.0)
        # Overran: the latest slot whose jittered start has passed.  Jitter never moves a
        # slot's start past the next slot's unjittered one (jitter <= 1), so slot j's start
        # passed once ``origin + j * every`` did, give or take its own jitter.
        latest = following + int((ended - start) // self.every)
        while latest > following and self.start_of(latest) > ended:
            latest -= 1
        while self.start_of(latest + 1) <= ended:
            latest += 1
        return NextCycle(latest, ended, latest - following, ended - self.start_of(latest))

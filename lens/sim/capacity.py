"""The simulated server's capacity: at most N responses generated at once, the rest queue.

A real inference server runs a bounded batch; requests past it wait, so their time to first
token grows by the wait and latency climbs steeply once arrivals outpace the batch.  The
gate models that with a ``trio.Semaphore``, whose waiters are woken in arrival order (trio's
``ParkingLot`` is FIFO), so the queue is first come, first served.  A request holds its slot
from the moment it is admitted until its last byte is written: capacity N at end-to-end time
T serves about N / T requests per second.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio


class GenerationSlots:
    """``async with slots.held() as admitted:`` waits for a slot (none without a capacity)
    and gives the trio time the request was admitted, where its generation starts."""

    def __init__(self, capacity: int | None) -> None:
        self._slots = None if capacity is None else trio.Semaphore(capacity)

    @asynccontextmanager
    async def held(self) -> AsyncIterator[float]:
        if self._slots is None:
            yield trio.current_time()
            return
        async with self._slots:
            yield trio.current_time()

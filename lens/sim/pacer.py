"""One timer task that writes every stream's tokens at their due times.

Why not ``await trio.sleep_until(due)`` per token in each connection's task?  A trio sleep
is a cancel scope whose expiry delivers a ``Cancelled`` exception: about 35 us of CPU per
wake-up on the 2-core reference machine, so 256 streams at 10 ms (25,600 tokens/s) would
burn a whole core on sleeping alone.  The pacer keeps every pending write in one heap,
sleeps once until the earliest due time, then writes everything that is due with a plain
non-blocking ``os.write`` on the socket's descriptor, and sleeps again.  One trio wake-up
(about once per millisecond, the epoll resolution) then serves dozens of tokens, and the
per-token cost is a heap operation plus the ``write`` system call.

If the socket cannot take a whole payload (a slow reader filled its buffer), the pacer
hands the rest back to the connection's task, which finishes it with trio's blocking
``send_all`` and resubmits the remaining writes: a slow client delays only itself, and the
absolute schedule is unchanged.
"""

from __future__ import annotations

import heapq
import itertools
import math
import os

import trio


async def send_now(stream: trio.SocketStream, data: bytes) -> None:
    """``stream.send_all(data)`` minus trio's scheduling round when the socket takes it all.

    Used for the bytes due at once (headers, role chunk, a whole zero-delay response):
    the connection's task yields anyway when it next reads, so skipping this one keeps
    fairness and saves a trip through the scheduler per response.
    """
    try:
        sent = os.write(stream.socket.fileno(), data)
    except BlockingIOError:
        sent = 0
    except OSError as exc:  # EPIPE, ECONNRESET: the client left
        raise trio.BrokenResourceError(str(exc)) from exc
    if sent < len(data):
        await stream.send_all(memoryview(data)[sent:])


class _Job:
    """One stream's remaining writes, between the pacer and the connection task."""

    __slots__ = ("cancelled", "done", "error", "fd", "index", "leftover", "payloads", "times")

    def __init__(self, fd: int, times: list[float], payloads: list[bytes], start: int) -> None:
        self.fd = fd
        self.times = times  # absolute due times on trio's clock, non-decreasing
        self.payloads = payloads
        self.index = start  # next write to make
        self.done = trio.Event()
        self.error: OSError | None = None
        self.leftover = b""  # unwritten tail of payloads[index - 1], for the owner to send
        self.cancelled = False  # the owner gave up: the pacer drops the job when it pops


class Pacer:
    """Run ``run`` in a nursery, then ``await play(stream, times, payloads)`` from any task."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Job]] = []
        self._seq = itertools.count()  # tie-breaker: equal due times keep submit order
        self._sleep: trio.CancelScope | None = None

    def _submit(self, job: _Job) -> None:
        due = job.times[job.index]
        heapq.heappush(self._heap, (due, next(self._seq), job))
        # Pull the pacer's wake-up forward when this write is due before it.
        if self._sleep is not None and due < self._sleep.deadline:
            self._sleep.deadline = due

    async def play(
        self, stream: trio.SocketStream, times: list[float], payloads: list[bytes], start: int = 0
    ) -> None:
        """Write ``payloads[k]`` at ``times[k]`` for ``k >= start``; return after the last.

        Raises ``trio.BrokenResourceError`` if the peer went away.  The caller must not
        use ``stream`` for anything else meanwhile (it is waiting here, so it cannot).
        """
        if start >= len(times):
            return
        job = _Job(stream.socket.fileno(), times, payloads, start)
        while True:
            self._submit(job)
            try:
                await job.done.wait()
            except BaseException:
                job.cancelled = True  # e.g. server shutdown: the heap entry becomes inert
                raise
            if job.error is not None:
                raise trio.BrokenResourceError(str(job.error)) from job.error
            if not job.leftover:
                return
            await stream.send_all(job.leftover)  # slow reader: wait for buffer space
            job.leftover = b""
            if job.index == len(job.times):
                return
            job.done = trio.Event()

    def _fire(self, job: _Job) -> None:
        data = job.payloads[job.index]
        job.index += 1
        try:
            # The descriptor belongs to the trio socket (already non-blocking); writing
            # to it directly skips trio's per-call checkpoint, which is the point.
            sent = os.write(job.fd, data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:  # EPIPE, ECONNRESET: the client left
            job.error = exc
            job.done.set()
            return
        if sent < len(data):
            job.leftover = data[sent:]
            job.done.set()
        elif job.index == len(job.times):
            job.done.set()
        else:
            heapq.heappush(self._heap, (job.times[job.index], next(self._seq), job))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        heap = self._heap
        task_status.started()
        while True:
            now = trio.current_time()
            if heap and heap[0][0] <= now:
                while heap and heap[0][0] <= now:
                    job = heapq.heappop(heap)[2]
                    if not job.cancelled:
                        self._fire(job)
                # Writing took time, so more may be due already.  Look again after a
                # plain yield (lets request handlers run; no exception, no timer), not
                # through a timed sleep, which costs a cancel scope and a Cancelled.
                await trio.lowlevel.checkpoint()
                continue
            with trio.move_on_at(heap[0][0] if heap else math.inf) as scope:
                self._sleep = scope
                await trio.sleep_forever()
            self._sleep = None

"""One reader task for every streaming response body of a unit: less CPU per token.

Why: with a task per stream, every token costs that task a wake-up: trio re-arms the
socket in its epoll set (``epoll_ctl``, EPOLLONESHOT), the task is rescheduled, and its
whole coroutine chain (worker, request, exchange, body iterator) resumes to read a few
hundred bytes and park again.  At hundreds of streams that bookkeeping costs more than
the read and the decoding together.  Here one task owns an epoll set of its own where
every streaming socket stays registered (level-triggered: no re-arming per read); trio
wakes that task when any of them is readable, and it reads every ready socket in that
wake-up, stamping each read as it returns, before parsing any of them, then hands each
read to its body's sink (framing and provider decoding run in this task).  The request's
own task just waits for its body to end, inside its own cancel scope, so a request's
deadline or cancellation still ends only that request: it detaches its socket and goes.

Linux only (``select.epoll``); elsewhere ``ReadMux.supported()`` is false and each
request reads its own body as before.  Only plain-TCP bodies read without an httpx read
timeout come here (lens.run.http11 decides); TLS goes through trio's SSLStream.
"""

from __future__ import annotations

import contextlib
import os
import select
from collections.abc import Callable
from typing import Protocol

import trio

__all__ = ["ReadMux", "ReadSink"]


class ReadSink(Protocol):
    """What the mux hands each read of one socket to; called in the mux's task."""

    def on_read(self, data: bytes, t_ns: int) -> None:
        """``data`` is one read (``b""``: the peer closed), stamped ``t_ns`` right after it
        returned.  Must not raise: a sink keeps its failures for its own request."""

    def on_error(self, exc: OSError) -> None:
        """The read failed (a reset): the connection is gone."""


class ReadMux:
    """An epoll set of response sockets and the task that reads them (``run``).

    ``now`` is the run clock's nanosecond stamp; ``read_size`` the most one read takes.
    ``run`` must be running (in a nursery that outlives every request using the mux) for
    attached sockets to be read; it closes the epoll set when it ends.
    """

    __slots__ = ("_epoll", "_read_size", "_sinks", "now")

    def __init__(self, now: Callable[[], int], read_size: int = 65536) -> None:
        if read_size < 1:
            raise ValueError("read_size must be >= 1")
        self.now = now
        self._read_size = read_size
        self._epoll = select.epoll()
        self._sinks: dict[int, ReadSink] = {}

    @staticmethod
    def supported() -> bool:
        return hasattr(select, "epoll")

    def attach(self, fd: int, sink: ReadSink) -> None:
        """Read ``fd`` from now on and hand every read to ``sink``, until ``detach``."""
        self._epoll.register(fd, select.EPOLLIN)
        self._sinks[fd] = sink

    def detach(self, fd: int) -> None:
        """Stop reading ``fd``; a no-op when it is not attached.  Call it before closing
        the socket: a closed descriptor's number can come back as another socket."""
        if self._sinks.pop(fd, None) is not None:
            with contextlib.suppress(OSError, ValueError):  # closed fd, closed epoll set
                self._epoll.unregister(fd)

    @property
    def attached(self) -> int:
        return len(self._sinks)

    async def run(self) -> None:
        """Read every attached socket as it becomes readable, until cancelled."""
        epoll = self._epoll
        poll = epoll.poll
        sinks = self._sinks
        read = os.read
        now = self.now
        size = self._read_size
        wait_readable = trio.lowlevel.wait_readable
        try:
            while True:
                await wait_readable(epoll.fileno())
                ready = poll(0)
                if len(ready) == 1:
                    # One socket ready: no batch to build.
                    fd = ready[0][0]
                    sink = sinks.get(fd)
                    if sink is None:
                        continue
                    try:
                        data = read(fd, size)
                    except BlockingIOError:  # pragma: no cover - spurious readiness
                        continue
                    except OSError as exc:
                        sink.on_error(exc)
                        continue
                    sink.on_read(data, now())
                    continue
                # Several: read and stamp them all first, so no read's stamp waits for
                # the parsing of another; then decode them in arrival order.
                batch: list[tuple[ReadSink, bytes, int]] = []
                for fd, _ in ready:
                    sink = sinks.get(fd)
                    if sink is None:
                        continue
                    try:
                        data = read(fd, size)
                    except BlockingIOError:  # pragma: no cover - spurious readiness
                        continue
                    except OSError as exc:
                        sink.on_error(exc)
                        continue
                    batch.append((sink, data, now()))
                for sink, data, t in batch:
                    sink.on_read(data, t)
        finally:
            sinks.clear()
            epoll.close()

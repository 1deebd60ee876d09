"""``--start-at``: a wall-clock instant at which a run (every shard of it) starts.

The wall clock is read only to wait for the instant; once it is reached, the run's monotonic
clock starts (lens.run.clock) and every schedule is measured from there.  So only durations
cross machines: shards started on N hosts are as aligned as the hosts' wall clocks are (their
NTP error, typically a few ms on a cloud VM), never better.

A start already passed by more than ``START_TOLERANCE_S`` is an error (``StartAtPassed``,
exit 2), not a late start: a shard that started late would shift its whole share of every
open-loop schedule against the other shards' and silently skew the merged run.  Within the
tolerance (a scheduler starting the pod a moment late), the run starts at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import trio

from lens.errors import InputError
from lens.scenario.units import parse_duration

START_TOLERANCE_S = 1.0

WallClock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class StartAtPassed(InputError):
    """The ``--start-at`` instant was already past when the run was ready to start."""


_RELATIVE = re.compile(r"^\+(?P<duration>.+)$")


def parse_start_at(text: str, now: datetime) -> datetime:
    """``+30s`` (from ``now``; any lens duration: ``+2m``, ``+1h30m``) or an ISO-8601 instant
    with a time zone (``2026-12-06T21:00:00Z``, ``...+01:00``) -> an aware UTC datetime."""
    m = _RELATIVE.match(text.strip())
    if m is not None:
        try:
            return now + timedelta(seconds=parse_duration(m["duration"]))
        except ValueError as exc:
            raise InputError(f"--start-at {text!r}: {exc}") from exc
    try:
        instant = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            f"--start-at {text!r}: expected an ISO-8601 instant with a time zone, like "
            "2026-12-06T21:00:00Z, or +DURATION from now, like +30s"
        ) from None
    if instant.tzinfo is None:
        raise InputError(
            f"--start-at {text!r}: give a time zone (Z or +HH:MM): every shard must read the "
            "same instant, whatever its machine's local time zone"
        )
    return instant.astimezone(UTC)


def check_not_passed(start_at: datetime, wall_clock: WallClock = utc_now) -> None:
    """``StartAtPassed`` when ``start_at`` is past by more than the tolerance."""
    late_s = (wall_clock() - start_at).total_seconds()
    if late_s > START_TOLERANCE_S:
        raise StartAtPassed(
            f"--start-at {start_at.isoformat()} passed {late_s:.1f} s ago (more than the "
            f"{START_TOLERANCE_S:g} s tolerated): the shards would not start together; give "
            "every shard a later instant"
        )


async def wait_until(start_at: datetime, wall_clock: WallClock = utc_now) -> None:
    """Sleep (no busy wait) until the wall clock reads ``start_at`` (``StartAtPassed`` when
    it was already past by more than the tolerance).  The wall clock is read again after
    each sleep, so a clock stepped meanwhile (NTP) still ends the wait at the instant."""
    check_not_passed(start_at, wall_clock)
    while (remaining := (start_at - wall_clock()).total_seconds()) > 0:
        await trio.sleep(remaining)

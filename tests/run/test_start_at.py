"""--start-at: parsed from ISO 8601 or +DURATION, waited for asleep on the wall clock, and
only then the run clock starts (MockClock, with the wall clock injected to follow it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import trio
import trio.testing

from lens.errors import InputError
from lens.records import RunOutcome
from lens.run.executor import StageRunner
from lens.run.session import StopSwitch, execute
from lens.run.start import START_TOLERANCE_S, StartAtPassed, parse_start_at, wait_until
from tests.run.test_session_stop import EMPTY

NOW = datetime(2026, 12, 6, 21, 0, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def wall_following_trio(origin: datetime) -> datetime:
    """The wall clock as ``origin`` + the mock clock's time: they advance together."""
    return origin + timedelta(seconds=trio.current_time())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+30s", NOW + timedelta(seconds=30)),
        ("+1h30m", NOW + timedelta(minutes=90)),
        ("2026-12-06T21:05:00Z", NOW + timedelta(minutes=5)),
        ("2026-12-06T22:05:00+01:00", NOW + timedelta(minutes=5)),
    ],
)
def test_parse_start_at(text: str, expected: datetime) -> None:
    parsed = parse_start_at(text, NOW)
    assert parsed == expected
    assert parsed.tzinfo is not None
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-12-06T21:05:00", "give a time zone"),
        ("tomorrow", "expected an ISO-8601 instant"),
        ("+soon", "expected a duration"),
    ],
)
def test_bad_start_at(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_start_at(text, NOW)


async def test_the_run_clock_starts_at_the_instant(clock: trio.testing.MockClock) -> None:
    origin = NOW - timedelta(seconds=trio.current_time())
    start_at = NOW + timedelta(seconds=42.5)
    seen: list[float] = []

    async def note_start(runner: StageRunner) -> None:
        runner.start()
        seen.append(runner.clock.t0)

    t_before = trio.current_time()
    outcome = await execute(
        EMPTY,
        {},
        handle_signals=False,
        drive=note_start,
        start_at=start_at,
        wall_clock=lambda: wall_following_trio(origin),
    )
    # Asleep until the instant, not a moment more: the run clock's zero is the instant.
    assert seen == [pytest.approx(t_before + 42.5)]
    assert outcome.started_at == start_at
    assert outcome.interrupted_by is None


async def test_a_wall_clock_stepped_back_while_waiting_still_ends_at_the_instant(
    clock: trio.testing.MockClock,
) -> None:
    """The wall clock is read again after each sleep: NTP stepping it back 5 s during the
    wait makes the wait 5 s longer, ending when the wall clock reads the instant."""
    steps = [timedelta(0)]
    origin = NOW - timedelta(seconds=trio.current_time())

    def wall() -> datetime:
        return wall_following_trio(origin) - steps[0]

    async def step_back() -> None:
        await trio.sleep(3)
        steps[0] = timedelta(seconds=5)

    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(step_back)
        await wait_until(NOW + timedelta(seconds=10), wall)
    assert trio.current_time() - t0 == pytest.approx(15.0)
    assert wall() == NOW + timedelta(seconds=10)


async def test_a_passed_instant_is_an_error_beyond_the_tolerance(
    clock: trio.testing.MockClock,
) -> None:
    late = NOW - timedelta(seconds=START_TOLERANCE_S + 0.5)
    with pytest.raises(StartAtPassed, match=r"passed 1\.5 s ago"):
        await execute(EMPTY, {}, handle_signals=False, start_at=late, wall_clock=lambda: NOW)
    # Within the tolerance: at once.
    t0 = trio.current_time()
    slightly = NOW - timedelta(seconds=START_TOLERANCE_S / 2)
    outcome = await execute(
        EMPTY, {}, handle_signals=False, start_at=slightly, wall_clock=lambda: NOW
    )
    assert trio.current_time() == t0
    assert outcome.interrupted_by is None


async def test_a_stop_during_the_wait_ends_the_run_before_it_starts(
    clock: trio.testing.MockClock,
) -> None:
    switch = StopSwitch()
    origin = NOW - timedelta(seconds=trio.current_time())
    started: list[bool] = []

    async def drive(runner: StageRunner) -> None:
        started.append(True)

    async def stop_later() -> None:
        await trio.sleep(5)
        switch.stop("cancelled")

    outcome: list[RunOutcome] = []

    async def run() -> None:
        outcome.append(
            await execute(
                EMPTY,
                {},
                handle_signals=False,
                drive=drive,
                stop=switch,
                start_at=NOW + timedelta(hours=1),
                wall_clock=lambda: wall_following_trio(origin),
            )
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stop_later)
        nursery.start_soon(run)
    assert started == []
    assert outcome[0].interrupted_by == "cancelled"
    assert outcome[0].records == ()


def test_time_zones_compare_as_instants() -> None:
    east = timezone(timedelta(hours=9))
    assert parse_start_at("2026-12-07T06:00:00+09:00", NOW) == NOW.astimezone(east)

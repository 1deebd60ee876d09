"""Ending a run from outside its loop: ``StopSwitch`` (another thread, a caller's event
loop) and ``cancel_after_s``, both as SIGTERM would: the run returns, partial."""

from __future__ import annotations

import threading

import pytest
import trio
import trio.testing

from lens.plan.model import Plan
from lens.records import CANCEL_AFTER_STOP
from lens.run.executor import StageRunner
from lens.run.session import StopSwitch, execute

EMPTY = Plan(
    name="empty", description="", source="test", providers={}, prompts={}, stages=(), slas=()
)


async def forever(runner: StageRunner) -> None:
    await trio.sleep_forever()


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_cancel_after_ends_the_run_then(clock: trio.testing.MockClock) -> None:
    start = trio.current_time()
    with trio.fail_after(100):  # virtual seconds: a stop that never comes fails here
        outcome = await execute(EMPTY, {}, handle_signals=False, drive=forever, cancel_after_s=7.5)
    assert trio.current_time() - start == pytest.approx(7.5)
    assert outcome.interrupted_by == CANCEL_AFTER_STOP
    assert outcome.partial


async def test_a_run_that_ends_first_is_not_interrupted(clock: trio.testing.MockClock) -> None:
    async def brief(runner: StageRunner) -> None:
        await trio.sleep(1)

    outcome = await execute(EMPTY, {}, handle_signals=False, drive=brief, cancel_after_s=60)
    assert outcome.interrupted_by is None


async def test_a_stop_from_another_thread_ends_the_run_with_its_reason() -> None:
    switch = StopSwitch()

    async def stop_soon() -> None:
        await trio.sleep(0.05)
        await trio.to_thread.run_sync(switch.stop, "cancelled")
        switch.stop("ignored: the first reason wins")

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stop_soon)
            outcome = await execute(EMPTY, {}, handle_signals=False, drive=forever, stop=switch)
    assert outcome.interrupted_by == "cancelled"
    assert switch.reason == "cancelled"


async def test_a_stop_before_the_run_starts_ends_it_at_once(
    clock: trio.testing.MockClock,
) -> None:
    switch = StopSwitch()
    thread = threading.Thread(target=switch.stop, args=("early",))
    thread.start()
    thread.join()
    start = trio.current_time()
    with trio.fail_after(100):
        outcome = await execute(EMPTY, {}, handle_signals=False, drive=forever, stop=switch)
    assert trio.current_time() == start
    assert outcome.interrupted_by == "early"


def test_a_stop_after_the_run_ended_is_harmless() -> None:
    switch = StopSwitch()

    async def brief(runner: StageRunner) -> None:
        await trio.sleep(0)

    trio.run(lambda: execute(EMPTY, {}, handle_signals=False, drive=brief, stop=switch))
    switch.stop("late")  # the run's loop is gone: nothing to wake, no error
    assert switch.reason == "late"

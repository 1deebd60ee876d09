"""UnitGate: a unit waits for its parent's word, then for the instant it names."""

from __future__ import annotations

import time

import trio
import trio.testing

from lens.run.gate import UnitGate


async def test_a_unit_waits_to_be_let_through_then_until_the_instant_named(
    autojump_clock: trio.testing.MockClock,
) -> None:
    asked: list[int] = []
    gate = UnitGate(asked.append)
    passed: list[float] = []

    async def unit() -> None:
        await gate(3)
        passed.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(unit)
        await trio.sleep(10)  # nobody has opened the gate: the unit still waits
        assert asked == [3]
        assert passed == []
        t_open = trio.current_time()
        gate.open(3, time.monotonic() + 0.5)
    # Half a second after the word (monotonic and the mock clock agree on durations).
    assert abs(passed[0] - t_open - 0.5) < 0.05


async def test_an_answer_given_before_the_unit_asks_is_kept(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = UnitGate(lambda _position: None)
    gate.open(0, time.monotonic())  # already past: no wait
    t = trio.current_time()
    await gate(0)
    assert trio.current_time() - t < 0.01

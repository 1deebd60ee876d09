"""Cycle slots: interval, jitter bounds, overruns and skipped slots (pure arithmetic)."""

from __future__ import annotations

import pytest

from lens.monitor.schedule import Schedule


def test_slots_are_every_apart_without_jitter() -> None:
    s = Schedule(60.0, 0.0, origin=100.0)
    first = s.first()
    assert (first.slot, first.start, first.skipped, first.late_s) == (0, 100.0, 0, 0.0)
    nxt = s.after(0, ended=130.0)
    assert (nxt.slot, nxt.start, nxt.skipped, nxt.overran) == (1, 160.0, 0, False)


def test_jitter_only_delays_and_stays_within_its_share() -> None:
    s = Schedule(100.0, 0.1, origin=0.0, seed=7)
    offsets = [s.start_of(k) - k * 100.0 for k in range(2000)]
    assert all(0.0 <= o <= 10.0 for o in offsets)
    # Spread over the whole range, not stuck at one value.
    assert min(offsets) < 1.0
    assert max(offsets) > 9.0


def test_a_seed_repeats_the_jitter_and_another_changes_it() -> None:
    a = [Schedule(10, 0.5, 0, seed=1).start_of(k) for k in range(5)]
    b = [Schedule(10, 0.5, 0, seed=1).start_of(k) for k in range(5)]
    c = [Schedule(10, 0.5, 0, seed=2).start_of(k) for k in range(5)]
    assert a == b
    assert a != c


def test_an_overrun_within_one_slot_starts_late_and_skips_nothing() -> None:
    s = Schedule(60.0, 0.0, origin=0.0)
    nxt = s.after(0, ended=75.0)  # slot 1 was due at 60
    assert (nxt.slot, nxt.start, nxt.skipped) == (1, 75.0, 0)
    assert nxt.late_s == pytest.approx(15.0)
    assert nxt.overran


def test_slots_passed_entirely_are_skipped_and_counted() -> None:
    s = Schedule(60.0, 0.0, origin=0.0)
    nxt = s.after(0, ended=200.0)  # slots 1 (60), 2 (120) and 3 (180) passed
    assert (nxt.slot, nxt.start, nxt.skipped) == (3, 200.0, 2)
    assert nxt.late_s == pytest.approx(20.0)


def test_skips_are_counted_with_jitter_too() -> None:
    s = Schedule(60.0, 0.5, origin=0.0, seed=3)
    ended = s.start_of(4) + 0.001  # slot 4 just started; slots 1..3 passed
    nxt = s.after(0, ended)
    assert nxt.slot == 4
    assert nxt.skipped == 3
    assert s.start_of(5) > ended


def test_memory_of_drawn_offsets_stays_bounded() -> None:
    s = Schedule(1.0, 0.1, origin=0.0, seed=0)
    slot = 0
    for _ in range(10_000):
        slot = s.after(slot, s.start_of(slot) + 0.5).slot
    assert len(s._offsets) <= 3


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="every"):
        Schedule(0, 0.1, 0)
    with pytest.raises(ValueError, match="jitter"):
        Schedule(1, 1.5, 0)

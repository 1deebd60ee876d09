"""The collector during a run (lens.run.gcpolicy): set-up frozen, then restored."""

from __future__ import annotations

import gc
import weakref

import pytest

from lens.run.gcpolicy import run_gc_policy


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def _collectable(obj: object) -> bool:
    """Whether a collection walks ``obj`` (frozen objects are in no generation)."""
    return any(o is obj for o in gc.get_objects())


def test_freezes_what_is_alive_and_unfreezes_after() -> None:
    assert gc.get_freeze_count() == 0
    setup = _Cycle()
    assert _collectable(setup)
    with run_gc_policy():
        assert gc.get_freeze_count() > 0
        assert not _collectable(setup)  # no collection of the run walks the set-up
    assert gc.get_freeze_count() == 0
    assert _collectable(setup)


def test_a_cycle_made_during_the_run_is_still_collected() -> None:
    with run_gc_policy():
        made = _Cycle()
        assert _collectable(made)
        ref = weakref.ref(made)
        del made
        gc.collect()
        assert ref() is None


def test_restored_after_a_failure() -> None:
    with pytest.raises(RuntimeError), run_gc_policy():
        raise RuntimeError("lens failed")
    assert gc.get_freeze_count() == 0


def test_an_outer_freeze_is_left_to_its_owner() -> None:
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        with run_gc_policy():
            _Cycle()
        assert gc.get_freeze_count() == before  # neither more frozen nor unfrozen
    finally:
        gc.unfreeze()

"""Stop a run once an SLA assertion marked ``stop_on_fail`` has conclusively failed.

The run stage cannot judge SLAs (it sits upstream of ``lens.metrics``), so the judging is
injected, as the budget's pricing is: ``on_record`` sees each record as it is emitted,
with the number of requests then in flight and the start of the running unit's measured
phase (where its windows begin); ``on_unit_end`` sees each unit's window once it ended.
Either returns why the run must stop, or None.

Once stopped, the run stops as the budget stops it: the running unit sends nothing more,
its requests in flight finish or are cut off by its drain policy (``drain: cancel`` cuts
them now, a grace lets them run that long, ``drain: wait`` lets them finish), and no later
unit starts.  The outcome says ``interrupted_by="sla"``.
"""

from __future__ import annotations

from collections.abc import Callable

from lens.records import RequestRecord, StageWindow

RecordCheck = Callable[[RequestRecord, int, int], str | None]
UnitCheck = Callable[[StageWindow], str | None]
# Told every record with the start of its unit's windows, stopped or not (the run's
# windowed SLAs, judged after the run: lens.metrics.windows.WindowFeed).
RecordPlacement = Callable[[RequestRecord, int], None]


def never(*_: object) -> None:
    """A check that never stops the run (``SlaStop`` used only to ``follow``)."""
    return None


class SlaStop:
    def __init__(
        self,
        on_record: RecordCheck = never,
        on_unit_end: UnitCheck = never,
        follow: RecordPlacement | None = None,
    ) -> None:
        self._on_record = on_record
        self._on_unit_end = on_unit_end
        self._follow = follow
        self.reason: str | None = None

    @property
    def tripped(self) -> bool:
        return self.reason is not None

    def observe(self, rec: RequestRecord, in_flight: int, origin_ns: int) -> bool:
        """Whether ``rec`` made the run stop (only the first time)."""
        if self._follow is not None:
            self._follow(rec, origin_ns)
        if self.reason is not None:
            return False
        self.reason = self._on_record(rec, in_flight, origin_ns)
        return self.reason is not None

    def unit_ended(self, window: StageWindow) -> bool:
        """Whether the unit that just ended made the run stop (only the first time)."""
        if self.reason is not None:
            return False
        self.reason = self._on_unit_end(window)
        return self.reason is not None

"""Every unit of a shard after the first starts at ``--start-at`` + its planned offset, on
the shard's own run clock, whatever its own share of the unit before did (MockClock: no
time passes unasked, so instants compare exactly)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import trio
import trio.testing

from lens.plan.duration import duration_estimate
from lens.plan.model import ClosedLoop, IdleProbe
from lens.plan.split import UNIT_GAP_S, planned_starts, shard_plan
from lens.records import RunOutcome
from lens.run.gate import PlannedGate
from lens.run.session import execute

from .fake_server import FakeOpenAI, Script
from .test_executor import open_stage, plan_of

NS = 1_000_000_000
NOW = datetime(2026, 12, 6, 21, 0, 0, tzinfo=UTC)
FIRST = [0.0, 0.25, 0.5, 0.75]
SECOND = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
SECOND_AT = 2.0  # the second unit's planned start, s after --start-at


async def test_a_late_shard_does_not_move_the_others_schedule(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = plan_of(open_stage(FIRST, stage="a"), open_stage(SECOND, stage="b"))
    start_at = NOW + timedelta(seconds=10)
    origin = NOW - timedelta(seconds=trio.current_time())
    # Shard 0's server answers in 3 s: its share of stage a ends ~3.5 s in, 1.5 s past the
    # planned start of stage b.  Shard 1's answers in 50 ms.
    servers = {0: Script(ttft_s=3.0, itl_s=0.01, tokens=2), 1: Script(ttft_s=0.05, tokens=2)}
    outcomes: dict[int, RunOutcome] = {}

    async def shard(k: int) -> None:
        fake = FakeOpenAI(servers[k])
        mine = shard_plan(plan, k, 2)
        outcomes[k] = await execute(
            mine,
            mine.providers,
            handle_signals=False,
            transport_for=lambda _: fake,
            start_at=start_at,
            wall_clock=lambda: origin + timedelta(seconds=trio.current_time()),
            unit_starts=(None, SECOND_AT),
        )

    async with trio.open_nursery() as nursery:
        for k in (0, 1):
            nursery.start_soon(shard, k)

    windows = {(k, w.stage): w for k, o in outcomes.items() for w in o.windows}
    # Shard 1 started stage b at the planned instant exactly, though shard 0 overran.
    assert windows[(1, "b")].t_start == SECOND_AT * NS
    assert windows[(1, "b")].late_ns == 0
    assert windows[(1, "a")].late_ns is None  # the first unit: once set up
    # Shard 0 started it late, and says by how much.
    late = windows[(0, "b")]
    assert late.t_start > SECOND_AT * NS
    assert late.late_ns == late.t_start - SECOND_AT * NS
    assert late.late_ns == pytest.approx(1.5 * NS, rel=0.05)

    seen: set[tuple[str, int]] = set()
    for k, outcome in outcomes.items():
        for rec in outcome.records:
            seen.add((rec.stage, rec.index))
            assert rec.index % 2 == k
            if rec.stage == "a":
                assert rec.t_intended == round(FIRST[rec.index] * NS)
                continue
            # Every arrival of stage b at its planned absolute offset from --start-at, in
            # both shards: the late shard's lateness is its dispatch lag, not a new schedule.
            assert rec.t_intended == round((SECOND_AT + SECOND[rec.index]) * NS)
            assert rec.t_intended is not None
            if k == 1:
                assert rec.t_dispatch == rec.t_intended
            else:
                assert rec.t_dispatch == max(rec.t_intended, late.t_start)
    assert seen == {("a", i) for i in range(4)} | {("b", i) for i in range(6)}
    # The late unit's first due arrivals were sent at once, on its start.
    assert any(
        r.t_dispatch - (r.t_intended or 0) > NS for r in outcomes[0].records if r.stage == "b"
    )


async def test_the_gate_waits_for_the_planned_instant_only_for_planned_units(
    autojump_clock: trio.testing.MockClock,
) -> None:
    origin = trio.current_time()
    gate = PlannedGate((None, 5.0, None), lambda: origin)
    assert await gate(0) is None
    assert trio.current_time() == origin  # not planned: no wait
    assert await gate(1) == origin + 5.0
    assert trio.current_time() == origin + 5.0
    await trio.sleep(1)
    assert await gate(1) == origin + 5.0  # already past: at once, the instant kept
    assert trio.current_time() == origin + 6.0
    assert await gate(2) is None


def test_planned_starts_from_the_latest_end_of_each_unit_before() -> None:
    a = open_stage(FIRST, stage="a")
    timed = open_stage([], stage="t", pattern="concurrency", load=ClosedLoop(4, duration_s=3.0))
    b = open_stage(SECOND, stage="b", pause_before_s=2.0)
    counted = open_stage([], stage="c", pattern="concurrency", load=ClosedLoop(2, requests=9))
    after = open_stage(SECOND, stage="d")
    plan = plan_of(a, timed, b, counted, after)
    starts = planned_starts(plan)

    def bound(unit: object) -> float:
        estimate = duration_estimate(unit, plan.providers["p"])  # type: ignore[arg-type]
        assert estimate.max_s is not None
        return estimate.max_s

    # An open loop ends within its last arrival + the timeout (5 s here), a timed closed
    # loop within its duration + the timeout; then the gap, then the next unit's pause.
    t1 = bound(a) + UNIT_GAP_S
    t2 = t1 + bound(timed) + 2.0 + UNIT_GAP_S
    t3 = t2 + bound(b) + UNIT_GAP_S
    assert bound(a) == pytest.approx(0.75 + 5.0)
    assert starts.offsets == pytest.approx((None, t1, t2, t3, None))
    # A closed loop counted in requests ends when they do: the unit after it is unplanned.
    assert starts.unbounded == 3
    warning = starts.warning()
    assert warning is not None
    assert "stage c ends after its request count" in warning
    # The same for every shard: computed from the whole plan.
    assert planned_starts(plan_of(a, timed, b)).warning() is None
    assert planned_starts(plan_of(a, timed, b)).offsets == pytest.approx((None, t1, t2))


def test_a_drain_grace_shortens_the_gap() -> None:
    quick = open_stage(FIRST, stage="a", drain="cancel", drain_timeout_s=0.5)
    plan = plan_of(quick, open_stage(SECOND, stage="b"))
    assert planned_starts(plan).offsets == pytest.approx((None, 0.75 + 0.5 + UNIT_GAP_S))


def test_an_idle_probe_first_leaves_every_later_unit_unplanned() -> None:
    probe = open_stage([], stage="i", pattern="idle-probe", load=IdleProbe((1.0,)))
    starts = planned_starts(plan_of(probe, open_stage(SECOND, stage="b")))
    assert starts.offsets == (None, None)
    assert starts.unbounded == 0

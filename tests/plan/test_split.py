"""The plan split across shards (lens.plan.split): pure, deterministic, exact."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lens.errors import PlanError
from lens.plan.model import ClosedLoop, OpenLoop, Plan, StagePlan
from lens.plan.split import Shard, parse_shard, plan_hash, shard_plan, share
from tests.plan.test_compile import BASE, plan_of

WARM = "  - id: warm\n    pattern: burst\n    requests: 2\n"


def scenario(load: str, extra: str = "") -> Plan:
    return plan_of(BASE.replace(WARM, load) + extra)


MIXED = scenario(
    "  - {id: rate, pattern: constant-rate, rate: 7/s, duration: 3s, warmup: 1s,"
    " cooldown: 3 requests}\n"
    "  - {id: pois, pattern: constant-rate, rate: 20/s, requests: 41, arrival: poisson,"
    " max_concurrency: 5}\n"
    "  - {id: waves, pattern: burst, requests: 5, waves: 3, interval: 2s}\n"
    "  - {id: ramp, pattern: ramp, from: 1/s, to: 9/s, duration: 4s}\n"
    "  - {id: conc, pattern: concurrency, concurrency: 5, requests: 23, warmup: 3 requests,"
    " cooldown: 4 requests}\n"
    "  - {id: timed, pattern: concurrency, concurrency: 2, duration: 2s}\n",
)


UNCAPPED = scenario(
    "  - {id: rate, pattern: constant-rate, rate: 7/s, duration: 3s}\n"
    "  - {id: gam, pattern: constant-rate, rate: 30/s, requests: 61, arrival: gamma,"
    " burstiness: 0.4}\n"
    "  - {id: conc, pattern: concurrency, concurrency: 3, requests: 10}\n"
)


def unit_of(plan: Plan, stage: str) -> StagePlan:
    (unit,) = [u for u in plan.stages if u.stage == stage and u.provider == "sim"]
    return unit


def open_loop(unit: StagePlan) -> OpenLoop:
    assert isinstance(unit.load, OpenLoop)
    return unit.load


def closed_loop(unit: StagePlan) -> ClosedLoop:
    assert isinstance(unit.load, ClosedLoop)
    return unit.load


@pytest.mark.parametrize(
    ("base", "count"),
    [("mixed", 2), ("mixed", 3), ("mixed", 5), ("uncapped", 4), ("uncapped", 7), ("uncapped", 16)],
)
def test_every_arrival_once_at_its_offset_in_the_right_shard(base: str, count: int) -> None:
    plan = MIXED if base == "mixed" else UNCAPPED
    shards = [shard_plan(plan, k, count) for k in range(count)]
    for u, unit in enumerate(plan.stages):
        if not isinstance(unit.load, OpenLoop):
            continue
        planned = unit.load.arrivals.offsets_s
        seen: dict[int, tuple[int, float]] = {}
        for k, shard in enumerate(shards):
            load = open_loop(shard.stages[u])
            for j, offset in enumerate(load.arrivals.offsets_s):
                index = load.plan_index(j)
                assert index not in seen, (unit.stage, index)
                seen[index] = (k, offset)
        assert sorted(seen) == list(range(len(planned)))
        for index, (k, offset) in seen.items():
            assert offset == planned[index]  # its original offset, exactly
            assert k == index % count  # shard k owns arrivals k, k+N, k+2N, ...


@pytest.mark.parametrize(
    ("base", "count"),
    [("mixed", 2), ("mixed", 3), ("mixed", 5), ("uncapped", 2), ("uncapped", 4), ("uncapped", 6)],
)
def test_closed_loops_split_concurrency_and_requests(base: str, count: int) -> None:
    plan = MIXED if base == "mixed" else UNCAPPED
    shards = [shard_plan(plan, k, count) for k in range(count)]
    for u, unit in enumerate(plan.stages):
        if not isinstance(unit.load, ClosedLoop):
            continue
        loads = [closed_loop(s.stages[u]) for s in shards]
        assert sum(load.concurrency for load in loads) == unit.load.concurrency
        # Remainders to the lowest indices: non-increasing, within one of each other.
        conc = [load.concurrency for load in loads]
        assert conc == sorted(conc, reverse=True)
        assert conc[0] - conc[-1] <= 1
        if unit.load.requests is None:
            assert all(load.requests is None for load in loads)
            assert all(load.duration_s == unit.load.duration_s for load in loads)
            continue
        requests = [load.requests or 0 for load in loads]
        assert sum(requests) == unit.load.requests
        # A shard without clients gets no requests (they could never be sent).
        assert all(r == 0 for r, c in zip(requests, conc, strict=True) if c == 0)
        phases = [s.stages[u].phases for s in shards]
        assert sum(p.warmup_requests for p in phases) == unit.phases.warmup_requests
        cooldown = sum(
            r - (p.cooldown_from_index or 0) for r, p in zip(requests, phases, strict=True)
        )
        assert cooldown == (unit.load.requests - (unit.phases.cooldown_from_index or 0))


def test_max_concurrency_and_budget_are_split() -> None:
    shards = [shard_plan(MIXED, k, 3) for k in range(3)]
    assert [open_loop(unit_of(s, "pois")).max_concurrency for s in shards] == [2, 2, 1]
    budgets = [
        shard_plan(replace(MIXED, budget_usd=Decimal(10)), k, 3).budget_usd for k in range(3)
    ]
    assert budgets == [Decimal(10) / 3] * 3
    assert sum(b or 0 for b in budgets) <= 10
    with pytest.raises(PlanError, match=r"max_concurrency 5 cannot be split across 6 shards"):
        shard_plan(MIXED, 0, 6)


def test_burst_waves_are_split_per_wave() -> None:
    shards = [shard_plan(MIXED, k, 2) for k in range(2)]
    per_wave = [
        [open_loop(unit_of(s, "waves")).arrivals.offsets_s.count(t) for t in (0.0, 2.0, 4.0)]
        for s in shards
    ]
    # 5 per wave: 3 + 2, 2 + 3, 3 + 2 (round robin over the global order).
    assert per_wave == [[3, 2, 3], [2, 3, 2]]


def test_one_shard_is_the_plan_itself() -> None:
    assert shard_plan(MIXED, 0, 1) is MIXED


def test_empty_share_keeps_the_unit_with_no_requests() -> None:
    plan = scenario(
        "  - {id: b, pattern: burst, requests: 2}\n"
        "  - {id: c, pattern: concurrency, concurrency: 1, requests: 4}\n"
    )
    last = shard_plan(plan, 2, 3)
    assert [u.stage for u in last.stages] == [u.stage for u in plan.stages]
    assert [u.planned_requests for u in last.stages] == [0, 0, 0, 0]
    assert closed_loop(unit_of(last, "c")).concurrency == 0


def test_shards_compose() -> None:
    """Shard 1 of 2, split again 3 ways: each piece is the plan's arrivals of one residue
    modulo 6, indices kept."""
    half = shard_plan(UNCAPPED, 1, 2)
    piece = open_loop(unit_of(shard_plan(half, 2, 3), "gam"))
    assert (piece.first_index, piece.index_step) == (5, 6)
    planned = open_loop(unit_of(UNCAPPED, "gam")).arrivals.offsets_s
    assert piece.arrivals.offsets_s == planned[5::6]


def test_idle_probes_and_adaptive_sweeps_are_refused() -> None:
    idle = scenario("  - {id: i, pattern: idle-probe, gaps: [0s, 2m]}\n")
    assert shard_plan(idle, 0, 1) is idle
    with pytest.raises(PlanError, match=r"stage i: an idle-probe stage cannot be split"):
        shard_plan(idle, 0, 2)
    sweep = scenario(
        "  - id: s\n    pattern: sweep\n    rates: [1/s, 2/s]\n    duration: 1s\n"
        "    stop_when: [error_rate > 5%]\n"
    )
    with pytest.raises(PlanError, match=r"cannot split adaptive sweeps \(s\) across 2 shards"):
        shard_plan(sweep, 1, 2)


@pytest.mark.parametrize(("index", "count"), [(2, 2), (-1, 2), (0, 0)])
def test_bad_shard_numbers(index: int, count: int) -> None:
    with pytest.raises(PlanError, match="shard"):
        shard_plan(MIXED, index, count)


@given(total=st.integers(0, 10_000), count=st.integers(1, 64))
def test_share_adds_up_and_is_balanced(total: int, count: int) -> None:
    parts = [share(total, k, count) for k in range(count)]
    assert sum(parts) == total
    assert max(parts) - min(parts) <= 1
    assert parts == sorted(parts, reverse=True)


def test_plan_hash_names_the_plan_not_the_file_or_the_shard() -> None:
    again = scenario(
        "  - {id: rate, pattern: constant-rate, rate: 7/s, duration: 3s, warmup: 1s,"
        " cooldown: 3 requests}\n"
    )
    moved = replace(again, source="/elsewhere/s.yaml")
    assert plan_hash(again) == plan_hash(moved)
    assert plan_hash(again).startswith("sha256:")
    assert len(plan_hash(again)) == 7 + 64
    assert plan_hash(again) != plan_hash(MIXED)
    faster = scenario(
        "  - {id: rate, pattern: constant-rate, rate: 8/s, duration: 3s, warmup: 1s,"
        " cooldown: 3 requests}\n"
    )
    assert plan_hash(faster) != plan_hash(again)


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("0/4", {}, Shard(0, 4)),
        ("3/4", {}, Shard(3, 4)),
        ("auto/3", {"JOB_COMPLETION_INDEX": "2"}, Shard(2, 3)),
        ("auto/1", {"JOB_COMPLETION_INDEX": "0"}, Shard(0, 1)),
    ],
)
def test_parse_shard(text: str, env: dict[str, str], expected: Shard) -> None:
    assert parse_shard(text, env) == expected


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("4/4", {}, r"--shard 4/4: the index must be between 0 and 3"),
        ("auto/3", {}, r"JOB_COMPLETION_INDEX is not set"),
        ("auto/3", {"JOB_COMPLETION_INDEX": "3"}, r"\(JOB_COMPLETION_INDEX=3\): the index must"),
        ("auto/3", {"JOB_COMPLETION_INDEX": "x"}, r"JOB_COMPLETION_INDEX='x' is not an index"),
        ("1", {}, r"expected I/N"),
        ("a/2", {}, r"expected I/N"),
        ("0/0", {}, r"the index must be between"),
    ],
)
def test_bad_shards(text: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(PlanError, match=message):
        parse_shard(text, env)

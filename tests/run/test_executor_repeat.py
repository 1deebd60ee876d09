"""A repeated stage runs as its repetitions interleaved across providers (A1 B1 A2 B2 ...),
each a full execution of the stage: its own schedule from its own start, its own warmup
(MockClock: no time passes unasked)."""

from __future__ import annotations

import itertools

import trio
import trio.testing

from lens.plan.compile import compile_plan
from lens.plan.model import OpenLoop
from lens.records import Repetition, RequestRecord, StageWindow
from lens.run.executor import StageRunner
from lens.scenario import parse_scenario

from .fake_server import FakeOpenAI, Script

SCENARIO = """\
version: 1
name: repeated
providers:
  a: {type: openai-compatible, base_url: "http://fake-a/v1", model: m, api_key: ""}
  b: {type: openai-compatible, base_url: "http://fake-b/v1", model: m, api_key: ""}
prompts:
  - id: q
    messages: [{role: user, content: hi}]
load:
  - id: steady
    pattern: constant-rate
    rate: 4/s
    requests: 4
    warmup: 1 requests
    repeat: 3
  - {id: after, pattern: burst, requests: 2}
"""


async def _run(text: str) -> tuple[list[RequestRecord], list[StageWindow]]:
    plan = compile_plan(parse_scenario(text), env={})
    fake = FakeOpenAI(Script(ttft_s=0.05, itl_s=0.01, tokens=2))
    records: list[RequestRecord] = []
    runner = StageRunner(plan, plan.providers, records.append, transport_for=lambda _: fake)
    await runner.run_all()
    return records, runner.windows


async def test_repetitions_run_interleaved_across_providers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    records, windows = await _run(SCENARIO)
    assert [(w.stage, w.provider) for w in windows] == [
        ("steady#1", "a"),
        ("steady#1", "b"),
        ("steady#2", "a"),
        ("steady#2", "b"),
        ("steady#3", "a"),
        ("steady#3", "b"),
        ("after", "a"),
        ("after", "b"),
    ]
    assert [w.repetition for w in windows[:6]] == [
        Repetition("steady", k, 3) for k in (1, 1, 2, 2, 3, 3)
    ]
    assert windows[6].repetition is None
    # One after another, never overlapping: the units share nothing but the run clock.
    for before, after in itertools.pairwise(windows):
        assert before.t_end <= after.t_start
    # Records keep their unit's id.
    assert {r.stage for r in records} == {"steady#1", "steady#2", "steady#3", "after"}


async def test_each_repetition_keeps_the_schedule_and_warmup_from_its_own_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    records, windows = await _run(SCENARIO)
    plan = compile_plan(parse_scenario(SCENARIO), env={})
    load = plan.stages[0].load
    assert isinstance(load, OpenLoop)
    offsets = load.arrivals.offsets_s
    assert offsets == (0.0, 0.25, 0.5, 0.75)
    for w in windows[:6]:
        mine = sorted(
            (r for r in records if (r.stage, r.provider) == (w.stage, w.provider)),
            key=lambda r: r.index,
        )
        assert [r.index for r in mine] == [0, 1, 2, 3]
        assert [r.t_intended for r in mine] == [w.t_start + round(o * 1e9) for o in offsets]
        assert [r.t_dispatch for r in mine] == [r.t_intended for r in mine]
        # The first request of every repetition is its warmup, not only of the first one.
        assert [r.phase for r in mine] == ["warmup", "measure", "measure", "measure"]
        assert w.t_measure_start == w.t_start + round(0.25e9)
        assert all(r.ok for r in mine)

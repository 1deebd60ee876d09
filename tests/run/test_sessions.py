"""Conversations in the executor, on a MockClock: each turn sends the history so far, waits
its think time after the previous reply, is its own record; a session is what a closed loop
keeps in flight and an open-loop arrival starts; a failed turn ends its session."""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
from typing import Any

import httpx
import trio
import trio.testing

from lens.metrics.pacing import pacing
from lens.plan.model import (
    ArrivalSchedule,
    ClosedLoop,
    Conversation,
    Message,
    OpenLoop,
    Plan,
    PromptSpec,
    StagePlan,
    ThinkTime,
)
from lens.plan.split import shard_plan
from lens.records import ABANDONED_TURNS, LENS_SIDE, ErrorClass, RequestRecord
from lens.run.executor import StageRunner

from .fake_server import FakeOpenAI, Script
from .test_executor import MS, PROVIDER

TURNS = ("first question", "second question", "third question")
NO_THINK = ThinkTime()


class Recording(FakeOpenAI):
    """The fake server, keeping each request's JSON body."""

    def __init__(self, script: Script | Any) -> None:
        super().__init__(script)
        self.bodies: list[dict[str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        return await super().handle_async_request(request)


def conversation_prompt(
    *,
    system: str | None = None,
    think: ThinkTime = NO_THINK,
    carry: str = "responses",
    replies: tuple[str | None, ...] = (),
) -> PromptSpec:
    lead = (Message("system", system),) if system is not None else ()
    conv = Conversation(
        turns=TURNS,
        replies=replies or (None,) * len(TURNS),
        carry=carry,  # type: ignore[arg-type]
        think=think,
    )
    return PromptSpec("chat", (*lead, Message("user", TURNS[0])), conversation=conv)


def plan_with(prompt: PromptSpec, load: ClosedLoop | OpenLoop) -> Plan:
    stage = StagePlan(
        stage="s",
        provider="p",
        pattern="concurrency" if isinstance(load, ClosedLoop) else "constant-rate",
        prompts=(prompt.id,),
        timeout_s=5.0,
        max_tokens=8,
        load=load,
    )
    return Plan(
        name="t",
        description="",
        source="t.yaml",
        providers={"p": PROVIDER},
        prompts={prompt.id: prompt},
        stages=(stage,),
        slas=(),
    )


async def run(plan: Plan, fake: FakeOpenAI) -> list[RequestRecord]:
    records: list[RequestRecord] = []
    await StageRunner(plan, plan.providers, records.append, transport_for=lambda _: fake).run_all()
    return records


def reply(tokens: int) -> str:
    """What the fake server streams for ``tokens`` tokens."""
    return "".join(f"t{k} " for k in range(tokens))


async def test_each_turn_sends_the_history_with_the_real_replies(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = Recording(lambda n: Script(ttft_s=0.1, itl_s=0.01, tokens=2 + n))
    recs = await run(plan_with(conversation_prompt(), ClosedLoop(1, requests=1)), fake)
    sent = [b["messages"] for b in fake.bodies]
    assert [len(m) for m in sent] == [1, 3, 5]
    assert sent[2] == [
        {"role": "user", "content": TURNS[0]},
        {"role": "assistant", "content": reply(2)},  # the first reply as it streamed
        {"role": "user", "content": TURNS[1]},
        {"role": "assistant", "content": reply(3)},
        {"role": "user", "content": TURNS[2]},
    ]
    assert [(r.session, r.turn, r.index, r.ok) for r in recs] == [
        (0, 1, 0, True),
        (0, 2, 0, True),
        (0, 3, 0, True),
    ]


async def test_a_system_message_leads_every_turn(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = Recording(Script(tokens=2))
    prompt = conversation_prompt(system="be brief")
    await run(plan_with(prompt, ClosedLoop(1, requests=1)), fake)
    sent = [b["messages"] for b in fake.bodies]
    assert [len(m) for m in sent] == [2, 4, 6]
    assert all(m[0] == {"role": "system", "content": "be brief"} for m in sent)


async def test_carry_reference_sends_the_reference_replies(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = Recording(Script(tokens=2))
    prompt = conversation_prompt(carry="reference", replies=("ref one", "ref two", None))
    await run(plan_with(prompt, ClosedLoop(1, requests=1)), fake)
    last = fake.bodies[2]["messages"]
    assert [m["content"] for m in last if m["role"] == "assistant"] == ["ref one", "ref two"]


async def test_think_time_runs_from_the_previous_reply_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = Recording(Script(ttft_s=0.1, itl_s=0.01, tokens=2))
    prompt = conversation_prompt(think=ThinkTime("fixed", 2.0))
    recs = await run(plan_with(prompt, ClosedLoop(1, requests=1)), fake)
    for before, after in itertools.pairwise(recs):
        assert after.t_intended == before.t_end + 2000 * MS
        assert after.t_dispatch == after.t_intended  # no lag on a mock clock
    assert recs[0].t_intended is None  # a closed loop's session has no schedule


async def test_drawn_think_times_are_seeded_per_session_and_turn() -> None:
    conv = Conversation(TURNS, think=ThinkTime("exponential", 2.0), seed=3)
    draws = [conv.think_s(s, t) for s in range(50) for t in (2, 3)]
    assert draws == [conv.think_s(s, t) for s in range(50) for t in (2, 3)]
    assert len(set(draws)) == len(draws)
    assert 1.0 < sum(draws) / len(draws) < 3.0
    bounded = ThinkTime("normal", 1.0, 5.0, min_s=0.5, max_s=1.5)
    assert all(0.5 <= bounded.draw(random.Random(k)) <= 1.5 for k in range(200))


async def test_closed_loop_concurrency_counts_sessions(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = Recording(Script(ttft_s=0.1, itl_s=0.01, tokens=2))
    recs = await run(
        plan_with(conversation_prompt(think=ThinkTime("fixed", 1.0)), ClosedLoop(2, requests=4)),
        fake,
    )
    assert len(recs) == 12  # 4 sessions of 3 turns
    assert sorted(r.session or 0 for r in recs if r.turn == 1) == [0, 1, 2, 3]
    # Two sessions in flight: while they think, no third one starts.
    assert fake.max_in_flight == 2
    starts = sorted(min(r.t_dispatch for r in recs if r.session == s) for s in range(4))
    ends = sorted(max(r.t_end for r in recs if r.session == s) for s in range(4))
    assert starts[2] >= ends[0]
    for s in range(4):
        mine = sorted((r for r in recs if r.session == s), key=lambda r: r.turn or 0)
        assert [r.turn for r in mine] == [1, 2, 3]
        assert all(a.t_end <= b.t_dispatch for a, b in itertools.pairwise(mine))


async def test_open_loop_arrivals_start_sessions_and_pacing_reads_turn_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = Recording(Script(ttft_s=0.1, itl_s=0.01, tokens=2))
    schedule = ArrivalSchedule((0.0, 0.5, 1.0))
    prompt = conversation_prompt(think=ThinkTime("fixed", 3.0))
    recs = await run(plan_with(prompt, OpenLoop(schedule)), fake)
    assert len(recs) == 9
    firsts = sorted((r for r in recs if r.turn == 1), key=lambda r: r.session or 0)
    t0 = firsts[0].t_intended
    assert t0 is not None
    assert [(r.t_intended or 0) - t0 for r in firsts] == [0, 500 * MS, 1000 * MS]
    # Later turns keep their own intended times (end + think), outside the schedule's figures.
    paced = pacing(recs)[("s", "p")]
    assert paced.sent == 3
    assert paced.planned_rate_per_s == 2.0
    assert paced.lag_max_ms == 0.0


async def test_a_failed_turn_ends_its_session(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = Recording(lambda n: Script(status=500) if n == 1 else Script(tokens=2))
    recs = await run(plan_with(conversation_prompt(), ClosedLoop(1, requests=1)), fake)
    assert len(fake.bodies) == 2  # turn 3 was never sent
    assert [(r.turn, r.ok) for r in recs] == [(1, True), (2, False)]
    assert recs[1].error_class is ErrorClass.HTTP_5XX
    assert recs[1].extra[ABANDONED_TURNS] == "1"
    assert ABANDONED_TURNS not in recs[0].extra


async def test_a_cutoff_while_thinking_records_the_turn_not_sent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = Recording(Script(ttft_s=0.1, itl_s=0.01, tokens=2))
    prompt = conversation_prompt(think=ThinkTime("fixed", 10.0))
    plan = plan_with(prompt, ClosedLoop(1, duration_s=1.0))
    stage = plan.stages[0]
    plan = dataclasses.replace(
        plan, stages=(dataclasses.replace(stage, cutoff_s=1.0, drain="cancel"),)
    )
    recs = await run(plan, fake)
    assert len(fake.bodies) == 1
    assert [(r.turn, r.ok) for r in recs] == [(1, True), (2, False)]
    cut = recs[1]
    assert cut.error_class in LENS_SIDE
    assert cut.extra[ABANDONED_TURNS] == "2"
    assert cut.t_headers is None


async def test_shards_run_whole_sessions(autojump_clock: trio.testing.MockClock) -> None:
    """``--workers``/``--shard``: each shard runs whole sessions (every turn of a session in
    the shard that started it); open-loop sessions keep their plan index."""
    prompt = conversation_prompt(think=ThinkTime("fixed", 0.5))
    for load in (OpenLoop(ArrivalSchedule((0.0, 0.1, 0.2, 0.3, 0.4))), ClosedLoop(4, requests=6)):
        plan = plan_with(prompt, load)
        seen: list[tuple[int, int | None, int | None]] = []
        for k in range(2):
            recs = await run(shard_plan(plan, k, 2), Recording(Script(tokens=2)))
            sessions = {r.session for r in recs}
            for s in sessions:
                assert sorted(r.turn or 0 for r in recs if r.session == s) == [1, 2, 3]
            seen += [(k, r.session, r.turn) for r in recs]
        assert len(seen) == (15 if isinstance(load, OpenLoop) else 18)
        if isinstance(load, OpenLoop):
            assert sorted({s or 0 for _, s, _ in seen}) == [0, 1, 2, 3, 4]
            assert {s for k, s, _ in seen if k == 0} == {0, 2, 4}

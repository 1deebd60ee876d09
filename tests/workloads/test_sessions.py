"""Conversations over real sockets against the simulator: the turns arrive with the history
so far (the simulator's real replies, or the dataset's), after their think time; sessions
are what a closed loop keeps in flight; a failed turn ends its session."""

from __future__ import annotations

import itertools
import json
import random
import textwrap
from pathlib import Path
from typing import Any

import pytest

import lens
from lens.errors import PlanError, ScenarioError
from lens.export.merge import record_from_out
from lens.export.table import render
from lens.plan.model import SimSettings
from lens.sim.text import completion_text
from tests.timing import assert_on_time
from tests.workloads.conftest import StartSim

FAST = SimSettings(ttft_s=0.0, itl_s=0.0, output_tokens=5)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def messages(received: Any) -> list[list[dict[str, str]]]:
    return [json.loads(b)["messages"] for b in received]


def scenario(base: str, prompt: str, load: str) -> str:
    return f"""\
        version: 1
        name: sessions
        providers:
          sim:
            type: openai-compatible
            base_url: {base}
            model: m
        prompts:
{textwrap.indent(textwrap.dedent(prompt), " " * 10)}
        load:
{textwrap.indent(textwrap.dedent(load), " " * 10)}
        """


INLINE = """\
- id: chat
  conversation:
    system: be brief
    turns: [first question, second question, third question]
    think_time: 0.25s
"""


async def test_three_turns_send_the_history_with_the_real_replies(
    start_sim: StartSim, tmp_path: Path
) -> None:
    server, base = await start_sim(FAST)
    load = "- {id: s, pattern: concurrency, concurrency: 1, requests: 1, max_tokens: 3}"
    results = await lens.run_async(write(tmp_path, scenario(base, INLINE, load)))
    assert results.exit_code == 0
    sent = messages(server.received)
    assert [len(m) for m in sent] == [2, 4, 6]  # system + 1, 3, 5 turn messages
    reply = completion_text(3)  # what the simulator streams for max_tokens 3
    assert sent[2] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": reply},
        {"role": "user", "content": "second question"},
        {"role": "assistant", "content": reply},
        {"role": "user", "content": "third question"},
    ]
    recs = sorted(results.records, key=lambda r: r.turn or 0)
    assert [(r.session, r.turn, r.status) for r in recs] == [(0, k, "ok") for k in (1, 2, 3)]
    # The stage's summary splits its requests by turn.
    (summary,) = [s for s in results.summaries if s.stage == "s"]
    assert summary.turns is not None
    assert list(summary.turns) == ["1", "2", "3"]
    for label, turn in summary.turns.items():
        assert (turn.requests, turn.ok, turn.metrics["ttft"].n) == (1, 1, 1)
        (rec,) = [r for r in recs if str(r.turn) == label]
        assert turn.metrics["ttft"].p50 == rec.ttft
    assert summary.abandoned_turns == 0
    # Every record goes back to a RequestRecord (lens merge) with its session and turn.
    assert [(record_from_out(r).session, record_from_out(r).turn) for r in recs] == [
        (0, 1),
        (0, 2),
        (0, 3),
    ]
    # The think time, from the previous reply's end to the next turn's dispatch.
    for before, after in itertools.pairwise(recs):
        assert after.t_intended is not None
        assert after.t_intended - before.t_end == pytest.approx(250.0, abs=0.01)
        assert_on_time((after.t_dispatch - before.t_end) / 1e3, 0.25)


async def test_dataset_conversations_carry_the_reference_replies(
    start_sim: StartSim, tmp_path: Path
) -> None:
    server, base = await start_sim(FAST)
    conversations = [
        {
            "conversations": [
                {"from": "system", "value": f"system {i}"},
                {"from": "human", "value": f"q{i}.1"},
                {"from": "gpt", "value": f"a{i}.1"},
                {"from": "human", "value": f"q{i}.2"},
                {"from": "gpt", "value": f"a{i}.2"},
                {"from": "human", "value": f"q{i}.3"},
                {"from": "gpt", "value": f"a{i}.3"},
            ]
        }
        for i in range(2)
    ]
    (tmp_path / "chat.json").write_text(json.dumps(conversations))
    prompt = """\
    - id: sg
      dataset: {path: chat.json, format: sharegpt, turns: all}
      conversation: {carry: reference}
    """
    load = "- {id: s, pattern: concurrency, concurrency: 1, requests: 2, max_tokens: 3}"
    results = await lens.run_async(write(tmp_path, scenario(base, prompt, load)))
    assert results.exit_code == 0
    sent = messages(server.received)
    assert [len(m) for m in sent] == [2, 4, 6, 2, 4, 6]
    assert [m["content"] for m in sent[2]] == ["system 0", "q0.1", "a0.1", "q0.2", "a0.2", "q0.3"]
    assert [m["content"] for m in sent[5]] == ["system 1", "q1.1", "a1.1", "q1.2", "a1.2", "q1.3"]
    assert sorted((r.session, r.turn) for r in results.records) == [
        (s, t) for s in (0, 1) for t in (1, 2, 3)
    ]


async def test_closed_loop_concurrency_counts_sessions(start_sim: StartSim, tmp_path: Path) -> None:
    server, base = await start_sim(SimSettings(ttft_s=0.02, itl_s=0.0, output_tokens=2))
    load = "- {id: s, pattern: concurrency, concurrency: 2, requests: 3, max_tokens: 2}"
    results = await lens.run_async(write(tmp_path, scenario(base, INLINE, load)))
    assert results.exit_code == 0
    assert len(server.received) == 9  # 3 sessions x 3 turns
    recs = results.records
    assert sorted({r.session for r in recs if r.session is not None}) == [0, 1, 2]
    # The third session starts only when one of the first two has ended (all its turns).
    first = {s: min(r.t_dispatch for r in recs if r.session == s) for s in (0, 1, 2)}
    last = {s: max(r.t_end for r in recs if r.session == s) for s in (0, 1, 2)}
    assert first[2] >= min(last[0], last[1])
    (summary,) = [s for s in results.summaries if s.stage == "s"]
    assert summary.requests == 9


async def test_open_loop_arrivals_start_sessions(start_sim: StartSim, tmp_path: Path) -> None:
    server, base = await start_sim(FAST)
    load = "- {id: s, pattern: constant-rate, rate: 4/s, requests: 3, max_tokens: 2}"
    results = await lens.run_async(write(tmp_path, scenario(base, INLINE, load)))
    assert results.exit_code == 0
    assert len(server.received) == 9
    firsts = sorted((r for r in results.records if r.turn == 1), key=lambda r: r.session or 0)
    intended = [r.t_intended or 0.0 for r in firsts]
    assert [round(t - intended[0]) for t in intended] == [0, 250, 500]
    assert all(r.t_intended is not None for r in firsts)
    (summary,) = [s for s in results.summaries if s.stage == "s"]
    assert summary.pacing is not None
    assert summary.pacing.sent == 3  # the arrivals: turn 1 of each session


def failing_seed() -> int:
    """A simulator seed whose request 0 succeeds and request 1 fails at error_500: 0.5
    (the simulator draws each request's fault from (seed, arrival index))."""
    for seed in range(1000):
        first = random.Random(f"lens-sim:{seed}:0").random()
        second = random.Random(f"lens-sim:{seed}:1").random()
        if first >= 0.5 and second < 0.5:
            return seed
    raise AssertionError("no seed found")


async def test_a_failed_turn_ends_its_session(start_sim: StartSim, tmp_path: Path) -> None:
    server, base = await start_sim(
        SimSettings(ttft_s=0.0, itl_s=0.0, output_tokens=2, error_500=0.5, seed=failing_seed())
    )
    load = "- {id: s, pattern: concurrency, concurrency: 1, requests: 1, max_tokens: 2}"
    results = await lens.run_async(write(tmp_path, scenario(base, INLINE, load)))
    assert len(server.received) == 2  # turn 3 never went out
    recs = sorted(results.records, key=lambda r: r.turn or 0)
    assert [(r.turn, r.status, r.error_class) for r in recs] == [
        (1, "ok", None),
        (2, "error", "http_5xx"),
    ]
    assert recs[1].provider_facts["abandoned_turns"] == "1"
    (summary,) = [s for s in results.summaries if s.stage == "s"]
    assert summary.abandoned_turns == 1
    table = render(results)
    assert "conversations (by turn):" in table
    assert "turn 1: 1 reqs, TTFT p50" in table
    assert "turn 2: 1 reqs, TTFT p50 -; 1 turns not sent" in table
    assert summary.turns is not None
    assert {k: (t.requests, t.ok) for k, t in summary.turns.items()} == {"1": (1, 1), "2": (1, 0)}


async def test_a_stage_without_conversations_has_no_turn_summary(
    start_sim: StartSim, tmp_path: Path
) -> None:
    _, base = await start_sim(FAST)
    prompt = "- {id: q, messages: [{role: user, content: hi}]}"
    load = "- {id: s, pattern: burst, requests: 2, max_tokens: 2}"
    results = await lens.run_async(write(tmp_path, scenario(base, prompt, load)))
    (summary,) = [s for s in results.summaries if s.stage == "s"]
    assert summary.turns is None
    assert summary.abandoned_turns is None
    assert all(r.session is None and r.turn is None for r in results.records)
    assert "turns" not in summary.model_dump()


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        (
            "- {id: c, conversation: {turns: [a, b], carry: reference}}",
            "carry: reference needs a reply after each turn but the last",
        ),
        (
            "- {id: c, conversation: {turns: [a, b], replies: [x]}}",
            "replies are sent with carry: reference only",
        ),
        (
            "- {id: c, conversation: {turns: [a, b], think_time: {dist: normal, mean: 1s}}}",
            "dist: normal needs mean and stdev",
        ),
        (
            "- {id: c, dataset: {path: d.txt, format: text-lines, turns: all}}",
            "turns: all needs conversations",
        ),
        (
            "- {id: c, dataset: {path: d.txt, format: text-lines},\n"
            "   conversation: {carry: reference}}",
            "set the dataset's turns: all",
        ),
    ],
)
def test_bad_conversations_are_positioned_errors(tmp_path: Path, prompt: str, message: str) -> None:
    (tmp_path / "d.txt").write_text("hello\n")
    load = "- {id: s, pattern: burst, requests: 1}"
    path = write(tmp_path, scenario("http://127.0.0.1:9/v1", prompt, load))
    with pytest.raises(ScenarioError) as caught:
        lens.load_scenario(path)
    assert message in str(caught.value)
    assert "s.yaml:" in str(caught.value)


SIM_PLAN = """\
version: 1
name: plan
providers:
  sim: {{type: simulated, protocol: {protocol}}}
prompts:
  - id: chat
    conversation:
      turns: [hello, more, thanks]
      think_time: {{dist: uniform, min: 1s, max: 3s}}
      carry: {carry}
      {replies}
load:
  - {{id: s, pattern: concurrency, concurrency: 2, requests: 4}}
"""


def test_plan_shows_conversations(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SIM_PLAN.format(protocol="openai", carry="responses", replies=""))
    plan = lens.compile_plan(lens.load_scenario(path))
    doc = lens.describe_plan(plan)
    (prompt,) = doc["prompts"]
    assert prompt["conversation"] == {
        "turns": 3,
        "carry": "responses",
        "think_time": "uniform 1-3s",
        "reference_replies": 0,
    }
    (source,) = doc["prompt_sources"]
    assert source["kind"] == "conversation"
    assert "1 conversation of 3 turns" in source["detail"]
    assert any("count sessions" in w for w in doc["warnings"])


def test_carry_responses_needs_a_provider_whose_replies_lens_reads(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SIM_PLAN.format(protocol="anthropic", carry="responses", replies=""))
    with pytest.raises(PlanError) as caught:
        lens.compile_plan(lens.load_scenario(path))
    assert "use carry: reference" in str(caught.value)
    assert "s.yaml:6:" in str(caught.value)
    path.write_text(
        SIM_PLAN.format(protocol="anthropic", carry="reference", replies="replies: [a, b]")
    )
    lens.compile_plan(lens.load_scenario(path))  # the references need no reply text

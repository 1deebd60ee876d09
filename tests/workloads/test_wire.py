"""Workloads over real sockets against the simulator: dataset prompts, body: fields and
output_tokens: exact arrive at the server as planned; early stops are flagged; a provider's
tokenizer counts responses that carry no usage."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import httpx

import lens
from lens.plan.model import SimSettings
from lens.scenario.tokenizers import HfTokenizer
from lens.sim.text import completion_text
from tests.workloads.conftest import StartSim
from tests.workloads.test_datasets import sharegpt
from tests.workloads.tokenizers_kit import wordpiece

FAST = SimSettings(ttft_s=0.0, itl_s=0.0, output_tokens=5)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def bodies(received: Any) -> list[dict[str, Any]]:
    return [json.loads(b) for b in received]


async def test_body_fields_merge_prompt_over_stage_over_provider(
    start_sim: StartSim, tmp_path: Path
) -> None:
    server, base = await start_sim(FAST)
    scenario = write(
        tmp_path,
        f"""\
        version: 1
        name: body
        providers:
          vllm:
            type: openai-compatible
            base_url: {base}
            model: m
            body: {{temperature: 0.5, top_p: 0.1, extra: {{a: 1, keep: provider}}}}
        prompts:
          - id: q
            messages: [{{role: user, content: hi}}]
            body: {{seed: 7, extra: {{a: 3}}}}
        load:
          - id: s
            pattern: burst
            requests: 2
            max_tokens: 4
            body: {{top_p: 0.9, extra: {{b: 2}}}}
        """,
    )
    results = await lens.run_async(scenario)
    assert results.exit_code == 0
    sent = bodies(server.received)
    assert len(sent) == 2
    for body in sent:
        assert body["temperature"] == 0.5  # provider
        assert body["top_p"] == 0.9  # stage over provider
        assert body["seed"] == 7  # prompt
        assert body["extra"] == {"a": 3, "keep": "provider", "b": 2}  # deep-merged
        assert body["model"] == "m"
        assert body["stream"] is True
        assert body["max_tokens"] == 4
        assert "ignore_eos" not in body


async def test_output_tokens_exact_sends_ignore_eos_and_min_tokens(
    start_sim: StartSim, tmp_path: Path
) -> None:
    server, base = await start_sim(FAST)  # stops after 5 tokens unless told otherwise
    scenario = write(
        tmp_path,
        f"""\
        version: 1
        name: exact
        providers:
          exact: {{type: openai-compatible, base_url: {base}, model: m, output_tokens: exact}}
          natural: {{type: openai-compatible, base_url: {base}, model: m}}
        prompts:
          - id: q
            messages: [{{role: user, content: hi}}]
        load:
          - {{id: s, pattern: burst, requests: 3, max_tokens: 20}}
        """,
    )
    results = await lens.run_async(scenario)
    sent = bodies(server.received)
    exact = [b for b in sent if "ignore_eos" in b]
    assert len(exact) == 3
    for body in exact:
        assert body["ignore_eos"] is True
        assert body["min_tokens"] == body["max_tokens"] == 20
    by_provider: dict[str, list[Any]] = {}
    for rec in results.records:
        by_provider.setdefault(rec.provider, []).append(rec)
    # The simulator honours ignore_eos as vLLM does: exactly max_tokens, finish "length".
    assert [
        (r.output_tokens, r.provider_facts.get("stop_reason")) for r in by_provider["exact"]
    ] == [(20, "length")] * 3
    for rec in by_provider["natural"]:
        assert (rec.output_tokens, rec.provider_facts["stop_reason"]) == (5, "stop")
        assert rec.provider_facts["ended_early"] == "5/20"
    assert all("ended_early" not in r.provider_facts for r in by_provider["exact"])
    # The same count, machine-readable in each summary (absent: none ended early).
    assert {s.provider: s.ended_early for s in results.summaries} == {"exact": None, "natural": 3}
    assert results.integrity is not None
    early = [w for w in results.integrity.warnings if w.startswith("ended_early")]
    assert early == [
        "ended_early: s/natural: 3 of 3 outputs stopped before their max_tokens (finish "
        "reason stop): TPOT and tokens/s cover shorter outputs than planned; output_tokens: "
        "exact asks vLLM-style servers for the full length"
    ]


async def test_a_sharegpt_sample_is_what_the_server_receives(
    start_sim: StartSim, tmp_path: Path
) -> None:
    server, base = await start_sim(FAST)
    items = sharegpt(30, seed=2)
    (tmp_path / "share.json").write_text(json.dumps(items))
    scenario = write(
        tmp_path,
        f"""\
        version: 1
        name: ds
        providers:
          vllm: {{type: openai-compatible, base_url: {base}, model: m}}
        prompts:
          - id: chat
            dataset: {{path: share.json, format: sharegpt, sample: 8, seed: 1,
                       output_tokens: from_dataset}}
        load:
          - {{id: s, pattern: concurrency, concurrency: 1, requests: 8}}
        """,
    )
    plan = lens.compile_plan(lens.load_scenario(scenario))
    results = await lens.run_async(plan)
    assert results.exit_code == 0
    sent = bodies(server.received)
    planned = list(plan.prompts.values())
    assert [b["messages"] for b in sent] == [
        [{"role": "user", "content": p.messages[0].content}] for p in planned
    ]
    assert [b["max_tokens"] for b in sent] == [p.max_tokens for p in planned]
    firsts = {str(c["conversations"][0]["value"]) for c in items}  # type: ignore[index]
    assert all(b["messages"][0]["content"] in firsts for b in sent)
    assert len({b["messages"][0]["content"] for b in sent}) == 8  # without replacement


async def test_a_provider_tokenizer_counts_responses_without_usage(
    start_sim: StartSim, tmp_path: Path
) -> None:
    _, base = await start_sim(FAST)
    wordpiece(tmp_path / "tok.json")
    scenario = write(
        tmp_path,
        f"""\
        version: 1
        name: tok
        providers:
          counted:
            type: openai-compatible
            base_url: {base}
            model: m
            include_usage: false
            tokenizer: {{hf: tok.json}}
          estimated: {{type: openai-compatible, base_url: {base}, model: m, include_usage: false}}
          reported: {{type: openai-compatible, base_url: {base}, model: m}}
        prompts:
          - id: q
            messages: [{{role: user, content: the water people}}]
        load:
          - {{id: s, pattern: burst, requests: 2}}
        """,
    )
    results = await lens.run_async(scenario)
    tok = HfTokenizer(tmp_path / "tok.json", "t")
    text = completion_text(5)
    for rec in results.records:
        if rec.provider == "counted":
            assert rec.token_source == "tokenizer"
            assert rec.output_tokens == tok.count(text)
            assert rec.input_tokens == 3
        elif rec.provider == "estimated":
            assert rec.token_source == "estimated"
        else:
            assert rec.token_source == "usage"
            assert rec.output_tokens == 5


async def test_the_simulator_lists_what_it_received(start_sim: StartSim) -> None:
    _, base = await start_sim(FAST)
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "custom": [1, 2]}
    async with httpx.AsyncClient() as client:
        await client.post(f"{base}/chat/completions", json=body)
        listed = (await client.get(base.removesuffix("/v1") + "/lens-sim/received")).json()
    assert [json.loads(b) for b in listed] == [body]


async def test_the_shipped_workloads_scenario_runs_offline() -> None:
    scenario = Path(__file__).parents[2] / "scenarios" / "workloads.yaml"
    results = await lens.run_async(scenario)
    assert results.exit_code == 0
    full = [r for r in results.records if r.stage == "full-length"]
    assert len(full) == 40
    # ignore_eos in the stage's body: every output ran to its planned max_tokens.
    plan = lens.compile_plan(lens.load_scenario(scenario))
    for rec in full:
        assert rec.output_tokens == plan.prompts[rec.prompt].token_limit(64)
        assert "ended_early" not in rec.provider_facts
    assert results.integrity is not None
    assert any(w.startswith("ended_early: mixed/sim") for w in results.integrity.warnings)
    # Conversations: 8 sessions of 3 turns each, every turn its own record.
    turns = [r for r in results.records if r.stage == "conversations"]
    assert len(turns) == 24
    assert sorted({r.session for r in turns if r.session is not None}) == list(range(8))
    (summary,) = [s for s in results.summaries if s.stage == "conversations"]
    assert summary.turns is not None
    assert {k: t.ok for k, t in summary.turns.items()} == {"1": 8, "2": 8, "3": 8}
    # The other endpoints: completions streamed, chat not streamed, embedding batches.
    ends = {s.provider: s for s in results.summaries if s.stage == "endpoints"}
    assert {p: (s.ok, s.requests) for p, s in ends.items()} == {
        "sim-completions": (24, 24),
        "sim-no-stream": (24, 24),
        "sim-embeddings": (24, 24),
    }
    assert ends["sim-completions"].metrics["ttft"].n == 24
    assert ends["sim-no-stream"].metrics["ttft"].n == 0
    assert ends["sim-no-stream"].metrics["e2e"].n == 24
    assert ends["sim-embeddings"].inputs == 24 * 16
    assert ends["sim-embeddings"].inputs_per_s is not None
    assert ends["sim-embeddings"].throughput is None

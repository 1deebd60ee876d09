"""Trace replay: rows are sent at their offsets (over the speedup) with text of their lengths,
Mooncake hash ids share their blocks of text, a window selects rows, the plan shows the rate,
and bad files are positioned errors."""

from __future__ import annotations

import json
import pickle
import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import trio
import trio.testing
from pydantic import TypeAdapter

import lens
from lens.errors import ScenarioError
from lens.export.plan_view import plan_text
from lens.plan.compile import compile_plan
from lens.plan.describe import plan_to_dict
from lens.plan.model import Plan, SimSettings
from lens.plan.trace import TracePrompts, TraceReplay
from lens.plan.workloads import unit_prompts
from lens.records import RequestRecord
from lens.run.executor import StageRunner
from lens.scenario import load_scenario
from lens.scenario.tokenizers import ESTIMATE, HfTokenizer, Tokenizer
from tests.run.fake_server import FakeOpenAI, Script
from tests.workloads.conftest import StartSim
from tests.workloads.tokenizers_kit import wordpiece

# Gaps of the 20-line Azure trace, in ms: uneven, a few equal times (two rows at once).
GAPS_MS = [0, 250, 40, 0, 1200, 75, 75, 300, 0, 10, 990, 500, 5, 5, 2000, 130, 60, 700, 1, 444]
START = datetime(2023, 11, 16, 18, 15, 46, 680590)


def azure_trace(path: Path) -> list[tuple[float, int, int]]:
    """Writes the 20-line trace; returns each row's (seconds from the first, in, out)."""
    rows = []
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    t = START
    for i, gap in enumerate(GAPS_MS):
        t += timedelta(milliseconds=gap)
        n_in, n_out = 20 + 37 * i % 300, 3 + i % 7
        # Azure writes 7 fractional digits.
        lines.append(f"{t.strftime('%Y-%m-%d %H:%M:%S.%f')}0,{n_in},{n_out}")
        rows.append(((t - START) / timedelta(microseconds=1) / 1e6, n_in, n_out))
    path.write_text("\n".join(lines) + "\n")
    return rows


def scenario(
    tmp_path: Path, stage: str, *, base_url: str = "http://fake/v1", extra: str = ""
) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            name: trace
            {extra}
            providers:
              p: {{type: openai-compatible, base_url: {base_url}, model: m}}
            prompts:
              - id: q
                messages: [{{role: user, content: hi}}]
            load:
              - {stage}
            """
        )
    )
    return path


async def run_plan(plan: Plan) -> tuple[list[RequestRecord], int]:
    """The records of a one-unit plan, by index, and the unit's start (ns)."""
    fake = FakeOpenAI(Script(ttft_s=0.05, itl_s=0.01, tokens=2))
    records: list[RequestRecord] = []
    runner = StageRunner(plan, plan.providers, records.append, transport_for=lambda _: fake)
    await runner.run_all()
    (window,) = runner.windows
    return sorted(records, key=lambda r: r.index), window.t_start


@pytest.mark.parametrize("speedup", [1.0, 2.0, 0.5])
async def test_an_azure_trace_replays_at_its_offsets(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, speedup: float
) -> None:
    rows = azure_trace(tmp_path / "azure.csv")
    path = scenario(
        tmp_path,
        f"{{id: r, pattern: trace, file: azure.csv, format: azure, speedup: {speedup}}}",
    )
    plan = compile_plan(load_scenario(path), env={})
    (unit,) = plan.stages
    records, t0 = await run_plan(plan)
    assert len(records) == 20
    for rec, (offset, n_in, n_out) in zip(records, rows, strict=True):
        assert rec.t_intended == t0 + round(offset / speedup * 1e9)
        assert rec.t_dispatch == rec.t_intended  # no lag on a mock clock
        prompt = unit_prompts(plan.prompts, unit)[rec.prompt]
        assert prompt.max_tokens == n_out
        assert prompt.input_tokens == n_in
        assert ESTIMATE.count(prompt.messages[0].content) == n_in
        assert rec.prompt == f"r#{rec.index + 2}"  # the trace's line (the header is line 1)
    # The gaps exactly as written, over the speedup: 0.25 s, 0.04 s, 0 (two at once) ...
    offsets = [(r.t_intended - t0) / 1e9 for r in records if r.t_intended is not None]
    assert offsets[1:4] == pytest.approx([0.25 / speedup, 0.29 / speedup, 0.29 / speedup])


async def test_a_window_selects_its_rows_timed_from_its_start(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    rows = azure_trace(tmp_path / "azure.csv")
    stage = (
        "{id: r, pattern: trace, file: azure.csv, format: azure, speedup: 2, "
        "window: {start: 1.5s, duration: 2s}}"
    )
    plan = compile_plan(load_scenario(scenario(tmp_path, stage)), env={})
    inside = [(i, t) for i, (t, _, _) in enumerate(rows) if 1.5 <= t < 3.5]
    assert 3 < len(inside) < 15
    assert plan.stages[0].planned_requests == len(inside)
    records, t0 = await run_plan(plan)
    assert [r.prompt for r in records] == [f"r#{i + 2}" for i, _ in inside]
    for rec, (_, t) in zip(records, inside, strict=True):
        # Timed from the window's start (the first row in it is not due at 0), halved.
        assert rec.t_intended == t0 + round((t - 1.5) / 2 * 1e9)
        assert rec.t_dispatch == rec.t_intended
    assert records[0].t_intended != t0


def mooncake(path: Path) -> None:
    lines = [
        {"timestamp": 0, "input_length": 1100, "output_length": 12, "hash_ids": [1, 2, 3]},
        {"timestamp": 100, "input_length": 1300, "output_length": 8, "hash_ids": [1, 2, 4]},
        {"timestamp": 250, "input_length": 700, "output_length": 5, "hash_ids": [1, 5]},
        {"timestamp": 250, "input_length": 300, "output_length": 5, "hash_ids": [9]},
        {"timestamp": 1000, "input_length": 600, "output_length": 3},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")


@pytest.mark.parametrize("tokenizer", ["estimate", "wordpiece"])
def test_mooncake_hash_ids_share_their_blocks_of_text_exactly(
    tmp_path: Path, tokenizer: str
) -> None:
    mooncake(tmp_path / "mc.jsonl")
    extra = ""
    tok: Tokenizer = ESTIMATE
    if tokenizer == "wordpiece":
        wordpiece(tmp_path / "tok.json")
        extra = "tokenizer: {hf: tok.json}"
        tok = HfTokenizer(tmp_path / "tok.json", "t")
    stage = "{id: mc, pattern: trace, file: mc.jsonl, format: mooncake, block_tokens: 256}"
    plan = compile_plan(load_scenario(scenario(tmp_path, stage, extra=extra)), env={})
    (unit,) = plan.stages
    prompts = unit_prompts(plan.prompts, unit)
    assert isinstance(prompts, TracePrompts)
    texts = [prompts[unit.prompt_for(i)].messages[0].content for i in range(5)]
    for text, n in zip(texts, [1100, 1300, 700, 300, 600], strict=True):
        assert tok.count(text) == n  # exact lengths
    replay = unit.trace
    assert isinstance(replay, TraceReplay)
    block = {h: replay._block(h) for h in (1, 2, 3, 4, 5, 9)}
    assert all(tok.count(b) == 256 for b in block.values())
    one_two = tok.join([block[1], block[2]])
    # Rows 1 and 2 share blocks 1 and 2; their third blocks differ (3 and 4).
    assert texts[0].startswith(tok.join([one_two, block[3]]))
    assert texts[1].startswith(tok.join([one_two, block[4]]))
    assert texts[2].startswith(tok.join([block[1], block[5]]))
    assert texts[3].startswith(block[9])  # 300 tokens: one whole block of 256, then its own
    assert block[3] != block[4]
    assert not texts[4].startswith(block[1][:200])  # no hash ids: all its own
    # 1100 // 256 = 4 blocks would fit, but the row has 3 ids: the tail is the row's own.
    assert replay.shared_blocks(0) == (1, 2, 3)
    assert replay.shared_blocks(2) == (1, 5)
    # Made again (another process, another run): the same text.
    again = compile_plan(load_scenario(scenario(tmp_path, stage, extra=extra)), env={})
    again_prompts = unit_prompts(again.prompts, again.stages[0])
    assert [again_prompts[unit.prompt_for(i)].messages[0].content for i in range(5)] == texts


def test_the_plan_shows_the_traces_rate_over_time(tmp_path: Path) -> None:
    azure_trace(tmp_path / "azure.csv")
    stage = "{id: r, pattern: trace, file: azure.csv, format: azure, speedup: 2}"
    plan = compile_plan(load_scenario(scenario(tmp_path, stage)), env={})
    doc = plan_to_dict(plan)
    trace = doc["stages"][0]["trace"]
    assert trace["rows"] == trace["rows_read"] == 20
    assert sum(trace["requests_per_bucket"]) == 20
    assert len(trace["requests_per_bucket"]) == 12
    span = sum(GAPS_MS) / 1000 / 2
    assert trace["bucket_s"] == pytest.approx(span / 12)
    assert trace["requests_per_bucket"][0] == 4  # 0, 0.125, 0.145, 0.145 s: before 0.3 s
    from lens.metrics.estimate import estimate_to_dict  # noqa: PLC0415

    text = plan_text({**doc, "cost_estimate": estimate_to_dict(plan)})
    assert "trace r: " in text
    assert "20 of 20 requests, speedup 2" in text
    counts = " ".join(str(c) for c in trace["requests_per_bucket"])
    assert f"requests per bucket: {counts}" in text
    assert "rate per " in text


@pytest.mark.parametrize(
    ("content", "fmt", "where", "message"),
    [
        ("TIMESTAMP,Context,GeneratedTokens\n", "azure", "t.csv:1:1", "ContextTokens is missing"),
        (
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,12,x\n",
            "azure",
            "t.csv:2:24",
            "GeneratedTokens: expected a whole number, got 'x'",
        ),
        (
            "TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,12,3\n",
            "azure",
            "t.csv:2:1",
            "TIMESTAMP: expected a date and time",
        ),
        (
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,1,1\n"
            "2023-11-16 18:15:45,1,1\n",
            "azure",
            "t.csv:3:1",
            "the time goes back",
        ),
        ('{"timestamp": 0, "input_length": 5}\n', "mooncake", "t.csv:1:1", "output_length:"),
        ('{"timestamp": 0, "input_length": 5, "output_length": 1}\n{"timestamp": 1,\n', "mooncake",
         "t.csv:2:17", "invalid JSON"),
        ('{"time_s": 0, "input_tokens": 5, "output_tokens": 1, "hash_ids": ["a"]}\n', "jsonl",
         "t.csv:1:54", "hash_ids: expected a list of whole numbers"),
        ('{"time_s": -1, "input_tokens": 5, "output_tokens": 1}\n', "jsonl", "t.csv:1:2",
         "time_s: expected a number of seconds"),
    ],
)  # fmt: skip
def test_a_bad_trace_is_an_error_at_file_line_col(
    tmp_path: Path, content: str, fmt: str, where: str, message: str
) -> None:
    (tmp_path / "t.csv").write_text(content)
    path = scenario(tmp_path, f"{{id: r, pattern: trace, file: t.csv, format: {fmt}}}")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    shown = [str(p) for p in info.value.problems]
    assert any(where in s and message in s for s in shown), shown


def test_a_window_with_no_rows_and_trace_stage_prompts_are_input_errors(tmp_path: Path) -> None:
    azure_trace(tmp_path / "azure.csv")
    empty = "{id: r, pattern: trace, file: azure.csv, format: azure, window: {start: 1h}}"
    with pytest.raises(ScenarioError) as info:
        load_scenario(scenario(tmp_path, empty))
    assert any("the window keeps none of the 20 requests" in str(p) for p in info.value.problems)
    with_prompts = "{id: r, pattern: trace, file: azure.csv, format: azure, prompts: [q]}"
    with pytest.raises(ScenarioError) as info:
        load_scenario(scenario(tmp_path, with_prompts))
    assert any("sends the trace's own requests" in str(p) for p in info.value.problems)


async def test_a_trace_replays_over_real_sockets_with_its_lengths(
    start_sim: StartSim, tmp_path: Path
) -> None:
    server, base = await start_sim(SimSettings(ttft_s=0.0, itl_s=0.0, output_tokens=50))
    rows = azure_trace(tmp_path / "azure.csv")
    stage = "{id: r, pattern: trace, file: azure.csv, format: azure, speedup: 8}"
    path = scenario(tmp_path, stage, base_url=base)
    results = await lens.run_async(path)
    assert results.exit_code == 0
    sent = [json.loads(b) for b in server.received]
    assert len(sent) == 20
    by_line = {r.prompt: r for r in results.records}
    # Requests due at the same time may reach the server in either order: match by length.
    assert sorted((ESTIMATE.count(b["messages"][0]["content"]), b["max_tokens"]) for b in sent) == (
        sorted((n_in, n_out) for _, n_in, n_out in rows)
    )
    for i, (_, _, n_out) in enumerate(rows):
        rec = by_line[f"r#{i + 2}"]
        assert rec.status == "ok"
        assert rec.output_tokens == n_out  # the simulator stops at max_tokens
    assert len({b["messages"][0]["content"] for b in sent}) == 20  # no two rows share text


def test_a_trace_plan_dumps_and_pickles_without_its_text(tmp_path: Path) -> None:
    mooncake(tmp_path / "mc.jsonl")
    stage = "{id: mc, pattern: trace, file: mc.jsonl, format: mooncake, block_tokens: 256}"
    plan = compile_plan(load_scenario(scenario(tmp_path, stage)), env={})
    unit = plan.stages[0]
    assert unit.trace is not None
    first = unit_prompts(plan.prompts, unit)[unit.prompt_for(0)]  # makes block texts
    dumped = TypeAdapter(Plan).dump_json(plan).decode()
    assert "TraceReplay(" in dumped
    assert first.messages[0].content[:40] not in dumped
    # To a worker process: the rows go, the text made so far does not, and it comes out
    # the same on the other side.
    copy = pickle.loads(pickle.dumps(plan))
    assert len(pickle.dumps(unit.trace)) < 2000
    again = unit_prompts(copy.prompts, copy.stages[0])[unit.prompt_for(0)]
    assert again.messages == first.messages
    assert again.max_tokens == 12


def test_a_scenario_of_trace_stages_needs_no_prompts(tmp_path: Path) -> None:
    azure_trace(tmp_path / "azure.csv")
    path = tmp_path / "s.yaml"
    path.write_text(
        "version: 1\nname: t\nproviders: {sim: {type: simulated}}\n"
        "load: [{id: r, pattern: trace, file: azure.csv, format: azure}]\n"
    )
    plan = compile_plan(load_scenario(path), env={})
    assert plan.prompts == {}
    assert plan.stages[0].planned_requests == 20

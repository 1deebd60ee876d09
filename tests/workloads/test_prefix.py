"""Shared prefixes: prompts of one group begin with exactly the same text (token-exact with a
real tokenizer), groups differ, tails are each prompt's own, and records carry the group."""

from __future__ import annotations

import dataclasses
import json
import textwrap
from collections import Counter
from pathlib import Path

import pytest

import lens
from lens.errors import ScenarioError
from lens.export.csvfile import REQUEST_COLUMNS, request_row
from lens.export.merge import record_from_out
from lens.export.results import RecordOut, record_out
from lens.plan.compile import compile_plan
from lens.plan.model import PromptSpec, SimSettings
from lens.plan.workloads import prefix_groups, prefix_seed
from lens.records import RequestRecord
from lens.scenario import parse_scenario
from lens.scenario.tokenizers import ESTIMATE, HfTokenizer, Tokenizer
from tests.workloads.conftest import StartSim
from tests.workloads.tokenizers_kit import byte_bpe, wordpiece

SCENARIO = """\
version: 1
name: prefix
{tokenizer}
providers:
  sim: {{type: simulated}}
prompts:
  - id: doc
    synthetic:
      shared_prefix_tokens: 200
      prefix_groups: 4
      input_tokens: {{dist: uniform, min: 20, max: 60}}
      output_tokens: 8
      count: 40
      seed: 5
load:
  - {{id: s, pattern: burst, requests: 1}}
"""


def _specs(tmp_path: Path, tokenizer: str) -> list[PromptSpec]:
    text = SCENARIO.format(tokenizer=tokenizer)
    scenario = parse_scenario(text, file=str(tmp_path / "s.yaml"), base_dir=tmp_path)
    plan = compile_plan(scenario, env={})
    return [plan.prompts[f"doc#{i}"] for i in range(1, 41)]


def _check(specs: list[PromptSpec], tok: Tokenizer, exact: bool) -> None:
    by_group: dict[int, list[str]] = {}
    for spec in specs:
        assert spec.prefix_group is not None
        by_group.setdefault(spec.prefix_group, []).append(spec.messages[0].content)
        assert spec.input_tokens is not None
        assert 220 <= spec.input_tokens <= 260  # 200 shared + its own tail of 20-60
        counted = tok.count(spec.messages[0].content)
        assert counted == spec.input_tokens if exact else abs(counted - spec.input_tokens) <= 1
    assert sorted(by_group) == [0, 1, 2, 3]
    assert sorted(len(v) for v in by_group.values()) == [10, 10, 10, 10]  # dealt evenly
    prefixes = set()
    for group, texts in by_group.items():
        prefix = tok.text_of_length(200, prefix_seed(5, group))
        assert tok.count(prefix) == 200
        # Every prompt of the group begins with the whole prefix, and no more is common.
        assert all(t.startswith(prefix) for t in texts)
        assert len(_common_prefix(texts)) < len(prefix) + 40
        prefixes.add(prefix)
        tails = [t[len(prefix) :] for t in texts]
        assert len(set(tails)) == len(tails)  # each prompt's own tail
    assert len(prefixes) == 4  # groups differ


def _common_prefix(texts: list[str]) -> str:
    first, last = min(texts), max(texts)
    k = 0
    while k < min(len(first), len(last)) and first[k] == last[k]:
        k += 1
    return first[:k]


def test_prompts_of_a_group_share_exactly_the_prefix_with_a_wordpiece(tmp_path: Path) -> None:
    wordpiece(tmp_path / "tok.json")
    specs = _specs(tmp_path, "tokenizer: {hf: tok.json}")
    _check(specs, HfTokenizer(tmp_path / "tok.json", "t"), exact=True)


def test_prompts_of_a_group_share_exactly_the_prefix_with_a_byte_bpe(tmp_path: Path) -> None:
    # Few of lens's words are one token in this vocabulary: the tail's length is corrected
    # by counting, the prefix kept as it is.
    byte_bpe(tmp_path / "tok.json")
    specs = _specs(tmp_path, "tokenizer: {hf: tok.json}")
    _check(specs, HfTokenizer(tmp_path / "tok.json", "t"), exact=True)


def test_with_the_estimate_the_prefix_is_shared_and_lengths_are_exact(tmp_path: Path) -> None:
    specs = _specs(tmp_path, "")
    _check(specs, ESTIMATE, exact=False)
    for spec in specs:
        assert ESTIMATE.count(spec.messages[0].content) == spec.input_tokens


def test_group_assignment_is_even_seeded_and_deterministic() -> None:
    assert prefix_groups(1, 100, 8) == prefix_groups(1, 100, 8)
    assert prefix_groups(1, 100, 8) != prefix_groups(2, 100, 8)
    sizes = Counter(prefix_groups(1, 100, 8)).values()
    assert max(sizes) - min(sizes) <= 1
    assert prefix_groups(1, 100, 8)[:8] != list(range(8))  # shuffled, not round-robin


def test_prefix_groups_needs_shared_prefix_tokens() -> None:
    text = SCENARIO.format(tokenizer="").replace("      shared_prefix_tokens: 200\n", "")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, file="s.yaml")
    assert any("prefix_groups needs shared_prefix_tokens" in str(p) for p in info.value.problems)
    problem = next(p for p in info.value.problems if "prefix_groups" in str(p))
    assert problem.pos is not None
    assert (problem.pos.line, problem.pos.col) == (9, 7)


def test_the_plan_lists_the_prefix_groups(tmp_path: Path) -> None:
    plan = compile_plan(parse_scenario(SCENARIO.format(tokenizer=""), file="s.yaml"), env={})
    (source,) = plan.prompt_sources
    assert "4 groups sharing 200 leading tokens" in source.detail
    assert source.min_tokens >= 220


async def test_records_carry_their_prefix_group_over_real_sockets(
    start_sim: StartSim, tmp_path: Path
) -> None:
    server, base = await start_sim(SimSettings(ttft_s=0.0, itl_s=0.0, output_tokens=3))
    path = tmp_path / "s.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            name: prefix
            providers:
              vllm: {{type: openai-compatible, base_url: {base}, model: m}}
            prompts:
              - id: doc
                synthetic: {{shared_prefix_tokens: 50, prefix_groups: 2, input_tokens: 10,
                             output_tokens: 3, count: 6, seed: 1}}
            load:
              - {{id: s, pattern: concurrency, concurrency: 1, requests: 6}}
            """
        )
    )
    plan = lens.compile_plan(lens.load_scenario(path))
    results = await lens.run_async(plan)
    assert results.exit_code == 0
    sent = [json.loads(b)["messages"][0]["content"] for b in server.received]
    groups = [rec.prefix_group or 0 for rec in results.records]
    assert sorted(groups) == [0, 0, 0, 1, 1, 1]
    for rec, content in zip(results.records, sent, strict=True):
        assert plan.prompts[rec.prompt].prefix_group == rec.prefix_group
        assert content == plan.prompts[rec.prompt].messages[0].content
    pairs = list(zip(sent, results.records, strict=True))
    heads = {g: {c[:200] for c, r in pairs if r.prefix_group == g} for g in (0, 1)}
    assert all(len(h) == 1 for h in heads.values())  # 50 tokens = 200 characters, shared
    assert heads[0] != heads[1]


def test_the_group_survives_results_jsonl_csv_and_merge() -> None:
    rec = RequestRecord(
        provider="p", stage="s", prompt="doc#1", index=0, ok=True, error_class=None,
        error_message=None, http_status=200, t_intended=0, t_dispatch=1, t_headers=2,
        t_first_chunk=3, t_first_token=3, t_first_visible=3, t_last_token=4, t_end=5,
        prefix_group=2,
    )  # fmt: skip
    out = record_out(rec)
    line = json.loads(out.model_dump_json())
    assert line["prefix_group"] == 2
    assert record_from_out(RecordOut.model_validate(line)) == rec
    row = dict(zip(REQUEST_COLUMNS, request_row(out, "m"), strict=True))
    assert row["prefix_group"] == 2
    # Without a group the field is absent, so results of other runs read as before.
    plain = record_out(dataclasses.replace(rec, prefix_group=None))
    assert "prefix_group" not in json.loads(plain.model_dump_json())

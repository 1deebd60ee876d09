"""Dataset prompts: every format read, sampled without replacement with a seed, filtered by
input length, reference answers as max_tokens, and bad files reported as file:line."""

from __future__ import annotations

import json
import random
import textwrap
from pathlib import Path

import pytest

from lens.errors import ScenarioError
from lens.plan.compile import compile_plan
from lens.plan.model import Plan
from lens.scenario import parse_scenario
from lens.scenario.tokenizers import ESTIMATE
from tests.workloads.tokenizers_kit import wordpiece

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]


def sharegpt(n: int, seed: int = 0) -> list[dict[str, object]]:
    """``n`` conversations: a human turn of varied length, then a gpt answer."""
    rng = random.Random(seed)
    items: list[dict[str, object]] = []
    for i in range(n):
        question = f"question {i}: " + " ".join(rng.choices(WORDS, k=rng.randint(2, 60)))
        answer = "answer " + " ".join(rng.choices(WORDS, k=rng.randint(1, 40)))
        items.append(
            {
                "id": f"conv{i}",
                "conversations": [
                    {"from": "human", "value": question},
                    {"from": "gpt", "value": answer},
                    {"from": "human", "value": "and then?"},
                ],
            }
        )
    return items


def scenario_text(dataset: str, extra: str = "") -> str:
    return textwrap.dedent(
        f"""\
        version: 1
        name: t
        {extra}
        providers:
          sim: {{type: simulated}}
        prompts:
          - id: chat
            dataset: {dataset}
        load:
          - {{id: s, pattern: burst, requests: 1, max_tokens: 77}}
        """
    )


def plan_of(tmp_path: Path, dataset: str, extra: str = "") -> Plan:
    scenario = parse_scenario(
        scenario_text(dataset, extra), file=str(tmp_path / "s.yaml"), base_dir=tmp_path
    )
    return compile_plan(scenario, env={})


def problems_of(tmp_path: Path, dataset: str, extra: str = "") -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(scenario_text(dataset, extra), file="s.yaml", base_dir=tmp_path)
    return [str(p) for p in info.value.problems]


def test_a_sharegpt_file_yields_the_sampled_first_turns(tmp_path: Path) -> None:
    items = sharegpt(50)
    (tmp_path / "share.json").write_text(json.dumps(items, indent=1))
    plan = plan_of(
        tmp_path,
        "{path: share.json, format: sharegpt, sample: 20, seed: 5, output_tokens: from_dataset}",
    )
    assert len(plan.prompts) == 20
    chosen = random.Random(5).sample(range(50), 20)
    # In the order drawn, each the first human turn of its conversation, never a repeat.
    assert list(plan.prompts) == [f"chat#{i + 1}" for i in chosen]
    for i, spec in zip(chosen, plan.prompts.values(), strict=True):
        turns = items[i]["conversations"]
        assert isinstance(turns, list)
        assert [(m.role, m.content) for m in spec.messages] == [("user", turns[0]["value"])]
        # The reference answer's length, counted by the scenario's tokenizer.
        assert spec.max_tokens == ESTIMATE.count(turns[1]["value"])
        assert spec.input_tokens == ESTIMATE.count(turns[0]["value"])
        assert spec.source == f"{tmp_path / 'share.json'}[{i + 1}]"
    (source,) = plan.prompt_sources
    assert source.prompts == 20
    assert source.kind == "dataset"
    lengths = sorted(s.input_tokens or 0 for s in plan.prompts.values())
    assert (source.min_tokens, source.max_tokens) == (lengths[0], lengths[-1])
    assert source.p50_tokens == lengths[9]
    assert source.p90_tokens == lengths[17]
    assert "50 read" in source.detail
    assert "sampled 20 (seed 5)" in source.detail
    # The same scenario, the same sample.
    again = plan_of(tmp_path, "{path: share.json, format: sharegpt, sample: 20, seed: 5}")
    assert list(again.prompts) == list(plan.prompts)
    other = plan_of(tmp_path, "{path: share.json, format: sharegpt, sample: 20, seed: 6}")
    assert list(other.prompts) != list(plan.prompts)


def test_without_from_dataset_the_stage_max_tokens_applies(tmp_path: Path) -> None:
    (tmp_path / "share.jsonl").write_text("\n".join(json.dumps(c) for c in sharegpt(3)))
    plan = plan_of(tmp_path, "{path: share.jsonl, format: sharegpt}")
    assert [p.token_limit(77) for p in plan.prompts.values()] == [77, 77, 77]
    assert list(plan.prompts) == ["chat#1", "chat#2", "chat#3"]  # JSONL: by line


def test_conversations_without_a_user_turn_are_skipped_and_counted(tmp_path: Path) -> None:
    items = sharegpt(4)
    items.insert(1, {"conversations": [{"from": "gpt", "value": "hello"}]})
    items.insert(2, {"conversations": []})
    (tmp_path / "share.json").write_text(json.dumps(items))
    plan = plan_of(tmp_path, "{path: share.json, format: sharegpt}")
    assert len(plan.prompts) == 4
    assert "2 without a user turn skipped" in plan.prompt_sources[0].detail


def test_a_length_filter_keeps_prompts_within_its_bounds(tmp_path: Path) -> None:
    wordpiece(tmp_path / "tok.json")
    (tmp_path / "share.json").write_text(json.dumps(sharegpt(60)))
    plan = plan_of(
        tmp_path,
        "{path: share.json, format: sharegpt, filter: {min_input_tokens: 20, "
        "max_input_tokens: 40}}",
        extra="tokenizer: {hf: tok.json}",
    )
    assert plan.prompts
    for spec in plan.prompts.values():
        assert spec.input_tokens is not None
        assert 20 <= spec.input_tokens <= 40
    assert plan.prompt_sources[0].tokenizer.startswith("hf:")


def test_a_sample_larger_than_the_dataset_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "share.json").write_text(json.dumps(sharegpt(5)))
    (found,) = problems_of(tmp_path, "{path: share.json, format: sharegpt, sample: 9}")
    assert "sample: 9, but dataset share.json has only 5 prompts" in found


def test_openai_chat_jsonl_takes_system_and_first_user_and_the_reply(tmp_path: Path) -> None:
    lines = [
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi there"},
                {"role": "assistant", "content": "hello, how can I help you today"},
                {"role": "user", "content": "later"},
            ]
        },
        {"messages": [{"role": "assistant", "content": "no user"}]},
        {"messages": [{"role": "user", "content": "second"}]},
    ]
    (tmp_path / "chat.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    plan = plan_of(
        tmp_path, "{path: chat.jsonl, format: openai-chat-jsonl, output_tokens: from_dataset}"
    )
    first, third = plan.prompts["chat#1"], plan.prompts["chat#3"]
    assert [(m.role, m.content) for m in first.messages] == [
        ("system", "be brief"),
        ("user", "hi there"),
    ]
    assert first.max_tokens == ESTIMATE.count("hello, how can I help you today")
    assert third.max_tokens is None  # no reference: the stage's
    assert "chat#2" not in plan.prompts


def test_text_lines_and_csv(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("first prompt\n\n  second prompt  \n")
    plan = plan_of(tmp_path, "{path: p.txt, format: text-lines}")
    assert [p.messages[0].content for p in plan.prompts.values()] == [
        "first prompt",
        "second prompt",
    ]
    assert list(plan.prompts) == ["chat#1", "chat#3"]
    (tmp_path / "p.csv").write_text('q,a\n"what, exactly?",yes indeed\nsecond,\n')
    plan = plan_of(
        tmp_path,
        "{path: p.csv, format: csv, column: q, reference: a, output_tokens: from_dataset}",
    )
    assert [(p.messages[0].content, p.max_tokens) for p in plan.prompts.values()] == [
        ("what, exactly?", ESTIMATE.count("yes indeed")),
        ("second", None),
    ]


def test_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table({"prompt": ["one", "two two", None], "answer": ["x", None, "z"]})
    pq.write_table(table, tmp_path / "p.parquet")
    plan = plan_of(
        tmp_path,
        "{path: p.parquet, format: parquet, reference: answer, output_tokens: from_dataset}",
    )
    assert [(p.messages[0].content, p.max_tokens) for p in plan.prompts.values()] == [
        ("one", 1),
        ("two two", None),
    ]
    (found,) = problems_of(tmp_path, "{path: p.parquet, format: parquet, column: text}")
    assert "no column 'text' (it has 'prompt', 'answer')" in found


# --- bad files ------------------------------------------------------------------------------


def test_a_jsonl_line_that_is_not_json_names_file_and_line(tmp_path: Path) -> None:
    good = json.dumps(sharegpt(1)[0])
    (tmp_path / "share.jsonl").write_text(f"{good}\n{{not json\n{good}\n")
    (found,) = problems_of(tmp_path, "{path: share.jsonl, format: sharegpt}")
    assert found.startswith("share.jsonl:2:2: chat#2: invalid JSON: Expecting property name")


def test_a_broken_json_array_names_the_line(tmp_path: Path) -> None:
    text = json.dumps(sharegpt(3), indent=1)
    broken = text.replace('"from": "gpt"', '"from" "gpt"', 1)
    (tmp_path / "share.json").write_text(broken)
    (found,) = problems_of(tmp_path, "{path: share.json, format: sharegpt}")
    line = broken[: broken.index('"from" "gpt"')].count("\n") + 1
    assert found.startswith(f"share.json:{line}:")
    assert "invalid JSON: Expecting ':' delimiter" in found


def test_a_conversation_of_the_wrong_shape_names_its_line(tmp_path: Path) -> None:
    items = sharegpt(2)
    items.append({"messages": []})
    text = json.dumps(items, indent=1)
    (tmp_path / "share.json").write_text(text)
    (found,) = problems_of(tmp_path, "{path: share.json, format: sharegpt}")
    line = text[: text.index('"messages"')].count("\n")  # the item's opening brace
    assert found.startswith(f"share.json:{line}:1: chat#3: expected a ShareGPT conversation")
    assert "no 'conversations' list" in found


def test_a_csv_without_the_column_names_the_header(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("question,answer\nhi,there\n")
    (found,) = problems_of(tmp_path, "{path: p.csv, format: csv}")
    assert found == (
        "p.csv:1:1: chat#1: no column 'prompt' in the header row (it has 'question', "
        "'answer'): set the dataset's column: / reference:"
    )


def test_a_missing_dataset_file_is_an_input_error_at_its_path(tmp_path: Path) -> None:
    (found,) = problems_of(tmp_path, "{path: none.json, format: sharegpt}")
    assert found == (
        "s.yaml:8:21: prompts[0].dataset.path: cannot read dataset none.json: No such file or "
        "directory"
    )


def test_a_dataset_outside_the_scenario_folder_is_refused(tmp_path: Path) -> None:
    inner = tmp_path / "inner"
    inner.mkdir()
    (tmp_path / "share.json").write_text(json.dumps(sharegpt(2)))
    with pytest.raises(ScenarioError) as info:
        parse_scenario(
            scenario_text("{path: ../share.json, format: sharegpt}"),
            file=str(inner / "s.yaml"),
            base_dir=inner,
        )
    assert "climbs out of the scenario's folder" in str(info.value.problems[0])


def test_hf_with_a_hub_name_is_refused_offline_and_downloads_nothing(tmp_path: Path) -> None:
    (found,) = problems_of(
        tmp_path, "{path: anon8231489123/ShareGPT_Vicuna_unfiltered, format: hf}"
    )
    assert "lens never downloads one (a hub name is not fetched)" in found


def test_hf_without_the_datasets_library_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins  # noqa: PLC0415
    from typing import Any  # noqa: PLC0415

    real = builtins.__import__

    def fake(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "datasets":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    (tmp_path / "saved").mkdir()
    (found,) = problems_of(tmp_path, "{path: saved, format: hf}")
    assert "pip install 'llm-latency-lens[datasets]'" in found


def test_turns_all_reads_whole_conversations(tmp_path: Path) -> None:
    items = [
        {  # regular: system, then human and gpt alternating
            "conversations": [
                {"from": "system", "value": "sys"},
                {"from": "human", "value": "q1"},
                {"from": "gpt", "value": "a1"},
                {"from": "human", "value": "q2"},
                {"from": "gpt", "value": "a2"},
            ]
        },
        {  # two human turns in a row: the session ends at the break
            "conversations": [
                {"from": "human", "value": "x1"},
                {"from": "gpt", "value": "y1"},
                {"from": "human", "value": "x2"},
                {"from": "human", "value": "x3"},
                {"from": "gpt", "value": "y3"},
            ]
        },
        {"conversations": [{"from": "human", "value": "only"}]},  # one turn, no reply
    ]
    (tmp_path / "share.json").write_text(json.dumps(items))
    plan = plan_of(tmp_path, "{path: share.json, format: sharegpt, turns: all}")
    convs = {pid: p.conversation for pid, p in plan.prompts.items()}
    assert {pid: (c.turns, c.replies) for pid, c in convs.items() if c is not None} == {
        "chat#1": (("q1", "q2"), ("a1", "a2")),
        "chat#2": (("x1", "x2"), ("y1", None)),
        "chat#3": (("only",), (None,)),
    }
    assert [m.content for m in plan.prompts["chat#1"].messages] == ["sys", "q1"]
    first = convs["chat#1"]
    assert first is not None
    assert (first.carry, first.think.mean_s) == ("responses", 0.0)  # the defaults


def test_turns_all_of_openai_chat_jsonl(tmp_path: Path) -> None:
    line = {
        "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "u1"},
            {"role": "assistant", "content": "r1"},
            {"role": "user", "content": "u2"},
        ]
    }
    (tmp_path / "chat.jsonl").write_text(json.dumps(line) + "\n")
    plan = plan_of(
        tmp_path,
        "{path: chat.jsonl, format: openai-chat-jsonl, turns: all}\n"
        "            conversation: {carry: reference, think_time: 1s, seed: 4}",
    )
    conv = plan.prompts["chat#1"].conversation
    assert conv is not None
    assert (conv.turns, conv.replies, conv.carry, conv.seed) == (
        ("u1", "u2"),
        ("r1", None),
        "reference",
        4,
    )
    assert conv.think_s(0, 2) == 1.0


def test_turns_all_needs_a_conversation_format(tmp_path: Path) -> None:
    (found,) = problems_of(tmp_path, "{path: x.csv, format: csv, turns: all}")
    assert "turns: all needs conversations: format csv" in found

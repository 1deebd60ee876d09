from __future__ import annotations

from pathlib import Path

import pytest

from lens.errors import SourcePos
from lens.scenario.model import FilePrompt
from lens.scenario.prompts import MAX_PROBLEMS_PER_FILE, read_prompt_file, synthetic_text
from lens.scenario.tokenizers import CHARS_PER_TOKEN
from lens.scenario.tokenizers import WORDS as _WORDS
from tests.scenario.helpers import BASE, parse, problems

WHERE = SourcePos("s.yaml", 9, 11)


@pytest.mark.parametrize("tokens", [1, 2, 7, 100, 1000])
def test_synthetic_text_is_sized_by_the_four_chars_per_token_estimate(tokens: int) -> None:
    text = synthetic_text(tokens, seed=3)
    assert len(text) == tokens * CHARS_PER_TOKEN
    assert not text.endswith(" ")


def test_synthetic_text_is_deterministic_per_seed() -> None:
    assert synthetic_text(200, 7) == synthetic_text(200, 7)
    assert synthetic_text(200, 7) != synthetic_text(200, 8)
    words = synthetic_text(200, 7).rstrip(".").split()
    assert set(words[:-1]) <= set(_WORDS)  # the last word may be cut


def read(path: Path) -> tuple[list[str], list[int]]:
    requests, found = read_prompt_file(path, "p.jsonl", prompt_id="sup", where=WHERE)
    return [str(p) for p in found], [r.line for r in requests]


def test_reads_one_request_per_line_skipping_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"messages": [{"role": "user", "content": "a"}], "max_tokens": 5}\n'
        "\n"
        '{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "b"}]}\r\n'
    )
    requests, found = read_prompt_file(path, "p.jsonl", prompt_id="sup", where=WHERE)
    assert found == []
    assert [(r.line, r.max_tokens, len(r.messages)) for r in requests] == [(1, 5, 1), (3, None, 2)]


def test_line_problems_name_the_jsonl_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"messages": [{"role": "user", "content": "ok"}]}\n'
        '{"messages": [{"role": "usr", "content": "x"}]}\n'
        '{"messages": [], "max_token": 3}\n'
        "{not json\n"
        "[1, 2]\n"
    )
    found, lines = read(path)
    assert lines == [1]
    assert found == [
        "p.jsonl:2:1: sup#2.messages[0].role: expected one of 'system', 'developer', 'user' "
        "or 'assistant', got 'usr' (did you mean 'user'?)",
        "p.jsonl:3:1: sup#3.messages: needs at least 1 item(s)",
        "p.jsonl:3:1: sup#3.max_token: unknown field 'max_token' (did you mean 'max_tokens'?)",
        "p.jsonl:4:2: sup#4: invalid JSON: Expecting property name enclosed in double quotes",
        'p.jsonl:5:1: sup#5: expected a JSON object like {"messages": [...], "max_tokens": 50}',
    ]


def test_file_level_problems_point_at_the_scenario(tmp_path: Path) -> None:
    assert read(tmp_path / "missing.jsonl")[0] == [
        "s.yaml:9:11: prompt 'sup': cannot read prompts file p.jsonl: No such file or directory"
    ]
    assert read(tmp_path)[0] == [
        "s.yaml:9:11: prompt 'sup': cannot read prompts file p.jsonl: it is a directory"
    ]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    assert read(empty)[0] == [
        "s.yaml:9:11: prompt 'sup': prompts file p.jsonl is empty: expected one JSON chat "
        "request per line"
    ]


def test_bad_utf8(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"messages": []}\n{"x": "\xff"}\n')
    assert read(path)[0] == ["p.jsonl:2:1: sup#2: not valid UTF-8 text"]


def test_a_wholly_wrong_file_is_summarised(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text("x\n" * 50)
    found, _ = read(path)
    assert len(found) == MAX_PROBLEMS_PER_FILE + 1
    assert found[-1] == "... and 30 more in p.jsonl"


# --- through the loader --------------------------------------------------------------------

FILE_PROMPT = BASE.replace(
    "    messages:\n      - {role: user, content: hi}\n", "    file: prompts/p.jsonl\n"
)


def test_loader_reads_files_relative_to_the_scenario(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "p.jsonl").write_text(
        '{"messages": [{"role": "user", "content": "a"}]}\n'
    )
    s = parse(FILE_PROMPT, base_dir=tmp_path)
    prompt = s.prompts[0]
    assert isinstance(prompt, FilePrompt)
    assert [r.line for r in prompt.requests] == [1]


def test_loader_reports_file_problems_with_the_others(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "p.jsonl").write_text('{"messages": "hi"}\n')
    found = problems(FILE_PROMPT.replace("name: t", "name: 5"), base_dir=tmp_path)
    assert found == [
        "s.yaml:2:7: name: expected a string, got 5 (quote it to make it a string)",
        "prompts/p.jsonl:1:1: q#1.messages: expected a list, got 'hi'",
    ]


def test_loader_reports_a_missing_file_at_the_file_key(tmp_path: Path) -> None:
    assert problems(FILE_PROMPT, base_dir=tmp_path) == [
        "s.yaml:8:11: prompt 'q': cannot read prompts file prompts/p.jsonl: "
        "No such file or directory"
    ]


def test_loader_summarises_a_wholly_wrong_file_after_the_scenario_problems(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "p.jsonl").write_text("x\n" * 25)
    found = problems(FILE_PROMPT.replace("name: t", "name: 5"), base_dir=tmp_path)
    assert found[0].startswith("s.yaml:2:7: name:")
    assert found[1].startswith("prompts/p.jsonl:1:1: q#1: invalid JSON")
    assert found[-1] == "... and 5 more in prompts/p.jsonl"


def test_nul_in_a_prompt_file_path(tmp_path: Path) -> None:
    assert read(tmp_path / "a\x00b")[0] == [
        "s.yaml:9:11: prompt 'sup': cannot read prompts file p.jsonl: embedded null byte"
    ]

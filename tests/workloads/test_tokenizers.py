"""Tokenizers: exact synthetic lengths with tokenizers the tests train, the estimate's exact
4 characters per token, and clear input errors for what cannot be loaded."""

from __future__ import annotations

import builtins
import pickle
from pathlib import Path
from typing import Any

import pytest

from lens.errors import ScenarioError
from lens.plan.compile import compile_plan
from lens.scenario import parse_scenario
from lens.scenario.tokenizers import (
    ESTIMATE,
    WORDS,
    HfTokenizer,
    TokenizerError,
    load_tokenizer,
)
from tests.workloads.tokenizers_kit import byte_bpe, wordpiece


@pytest.fixture(params=["wordpiece", "byte-bpe", "byte-bpe-large"])
def tokenizer(request: pytest.FixtureRequest, tmp_path: Path) -> HfTokenizer:
    path = tmp_path / "tokenizer.json"
    if request.param == "wordpiece":
        wordpiece(path)
    else:
        byte_bpe(path, 300 if request.param == "byte-bpe" else 1000)
    return HfTokenizer(path, "tokenizer.json")


def test_synthetic_text_has_exactly_the_asked_tokens(tokenizer: HfTokenizer) -> None:
    for tokens in (*range(1, 40), 97, 256, 1000, 3001):
        for seed in (0, 1, 7):
            text = tokenizer.text_of_length(tokens, seed)
            assert tokenizer.count(text) == tokens, (tokens, seed)


def test_synthetic_text_is_deterministic_and_varies_with_the_seed(tokenizer: HfTokenizer) -> None:
    assert tokenizer.text_of_length(200, 3) == tokenizer.text_of_length(200, 3)
    assert tokenizer.text_of_length(200, 3) != tokenizer.text_of_length(200, 4)


def test_the_estimate_is_exact_on_its_own_text() -> None:
    for tokens in (1, 2, 50, 999):
        text = ESTIMATE.text_of_length(tokens, 5)
        assert len(text) == 4 * tokens
        assert ESTIMATE.count(text) == tokens


def test_a_tokenizer_survives_pickling_for_worker_processes(tokenizer: HfTokenizer) -> None:
    again = pickle.loads(pickle.dumps(tokenizer))
    assert again.name == tokenizer.name
    assert again.count("the water people") == tokenizer.count("the water people")


def test_a_model_folder_is_read_through_its_tokenizer_json(tmp_path: Path) -> None:
    wordpiece(tmp_path / "tokenizer.json")
    loaded = load_tokenizer({"hf": "."}, tmp_path)
    assert loaded.count("the water") == 2


SCENARIO = """\
version: 1
name: t
tokenizer: {TOKENIZER}
providers:
  sim: {{type: simulated}}
prompts:
  - id: syn
    synthetic: {{input_tokens: 333, output_tokens: 10, seed: 4}}
load:
  - {{id: s, pattern: burst, requests: 1}}
"""


def _scenario(tokenizer: str) -> str:
    return SCENARIO.replace("{TOKENIZER}", tokenizer).replace("{{", "{").replace("}}", "}")


def test_a_scenario_tokenizer_makes_synthetic_prompts_exact(tmp_path: Path) -> None:
    wordpiece(tmp_path / "tok.json")
    scenario = parse_scenario(
        _scenario("{hf: tok.json}"), file=str(tmp_path / "s.yaml"), base_dir=tmp_path
    )
    plan = compile_plan(scenario, env={})
    text = plan.prompts["syn"].messages[0].content
    assert HfTokenizer(tmp_path / "tok.json", "t").count(text) == 333
    assert plan.tokenizer == f"hf:{tmp_path / 'tok.json'}"
    (source,) = plan.prompt_sources
    assert (source.min_tokens, source.max_tokens, source.tokenizer) == (333, 333, plan.tokenizer)


def _problems(tmp_path: Path, tokenizer: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(_scenario(tokenizer), file="s.yaml", base_dir=tmp_path)
    return [str(p) for p in info.value.problems]


def test_a_missing_tokenizer_file_is_an_input_error(tmp_path: Path) -> None:
    (found,) = _problems(tmp_path, "{hf: models/none.json}")
    assert found.startswith("s.yaml:3:12: tokenizer: no file models/none.json")
    assert "lens never downloads one" in found


def test_a_folder_without_tokenizer_json_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (found,) = _problems(tmp_path, "{hf: model}")
    assert "model has no tokenizer.json" in found


def test_a_file_that_is_not_a_tokenizer_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"not": "a tokenizer"}')
    (found,) = _problems(tmp_path, "{hf: bad.json}")
    assert "bad.json is not a tokenizer.json" in found


def test_server_needs_an_openai_compatible_provider(tmp_path: Path) -> None:
    (found,) = _problems(tmp_path, "server")
    assert found.startswith("s.yaml:3:12: tokenizer: server needs the one openai-compatible")
    assert "the scenario has none" in found


def test_a_bad_tokenizer_value_says_what_is_expected(tmp_path: Path) -> None:
    (found,) = _problems(tmp_path, "{hf: a, tiktoken: b}")
    assert "expected estimate, server, {server: auto" in found


def _without(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    real = builtins.__import__

    def fake(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.split(".", maxsplit=1)[0] in names:
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)


def test_without_the_tokenizers_library_the_error_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wordpiece(tmp_path / "tok.json")
    _without(monkeypatch, "tokenizers")
    with pytest.raises(TokenizerError, match=r"llm-latency-lens\[tokenizers\]"):
        load_tokenizer({"hf": "tok.json"}, tmp_path)


def test_without_tiktoken_the_error_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without(monkeypatch, "tiktoken")
    (found,) = _problems(tmp_path, "{tiktoken: o200k_base}")
    assert "pip install 'llm-latency-lens[tiktoken]'" in found


def test_the_test_tokenizers_split_words_into_pieces(tmp_path: Path) -> None:
    # The exactness tests above are only worth something if some words are several tokens:
    # then a cut at a word boundary alone could not hit every length.
    for tok in (
        HfTokenizer(wordpiece(tmp_path / "t.json"), "t"),
        HfTokenizer(byte_bpe(tmp_path / "b.json"), "b"),
    ):
        assert any(tok.count(w) > 1 for w in WORDS), tok.name


def test_tiktoken_never_downloads_an_encoding_it_has_not_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tiktoken")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))  # empty: nothing cached
    with pytest.raises(TokenizerError, match="is not available locally, and lens downloads"):
        load_tokenizer({"tiktoken": "o200k_base"}, tmp_path)
    with pytest.raises(TokenizerError, match="unknown tiktoken encoding 'nope'"):
        load_tokenizer({"tiktoken": "nope"}, tmp_path)


def test_a_tiktoken_encoding_counts_and_makes_exact_text(monkeypatch: pytest.MonkeyPatch) -> None:
    tiktoken = pytest.importorskip("tiktoken")
    # A byte-level encoding built here (one token a byte): no file, no download.
    tiny = tiktoken.Encoding(
        name="tiny",
        pat_str=r"""\S+|\s+""",
        mergeable_ranks={bytes([i]): i for i in range(256)},
        special_tokens={},
    )
    monkeypatch.setattr(tiktoken, "get_encoding", lambda name: tiny)
    tok = load_tokenizer({"tiktoken": "tiny"}, Path())
    assert tok.name == "tiktoken:tiny"
    assert tok.count("the water") == 9
    for tokens in (1, 7, 64, 500):
        assert tok.count(tok.text_of_length(tokens, 3)) == tokens

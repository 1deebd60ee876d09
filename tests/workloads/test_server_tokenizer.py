"""``tokenizer: server``: the simulator's llama.cpp-style ``/tokenize`` counts, in a
pre-flight of ``lens run`` before anything is measured (over real sockets); ``lens plan``
sends nothing and says so; a server that cannot count is a clear input error."""

from __future__ import annotations

import dataclasses
import json
import pickle
import textwrap
from pathlib import Path
from typing import Any

import pytest
import trio

import lens
from lens import exitcodes
from lens.cli import main
from lens.errors import ScenarioError
from lens.plan.model import SimSettings
from lens.plan.split import plan_hash
from lens.run.tokenize_http import HttpTransport
from lens.scenario.load import parse_scenario
from lens.scenario.server_tokenizer import (
    PreflightError,
    ServerTarget,
    learnt_before_closing,
    server_preflight,
    unit_check_calls,
)
from lens.scenario.tokenizers import Tokenizer, TokenizerError
from lens.sim.server import SimTokenizer
from tests.workloads.conftest import StartSim

SIM = SimSettings(ttft_s=0.01, itl_s=0.001, output_tokens=3)
LENGTHS = (7, 40, 133)


def scenario(tmp_path: Path, base: str, *, tokenizer: str = "server", extra: str = "") -> Path:
    prompts = "".join(
        f"  - id: p{n}\n    synthetic: {{input_tokens: {n}, output_tokens: 3, seed: {n}}}\n"
        for n in LENGTHS
    )
    path = tmp_path / "s.yaml"
    path.write_text(
        f"version: 1\nname: ts\ntokenizer: {tokenizer}\nproviders:\n"
        f"  srv: {{type: openai-compatible, base_url: {base}, model: m}}\n"
        f"prompts:\n{prompts}{textwrap.dedent(extra)}"
        "load:\n  - {id: s, pattern: burst, requests: 3}\n"
    )
    return path


def sim_count(text: str) -> int:
    return len(SimTokenizer().tokenize(text))


def test_the_sim_tokenizer_round_trips_and_splits_long_words() -> None:
    tok = SimTokenizer()
    ids = tok.tokenize("the people of water ")
    assert len(ids) == 6  # the, " peopl", "e", " of", " water", " "
    assert tok.detokenize(ids) == "the people of water "
    assert tok.tokenize("the") == ids[:1]


async def test_run_counts_with_the_server_before_measuring_and_lengths_are_exact(
    start_sim: StartSim, tmp_path: Path
) -> None:
    server, base = await start_sim(SIM)
    results = await lens.run_async(scenario(tmp_path, base))
    assert results.exit_code == 0
    bodies = [json.loads(b) for b in server.received]
    tokenize = [b for b in bodies if "content" in b]
    chats = [b for b in bodies if "messages" in b]
    assert len(tokenize) + len(chats) == len(bodies)
    # Every tokenize call came before the first measured request, and none after.
    first_chat = next(i for i, b in enumerate(bodies) if "messages" in b)
    assert all("content" in b for b in bodies[:first_chat])
    assert all("messages" in b for b in bodies[first_chat:])
    assert len(chats) == 3 == len(results.records)
    lengths = sorted(sim_count(b["messages"][-1]["content"]) for b in chats)
    assert tuple(lengths) == LENGTHS  # exact in the server's own count
    preflight = results.plan["tokenizer_preflight"]
    # As many as lens plan said: the one-token word check, and no call a synthetic prompt.
    assert preflight["calls"] == len(tokenize) == unit_check_calls()
    assert preflight["seconds"] is not None
    assert preflight["seconds"] > 0
    assert list(preflight["origins"]) == [base.removesuffix("/v1")]
    assert results.plan["tokenizer"] == "server:srv"
    # No stage counts the pre-flight: the one stage has the 3 chat requests only.
    (summary,) = results.summaries
    assert summary.requests == 3


async def test_plan_sends_nothing_and_says_the_counts_are_estimates(
    start_sim: StartSim, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, base = await start_sim(SIM)
    path = scenario(tmp_path, base)
    code = await trio.to_thread.run_sync(main, ["plan", str(path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "server:srv (estimated; counted by the server at lens run)" in out
    assert f"lens run counts them with {base.removesuffix('/v1')}/tokenize in a pre-flight" in out
    # The one-token word check; synthetic texts need no more when the words join exactly.
    assert f"about {unit_check_calls()} calls" in out
    assert list(server.received) == []


async def test_dataset_filters_count_with_the_server(start_sim: StartSim, tmp_path: Path) -> None:
    server, base = await start_sim(SIM)
    # The estimate counts "people people" as 4 tokens, the server as 4 ("peopl", "e" twice);
    # "abcdefghij" is 3 by the estimate (10 characters), 2 by the server.
    (tmp_path / "p.txt").write_text("abcdefghij\nthe of and\nsomething longer here ok\n")
    path = tmp_path / "d.yaml"
    path.write_text(
        "version: 1\nname: d\ntokenizer: {server: llamacpp}\nproviders:\n"
        f"  srv: {{type: openai-compatible, base_url: {base}, model: m}}\n"
        "prompts:\n  - id: d\n    dataset: {path: p.txt, format: text-lines, "
        "filter: {min_input_tokens: 2, max_input_tokens: 3}}\n"
        "load:\n  - {id: s, pattern: burst, requests: 2}\n"
    )
    planned = lens.compile_plan(lens.load_scenario(path), env={}).tokenizer_preflight
    assert planned is not None
    assert planned.calls is None
    results = await lens.run_async(path)
    # lens plan said how many calls the pre-flight makes: one a counted text.
    assert results.plan["tokenizer_preflight"]["calls"] == planned.planned_calls
    assert planned.planned_calls == len(server.received) - 2  # the 2 measured requests
    sent = {
        json.loads(b)["messages"][-1]["content"]
        for b in server.received
        if "messages" in json.loads(b)
    }
    # "the of and" is 3 tokens and "abcdefghij" 2 (the estimate: 3 and 3); the long one 6.
    assert sent == {"abcdefghij", "the of and"}
    assert results.plan["prompt_sources"][0]["tokenizer"] == "server:srv"


def test_a_server_that_is_down_is_a_one_line_input_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = scenario(tmp_path, "http://127.0.0.1:9/v1")  # discard port: nothing listens
    assert main(["run", "-q", str(path)]) == exitcodes.INPUT
    err = capsys.readouterr().err
    assert "tokenizer: server (srv): POST http://127.0.0.1:9/tokenize failed: ConnectError" in err
    assert "Traceback" not in err


async def test_a_server_that_cannot_tokenize_is_named(start_sim: StartSim, tmp_path: Path) -> None:
    _, base = await start_sim(SIM)
    # The vLLM format to a llama.cpp-style server: its /tokenize refuses the body.
    path = scenario(tmp_path, base, tokenizer="{server: vllm}")
    with pytest.raises(PreflightError) as info:
        await lens.run_async(path)
    assert "POST " + base.removesuffix("/v1") + "/tokenize cannot count tokens: HTTP 400" in str(
        info.value
    )


async def test_auto_detects_vllm_by_its_reply_and_keeps_its_format(
    start_sim: StartSim, tmp_path: Path
) -> None:
    server, base = await start_sim(SIM)
    server.tokenizer.format = "vllm"
    results = await lens.run_async(scenario(tmp_path, base))
    assert results.exit_code == 0
    bodies = [json.loads(b) for b in server.received]
    tokenize = [b for b in bodies if "messages" not in b]
    # The llama.cpp form once (refused with a 400), then vLLM's for every call.
    assert "content" in tokenize[0]
    assert all(b.keys() == {"model", "prompt", "add_special_tokens"} for b in tokenize[1:])
    assert all(b["model"] == "m" and b["add_special_tokens"] is False for b in tokenize[1:])
    chats = [b["messages"][-1]["content"] for b in bodies if "messages" in b]
    assert sorted(sim_count(t) for t in chats) == list(LENGTHS)
    assert results.plan["tokenizer_preflight"]["calls"] == len(tokenize)


async def test_a_server_without_tokenize_is_a_404_error(
    start_sim: StartSim, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, base = await start_sim(SIM)
    server.tokenizer.format = None
    code = await trio.to_thread.run_sync(main, ["run", "-q", str(scenario(tmp_path, base))])
    assert code == exitcodes.INPUT
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0  # one line
    assert f"POST {base.removesuffix('/v1')}/tokenize cannot count tokens: HTTP 404" in err
    assert all("messages" not in json.loads(b) for b in server.received)  # nothing measured


@pytest.mark.parametrize("flavour", ["llamacpp", "vllm"])
async def test_cutting_by_detokenize_is_exact(start_sim: StartSim, flavour: str) -> None:
    server, base = await start_sim(SIM)
    server.tokenizer.format = "vllm" if flavour == "vllm" else "llamacpp"

    def cut() -> list[int]:
        target = ServerTarget("srv", base.removesuffix("/v1"), "m", "auto")
        with server_preflight(HttpTransport(timeout_s=5)) as session:
            tok = session.tokenizer(target)
            tok._unit = ()  # as for a vocabulary without one-token words: cut instead
            texts = [tok.text_of_length(n, seed=n) for n in (1, 9, 64, 201)]
            counts = [sim_count(t) for t in texts]
        assert session.calls > 0
        with pytest.raises(Exception, match="after its pre-flight ended"):
            tok.count("x")  # closed: it never calls during a run
        return counts

    assert await trio.to_thread.run_sync(cut) == [1, 9, 64, 201]


def test_a_provider_tokenizer_server_is_refused_where_written(tmp_path: Path) -> None:
    text = (
        "version: 1\nname: t\nproviders:\n"
        "  a: {type: openai-compatible, base_url: 'http://127.0.0.1:1/v1', model: m, "
        "tokenizer: server}\n"
        "prompts:\n  - {id: p, messages: [{role: user, content: hi}]}\n"
        "load:\n  - {id: s, pattern: burst, requests: 1}\n"
    )
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, file="s.yaml", base_dir=tmp_path)
    (found,) = [str(p) for p in info.value.problems]
    assert found.startswith("s.yaml:4:")
    assert "it goes at the top level (tokenizer: {server: auto, provider: a})" in found


def test_a_compiled_plan_without_its_preflight_is_not_run(tmp_path: Path) -> None:
    path = scenario(tmp_path, "http://127.0.0.1:9/v1")
    plan = lens.compile_plan(lens.load_scenario(path), env={})
    assert plan.tokenizer_preflight is not None
    assert plan.tokenizer_preflight.calls is None
    with pytest.raises(lens.errors.InputError, match="compiled without the server's pre-flight"):
        lens.run(plan)


async def test_a_trace_replay_makes_its_texts_without_calling_during_the_run(
    start_sim: StartSim, tmp_path: Path
) -> None:
    server, base = await start_sim(SIM)
    rows = [(0, 40, 3, [1, 2]), (10, 37, 3, [1]), (20, 70, 3, [1, 2, 3]), (30, 9, 3, [])]
    (tmp_path / "mc.jsonl").write_text(
        "".join(
            json.dumps({"timestamp": t, "input_length": n, "output_length": o, "hash_ids": h})
            + "\n"
            for t, n, o, h in rows
        )
    )
    path = tmp_path / "t.yaml"
    path.write_text(
        "version: 1\nname: tr\ntokenizer: server\nproviders:\n"
        f"  srv: {{type: openai-compatible, base_url: {base}, model: m}}\n"
        "load:\n  - {id: r, pattern: trace, file: mc.jsonl, format: mooncake, block_tokens: 16}\n"
    )
    results = await lens.run_async(path)
    assert results.exit_code == 0
    bodies = [json.loads(b) for b in server.received]
    first_chat = next(i for i, b in enumerate(bodies) if "messages" in b)
    assert all("messages" in b for b in bodies[first_chat:])  # no call during the replay
    texts = [b["messages"][-1]["content"] for b in bodies[first_chat:]]
    assert sorted(sim_count(t) for t in texts) == sorted(n for _, n, _, _ in rows)
    # Rows sharing hash id 1 share its 16-token block exactly.
    heads = {t.split(" ")[:16].__str__() for t in texts if sim_count(t) >= 16}
    assert len(heads) == 1


class CharTransport:
    """An in-process server whose tokenizer reads every character as a token: no word of
    lens's list is one token, so texts are cut by detokenize."""

    def __init__(self, reply: bytes | None = None) -> None:
        self.reply = reply

    def post(self, target: ServerTarget, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        if self.reply is not None:
            return 200, self.reply
        if path == "/tokenize":
            return 200, json.dumps({"tokens": [ord(c) for c in body["content"]]}).encode()
        return 200, json.dumps({"content": "".join(chr(i) for i in body["tokens"])}).encode()

    def close(self) -> None:
        pass


TARGET = ServerTarget("srv", "http://in-process", "m", "llamacpp")


def test_a_vocabulary_without_one_token_words_is_cut_exactly_but_refused_for_traces() -> None:
    with server_preflight(CharTransport()) as session:
        tok = session.tokenizer(TARGET)
        assert [len(tok.text_of_length(n, seed=n)) for n in (1, 5, 50)] == [1, 5, 50]
        with pytest.raises(PreflightError, match="a trace replay makes its texts as it sends"):
            learnt_before_closing(session, makes_texts_later=True)
        learnt_before_closing(session, makes_texts_later=False)  # no trace: nothing to learn
        auto = session.tokenizer(ServerTarget("srv", "http://in-process", "m", "auto"))
        assert auto.detokenize([104, 105]) == "hi"  # the flavour settled by a tokenize first
    frozen = pickle.loads(pickle.dumps(tok))  # as a worker process gets it
    assert frozen.name == tok.name
    with pytest.raises(TokenizerError, match="after its pre-flight ended"):
        frozen.text_of_length(5, seed=1)


def test_a_reply_that_is_not_a_token_list_is_named() -> None:
    for reply, what in ((b"nope", "not JSON"), (b"[1]", "not a JSON object"), (b"{}", "'tokens'")):
        with server_preflight(CharTransport(reply)) as session:
            tok = session.tokenizer(TARGET)
            with pytest.raises(PreflightError, match=what):
                tok.count("the")
    with server_preflight(CharTransport(b'{"tokens": [1]}')) as session:
        tok = session.tokenizer(TARGET)
        assert tok.count("the") == 1
        with pytest.raises(PreflightError, match="/detokenize cannot count tokens: no 'content'"):
            tok.detokenize([1])


async def test_a_frozen_tokenizer_that_learnt_its_words_makes_texts_without_calls(
    start_sim: StartSim,
) -> None:
    _, base = await start_sim(SIM)

    def learn() -> Tokenizer:
        target = ServerTarget("srv", base.removesuffix("/v1"), "m", "llamacpp")
        with server_preflight(HttpTransport(timeout_s=5)) as session:
            session.tokenizer(target)
            learnt_before_closing(session, makes_texts_later=True)
        frozen: Tokenizer = pickle.loads(pickle.dumps(session.tokenizers[0]))
        return frozen

    frozen = await trio.to_thread.run_sync(learn)
    assert sim_count(frozen.text_of_length(77, seed=3)) == 77


def test_plan_json_lists_the_planned_calls(tmp_path: Path) -> None:
    path = scenario(tmp_path, "http://127.0.0.1:9/v1")
    loaded = lens.load_scenario(path)
    plan = lens.compile_plan(loaded, env={})
    doc = lens.describe_plan(plan, env={})
    estimate = loaded.tokenizer_for()
    assert pickle.loads(pickle.dumps(estimate)).name == estimate.name
    assert doc["tokenizer_preflight"] == {
        "tokenizers": ["server:srv"],
        "origins": ["http://127.0.0.1:9"],
        "planned_calls": unit_check_calls(),
        "calls": None,
        "seconds": None,
    }
    tokenizer = plan.prompt_sources[0].tokenizer
    assert tokenizer == "server:srv (estimated; counted by the server at lens run)"


def test_shards_agree_on_the_plan_whatever_their_preflight_took(tmp_path: Path) -> None:
    plan = lens.compile_plan(lens.load_scenario(scenario(tmp_path, "http://h:1/v1")), env={})
    assert plan.tokenizer_preflight is not None
    took = [
        dataclasses.replace(
            plan,
            tokenizer_preflight=dataclasses.replace(plan.tokenizer_preflight, calls=99, seconds=s),
        )
        for s in (0.5, 1.5)
    ]
    assert plan_hash(took[0]) == plan_hash(took[1]) == plan_hash(plan)

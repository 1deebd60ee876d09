"""``tokenizer: server``: the simulator's llama.cpp-style ``/tokenize`` counts, in a
pre-flight of ``lens run`` before anything is measured (over real sockets); ``lens plan``
sends nothing and says so; a server that cannot count is a clear input error."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import trio

import lens
from lens import exitcodes
from lens.cli import main
from lens.errors import ScenarioError
from lens.plan.model import SimSettings
from lens.run.tokenize_http import HttpTransport
from lens.scenario.load import parse_scenario
from lens.scenario.server_tokenizer import (
    PreflightError,
    ServerTarget,
    server_preflight,
    unit_check_calls,
)
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
    results = await lens.run_async(path)
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

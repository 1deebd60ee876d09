"""openai-compatible ``endpoint: completions | embeddings`` and ``stream: false`` over real
sockets against the simulator: what arrives at the server, which metrics a record has
(a whole-body response times no token: TTFT/ITL/TPOT absent, never e2e), inputs/s of
embedding batches, SLAs on a metric never measured, and the scenario's refusals."""

from __future__ import annotations

import json
import textwrap
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import lens
from lens.errors import ScenarioError
from lens.export.merge import record_from_out
from lens.export.results import record_out
from lens.metrics.cost import record_cost
from lens.plan.model import Message, PromptSpec, ProviderSpec, SimSettings
from lens.pricing.catalog import ModelPrice, PricingCatalog, Rates
from lens.providers.base import PayloadShapeError
from lens.providers.openai_endpoints import (
    CompletionsDecoder,
    WholeBodyDecoder,
    completion_prompt,
    embedding_inputs,
)
from lens.records import ErrorClass, TokenSource
from lens.scenario.load import parse_scenario
from lens.scenario.tokenizers import Tokenizer
from lens.sim.text import completion_text
from tests.run.test_recordwire import _every_field_set
from tests.workloads.conftest import StartSim

SIM = SimSettings(ttft_s=0.02, itl_s=0.002, output_tokens=5)
PROMPTS = """\
prompts:
  - id: q
    messages: [{role: system, content: be brief}, {role: user, content: what is up}]
"""


def write(tmp_path: Path, providers: str, load: str, extra: str = "") -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(
        "version: 1\nname: ep\nproviders:\n"
        + textwrap.indent(textwrap.dedent(providers), "  ")
        + PROMPTS
        + "load:\n"
        + textwrap.indent(textwrap.dedent(load), "  ")
        + textwrap.dedent(extra)
    )
    return path


def bodies(received: Any) -> list[dict[str, Any]]:
    return [json.loads(b) for b in received]


async def test_completions_stream_the_prompt_text_and_time_every_token(
    start_sim: StartSim, tmp_path: Path
) -> None:
    server, base = await start_sim(SIM)
    scenario = write(
        tmp_path,
        f"c: {{type: openai-compatible, base_url: {base}, model: m, endpoint: completions}}\n",
        "- {id: s, pattern: burst, requests: 2, max_tokens: 9}\n",
    )
    results = await lens.run_async(scenario)
    assert results.exit_code == 0
    for body in bodies(server.received):
        assert body == {
            "model": "m",
            "prompt": "be brief\n\nwhat is up",  # the texts, joined by a blank line
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": 9,
        }
    assert len(results.records) == 2
    for rec in results.records:
        assert rec.status == "ok"
        assert rec.ttft is not None
        assert rec.tpot is not None
        assert rec.e2e is not None
        assert rec.ttft < rec.e2e
        assert rec.chunks == 5
        assert (rec.output_tokens, rec.token_source) == (5, "usage")
        assert rec.provider_facts["stop_reason"] == "stop"
        assert rec.inputs is None


async def test_stream_false_measures_e2e_and_usage_and_no_token_timing(
    start_sim: StartSim, tmp_path: Path
) -> None:
    server, base = await start_sim(SIM)
    scenario = write(
        tmp_path,
        f"""\
        chat: {{type: openai-compatible, base_url: {base}, model: m, stream: false}}
        text:
          type: openai-compatible
          base_url: {base}
          model: m
          endpoint: completions
          stream: false
        """,
        "- {id: s, pattern: concurrency, concurrency: 2, requests: 4, max_tokens: 9}\n",
    )
    results = await lens.run_async(scenario)
    assert results.exit_code == 0
    sent = bodies(server.received)
    assert len(sent) == 8
    for body in sent:
        assert body["stream"] is False
        assert "stream_options" not in body  # OpenAI refuses it without a stream
        assert body["max_tokens"] == 9
    assert sum("messages" in b for b in sent) == sum("prompt" in b for b in sent) == 4
    for rec in results.records:
        assert rec.status == "ok"
        assert rec.e2e is not None
        assert rec.e2e > 0
        # Not measured, so absent: never 0, never equal to e2e.
        for metric in ("ttft", "ttfot", "tpot", "output_tokens_per_s", "ttft_from_intended"):
            assert getattr(rec, metric) is None, metric
        assert rec.t_first_token is None
        assert rec.t_last_token is None
        assert rec.chunks == 0
        assert (rec.output_tokens, rec.token_source) == (5, "usage")
        assert rec.input_tokens is not None
        assert rec.provider_facts["stop_reason"] == "stop"
        assert rec.provider_facts["ended_early"] == "5/9"
    for summary in results.summaries:
        assert summary.ended_early == 4  # every output stopped at 5 of its 9 (machine-readable)
        assert summary.metrics["ttft"].n == 0
        assert summary.metrics["itl"].n == 0
        assert summary.metrics["e2e"].n == 4
        assert summary.throughput is not None
        assert summary.throughput > 0
        assert summary.inputs_per_s is None


async def test_embeddings_send_batches_and_report_inputs_per_second(
    start_sim: StartSim, tmp_path: Path
) -> None:
    server, base = await start_sim(SIM)
    scenario = write(
        tmp_path,
        f"""\
        texts: {{type: openai-compatible, base_url: {base}, model: e, endpoint: embeddings}}
        batch:
          type: openai-compatible
          base_url: {base}
          model: e
          endpoint: embeddings
          inputs_per_request: 3
          body: {{dimensions: 8}}
        """,
        "- {id: s, pattern: concurrency, concurrency: 1, requests: 3}\n",
    )
    results = await lens.run_async(scenario)
    assert results.exit_code == 0
    sent = bodies(server.received)
    assert {json.dumps(b, sort_keys=True) for b in sent} == {
        json.dumps({"model": "e", "input": ["be brief", "what is up"]}, sort_keys=True),
        json.dumps(
            {"model": "e", "input": ["be brief", "what is up", "be brief"], "dimensions": 8},
            sort_keys=True,
        ),
    }
    for rec in results.records:
        assert rec.status == "ok"
        assert rec.inputs == (3 if rec.provider == "batch" else 2)
        assert rec.output_tokens is None  # an embedding generates nothing
        assert rec.token_source == "usage"
        assert rec.input_tokens is not None
        assert rec.ttft is None
        assert rec.tpot is None
        assert rec.chunks == 0
        assert rec.e2e is not None
        assert rec.e2e > 0
    by_provider = {s.provider: s for s in results.summaries}
    for pid, per_request in (("texts", 2), ("batch", 3)):
        summary = by_provider[pid]
        assert summary.inputs == 3 * per_request
        assert summary.duration_s is not None
        assert summary.rps is not None
        assert summary.inputs_per_s == pytest.approx(summary.inputs / summary.duration_s)
        assert summary.inputs_per_s == pytest.approx(summary.rps * per_request)
        assert summary.throughput is None  # no output tokens: not measured, not 0
        assert summary.ended_early is None  # none did (embeddings have no output limit)


async def test_an_sla_on_ttft_without_a_stream_is_inconclusive(
    start_sim: StartSim, tmp_path: Path
) -> None:
    _, base = await start_sim(SIM)
    scenario = write(
        tmp_path,
        f"chat: {{type: openai-compatible, base_url: {base}, model: m, stream: false}}\n",
        "- {id: s, pattern: burst, requests: 2}\n",
        """\
        sla:
          - ttft.p50 < 10s
          - e2e.p50 < 10s
          - inputs_per_s > 1/s
        """,
    )
    results = await lens.run_async(scenario)
    verdicts = {v.sla: (v.outcome, v.reason) for v in results.verdicts}
    assert {sla: outcome for sla, (outcome, _) in verdicts.items()} == {
        "ttft.p50 < 10s": "inconclusive",
        "e2e.p50 < 10s": "pass",
        "inputs_per_s > 1/s": "inconclusive",
    }
    assert verdicts["ttft.p50 < 10s"][1] == (
        "ttft was never measured in 2 successful requests: no response was streamed "
        "(stream: false, endpoint: embeddings): no token was timed"
    )
    assert verdicts["inputs_per_s > 1/s"][1] == (
        "inputs_per_s could not be computed (no successful request carried embedding inputs)"
    )
    assert results.exit_code != 0  # an inconclusive SLA fails the run, as everywhere


def test_an_embeddings_record_survives_the_results_round_trip() -> None:
    rec = _every_field_set()
    assert record_from_out(record_out(rec)).inputs == rec.inputs == 4


# --- the scenario's refusals -------------------------------------------------------------


def problems(tmp_path: Path, provider: str) -> list[str]:
    text = "version: 1\nname: ep\nproviders:\n  p: " + provider + "\n" + PROMPTS
    text += "load:\n  - {id: s, pattern: burst, requests: 1}\n"
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, file="s.yaml", base_dir=tmp_path)
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(
    ("provider", "expected"),
    [
        (
            "{type: anthropic, model: c, api_key: k, stream: false}",
            "s.yaml:4:46: providers.p.stream: stream: false is not supported for anthropic "
            "providers",
        ),
        (
            "{type: simulated, protocol: gemini, stream: false}",
            "s.yaml:4:42: providers.p.stream: stream: false is not supported for simulated "
            "(protocol: gemini)",
        ),
        (
            "{type: simulated, protocol: bedrock, endpoint: embeddings}",
            "s.yaml:4:43: providers.p.endpoint: endpoint: embeddings needs protocol: openai",
        ),
        (
            "{type: openai-compatible, base_url: 'http://h/v1', model: m, inputs_per_request: 2}",
            "s.yaml:4:67: providers.p.inputs_per_request: inputs_per_request is the batch size",
        ),
        (
            "{type: openai-compatible, base_url: 'http://h/v1', model: m, endpoint: embeddings, "
            "output_tokens: exact}",
            "output_tokens: exact asks for generated tokens, and endpoint: embeddings",
        ),
    ],
)
def test_what_a_type_cannot_do_is_refused_at_its_key(
    tmp_path: Path, provider: str, expected: str
) -> None:
    found = problems(tmp_path, provider)
    assert any(expected in p for p in found), found


# --- decoders, byte by byte ---------------------------------------------------------------


def outcome_of(decoder: WholeBodyDecoder, body: bytes, *, eof: bool = True) -> Any:
    decoder.feed(body[:5], 1)
    decoder.feed(body[5:], 2)
    return decoder.finish(3, eof=eof)


def test_a_whole_body_without_usage_is_estimated_and_a_cut_one_is_a_cut_stream() -> None:
    text = completion_text(8)
    body = json.dumps({"choices": [{"message": {"content": text}, "finish_reason": "length"}]})
    out = outcome_of(WholeBodyDecoder("chat"), body.encode())
    assert out.error_class is None
    assert out.token_source is TokenSource.ESTIMATED
    assert out.usage.output_tokens == round(len(text) / 4)
    assert (out.t_first_token, out.chunk_times, out.extra) == (None, (), {"stop_reason": "length"})
    cut = outcome_of(WholeBodyDecoder("chat"), body.encode(), eof=False)
    assert cut.error_class is ErrorClass.CUT_STREAM


def test_a_whole_body_error_empty_or_wrong_shape_is_named() -> None:
    error = outcome_of(WholeBodyDecoder("completions"), b'{"error": {"message": "boom"}}')
    assert (error.error_class, error.error_message) == (ErrorClass.STREAM_ERROR, "boom")
    empty = outcome_of(WholeBodyDecoder("completions"), b'{"choices": [{"text": ""}]}')
    assert empty.error_class is ErrorClass.EMPTY
    with pytest.raises(PayloadShapeError, match="not JSON"):
        outcome_of(WholeBodyDecoder("chat"), b"<html>oops</html>")
    with pytest.raises(PayloadShapeError, match="1 embeddings for 2 inputs"):
        outcome_of(
            WholeBodyDecoder("embeddings", inputs=["a", "b"]),
            b'{"data": [{"embedding": [0.1]}], "usage": {"prompt_tokens": 2}}',
        )


def test_embeddings_without_usage_estimate_their_inputs() -> None:
    out = outcome_of(
        WholeBodyDecoder("embeddings", inputs=["abcdefgh", "abcd"]),
        b'{"data": [{"embedding": [0.1]}, {"embedding": "AAAA"}]}',
    )
    assert (out.inputs, out.usage.input_tokens, out.token_source) == (
        2,
        3,
        TokenSource.ESTIMATED,
    )
    assert out.usage.output_tokens is None
    assert out.error_class is None


def test_a_completions_stream_reads_text_usage_and_in_band_errors() -> None:
    decoder = CompletionsDecoder()
    decoder.feed(b'data: {"choices":[{"text":"ab","finish_reason":null}]}\n\n', 10)
    decoder.feed(b'data: {"choices":[{"text":"cd","finish_reason":"length"}]}\n\n', 20)
    decoder.feed(b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}\n\n', 21)
    decoder.feed(b"data: [DONE]\n\n", 22)
    out = decoder.finish(23, eof=True)
    assert (out.chunk_times, out.chunk_tokens) == ((10, 20), (2, 2))
    assert (out.usage.input_tokens, out.usage.output_tokens) == (3, 4)
    assert out.extra == {"stop_reason": "length"}
    failed = CompletionsDecoder()
    failed.feed(b'data: {"choices":[{"text":"ab"}]}\n\ndata: {"error":{"message":"x"}}\n\n', 5)
    assert failed.finish(6, eof=True).error_class is ErrorClass.STREAM_ERROR


def test_the_prompt_maps_to_a_completion_string_and_an_embedding_batch() -> None:
    prompt = PromptSpec("p", (Message("system", "a"), Message("user", "b")))
    assert completion_prompt(prompt) == "a\n\nb"
    assert embedding_inputs(prompt, None) == ["a", "b"]
    assert embedding_inputs(prompt, 5) == ["a", "b", "a", "b", "a"]


class _Words(Tokenizer):
    """A tokenizer counting words: enough to tell its counts from the estimate's."""

    name = "words"

    def count(self, text: str) -> int:
        return len(text.split())

    def text_of_length(self, tokens: int, seed: int) -> str:
        return "w " * tokens


def test_a_completions_stream_without_usage_is_counted_by_the_tokenizer() -> None:
    decoder = CompletionsDecoder(tokenizer=_Words())
    decoder.feed(b'data: {"choices":[{"text":"a b c "}]}\n\n', 10)
    decoder.feed(b'data: {"choices":[{"text":"d e "}]}\n\ndata: [DONE]\n\n', 20)
    out = decoder.finish(21, eof=True)
    assert (out.usage.output_tokens, out.token_source) == (5, TokenSource.TOKENIZER)
    assert out.chunk_tokens == (3, 2)


def test_an_embeddings_batch_is_priced_by_its_input_alone() -> None:
    price = ModelPrice(
        provider="openai-compatible",
        model="e",
        rates=Rates(input=Decimal(2), output=Decimal(1000)),
        source="test",
        checked=PricingCatalog.load().checked,
    )
    spec = ProviderSpec(id="e", type="openai-compatible", model="e", base_url="x", price=price)
    base = _every_field_set()
    rec = replace(
        base,
        ok=True,
        error_class=None,
        input_tokens=500_000,
        output_tokens=None,
        cached_input_tokens=None,
        cache_write_tokens=None,
        reasoning_tokens=None,
    )
    found = record_cost(rec, spec)
    assert found is not None
    assert found.total == Decimal(1)  # 0.5M input tokens at $2 per 1M, no output
    assert record_cost(replace(rec, inputs=None), spec) is None  # generation: unknown output

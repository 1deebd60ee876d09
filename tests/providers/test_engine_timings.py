"""The engine's own timings in every record: llama.cpp's ``timings`` object on the final chat
chunk, TGI's timing headers, and the simulator's llama.cpp-style ``engine_timings`` over real
sockets (the offline stand-in for tests/engine/, which need the real llama-server)."""

from __future__ import annotations

import json
import statistics

import httpx
import pytest

from lens.api import run_async
from lens.export.report import render_html
from lens.export.table import render as render_table
from lens.metrics.request import request_metrics
from lens.providers.base import header_facts, header_timings, llama_timings
from lens.providers.openai_chat import OpenAIChatDecoder
from lens.providers.openai_endpoints import CompletionsDecoder, WholeBodyDecoder
from lens.records import EngineTimings, RequestRecord
from tests.providers.test_openai_chat import DONE, ROLE, content, usage

# As llama-server b6xxx sends it: usage and timings ride on the finish_reason chunk.
LLAMA_FINAL = (
    b'data: {"choices":[{"finish_reason":"length","index":0,"delta":{}}],"created":1,'
    b'"id":"chatcmpl-x","model":"gemma","object":"chat.completion.chunk",'
    b'"usage":{"completion_tokens":3,"prompt_tokens":12,"total_tokens":15},'
    b'"timings":{"cache_n":4,"prompt_n":8,"prompt_ms":21.5,"prompt_per_token_ms":2.69,'
    b'"prompt_per_second":372.1,"predicted_n":3,"predicted_ms":40.2,'
    b'"predicted_per_token_ms":13.4,"predicted_per_second":74.6}}\n\n'
)


def _decode(*events: bytes) -> EngineTimings | None:
    dec = OpenAIChatDecoder()
    for k, event in enumerate(events):
        dec.feed(event, 1000 * (k + 1))
    out = dec.finish(10_000, eof=True)
    assert out.error_class is None, out.error_message
    return out.engine


def test_llama_cpp_timings_on_the_final_chunk_are_kept_normalised() -> None:
    engine = _decode(ROLE, content("a"), content("b"), content("c"), LLAMA_FINAL, DONE)
    assert engine == EngineTimings(
        prompt_ms=21.5,
        prompt_tokens=8,
        cached_tokens=4,
        decode_ms=40.2,
        decode_tokens=3,
        per_token_ms=13.4,
    )


# llama-server's stream as it sends it (b1-0c1e570, include_usage): a role chunk whose
# content is null, one chunk per token, the finish chunk, then usage with timings.
_HEAD = b'data: {"choices":[{"finish_reason":%s,"index":0,"delta":%s}],"created":1,"id":"c",'
_TAIL = b'"model":"gemma3-270m","object":"chat.completion.chunk"}\n\n'
LLAMA_STREAM = (
    _HEAD % (b"null", b'{"role":"assistant","content":null}') + _TAIL,
    _HEAD % (b"null", b'{"content":"Say"}') + _TAIL,
    _HEAD % (b"null", b'{"content":" hi"}') + _TAIL,
    _HEAD % (b'"length"', b"{}") + _TAIL,
    b'data: {"choices":[],"created":1,"id":"c","model":"gemma3-270m","object":"chat.completion'
    b'.chunk","usage":{"completion_tokens":2,"prompt_tokens":15,"total_tokens":17,'
    b'"prompt_tokens_details":{"cached_tokens":0}},"timings":{"cache_n":0,"prompt_n":15,'
    b'"prompt_ms":23.0,"prompt_per_token_ms":1.53,"prompt_per_second":652.1,"predicted_n":2,'
    b'"predicted_ms":14.9,"predicted_per_token_ms":14.9,"predicted_per_second":134.2}}\n\n',
    DONE,
)


def test_llama_servers_null_role_chunk_is_no_token_and_its_timings_are_kept() -> None:
    dec = OpenAIChatDecoder()
    for k, event in enumerate(LLAMA_STREAM):
        dec.feed(event, 1000 * (k + 1))
    out = dec.finish(10_000, eof=True)
    assert out.error_class is None
    assert out.chunk_times == (2000, 3000)  # the role chunk at 1000 is not a token
    assert out.usage.output_tokens == 2
    assert out.engine == EngineTimings(
        prompt_ms=23.0,
        prompt_tokens=15,
        cached_tokens=0,
        decode_ms=14.9,
        decode_tokens=2,
        per_token_ms=14.9,
    )


def test_a_stream_without_timings_has_none() -> None:
    assert _decode(ROLE, content("a"), usage(5, 1), DONE) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("nope", None),
        ({}, None),
        ({"prompt_ms": "12"}, None),  # a string is no figure
        ({"prompt_ms": True, "prompt_n": 3.0}, EngineTimings(prompt_tokens=3)),
        ({"prompt_n": 2.5, "predicted_ms": 7}, EngineTimings(decode_ms=7.0)),
        ({"predicted_per_token_ms": float("nan"), "cache_n": 0}, EngineTimings(cached_tokens=0)),
    ],
)
def test_odd_timings_are_left_out_never_failing_the_request(
    raw: object, expected: EngineTimings | None
) -> None:
    assert llama_timings(raw) == expected


def test_a_timings_object_of_the_wrong_shape_does_not_fail_the_stream() -> None:
    final = LLAMA_FINAL.replace(b'"timings":{', b'"timings":[{').replace(b"}}\n\n", b"}]}\n\n")
    assert json.loads(final[6:])  # still JSON: a list where an object belongs
    assert _decode(ROLE, content("a"), final, DONE) is None


def test_tgi_timing_headers_become_engine_timings() -> None:
    facts = header_facts(
        httpx.Headers(
            {
                "x-queue-time": "3",
                "x-inference-time": "120",
                "x-time-per-token": "12",
                "x-prompt-tokens": "7",
                "x-generated-tokens": "10",
            }
        )
    )
    assert facts["x-queue-time"] == "3"  # kept verbatim too
    assert header_timings(facts) == EngineTimings(
        prompt_tokens=7, decode_tokens=10, per_token_ms=12.0
    )
    assert header_timings({"x-time-per-token": "fast"}) is None
    assert header_timings({"x-request-id": "r"}) is None


SCENARIO = """\
version: 1
name: engine-timings
defaults: {{timeout: 10s, max_tokens: 8}}
integrity: {{max_cpu: 100%, max_loop_lag: 10s}}
providers:
  sim: {{type: simulated, ttft: 60ms, itl: 5ms, output_tokens: 8, capacity: 1,
        engine_timings: {engine}}}
prompts:
  - {{id: q, messages: [{{role: user, content: "hello there, engine"}}]}}
load:
  - {{id: one, pattern: concurrency, concurrency: 1, requests: 3}}
  - {{id: two, pattern: concurrency, concurrency: 2, requests: 4}}
"""


async def test_sim_engine_timings_split_ttft_into_prefill_and_queueing() -> None:
    records: list[RequestRecord] = []
    results = await run_async(SCENARIO.format(engine="true"), on_record=records.append)
    assert len(records) == 7
    assert all(r.ok for r in records)
    for rec in records:
        assert rec.engine is not None
        assert rec.engine.prompt_ms is not None
        assert rec.engine.per_token_ms is not None
        assert rec.engine.decode_tokens == rec.output_tokens == 8
        assert rec.engine.per_token_ms == pytest.approx(5.0, abs=0.5)  # the planned itl
    alone = [r for r in records if r.stage == "one"]
    for rec in alone:
        # One at a time: no queue, so the engine's prefill is the planned 60 ms and lens's
        # TTFT exceeds it by the loopback's few milliseconds.
        assert rec.engine is not None
        assert rec.engine.prompt_ms == pytest.approx(60, abs=2)
    overhead_alone = statistics.median(request_metrics(r)["ttft_overhead"] or -1 for r in alone)
    assert 0 <= overhead_alone < 50
    # Two at once on one slot: every other request waits a whole response (~95 ms) for the
    # slot, which the engine does not count as prefill; lens's overhead shows the queue.
    summary = {(s.stage, s.provider): s for s in results.summaries}
    queued = summary[("two", "sim")].metrics["ttft_overhead"]
    assert queued.max is not None
    assert queued.max > 60
    assert summary[("one", "sim")].metrics["engine_prefill"].p50 == pytest.approx(60, abs=2)
    # The table and the HTML report split TTFT at the engine's prefill.
    text = render_table(results)
    assert "engine timings (p50 of the engine's own figures per request):" in text
    line = next(x for x in text.splitlines() if x.startswith("  one/sim: TTFT p50"))
    assert "prefill 60.0 ms (engine)" in line
    assert "engine 5.00 ms" in line
    html = render_html(results)
    assert "<h2>Engine timings</h2>" in html or ">Engine timings<" in html
    assert "TTFT - prefill p50" in html
    record_out = next(r for r in results.records if r.stage == "one")
    assert record_out.engine is not None
    assert record_out.engine.decode_tokens == 8
    assert record_out.ttft_overhead is not None
    assert record_out.ttft_overhead >= 0


async def test_sim_without_engine_timings_sends_none() -> None:
    records: list[RequestRecord] = []
    results = await run_async(SCENARIO.format(engine="false"), on_record=records.append)
    assert records
    assert all(r.ok and r.engine is None for r in records)
    assert results.summaries[0].metrics["ttft_overhead"].n == 0
    assert "engine timings" not in render_table(results)
    assert "TTFT - prefill" not in render_html(results)


_TIMINGS = (
    b'"timings":{"cache_n":0,"prompt_n":6,"prompt_ms":9.5,"predicted_n":2,'
    b'"predicted_ms":20.0,"predicted_per_token_ms":20.0}'
)


def test_a_not_streamed_llama_cpp_body_keeps_its_timings() -> None:
    # stream: false: llama-server puts the same timings object in the chat.completion body.
    dec = WholeBodyDecoder("chat")
    dec.feed(
        b'{"choices":[{"index":0,"finish_reason":"length","message":{"role":"assistant",'
        b'"content":"Hi there"}}],"usage":{"completion_tokens":2,"prompt_tokens":6,'
        b'"total_tokens":8},' + _TIMINGS + b"}",
        1,
    )
    out = dec.finish(2, eof=True)
    assert out.error_class is None
    assert out.engine == EngineTimings(
        prompt_ms=9.5, prompt_tokens=6, cached_tokens=0, decode_ms=20.0, decode_tokens=2,
        per_token_ms=20.0,
    )  # fmt: skip


def test_a_llama_cpp_completions_stream_keeps_its_timings() -> None:
    dec = CompletionsDecoder()
    dec.feed(b'data: {"choices":[{"index":0,"text":"Hi","finish_reason":null}]}\n\n', 1)
    dec.feed(b'data: {"choices":[{"index":0,"text":"!","finish_reason":"length"}],' + _TIMINGS
             + b"}\n\n" + DONE, 2)  # fmt: skip
    out = dec.finish(3, eof=True)
    assert out.error_class is None
    assert out.engine is not None
    assert (out.engine.prompt_ms, out.engine.per_token_ms) == (9.5, 20.0)

"""The streamed and non-streamed Chat Completions answers, byte for byte."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from lens.plan.model import SimSettings
from lens.sim.openai_chat import completion_text, estimate_prompt_tokens
from tests.sim.conftest import LiveSim, StartSim
from tests.sim.rawhttp import CHAT, Response, chat_body, words


def _check_stream(resp: Response, n: int, *, finish: str = "stop", usage: bool = True) -> None:
    """Everything OpenAI's framing promises (docs/wire-formats.md section 1)."""
    assert resp.status == 200
    assert resp.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert resp.headers["transfer-encoding"] == "chunked"
    assert resp.headers["x-request-id"].startswith("req_")
    assert resp.headers["openai-processing-ms"].isdigit()
    assert resp.complete, "the terminating zero-length chunk is missing"
    payloads = resp.payloads()
    assert payloads[-1] == "[DONE]"
    chunks: list[dict[str, Any]] = payloads[:-1]
    first, contents = chunks[0], chunks[1 : 1 + n]
    rest = chunks[1 + n :]

    ids = {c["id"] for c in chunks}
    assert len(ids) == 1
    assert ids.pop().startswith("chatcmpl-")
    for c in chunks:
        assert c["object"] == "chat.completion.chunk"
        assert isinstance(c["created"], int)
        assert c["model"] == "test-model"
    assert first["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }
    ]
    assert first["usage"] is None
    assert [c["choices"][0]["delta"] for c in contents] == [{"content": w} for w in words(n)]
    assert all(c["choices"][0]["finish_reason"] is None for c in contents)
    assert all(c["usage"] is None for c in contents)
    assert rest[0]["choices"] == [
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}
    ]
    if usage:
        assert len(rest) == 2
        assert rest[1]["choices"] == []
        u = rest[1]["usage"]
        assert u["completion_tokens"] == n
        assert u["total_tokens"] == u["prompt_tokens"] + n
        assert u["prompt_tokens_details"] == {"cached_tokens": 0}
        assert u["completion_tokens_details"] == {"reasoning_tokens": 0}
    else:
        assert len(rest) == 1


async def test_stream_framing_with_usage(sim: LiveSim) -> None:
    async with await sim.connect() as conn:
        resp = await conn.chat()
    _check_stream(resp, 5)
    # The raw bytes of one content chunk, exactly.
    chunk_id = resp.payloads()[0]["id"]
    created = resp.payloads()[0]["created"]
    assert (
        resp.chunks[1]
        == (
            f'data: {{"id":"{chunk_id}","object":"chat.completion.chunk","created":{created},'
            '"model":"test-model","choices":[{"index":0,"delta":{"content":"lorem "},'
            '"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
        ).encode()
    )


async def test_stream_without_include_usage_has_no_usage_chunk(sim: LiveSim) -> None:
    async with await sim.connect() as conn:
        resp = await conn.chat(include_usage=False)
    _check_stream(resp, 5, usage=False)


async def test_prompt_tokens_are_estimated_from_message_text(sim: LiveSim) -> None:
    async with await sim.connect() as conn:
        resp = await conn.chat(content="x" * 41)
    assert resp.payloads()[-2]["usage"]["prompt_tokens"] == 11  # ceil(41 / 4)


def test_estimate_prompt_tokens() -> None:
    assert estimate_prompt_tokens([{"role": "user", "content": ""}]) == 1
    assert estimate_prompt_tokens([{"role": "user", "content": "abcd" * 10}]) == 10
    parts = [{"type": "text", "text": "abcd" * 3}, {"type": "image_url", "image_url": {}}]
    assert estimate_prompt_tokens([{"content": parts}, {"content": "abcd"}, "junk"]) == 4
    assert estimate_prompt_tokens([{"content": None}]) == 1


@pytest.mark.parametrize(
    ("field", "limit", "n", "finish"),
    [
        ("max_tokens", 3, 3, "length"),
        ("max_completion_tokens", 2, 2, "length"),
        ("max_tokens", 5, 5, "stop"),  # equal to what the model wanted: not a cut
        ("max_tokens", 50, 5, "stop"),
    ],
)
async def test_max_tokens_caps_output(
    sim: LiveSim, field: str, limit: int, n: int, finish: str
) -> None:
    async with await sim.connect() as conn:
        resp = await conn.request("POST", CHAT, {**chat_body(), field: limit})
    _check_stream(resp, n, finish=finish)


async def test_max_completion_tokens_wins_over_max_tokens(sim: LiveSim) -> None:
    async with await sim.connect() as conn:
        resp = await conn.chat(max_tokens=4, max_completion_tokens=1)
    _check_stream(resp, 1, finish="length")


async def test_tokens_header_overrides_settings(sim: LiveSim) -> None:
    async with await sim.connect() as conn:
        resp = await conn.chat(headers={"x-lens-sim-tokens": "12"})
        _check_stream(resp, 12)
        zero = await conn.chat(headers={"x-lens-sim-tokens": "0"})
    _check_stream(zero, 0)


async def test_long_stream_cycles_the_vocabulary(start_sim: StartSim) -> None:
    sim = await start_sim(SimSettings(ttft_s=0, itl_s=0, output_tokens=300))
    async with await sim.connect() as conn:
        resp = await conn.chat()
    _check_stream(resp, 300)


async def test_non_streamed_completion(sim: LiveSim) -> None:
    async with await sim.connect() as conn:
        resp = await conn.chat(stream=False, max_tokens=4)
    assert resp.status == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["x-request-id"].startswith("req_")
    body = resp.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "test-model"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": completion_text(4), "refusal": None},
            "logprobs": None,
            "finish_reason": "length",
        }
    ]
    assert body["usage"]["completion_tokens"] == 4
    assert completion_text(4) == "".join(words(4))


async def test_model_defaults_to_the_server_model(start_sim: StartSim) -> None:
    sim = await start_sim(model="custom-sim")
    body = chat_body()
    del body["model"]
    async with await sim.connect() as conn:
        resp = await conn.request("POST", CHAT, body)
    assert resp.payloads()[0]["model"] == "custom-sim"


async def test_models_and_health(start_sim: StartSim) -> None:
    sim = await start_sim(model='quo"ted')
    async with await sim.connect() as conn:
        models = await conn.request("GET", "/v1/models")
        health = await conn.request("GET", "/health")
    assert models.status == 200
    assert models.json() == {
        "object": "list",
        "data": [{"id": 'quo"ted', "object": "model", "created": 0, "owned_by": "lens-sim"}],
    }
    assert health.json() == {"status": "ok"}


async def test_httpx_streaming_client(sim: LiveSim) -> None:
    """A real HTTP client library reads the stream the way an OpenAI SDK would."""
    async with httpx.AsyncClient(base_url=sim.base_url) as client:
        texts: list[str] = []
        async with client.stream(
            "POST", "/chat/completions", json=chat_body(), headers={"authorization": "Bearer x"}
        ) as resp:
            assert resp.status_code == 200
            async for line in resp.aiter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    choices = json.loads(line[6:])["choices"]
                    if choices:
                        texts.append(choices[0]["delta"].get("content", ""))
        assert "".join(texts) == completion_text(5)
        # The same pooled connection serves the next request (keep-alive).
        again = await client.post("/chat/completions", json=chat_body(stream=False))
        assert again.json()["choices"][0]["message"]["content"] == completion_text(5)

"""Gemini streamGenerateContent: CRLF framing, cumulative usage, Google's error bodies."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from lens.plan.model import SimSettings
from lens.sim.gemini import GeminiGenerateContent
from lens.sim.protocol_base import Exchange, ParsedRequest, Timing
from lens.sim.text import completion_text
from tests.sim.conftest import LiveSim, StartSim
from tests.sim.rawhttp import Response
from tests.sim.wire import WIRES, parse_sse, recorded, shape

WIRE = WIRES["gemini"]
STREAM = WIRE.path
GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"


@pytest.fixture
async def sim(start_sim: StartSim) -> LiveSim:
    return await start_sim(SimSettings(ttft_s=0, itl_s=0, output_tokens=3, protocol="gemini"))


async def _post(
    sim: LiveSim,
    path: str = STREAM,
    body: dict[str, Any] | bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    async with await sim.connect() as conn:
        return await conn.request(
            "POST",
            path,
            WIRE.body() if body is None else body,
            WIRE.headers if headers is None else headers,
        )


def _google_error(resp: Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status == status
    assert resp.headers["content-type"] == "application/json; charset=UTF-8"
    assert resp.body.startswith(b'{\n  "error": {\n    "code": ')  # pretty-printed
    error: dict[str, Any] = resp.json()["error"]
    assert error["code"] == status
    assert error["status"] == code
    return error


async def test_stream_matches_the_recorded_stream(sim: LiveSim) -> None:
    resp = await _post(sim)
    ours = parse_sse(b"".join(resp.chunks))
    theirs = parse_sse(recorded("gemini_stream.sse"))
    assert len(ours) == len(theirs) == 3
    ignore = frozenset({"thoughtsTokenCount"})  # the recording is a thinking model's
    for mine, real in zip(ours, theirs, strict=True):
        assert shape(json.loads(mine.data)) == shape(json.loads(real.data), ignore)


async def test_crlf_framing_and_spacing(sim: LiveSim) -> None:
    resp = await _post(sim)
    body = b"".join(resp.chunks)
    assert b"\n\n" not in body  # a naive LF-LF splitter finds no event at all
    for chunk in resp.chunks:
        assert re.fullmatch(rb"data: \{[^\r\n]*\}\r\n\r\n", chunk), chunk
        assert b'"candidates": [{"content": {"parts": [{"text": ' in chunk
        assert b", " not in chunk.replace(b'"lorem ', b"").replace(b'"ipsum ', b"")
    assert resp.headers["content-type"] == "text/event-stream"
    assert resp.headers["content-disposition"] == "attachment"
    assert re.fullmatch(r"gfet4t7; dur=\d+", resp.headers["server-timing"])
    assert not [h for h in resp.headers if "ratelimit" in h or h == "retry-after"]


async def test_usage_is_cumulative_and_the_last_chunk_finishes(start_sim: StartSim) -> None:
    sim = await start_sim(SimSettings(ttft_s=0, itl_s=0, output_tokens=6, protocol="gemini"))
    text = "x" * 40  # 10 prompt tokens
    resp = await _post(sim, body=WIRE.body(text=text))
    chunks = [json.loads(e.data) for e in parse_sse(b"".join(resp.chunks))]
    assert [c["usageMetadata"]["candidatesTokenCount"] for c in chunks] == [1, 2, 3, 4, 5, 6]
    assert [c["usageMetadata"]["totalTokenCount"] for c in chunks] == list(range(11, 17))
    assert all(c["usageMetadata"]["promptTokenCount"] == 10 for c in chunks)
    assert all("thoughtsTokenCount" not in c["usageMetadata"] for c in chunks)
    assert ["finishReason" in c["candidates"][0] for c in chunks] == [False] * 5 + [True]
    assert {c["modelVersion"] for c in chunks} == {"gemini-2.5-flash"}
    assert len({c["responseId"] for c in chunks}) == 1


async def test_empty_stream_omits_zero_counts(sim: LiveSim) -> None:
    resp = await _post(sim, headers={**WIRE.headers, "x-lens-sim-fault": "empty"})
    (only,) = [json.loads(e.data) for e in parse_sse(b"".join(resp.chunks))]
    assert only["candidates"][0] == {
        "content": {"parts": [{"text": ""}], "role": "model"},
        "finishReason": "STOP",
        "index": 0,
    }
    assert "candidatesTokenCount" not in only["usageMetadata"]
    assert only["usageMetadata"]["totalTokenCount"] == only["usageMetadata"]["promptTokenCount"]


def test_separate_closing_event() -> None:
    """``suffix`` with tokens: a closing event of its own, as Gemini sometimes sends."""
    parsed = ParsedRequest(model="g", stream=True, max_tokens=None, prompt_tokens=4)
    renderer = GeminiGenerateContent().renderer(parsed, Exchange(0, "ab" * 16, 0), Timing(0, 0))
    tail = renderer.suffix(2, "length")
    (event,) = parse_sse(tail.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n\r\n", 1)[0])
    data = json.loads(event.data)
    assert data["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert data["candidates"][0]["content"]["parts"] == [{"text": ""}]
    assert data["usageMetadata"]["candidatesTokenCount"] == 2


async def test_midstream_error_bytes(sim: LiveSim) -> None:
    resp = await _post(sim, headers={**WIRE.headers, "x-lens-sim-fault": "midstream-error"})
    assert re.fullmatch(
        rb'data: \{"error":\{"code":503,"message":"[^"]+","status":"UNAVAILABLE"\}\}\r\n\r\n',
        resp.chunks[-1],
    )


async def test_rate_limit_carries_retry_info_in_the_body(sim: LiveSim) -> None:
    resp = await _post(sim, headers={**WIRE.headers, "x-lens-sim-fault": "429"})
    error = _google_error(resp, 429, "RESOURCE_EXHAUSTED")
    types = [d["@type"] for d in error["details"]]
    assert "type.googleapis.com/google.rpc.QuotaFailure" in types
    retry = [d for d in error["details"] if d["@type"].endswith("google.rpc.RetryInfo")]
    assert retry == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}]
    assert "retry-after" not in resp.headers
    assert not [h for h in resp.headers if "ratelimit" in h]
    busy = await _post(sim, headers={**WIRE.headers, "x-lens-sim-fault": "529"})
    _google_error(busy, 503, "UNAVAILABLE")
    _google_error(
        await _post(sim, headers={**WIRE.headers, "x-lens-sim-fault": "500"}), 500, "INTERNAL"
    )


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        (STREAM + "&key=abc", {}),
        ("/v1/models/gemini-2.5-flash:streamGenerateContent?alt=sse", {"x-goog-api-key": "k"}),
        (STREAM, {"authorization": "Bearer ya29.token"}),
    ],
)
async def test_accepted_auth_and_versions(sim: LiveSim, path: str, headers: dict[str, str]) -> None:
    resp = await _post(sim, path, headers=headers)
    assert resp.status == 200
    assert WIRE.decode(resp).text == completion_text(3)


async def test_missing_key_is_permission_denied(sim: LiveSim) -> None:
    error = _google_error(await _post(sim, headers={}), 403, "PERMISSION_DENIED")
    assert "API Key" in error["message"]


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/v1beta/models/g:streamGenerateContent", None, 400, "INVALID_ARGUMENT"),  # no alt=sse
        (STREAM, {"contents": []}, 400, "INVALID_ARGUMENT"),
        (
            STREAM,
            {"contents": [{}], "generationConfig": {"maxOutputTokens": 0}},
            400,
            "INVALID_ARGUMENT",
        ),
        (STREAM, {"contents": [{}], "generationConfig": []}, 400, "INVALID_ARGUMENT"),
        ("/v1beta/models/g:countTokens", None, 404, "NOT_FOUND"),
        ("/v1beta/tunedModels/g:generateContent", None, 404, "NOT_FOUND"),
    ],
)
async def test_rejections(
    sim: LiveSim, path: str, body: dict[str, Any] | None, status: int, code: str
) -> None:
    _google_error(await _post(sim, path, body), status, code)


async def test_generate_content_is_pretty_printed(sim: LiveSim) -> None:
    resp = await _post(
        sim, "/v1beta/models/gemini%2D2.5-pro:generateContent", WIRE.body(max_tokens=2)
    )
    assert resp.status == 200
    assert resp.headers["content-type"] == "application/json; charset=UTF-8"
    assert resp.body.startswith(b'{\n  "candidates": [\n    {\n      "content": {')
    body = resp.json()
    assert body["candidates"][0]["content"]["parts"] == [{"text": completion_text(2)}]
    assert body["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert body["usageMetadata"]["candidatesTokenCount"] == 2
    assert body["modelVersion"] == "gemini-2.5-pro"  # percent-decoded from the path
    empty = await _post(sim, GENERATE, None, {**WIRE.headers, "x-lens-sim-fault": "empty"})
    assert "candidatesTokenCount" not in empty.json()["usageMetadata"]

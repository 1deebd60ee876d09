"""Azure OpenAI Chat: its routes, keys, filter results, sorted keys and its own errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lens.plan.model import SimSettings
from lens.sim.text import completion_text
from tests.sim.conftest import LiveSim, StartSim
from tests.sim.rawhttp import Response
from tests.sim.wire import WIRES, parse_sse, recorded, shape

WIRE = WIRES["azure-openai"]
CLASSIC = WIRE.path
V1 = "/openai/v1/chat/completions"
NOT_FOUND = b'{"error":{"code":"404","message": "Resource not found"}}'


@pytest.fixture
async def sim(start_sim: StartSim) -> LiveSim:
    settings = SimSettings(ttft_s=0, itl_s=0, output_tokens=4, protocol="azure-openai")
    return await start_sim(settings, model="gpt-4o-2024-08-06")


async def _post(
    sim: LiveSim,
    path: str = CLASSIC,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    async with await sim.connect() as conn:
        return await conn.request(
            "POST",
            path,
            WIRE.body() if body is None else body,
            WIRE.headers if headers is None else headers,
        )


def _payloads(resp: Response) -> list[Any]:
    return [
        e.data if e.data == "[DONE]" else json.loads(e.data)
        for e in parse_sse(b"".join(resp.chunks))
    ]


def _assert_sorted(value: Any) -> None:
    if isinstance(value, dict):
        assert list(value) == sorted(value), list(value)
        for v in value.values():
            _assert_sorted(v)
    elif isinstance(value, list):
        for v in value:
            _assert_sorted(v)


async def test_stream_matches_the_recorded_stream(sim: LiveSim) -> None:
    ours = _payloads(await _post(sim))
    theirs = [
        e.data if e.data == "[DONE]" else json.loads(e.data)
        for e in parse_sse(recorded("azure_chat_stream.sse"))
    ]
    assert len(ours) == len(theirs) == 9
    for mine, real in zip(ours, theirs, strict=True):
        assert shape(mine) == shape(real)


async def test_chunks(sim: LiveSim) -> None:
    resp = await _post(sim)
    assert resp.headers["apim-request-id"] == resp.headers["x-request-id"]
    assert resp.headers["x-ratelimit-remaining-requests"].isdigit()
    payloads = _payloads(resp)
    first, role, *contents = payloads[:6]
    assert first["choices"] == []
    assert (first["id"], first["model"], first["object"], first["created"]) == ("", "", "", 0)
    assert first["prompt_filter_results"][0]["prompt_index"] == 0
    for chunk in payloads[1:-1]:
        _assert_sorted(chunk)
        assert chunk["model"] == "gpt-4o-2024-08-06"  # the deployment's model, not the body's
        for choice in chunk["choices"]:
            assert "content_filter_results" in choice
    assert role["choices"][0]["delta"] == {"content": "", "refusal": None, "role": "assistant"}
    assert [c["choices"][0]["content_filter_results"]["hate"] for c in contents] == [
        {"filtered": False, "severity": "safe"}
    ] * 4
    assert payloads[-2]["usage"]["completion_tokens"] == 4
    assert payloads[-1] == "[DONE]"
    assert WIRE.decode(resp).text == completion_text(4)


async def test_usage_and_obfuscation_are_opt_in_and_out(sim: LiveSim) -> None:
    body = {**WIRE.body(), "stream_options": {"include_usage": False, "include_obfuscation": False}}
    payloads = _payloads(await _post(sim, body=body))
    assert len(payloads) == 1 + 1 + 4 + 1 + 1  # filters, role, tokens, finish, [DONE]
    assert not [p for p in payloads[:-1] if "obfuscation" in p or p.get("usage")]


async def test_v1_route_uses_the_body_model_and_bearer_auth(sim: LiveSim) -> None:
    resp = await _post(sim, V1, headers={"authorization": "Bearer entra-token"})
    assert resp.status == 200
    assert _payloads(resp)[1]["model"] == "test-model"


@pytest.mark.parametrize(
    "path",
    [
        "/openai/deployments/gpt-4o/chat/completions",  # no api-version
        "/openai/deployments/gpt-4o/embeddings?api-version=2024-10-21",
        "/v1/chat/completions",
    ],
)
async def test_unknown_routes_are_azures_404(sim: LiveSim, path: str) -> None:
    resp = await _post(sim, path)
    assert resp.status == 404
    assert resp.body == NOT_FOUND
    assert resp.headers["apim-request-id"]


async def test_missing_key_is_401(sim: LiveSim) -> None:
    resp = await _post(sim, headers={})
    assert resp.status == 401
    assert resp.json()["error"]["code"] == "401"
    assert "Access denied" in resp.json()["error"]["message"]


async def test_bad_body_is_openai_shaped(sim: LiveSim) -> None:
    resp = await _post(sim, body={"messages": []})
    assert resp.status == 400
    assert set(resp.json()["error"]) == {"message", "type", "param", "code"}


async def test_rate_limit_headers(sim: LiveSim) -> None:
    resp = await _post(sim, headers={**WIRE.headers, "x-lens-sim-fault": "429"})
    assert resp.status == 429
    assert resp.headers["retry-after"] == "1"
    assert resp.headers["retry-after-ms"] == "1000"
    assert resp.headers["x-ratelimit-remaining-requests"] == "0"
    assert resp.headers["x-ratelimit-remaining-tokens"] == "0"
    error = resp.json()["error"]
    assert error["code"] == "429"
    assert "API version 2024-10-21" in error["message"]
    assert "Please retry after 1 second" in error["message"]
    busy = await _post(sim, headers={**WIRE.headers, "x-lens-sim-fault": "529"})
    assert busy.status == 503
    assert busy.headers["apim-request-id"]


async def test_non_streamed_completion(sim: LiveSim) -> None:
    resp = await _post(sim, body=WIRE.body(stream=False))
    body = resp.json()
    _assert_sorted({k: v for k, v in body.items() if k != "prompt_filter_results"})
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == completion_text(4)
    assert (
        body["prompt_filter_results"][0]["content_filter_results"]["jailbreak"]["detected"] is False
    )

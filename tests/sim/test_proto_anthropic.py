"""Anthropic Messages: exact event bytes, the recorded stream's shape, auth and errors."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from lens.plan.model import SimSettings
from lens.sim.text import completion_text
from tests.sim.conftest import LiveSim, StartSim
from tests.sim.rawhttp import Response
from tests.sim.wire import WIRES, parse_sse, recorded, shape

WIRE = WIRES["anthropic"]
HEADERS = WIRE.headers
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture
async def sim(start_sim: StartSim) -> LiveSim:
    return await start_sim(SimSettings(ttft_s=0, itl_s=0, output_tokens=5, protocol="anthropic"))


async def _post(
    sim: LiveSim,
    body: dict[str, Any] | bytes | None = None,
    headers: dict[str, str] | None = None,
    path: str = "/v1/messages",
) -> Response:
    async with await sim.connect() as conn:
        return await conn.request(
            "POST",
            path,
            WIRE.body() if body is None else body,
            HEADERS if headers is None else headers,
        )


def _error(resp: Response, status: int, type_: str) -> str:
    assert resp.status == status
    body = resp.json()
    assert list(body) == ["type", "error", "request_id"]
    assert body["type"] == "error"
    assert body["error"]["type"] == type_
    assert body["request_id"] == resp.headers["request-id"]
    assert body["request_id"].startswith("req_")
    message: str = body["error"]["message"]
    return message


async def test_stream_matches_the_recorded_stream(start_sim: StartSim) -> None:
    """One token: event for event the shape of a real one-delta stream."""
    sim = await start_sim(SimSettings(ttft_s=0, itl_s=0, output_tokens=1, protocol="anthropic"))
    resp = await _post(sim)
    ours = parse_sse(b"".join(resp.chunks))
    theirs = parse_sse(recorded("anthropic_messages_stream_short.sse"))
    assert (
        [e.event for e in ours]
        == [e.event for e in theirs]
        == [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    )
    for mine, real in zip(ours, theirs, strict=True):
        assert shape(json.loads(mine.data)) == shape(json.loads(real.data)), mine.event


async def test_stream_bytes(sim: LiveSim) -> None:
    resp = await _post(sim)
    assert resp.headers["cache-control"] == "no-cache"
    assert resp.headers["request-id"].startswith("req_")
    assert RFC3339.fullmatch(resp.headers["anthropic-ratelimit-requests-reset"])
    for chunk in resp.chunks:  # each HTTP chunk is exactly one event
        assert re.fullmatch(rb"event: [a-z_]+\ndata: [^\n]+\n\n", chunk), chunk
    assert resp.chunks[2] == b'event: ping\ndata: {"type": "ping"}\n\n'
    events = parse_sse(b"".join(resp.chunks))
    start = json.loads(events[0].data)["message"]
    assert start["model"] == "test-model"
    assert start["id"].startswith("msg_")
    assert start["usage"]["output_tokens"] == 1  # the placeholder
    delta = json.loads(events[-2].data)
    assert delta["usage"]["input_tokens"] == start["usage"]["input_tokens"] == 2
    assert delta["usage"]["output_tokens"] == 5  # cumulative


async def test_events_are_padded_with_runs_of_spaces(start_sim: StartSim) -> None:
    sim = await start_sim(SimSettings(ttft_s=0, itl_s=0, output_tokens=40, protocol="anthropic"))
    resp = await _post(sim)
    pads = set()
    for event in parse_sse(b"".join(resp.chunks)):
        if event.event == "ping":
            continue
        match = re.fullmatch(r"\{.*[}\"0-9a-z]( *)\}", event.data)
        assert match, event.data
        pads.add(len(match.group(1)))
    assert len(pads) >= 8
    assert max(pads) <= 15


async def test_beta_query_and_bearer_auth_are_accepted(sim: LiveSim) -> None:
    bearer = {"authorization": "Bearer oauth-token", "anthropic-version": "2023-06-01"}
    resp = await _post(sim, headers=bearer, path="/v1/messages?beta=true")
    assert resp.status == 200
    assert WIRE.decode(resp).text == completion_text(5)


@pytest.mark.parametrize(
    ("headers", "status", "type_", "text"),
    [
        ({"anthropic-version": "2023-06-01"}, 401, "authentication_error", "x-api-key"),
        ({"authorization": "Bearer "}, 401, "authentication_error", "x-api-key"),
        ({"x-api-key": "k"}, 400, "invalid_request_error", "anthropic-version"),
    ],
)
async def test_auth_and_version_headers(
    sim: LiveSim, headers: dict[str, str], status: int, type_: str, text: str
) -> None:
    assert text in _error(await _post(sim, headers=headers), status, type_)


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens: Field"),
        ({"model": "m", "max_tokens": 0, "messages": [{"content": "x"}]}, "max_tokens"),
        ({"model": "m", "max_tokens": True, "messages": [{"content": "x"}]}, "max_tokens"),
        ({"max_tokens": 5, "messages": [{"content": "x"}]}, "model: Field required"),
        ({"model": 3, "max_tokens": 5, "messages": [{"content": "x"}]}, "model"),
        ({"model": "m", "max_tokens": 5}, "messages: Field required"),
        ({"model": "m", "max_tokens": 5, "messages": []}, "messages"),
        ({"model": "m", "max_tokens": 5, "messages": [{}], "stream": "y"}, "stream"),
        (b"[]", "JSON object"),
    ],
)
async def test_invalid_bodies(sim: LiveSim, body: dict[str, Any] | bytes, text: str) -> None:
    assert text in _error(await _post(sim, body), 400, "invalid_request_error")


async def test_unknown_path_is_not_found_error(sim: LiveSim) -> None:
    _error(await _post(sim, path="/v1/complete"), 404, "not_found_error")


async def test_rate_limit_overloaded_and_api_error(sim: LiveSim) -> None:
    limited = await _post(sim, headers={**HEADERS, "x-lens-sim-fault": "429"})
    _error(limited, 429, "rate_limit_error")
    assert limited.headers["retry-after"] == "1"
    assert limited.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert limited.headers["anthropic-ratelimit-tokens-remaining"] == "0"
    assert RFC3339.fullmatch(limited.headers["anthropic-ratelimit-requests-reset"])
    overloaded = await _post(sim, headers={**HEADERS, "x-lens-sim-fault": "529"})
    assert _error(overloaded, 529, "overloaded_error") == "Overloaded"
    assert overloaded.reason == "Overloaded"
    _error(await _post(sim, headers={**HEADERS, "x-lens-sim-fault": "500"}), 500, "api_error")


async def test_midstream_error_is_the_observed_event(sim: LiveSim) -> None:
    resp = await _post(sim, headers={**HEADERS, "x-lens-sim-fault": "midstream-error"})
    assert resp.chunks[-1] == (
        b'event: error\ndata: {"type":"error","error":{"details":null,'
        b'"type":"overloaded_error","message":"Overloaded"} }\n\n'
    )
    names = [e.event for e in parse_sse(b"".join(resp.chunks))]
    assert "message_stop" not in names
    assert "message_delta" not in names


async def test_non_streamed_message(sim: LiveSim) -> None:
    resp = await _post(sim, WIRE.body(stream=False, max_tokens=3))
    body = resp.json()
    assert list(body) == [
        "id",
        "type",
        "role",
        "model",
        "content",
        "stop_reason",
        "stop_sequence",
        "usage",
    ]
    assert body["content"] == [{"type": "text", "text": completion_text(3)}]
    assert body["stop_reason"] == "max_tokens"
    assert body["usage"]["output_tokens"] == 3
    empty = await _post(sim, WIRE.body(stream=False), {**HEADERS, "x-lens-sim-fault": "empty"})
    assert empty.json()["content"] == []

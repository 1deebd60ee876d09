"""OpenAI Responses: the event grammar, sequence numbers, incomplete and failed endings."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from lens.plan.model import SimSettings
from lens.sim.text import completion_text
from tests.sim.conftest import LiveSim, StartSim
from tests.sim.rawhttp import Response
from tests.sim.wire import WIRES, SseEvent, parse_sse, recorded, shape

WIRE = WIRES["openai-responses"]


@pytest.fixture
async def sim(start_sim: StartSim) -> LiveSim:
    settings = SimSettings(ttft_s=0, itl_s=0, output_tokens=6, protocol="openai-responses")
    return await start_sim(settings)


async def _post(
    sim: LiveSim, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> Response:
    async with await sim.connect() as conn:
        return await conn.request(
            "POST", "/v1/responses", WIRE.body() if body is None else body, headers
        )


def _events(resp: Response) -> list[tuple[SseEvent, dict[str, Any]]]:
    return [(e, json.loads(e.data)) for e in parse_sse(b"".join(resp.chunks))]


async def test_stream_matches_the_recorded_stream(sim: LiveSim) -> None:
    """Six deltas, like the recording: same events, same JSON shape, event for event."""
    ours = _events(await _post(sim))
    theirs = [(e, json.loads(e.data)) for e in parse_sse(recorded("openai_responses_stream.sse"))]
    assert [e.event for e, _ in ours] == [e.event for e, _ in theirs]
    for (event, mine), (_, real) in zip(ours, theirs, strict=True):
        assert shape(mine) == shape(real), event.event


async def test_event_grammar(sim: LiveSim) -> None:
    resp = await _post(sim, {**WIRE.body(), "instructions": "Be brief."})
    assert resp.headers["openai-version"] == "2020-10-01"
    for chunk in resp.chunks:
        assert re.fullmatch(rb"event: [a-z_.]+\ndata: [^\n]+\n\n", chunk), chunk
    events = _events(resp)
    assert [d["sequence_number"] for _, d in events] == list(range(len(events)))
    assert all(d["type"] == e.event for e, d in events)
    assert b"[DONE]" not in b"".join(resp.chunks)
    item_ids = {d["item_id"] for _, d in events if "item_id" in d}
    assert len(item_ids) == 1
    assert item_ids.pop().startswith("msg_")
    done = {e.event: d for e, d in events}
    assert done["response.output_text.done"]["text"] == completion_text(6)
    final = done["response.completed"]["response"]
    assert final["id"].startswith("resp_")
    assert final["status"] == "completed"
    assert final["instructions"] == "Be brief."
    assert final["output"][0]["content"][0]["text"] == completion_text(6)
    assert final["usage"] == {
        "input_tokens": 4,  # "Say hi." + "Be brief." = 16 characters
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 6,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 10,
    }
    deltas = [d for e, d in events if e.event == "response.output_text.delta"]
    assert all(d["obfuscation"] for d in deltas)


async def test_max_output_tokens_ends_incomplete(start_sim: StartSim) -> None:
    settings = SimSettings(ttft_s=0, itl_s=0, output_tokens=30, protocol="openai-responses")
    sim = await start_sim(settings)
    events = _events(await _post(sim, WIRE.body(max_tokens=16)))
    event, last = events[-1]
    assert event.event == "response.incomplete"
    assert last["response"]["status"] == "incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert last["response"]["max_output_tokens"] == 16
    assert last["response"]["usage"]["output_tokens"] == 16
    assert last["response"]["output"][0]["status"] == "incomplete"


async def test_midstream_error_then_failed(sim: LiveSim) -> None:
    resp = await _post(sim, headers={"x-lens-sim-fault": "midstream-error"})
    events = _events(resp)
    (err_event, err), (failed_event, failed) = events[-2:]
    assert (err_event.event, failed_event.event) == ("error", "response.failed")
    assert failed["sequence_number"] == err["sequence_number"] + 1 == len(events) - 1
    assert failed["response"]["status"] == "failed"
    assert failed["response"]["error"]["code"] == "server_error"
    recorded_events = parse_sse(recorded("openai_responses_stream_error.sse"))
    real = {e.event: json.loads(e.data) for e in recorded_events}
    assert shape(err) == shape(real["error"])
    assert [k for k, _ in shape(failed)] == [k for k, _ in shape(real["response.failed"])]


async def test_obfuscation_can_be_turned_off(sim: LiveSim) -> None:
    body = {**WIRE.body(), "stream_options": {"include_obfuscation": False}}
    deltas = [d for e, d in _events(await _post(sim, body)) if e.event.endswith(".delta")]
    assert len(deltas) == 6
    assert not [d for d in deltas if "obfuscation" in d]


async def test_input_items_count_towards_the_prompt(sim: LiveSim) -> None:
    items = [
        {"role": "user", "content": "abcd" * 3},
        {"role": "user", "content": [{"type": "input_text", "text": "abcd" * 2}]},
    ]
    events = _events(await _post(sim, {"model": "m", "input": items, "stream": True}))
    assert events[-1][1]["response"]["usage"]["input_tokens"] == 5


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"input": "x", "max_output_tokens": 5}, "max_output_tokens", "integer_below_min_value"),
        ({"input": "x", "max_output_tokens": "9"}, "max_output_tokens", "invalid_type"),
        ({"input": 5}, "input", "invalid_type"),
        ({"input": "x", "model": ""}, "model", "invalid_type"),
        ({"input": "x", "instructions": 1}, "instructions", "invalid_type"),
        ({"input": "x", "stream": 1}, "stream", "invalid_type"),
        ({"input": "x", "stream_options": 1}, "stream_options", None),
    ],
)
async def test_invalid_bodies(
    sim: LiveSim, body: dict[str, Any], param: str, code: str | None
) -> None:
    resp = await _post(sim, body)
    assert resp.status == 400
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["code"] == code


async def test_non_streamed_response_is_pretty_printed(sim: LiveSim) -> None:
    resp = await _post(sim, WIRE.body(stream=False))
    assert resp.body.startswith(b'{\n  "id": "resp_')
    body = resp.json()
    assert body["status"] == "completed"
    assert body["output"][0]["content"][0]["text"] == completion_text(6)
    assert body["usage"]["output_tokens"] == 6
    capped = (await _post(sim, {**WIRE.body(stream=False), "max_output_tokens": 16})).json()
    assert capped["status"] == "completed"  # 6 tokens fit in 16

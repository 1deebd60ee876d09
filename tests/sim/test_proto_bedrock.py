"""Bedrock runtime: botocore itself as the client, eventstream bytes, the recorded shapes."""

from __future__ import annotations

import base64
import contextlib
import json
import re
from collections.abc import Callable
from typing import Any

import botocore.session
import pytest
import trio
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError

from lens.plan.model import SimSettings
from lens.sim.text import VOCAB, completion_text
from tests.sim.conftest import LiveSim, StartSim
from tests.sim.rawhttp import Response
from tests.sim.wire import WIRES, eventstream_messages, recorded, shape

CONVERSE = WIRES["bedrock"]
INVOKE = WIRES["bedrock-invoke"]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SESSION = botocore.session.get_session()  # one loader: later clients are cheap


@pytest.fixture
async def sim(start_sim: StartSim) -> LiveSim:
    return await start_sim(SimSettings(ttft_s=0, itl_s=0, output_tokens=5, protocol="bedrock"))


def _client(sim: LiveSim, fault: str | None = None) -> Any:
    client = _SESSION.create_client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=sim.url,
        aws_access_key_id="AKIDLENSSIM",
        aws_secret_access_key="not-a-secret",
        config=Config(retries={"total_max_attempts": 1}),
    )
    if fault is not None:

        def add_fault(request: Any, **_: Any) -> None:
            request.headers["x-lens-sim-fault"] = fault

        client.meta.events.register("before-sign.bedrock-runtime.*", add_fault)
    return client


async def _in_thread(fn: Callable[[], Any]) -> Any:
    return await trio.to_thread.run_sync(fn)


async def _post(
    sim: LiveSim, path: str, body: dict[str, Any] | bytes, headers: dict[str, str] | None = None
) -> Response:
    async with await sim.connect() as conn:
        return await conn.request(
            "POST", path, body, CONVERSE.headers if headers is None else headers
        )


MESSAGES = [{"role": "user", "content": [{"text": "Say hi."}]}]


async def test_botocore_converse_stream(sim: LiveSim) -> None:
    client = _client(sim)

    def run() -> list[dict[str, Any]]:
        response = client.converse_stream(
            modelId="us.amazon.nova-micro-v1:0",  # botocore sends it as ...v1%3A0
            messages=MESSAGES,
            inferenceConfig={"maxTokens": 3},
        )
        assert UUID.fullmatch(response["ResponseMetadata"]["RequestId"])
        with contextlib.closing(response["stream"]) as stream:
            return list(stream)

    events = await _in_thread(run)
    assert [next(iter(e)) for e in events] == [
        "messageStart",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    assert events[0]["messageStart"] == {"role": "assistant"}  # "p" is not in the model
    texts = [e["contentBlockDelta"]["delta"]["text"] for e in events[1:4]]
    assert "".join(texts) == completion_text(3)
    assert events[5]["messageStop"]["stopReason"] == "max_tokens"
    assert events[6]["metadata"]["usage"] == {"inputTokens": 2, "outputTokens": 3, "totalTokens": 5}
    assert events[6]["metadata"]["metrics"] == {"latencyMs": 0}
    client.close()


async def test_botocore_invoke_with_response_stream(sim: LiveSim) -> None:
    client = _client(sim)
    body = json.dumps(INVOKE.body())

    def run() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        response = client.invoke_model_with_response_stream(
            modelId="anthropic.claude-sonnet-4-20250514-v1:0", body=body
        )
        headers = response["ResponseMetadata"]["HTTPHeaders"]
        with contextlib.closing(response["body"]) as stream:
            return headers, [json.loads(e["chunk"]["bytes"]) for e in stream]

    headers, events = await _in_thread(run)
    assert headers["x-amzn-bedrock-content-type"] == "application/json"
    assert [e["type"] for e in events] == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 5,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0]["message"]["model"] == "anthropic.claude-sonnet-4-20250514-v1:0"
    assert "".join(e["delta"]["text"] for e in events[2:7]) == completion_text(5)
    assert events[-2]["delta"]["stop_reason"] == "end_turn"
    assert events[-1]["amazon-bedrock-invocationMetrics"] == {
        "inputTokenCount": 2,
        "outputTokenCount": 5,
        "invocationLatency": 0,
        "firstByteLatency": 0,
    }
    client.close()


async def test_botocore_sees_throttling(sim: LiveSim) -> None:
    client = _client(sim, fault="429")

    def run() -> None:
        client.converse_stream(modelId="m", messages=MESSAGES)

    with pytest.raises(ClientError) as info:
        await _in_thread(run)
    assert info.value.response["Error"]["Code"] == "ThrottlingException"
    assert info.value.response["Error"]["Message"] == (
        "Too many requests, please wait before trying again."
    )
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    client.close()


async def test_botocore_raises_the_midstream_exception(sim: LiveSim) -> None:
    client = _client(sim, fault="midstream-error")
    seen: list[dict[str, Any]] = []

    def run() -> None:
        stream = client.converse_stream(modelId="m", messages=MESSAGES)["stream"]
        try:
            seen.extend(stream)
        finally:
            stream.close()  # an abandoned stream would leak its socket

    with pytest.raises(EventStreamError) as info:
        await _in_thread(run)
    assert info.value.response["Error"]["Code"] == "modelStreamErrorException"
    assert next(next(iter(e)) for e in seen) == "messageStart"
    assert any("contentBlockDelta" in e for e in seen)
    client.close()


async def test_messages_match_the_recorded_stream(sim: LiveSim) -> None:
    resp = await _post(sim, CONVERSE.path, CONVERSE.body())
    ours = eventstream_messages(b"".join(resp.chunks))
    theirs = eventstream_messages(recorded("bedrock_converse_stream.bin"))
    kinds = [h[":event-type"] for h, _ in ours]
    assert kinds == [
        "messageStart",
        *["contentBlockDelta"] * 5,
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    real = {h[":event-type"]: (list(h), json.loads(p)) for h, p in theirs}
    assert set(real) == set(kinds)
    for headers, payload in ours:
        names, data = real[headers[":event-type"]]
        assert list(headers) == names == [":event-type", ":content-type", ":message-type"]
        assert shape(json.loads(payload)) == shape(data)
    # Each eventstream message is exactly one HTTP chunk.
    assert all(len(eventstream_messages(chunk)) == 1 for chunk in resp.chunks)
    paddings = {len(json.loads(p)["p"]) for _, p in ours}
    assert len(paddings) >= 5
    assert all(re.fullmatch(r"[a-zA-Z0-9]+", json.loads(p)["p"]) for _, p in ours)


async def test_exception_frame_matches_the_recorded_one(sim: LiveSim) -> None:
    headers = {**CONVERSE.headers, "x-lens-sim-fault": "midstream-error"}
    resp = await _post(sim, CONVERSE.path, CONVERSE.body(), headers)
    last_headers, last_payload = eventstream_messages(resp.chunks[-1])[0]
    ((real_headers, real_payload),) = eventstream_messages(
        recorded("bedrock_eventstream_model_stream_error.bin")
    )
    assert list(last_headers.items()) == list(real_headers.items())
    assert shape(json.loads(last_payload)) == shape(json.loads(real_payload))


async def test_invoke_chunks_are_padded_base64_events(sim: LiveSim) -> None:
    resp = await _post(sim, INVOKE.path, INVOKE.body(max_tokens=2))
    messages = eventstream_messages(b"".join(resp.chunks))
    assert {h[":event-type"] for h, _ in messages} == {"chunk"}
    payloads = [json.loads(p) for _, p in messages]
    assert all(list(p) == ["bytes", "p"] for p in payloads)
    events = [json.loads(base64.b64decode(p["bytes"])) for p in payloads]
    assert events[2] == {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": VOCAB[0]},
    }
    assert events[-2]["delta"]["stop_reason"] == "max_tokens"
    assert resp.headers["x-amzn-bedrock-content-type"] == "application/json"


@pytest.mark.parametrize(
    "model_id", ["us.amazon.nova-micro-v1:0", "us.amazon.nova-micro-v1%3A0", "arn%3Aaws%2Fx"]
)
async def test_model_id_raw_or_encoded(sim: LiveSim, model_id: str) -> None:
    resp = await _post(sim, f"/model/{model_id}/converse-stream", CONVERSE.body())
    assert resp.status == 200
    assert UUID.fullmatch(resp.headers["x-amzn-requestid"])


def _rest_json_error(resp: Response, status: int, error_type: str) -> str:
    assert resp.status == status
    assert resp.headers["x-amzn-errortype"] == error_type
    assert UUID.fullmatch(resp.headers["x-amzn-requestid"])
    body = resp.json()
    assert list(body) == ["message"]
    message: str = body["message"]
    return message


async def test_http_errors(sim: LiveSim) -> None:
    path, body = CONVERSE.path, CONVERSE.body()
    limited = await _post(sim, path, body, {**CONVERSE.headers, "x-lens-sim-fault": "429"})
    assert limited.body == b'{"message":"Too many requests, please wait before trying again."}'
    _rest_json_error(limited, 429, "ThrottlingException")
    assert "retry-after" not in limited.headers
    busy = await _post(sim, path, body, {**CONVERSE.headers, "x-lens-sim-fault": "529"})
    _rest_json_error(busy, 503, "ServiceUnavailableException")
    failed = await _post(sim, path, body, {**CONVERSE.headers, "x-lens-sim-fault": "500"})
    _rest_json_error(failed, 500, "InternalServerException")
    unsigned = await _post(sim, path, body, {})
    assert _rest_json_error(unsigned, 403, "MissingAuthenticationTokenException") == (
        "Missing Authentication Token"
    )
    _rest_json_error(await _post(sim, "/model/x/chat", body), 404, "UnknownOperationException")


@pytest.mark.parametrize(
    ("path", "body", "text"),
    [
        (CONVERSE.path, {"messages": []}, "must start with a user message"),
        (CONVERSE.path, {"messages": [{}], "inferenceConfig": {"maxTokens": 0}}, "maxTokens"),
        (CONVERSE.path, {"messages": [{}], "inferenceConfig": 5}, "inferenceConfig"),
        (INVOKE.path, {"max_tokens": 5, "messages": [{}]}, "[anthropic_version]"),
        (INVOKE.path, {"anthropic_version": "v", "messages": [{}]}, "[max_tokens]"),
        (INVOKE.path, {"anthropic_version": "v", "max_tokens": 5}, "[messages]"),
        (INVOKE.path, {"anthropic_version": "v", "max_tokens": 0, "messages": [{}]}, "max_tokens"),
    ],
)
async def test_validation_errors(sim: LiveSim, path: str, body: dict[str, Any], text: str) -> None:
    assert text in _rest_json_error(await _post(sim, path, body), 400, "ValidationException")


async def test_non_streamed_converse_and_invoke(sim: LiveSim) -> None:
    converse = (await _post(sim, CONVERSE.target(stream=False), CONVERSE.body())).json()
    assert list(converse) == ["metrics", "output", "stopReason", "usage"]
    assert converse["output"]["message"]["content"] == [{"text": completion_text(5)}]
    assert converse["usage"]["totalTokens"] == 7
    invoke = await _post(sim, INVOKE.target(stream=False), INVOKE.body(max_tokens=2))
    assert invoke.json()["content"] == [{"type": "text", "text": completion_text(2)}]
    assert invoke.json()["stop_reason"] == "max_tokens"
    assert invoke.headers["x-amzn-bedrock-output-token-count"] == "2"
    empty = await _post(
        sim,
        INVOKE.target(stream=False),
        INVOKE.body(),
        {**INVOKE.headers, "x-lens-sim-fault": "empty"},
    )
    assert empty.json()["content"] == []

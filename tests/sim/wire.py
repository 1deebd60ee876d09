"""Client-side views of every simulated protocol, decoded the way real clients decode them.

SSE bodies go through a WHATWG-conformant event parser (lines end in CRLF, LF or CR, as
the SDKs split them), Bedrock bodies through botocore's ``EventStreamBuffer``.  Each
``Wire`` knows how to build a standard request for its protocol and how to read the
token texts, usage, finish and in-band error out of a response, so the fault and timing
tests can run over every protocol with one body.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from botocore.eventstream import EventStreamBuffer

from lens.plan.model import SimProtocol
from tests.sim.rawhttp import Response

_LINE = re.compile(r"\r\n|\r|\n")
# Real recordings, read (never copied) by the faithfulness tests: shared/ sits beside the
# repository in a session and in CI.
RECORDED = Path(__file__).resolve().parents[3] / "shared" / "data" / "recorded-streams"


def recorded(name: str) -> bytes:
    path = RECORDED / name
    if not path.exists():
        pytest.skip(f"recorded stream {name} not available")
    return path.read_bytes()


def shape(value: Any, ignore: frozenset[str] = frozenset()) -> Any:
    """The structure of a JSON value: dict keys in order, nesting, not the scalars."""
    if isinstance(value, dict):
        return [(k, shape(v, ignore)) for k, v in value.items() if k not in ignore]
    if isinstance(value, list):
        return [shape(v, ignore) for v in value[:1]]
    return "scalar"


@dataclass(frozen=True)
class SseEvent:
    event: str  # "message" when the event has no ``event:`` field
    data: str


def parse_sse(body: bytes) -> list[SseEvent]:
    """Dispatched events of an SSE body (html.spec.whatwg.org, "event stream parsing")."""
    events: list[SseEvent] = []
    event, data = "", list[str]()
    text = body.decode("utf-8")
    lines = _LINE.split(text)
    if lines and lines[-1] == "":
        lines.pop()  # the split after the final line break
    for line in lines:
        if not line:
            if data:
                events.append(SseEvent(event or "message", "\n".join(data)))
            event, data = "", list[str]()
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    return events  # an unterminated last event is discarded, as the spec says


def eventstream_messages(body: bytes) -> list[tuple[dict[str, Any], bytes]]:
    """(headers, payload) of every message, decoded and CRC-checked by botocore."""
    buffer = EventStreamBuffer()
    buffer.add_data(body)
    return [(dict(m.headers), m.payload) for m in buffer]


@dataclass
class Decoded:
    texts: list[str] = field(default_factory=list)  # one entry per text delta
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish: str | None = None
    error: Any = None  # the in-band error, if any
    terminated: bool = False  # the protocol's normal end marker was seen

    @property
    def text(self) -> str:
        return "".join(self.texts)


@dataclass(frozen=True)
class Wire:
    """One protocol (or one Bedrock API) as a client sees it."""

    name: str
    protocol: SimProtocol
    path: str
    headers: dict[str, str]
    finish_stop: str
    finish_length: str
    overloaded_status: int  # the answer to x-lens-sim-fault: 529
    prefix_chunks: int  # HTTP chunks sent with the head, before the first token

    def body(
        self, *, stream: bool = True, max_tokens: int | None = None, text: str = "Say hi."
    ) -> dict[str, Any]:
        if self.name in ("openai", "azure-openai"):
            body: dict[str, Any] = {
                "model": "test-model",
                "messages": [{"role": "user", "content": text}],
                "stream": stream,
                "stream_options": {"include_usage": True},
            }
            if max_tokens is not None:
                body["max_tokens"] = max_tokens
        elif self.name == "openai-responses":
            body = {"model": "test-model", "input": text, "stream": stream}
            if max_tokens is not None:
                body["max_output_tokens"] = max_tokens
        elif self.name in ("anthropic", "bedrock-invoke"):
            body = {"max_tokens": 1000 if max_tokens is None else max_tokens}
            body["messages"] = [{"role": "user", "content": text}]
            if self.name == "anthropic":
                body |= {"model": "test-model", "stream": stream}
            else:
                body["anthropic_version"] = "bedrock-2023-05-31"
        elif self.name == "gemini":
            body = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
            if max_tokens is not None:
                body["generationConfig"] = {"maxOutputTokens": max_tokens}
        else:  # bedrock converse
            body = {"messages": [{"role": "user", "content": [{"text": text}]}]}
            if max_tokens is not None:
                body["inferenceConfig"] = {"maxTokens": max_tokens}
        return body

    def target(self, *, stream: bool = True) -> str:
        if stream:
            return self.path
        if self.name == "gemini":
            return self.path.replace(":streamGenerateContent?alt=sse", ":generateContent")
        if self.name.startswith("bedrock"):
            return self.path.removesuffix("-with-response-stream").removesuffix("-stream")
        return self.path

    def decode(self, resp: Response) -> Decoded:
        raw = b"".join(resp.chunks)
        if self.name.startswith("bedrock"):
            return self._decode_eventstream(raw)
        events = parse_sse(raw)
        out = Decoded()
        decoder = getattr(self, "_decode_" + self.name.replace("-", "_"))
        for event in events:
            decoder(event, out)
        return out

    # -- per protocol ---------------------------------------------------------------------

    @staticmethod
    def _decode_openai(event: SseEvent, out: Decoded) -> None:
        if event.data == "[DONE]":
            out.terminated = True
            return
        chunk = json.loads(event.data)
        if "error" in chunk:
            out.error = chunk["error"]
            return
        if chunk.get("usage"):
            out.input_tokens = chunk["usage"]["prompt_tokens"]
            out.output_tokens = chunk["usage"]["completion_tokens"]
        for choice in chunk["choices"]:
            delta = choice["delta"]
            if delta.get("content"):
                out.texts.append(delta["content"])
            if choice["finish_reason"]:
                out.finish = choice["finish_reason"]

    _decode_azure_openai = _decode_openai

    @staticmethod
    def _decode_openai_responses(event: SseEvent, out: Decoded) -> None:
        data = json.loads(event.data)
        assert data["type"] == event.event
        if event.event == "response.output_text.delta":
            out.texts.append(data["delta"])
        elif event.event == "error":
            out.error = data["error"]
        elif event.event in ("response.completed", "response.incomplete", "response.failed"):
            out.finish = data["response"]["status"]
            out.terminated = event.event != "response.failed"
            usage = data["response"]["usage"]
            if usage:
                out.input_tokens = usage["input_tokens"]
                out.output_tokens = usage["output_tokens"]

    @staticmethod
    def _decode_anthropic(event: SseEvent, out: Decoded) -> None:
        data = json.loads(event.data)
        assert data["type"] == event.event
        if event.event == "message_start":
            out.input_tokens = data["message"]["usage"]["input_tokens"]
        elif event.event == "content_block_delta":
            out.texts.append(data["delta"]["text"])
        elif event.event == "message_delta":
            out.output_tokens = data["usage"]["output_tokens"]
            out.finish = data["delta"]["stop_reason"]
        elif event.event == "message_stop":
            out.terminated = True
        elif event.event == "error":
            out.error = data["error"]

    @staticmethod
    def _decode_gemini(event: SseEvent, out: Decoded) -> None:
        data = json.loads(event.data)
        if "error" in data:
            out.error = data["error"]
            return
        candidate = data["candidates"][0]
        out.texts.extend(p["text"] for p in candidate["content"]["parts"] if p["text"])
        usage = data["usageMetadata"]
        out.input_tokens = usage["promptTokenCount"]
        out.output_tokens = usage.get("candidatesTokenCount", 0)
        if "finishReason" in candidate:
            out.finish = candidate["finishReason"]
            out.terminated = True  # Gemini has no end marker: the finish is the last word

    def _decode_eventstream(self, raw: bytes) -> Decoded:
        out = Decoded()
        for headers, payload in eventstream_messages(raw):
            data = json.loads(payload)
            if headers[":message-type"] == "exception":
                out.error = {"type": headers[":exception-type"], **data}
                continue
            assert headers[":message-type"] == "event"
            assert headers[":content-type"] == "application/json"
            assert "p" in data  # every payload is padded
            kind = headers[":event-type"]
            if kind == "chunk":
                self._decode_anthropic(_anthropic_event(data["bytes"]), out)
                if out.terminated:
                    metrics = json.loads(base64.b64decode(data["bytes"]))
                    out.output_tokens = metrics["amazon-bedrock-invocationMetrics"][
                        "outputTokenCount"
                    ]
            elif kind == "contentBlockDelta":
                out.texts.append(data["delta"]["text"])
            elif kind == "messageStop":
                out.finish = data["stopReason"]
            elif kind == "metadata":
                out.input_tokens = data["usage"]["inputTokens"]
                out.output_tokens = data["usage"]["outputTokens"]
                out.terminated = True
        return out


def _anthropic_event(b64: str) -> SseEvent:
    data = json.loads(base64.b64decode(b64))
    return SseEvent(data["type"], json.dumps(data))


_ANTHROPIC_HEADERS = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01"}
_BEDROCK_AUTH = {"authorization": "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/bedrock"}

WIRES: dict[str, Wire] = {
    w.name: w
    for w in (
        Wire("openai", "openai", "/v1/chat/completions", {}, "stop", "length", 503, 1),
        Wire(
            "azure-openai",
            "azure-openai",
            "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
            {"api-key": "az-key"},
            "stop",
            "length",
            503,
            2,
        ),
        Wire(
            "openai-responses",
            "openai-responses",
            "/v1/responses",
            {},
            "completed",
            "incomplete",
            503,
            4,
        ),
        Wire(
            "anthropic",
            "anthropic",
            "/v1/messages",
            _ANTHROPIC_HEADERS,
            "end_turn",
            "max_tokens",
            529,
            3,
        ),
        Wire(
            "gemini",
            "gemini",
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            {"x-goog-api-key": "g-key"},
            "STOP",
            "MAX_TOKENS",
            503,
            0,
        ),
        Wire(
            "bedrock",
            "bedrock",
            "/model/us.amazon.nova-micro-v1%3A0/converse-stream",
            _BEDROCK_AUTH,
            "end_turn",
            "max_tokens",
            503,
            1,
        ),
        Wire(
            "bedrock-invoke",
            "bedrock",
            "/model/anthropic.claude-sonnet-4-20250514-v1:0/invoke-with-response-stream",
            _BEDROCK_AUTH,
            "end_turn",
            "max_tokens",
            503,
            2,
        ),
    )
}

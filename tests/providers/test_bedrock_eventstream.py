"""A tiny eventstream ENCODER for Bedrock tests, checked against recorded bytes.

Product code only ever decodes (with botocore); these helpers build the bytes a Bedrock
server would send: prelude (total length, headers length, CRC32 of the 8 bytes before it),
string headers (type 7), payload, and a CRC32 of everything before it (wire-formats.md §6.2).
The other Bedrock test modules import them from here.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from botocore.eventstream import EventStreamBuffer

from lens.providers.bedrock_stream import ConverseStreamDecoder
from lens.records import ErrorClass

RECORDED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "recorded-streams"
PAD = "abcdefghijklmnopqr"  # Bedrock's random-length "p" padding field


def recorded(name: str) -> bytes:
    """A file of the shared recordings, or a skip saying why it is missing."""
    path = RECORDED / name
    if not path.is_file():
        pytest.skip(f"recorded stream {name} not found at {path} (shared/ is not checked out)")
    return path.read_bytes()


def recorded_json(name: str) -> dict[str, Any]:
    doc = json.loads(recorded(name))
    assert isinstance(doc, dict)
    return doc


def _header(name: str, value: str | bytes) -> bytes:
    """A header of type 7 (string), or of type 6 (byte array) for a bytes value."""
    kind, raw = (b"\x06", value) if isinstance(value, bytes) else (b"\x07", value.encode())
    return bytes([len(name)]) + name.encode() + kind + struct.pack(">H", len(raw)) + raw


def frame(headers: Sequence[tuple[str, str | bytes]], payload: bytes = b"") -> bytes:
    """One eventstream message (string or byte-array headers), both CRCs computed."""
    block = b"".join(_header(n, v) for n, v in headers)
    prelude = struct.pack(">II", 12 + len(block) + len(payload) + 4, len(block))
    prelude += struct.pack(">I", binascii.crc32(prelude))
    body = prelude + block + payload
    return body + struct.pack(">I", binascii.crc32(body))


def _json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def event(event_type: str, doc: dict[str, Any], *, pad: str = PAD) -> bytes:
    """An event message, headers in Bedrock's wire order, payload with its padding field."""
    headers = [
        (":event-type", event_type),
        (":content-type", "application/json"),
        (":message-type", "event"),
    ]
    return frame(headers, _json({"p": pad, **doc}))


def exception(name: str, doc: dict[str, Any]) -> bytes:
    headers = [
        (":exception-type", name),
        (":content-type", "application/json"),
        (":message-type", "exception"),
    ]
    return frame(headers, _json(doc))


def error_frame(code: str, message: str) -> bytes:
    return frame([(":message-type", "error"), (":error-code", code), (":error-message", message)])


# --- ConverseStream events (§6.3) ----------------------------------------------------------


def message_start() -> bytes:
    return event("messageStart", {"role": "assistant"})


def text(value: str, index: int = 0) -> bytes:
    return event("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": value}})


def reasoning(value: str, index: int = 0) -> bytes:
    delta = {"reasoningContent": {"text": value}}
    return event("contentBlockDelta", {"contentBlockIndex": index, "delta": delta})


def reasoning_signature(index: int = 0) -> bytes:
    delta = {"reasoningContent": {"signature": "EqoBCkgIARABGAIiQL"}}
    return event("contentBlockDelta", {"contentBlockIndex": index, "delta": delta})


def tool_start(index: int = 1) -> bytes:
    start = {"toolUse": {"name": "get_temperature", "toolUseId": "tooluse_lAG_zP8Q"}}
    return event("contentBlockStart", {"contentBlockIndex": index, "start": start})


def tool_input(value: str, index: int = 1) -> bytes:
    delta = {"toolUse": {"input": value}}
    return event("contentBlockDelta", {"contentBlockIndex": index, "delta": delta})


def block_stop(index: int = 0) -> bytes:
    return event("contentBlockStop", {"contentBlockIndex": index})


def message_stop(reason: str = "end_turn") -> bytes:
    return event("messageStop", {"stopReason": reason})


def metadata(
    inputs: int,
    outputs: int,
    *,
    latency_ms: int | None = 522,
    cache_read: int | None = None,
    cache_write: int | None = None,
    total: int | None = None,
) -> bytes:
    usage: dict[str, Any] = {"inputTokens": inputs, "outputTokens": outputs}
    if cache_read is not None:
        usage["cacheReadInputTokens"] = cache_read
    if cache_write is not None:
        usage["cacheWriteInputTokens"] = cache_write
    usage["serverToolUsage"] = {}
    usage["totalTokens"] = (
        total if total is not None else inputs + outputs + (cache_read or 0) + (cache_write or 0)
    )
    doc: dict[str, Any] = {"usage": usage}
    if latency_ms is not None:
        doc["metrics"] = {"latencyMs": latency_ms}
    return event("metadata", doc)


# --- InvokeModelWithResponseStream (§6.4) --------------------------------------------------


def chunk(anthropic_event: dict[str, Any]) -> bytes:
    """A ``chunk`` event whose base64 ``bytes`` hold one Anthropic Messages event."""
    encoded = base64.b64encode(_json(anthropic_event)).decode()
    return event("chunk", {"bytes": encoded})


# --- the encoder against real bytes ---------------------------------------------------------


def test_encoder_reproduces_the_recorded_first_message_byte_for_byte() -> None:
    body = recorded("bedrock_converse_stream.bin")
    sidecar = recorded_json("bedrock_converse_stream.json")["expected"]["first_message"]
    headers = [
        (":event-type", "messageStart"),
        (":content-type", "application/json"),
        (":message-type", "event"),
    ]
    built = frame(headers, sidecar["payload"].encode())
    assert len(built) == sidecar["total_length"]
    assert built == body[: sidecar["total_length"]]


def test_encoder_reproduces_the_recorded_exception_frame() -> None:
    body = recorded("bedrock_eventstream_model_stream_error.bin")
    expected = recorded_json("bedrock_eventstream_model_stream_error.json")["expected"]
    headers = [
        (":message-type", expected["headers"][":message-type"]),
        (":exception-type", expected["headers"][":exception-type"]),
        (":content-type", expected["headers"][":content-type"]),
    ]
    payload = json.dumps(expected["payload"], separators=(",", ":")).encode()
    built = frame(headers, payload)
    # The header order of a hand-made vector is not known; the decoded form must agree.
    buf = EventStreamBuffer()
    buf.add_data(body)
    (message,) = list(buf)
    assert dict(message.headers) == dict(headers)
    assert json.loads(message.payload) == json.loads(payload)
    assert len(built) == len(body) == expected["total_length"]


def test_botocore_vectors_through_the_decoder() -> None:
    vectors = recorded_json("eventstream_vectors/vectors.json")["vectors"]
    err = vectors["error_event_message.bin"]["headers"]
    dec = ConverseStreamDecoder()
    dec.feed(recorded("eventstream_vectors/error_event_message.bin"), 10)
    out = dec.finish(20, eof=True)
    assert out.error_class is ErrorClass.STREAM_ERROR
    assert out.error_message == f"{err[':error-code'][1]}: {err[':error-message'][1]}"

    dec = ConverseStreamDecoder()
    dec.feed(recorded("eventstream_vectors/corrupted_payload.bin"), 10)
    out = dec.finish(20, eof=True)
    assert out.error_class is ErrorClass.STREAM_ERROR
    assert out.error_message is not None
    assert out.error_message.startswith("corrupt event stream")

    # Messages that are valid but no Bedrock event (every header type, no :message-type,
    # an empty message) are skipped; the stream then simply never completed.
    dec = ConverseStreamDecoder()
    for name in ("all_header_types.bin", "payload_one_str_header.bin", "empty_message.bin"):
        dec.feed(recorded(f"eventstream_vectors/{name}"), 10)
    out = dec.finish(20, eof=True)
    assert out.events == 3
    assert out.error_class is ErrorClass.CUT_STREAM
    assert out.error_message == "stream ended before messageStop"

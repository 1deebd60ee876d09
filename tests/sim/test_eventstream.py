"""The eventstream encoder, byte for byte against botocore's vectors and a real recording."""

from __future__ import annotations

import binascii
import json
import struct
import uuid
from typing import Any

import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from lens.sim import eventstream
from lens.sim.eventstream import Header, encode_message, event_headers, exception_headers
from tests.sim.wire import RECORDED, eventstream_messages, recorded

_TYPES = {
    "true": eventstream.TRUE,
    "false": eventstream.FALSE,
    "byte": eventstream.BYTE,
    "short": eventstream.SHORT,
    "int": eventstream.INTEGER,
    "long": eventstream.LONG,
    "bytes": eventstream.BYTES,
    "string": eventstream.STRING,
    "timestamp": eventstream.TIMESTAMP,
    "uuid": eventstream.UUID,
}


def _header(name: str, kind: str, value: Any) -> Header:
    if kind == "bytes":
        value = value.encode()
    elif kind == "uuid":
        value = uuid.UUID(value)
    return Header(name, _TYPES[kind], value)


def _vectors() -> dict[str, Any]:
    path = RECORDED / "eventstream_vectors" / "vectors.json"
    if not path.exists():
        return {}
    vectors: dict[str, Any] = json.loads(path.read_text())["vectors"]
    return vectors


@pytest.mark.parametrize(
    "name", [n for n, v in _vectors().items() if v["expect_valid"]] or ["missing"]
)
def test_encoder_reproduces_botocore_vectors(name: str) -> None:
    vector = _vectors().get(name)
    if vector is None:
        pytest.skip("eventstream vectors not available")
    expected = recorded(f"eventstream_vectors/{name}")
    headers = [_header(k, kind, value) for k, (kind, value) in vector["headers"].items()]
    assert encode_message(headers, vector["payload"].encode()) == expected


def test_corrupted_vector_is_refused_by_the_decoder() -> None:
    buffer = EventStreamBuffer()
    buffer.add_data(recorded("eventstream_vectors/corrupted_payload.bin"))
    with pytest.raises(ChecksumMismatch):
        list(buffer)


def test_encoder_reproduces_a_recorded_bedrock_message() -> None:
    data = recorded("bedrock_converse_stream.bin")
    ((headers, payload),) = eventstream_messages(data[: struct.unpack(">I", data[:4])[0]])
    ours = encode_message(event_headers(headers[":event-type"]), payload)
    assert data.startswith(ours)


def test_layout_and_crcs() -> None:
    message = encode_message(exception_headers("throttlingException"), b'{"message":"x"}')
    total, headers_length, prelude_crc = struct.unpack(">III", message[:12])
    assert total == len(message)
    assert prelude_crc == binascii.crc32(message[:8])
    assert struct.unpack(">I", message[-4:])[0] == binascii.crc32(message[:-4])
    ((headers, payload),) = eventstream_messages(message)
    assert list(headers) == [":message-type", ":exception-type", ":content-type"]
    assert headers[":exception-type"] == "throttlingException"
    assert payload == b'{"message":"x"}'
    assert 12 + headers_length + len(payload) + 4 == total


@pytest.mark.parametrize(
    "header",
    [
        Header("", eventstream.STRING, "x"),
        Header("n" * 256, eventstream.STRING, "x"),
        Header("n", eventstream.STRING, b"bytes-not-str"),
        Header("n", eventstream.INTEGER, "1"),
        Header("n", eventstream.UUID, "not-a-uuid"),
        Header("n", 42, "x"),
    ],
)
def test_bad_headers_are_refused(header: Header) -> None:
    with pytest.raises(ValueError, match="header"):
        encode_message([header], b"")


def test_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eventstream, "MAX_PAYLOAD_LENGTH", 4)
    with pytest.raises(ValueError, match="payload"):
        encode_message([], b"12345")
    monkeypatch.setattr(eventstream, "MAX_HEADERS_LENGTH", 4)
    with pytest.raises(ValueError, match="headers"):
        encode_message(event_headers("x"), b"")

"""An ``application/vnd.amazon.eventstream`` encoder (docs/wire-formats.md section 6.2).

A message is::

    [total_length u32][headers_length u32][prelude_crc u32]   CRC32 of the first 8 bytes
    [headers]                                                 [name_len u8][name][type u8][value]
    [payload]
    [message_crc u32]                                         CRC32 of everything before it

all big-endian, CRC-32 being zlib's (``binascii.crc32``).  Bedrock only sends string
headers; the other value types are here so the encoder can be checked byte for byte
against botocore's test vectors.
"""

from __future__ import annotations

import binascii
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

# Header value types.
TRUE: Final = 0
FALSE: Final = 1
BYTE: Final = 2
SHORT: Final = 3
INTEGER: Final = 4
LONG: Final = 5
BYTES: Final = 6
STRING: Final = 7
TIMESTAMP: Final = 8  # int64 milliseconds since the epoch
UUID: Final = 9

_INT_FORMATS: Final = {BYTE: ">b", SHORT: ">h", INTEGER: ">i", LONG: ">q", TIMESTAMP: ">q"}
MAX_HEADERS_LENGTH: Final = 128 * 1024
MAX_PAYLOAD_LENGTH: Final = 24 * 1024 * 1024
_PRELUDE = struct.Struct(">II")
_CRC = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class Header:
    """One typed header; ``value`` is ignored for booleans (the type is the value)."""

    name: str
    type: int
    value: str | bytes | int | uuid.UUID | None = None


def _value_bytes(header: Header) -> bytes:
    t, value = header.type, header.value
    if t in (TRUE, FALSE):
        return b""
    if t in _INT_FORMATS and isinstance(value, int):
        return struct.pack(_INT_FORMATS[t], value)
    if t == BYTES and isinstance(value, bytes):
        return struct.pack(">H", len(value)) + value
    if t == STRING and isinstance(value, str):
        raw = value.encode()
        return struct.pack(">H", len(raw)) + raw
    if t == UUID and isinstance(value, uuid.UUID):
        return value.bytes
    raise ValueError(f"header {header.name!r}: value {value!r} does not fit type {t}")


def encode_headers(headers: Sequence[Header]) -> bytes:
    out = bytearray()
    for header in headers:
        name = header.name.encode()
        if not 0 < len(name) < 256:
            raise ValueError(f"header name must be 1..255 bytes: {header.name!r}")
        out += bytes((len(name),)) + name + bytes((header.type,)) + _value_bytes(header)
    return bytes(out)


def encode_message(headers: Sequence[Header] | bytes, payload: bytes) -> bytes:
    """One complete message; ``headers`` may be pre-encoded (``encode_headers``)."""
    raw_headers = headers if isinstance(headers, bytes) else encode_headers(headers)
    if len(raw_headers) > MAX_HEADERS_LENGTH:
        raise ValueError(f"headers are {len(raw_headers)} bytes; the limit is 128 KiB")
    if len(payload) > MAX_PAYLOAD_LENGTH:
        raise ValueError(f"payload is {len(payload)} bytes; the limit is 24 MiB")
    prelude = _PRELUDE.pack(16 + len(raw_headers) + len(payload), len(raw_headers))
    message = prelude + _CRC.pack(binascii.crc32(prelude)) + raw_headers + payload
    return message + _CRC.pack(binascii.crc32(message))


def string_headers(*pairs: tuple[str, str]) -> bytes:
    """Pre-encoded string headers, in the given order."""
    return encode_headers([Header(name, STRING, value) for name, value in pairs])


def event_headers(event_type: str) -> bytes:
    """What Bedrock sends on every event, in its wire order."""
    return string_headers(
        (":event-type", event_type),
        (":content-type", "application/json"),
        (":message-type", "event"),
    )


def exception_headers(exception_type: str) -> bytes:
    """An exception frame's headers, in the order of the recorded frame."""
    return string_headers(
        (":message-type", "exception"),
        (":exception-type", exception_type),
        (":content-type", "application/json"),
    )

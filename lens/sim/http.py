"""A deliberately small HTTP/1.1 server side: read requests, frame responses.

The simulator is a benchmark target, so its hot path avoids h11: a request head is
parsed with ``bytes.find`` and ``str.split`` and a streamed chunk is one ``%`` format.
It supports exactly what LLM clients send (``Content-Length`` bodies, keep-alive,
pipelining, ``Expect: 100-continue``) and rejects the rest with a clear 4xx.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass

import trio

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024
_RECV_SIZE = 65536

REASONS: dict[int, str] = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
    529: "Overloaded",  # Anthropic's; not an IANA status
}

CHUNK_END = b"0\r\n\r\n"


class HttpError(Exception):
    """A request we cannot or will not serve, answered with ``status``.

    The body is rendered by the active protocol in its provider's error format; ``code``
    and ``param`` feed the formats that have such fields (OpenAI's), ``headers`` are sent
    as they are (``allow`` on a 405).  Framing errors also close the connection.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str
    path: str  # target without the query string
    version: str
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes
    keep_alive: bool

    def query(self) -> dict[str, str]:
        """The query string's parameters, percent-decoded (the last one of a repeated name)."""
        _, sep, query = self.target.partition("?")
        return dict(urllib.parse.parse_qsl(query, keep_blank_values=True)) if sep else {}


class RequestReader:
    """Reads successive requests from one connection, keeping pipelined leftovers."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self._buf = bytearray()

    async def _fill(self) -> bool:
        data = await self._stream.receive_some(_RECV_SIZE)
        if not data:
            return False
        self._buf += data
        return True

    async def next_request(self) -> Request | None:
        """The next complete request, or ``None`` when the peer closed between requests."""
        buf = self._buf
        # RFC 9112 section 2.2: a server SHOULD ignore empty lines before a request line.
        while True:
            while buf[:2] == b"\r\n":
                del buf[:2]
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(buf) > MAX_HEAD_BYTES:
                raise HttpError(431, "request head too large")
            if not await self._fill():
                if buf.strip():
                    raise HttpError(400, "connection closed in the middle of a request head")
                return None
        if end > MAX_HEAD_BYTES:
            raise HttpError(431, "request head too large")
        head = bytes(buf[:end]).decode("latin-1")
        del buf[: end + 4]
        method, target, version, headers = _parse_head(head)

        if "transfer-encoding" in headers:
            raise HttpError(400, "chunked request bodies are not supported; send Content-Length")
        length = _content_length(headers)
        if length > MAX_BODY_BYTES:
            raise HttpError(413, f"request body larger than {MAX_BODY_BYTES} bytes")
        if length > len(buf) and headers.get("expect", "").lower() == "100-continue":
            await self._stream.send_all(b"HTTP/1.1 100 Continue\r\n\r\n")
        while len(buf) < length:
            if not await self._fill():
                raise HttpError(400, "connection closed in the middle of a request body")
        body = bytes(buf[:length])
        del buf[:length]

        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        keep_alive = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
        path = target.split("?", 1)[0]
        return Request(method, target, path, version, headers, body, keep_alive)

    async def drain_until_eof(self) -> None:
        """Discard input until the peer closes: how a hung response notices its client left."""
        self._buf.clear()
        while await self._stream.receive_some(_RECV_SIZE):
            pass


def _parse_head(head: str) -> tuple[str, str, str, dict[str, str]]:
    lines = head.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise HttpError(400, f"malformed request line: {lines[0][:100]!r}")
    method, target, version = parts
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        status = 505 if version.startswith("HTTP/") else 400
        raise HttpError(status, f"unsupported protocol version {version[:20]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        # Whitespace around the name is forbidden (a request-smuggling vector) and also
        # catches obsolete folded continuation lines; both are rejected, not guessed at.
        if not sep or not name or name != name.strip():
            raise HttpError(400, f"malformed header line: {line[:100]!r}")
        key = name.lower()
        value = value.strip(" \t")
        if key in headers:
            if key == "content-length" and headers[key] != value:
                raise HttpError(400, "conflicting Content-Length headers")
            if key != "content-length":
                headers[key] = f"{headers[key]}, {value}"
        else:
            headers[key] = value
    return method, target, version, headers


def _content_length(headers: dict[str, str]) -> int:
    raw = headers.get("content-length")
    if raw is None:
        return 0
    if not raw.isdigit() or not raw.isascii():
        raise HttpError(400, f"invalid Content-Length: {raw[:40]!r}")
    return int(raw)


def frame_chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk (``size CRLF data CRLF``)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def response_bytes(
    status: int,
    body: bytes,
    *,
    content_type: str = "application/json",
    headers: tuple[tuple[str, str], ...] = (),
    keep_alive: bool = True,
) -> bytes:
    """A complete response with a ``Content-Length`` body."""
    lines = [
        f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}",
        f"content-type: {content_type}",
        f"content-length: {len(body)}",
        f"connection: {'keep-alive' if keep_alive else 'close'}",
    ]
    lines.extend(f"{k}: {v}" for k, v in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def error_body(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> bytes:
    """OpenAI's error envelope: ``{"error": {"message", "type", "param", "code"}}``."""
    payload = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return json.dumps(payload, separators=(",", ":")).encode()

"""Pure HTTP/1.1 framing for lens.run.http11: request heads, response heads, body decoders.

Nothing here does I/O, so every rule can be tested byte by byte.  The body decoders are
built for the streaming hot path: ``feed`` is called once per network read and returns
*all* the payload that read completed as one ``bytes`` (``b""`` when it completed none),
so the caller yields at most once per read and never holds back a byte that arrived.
Parsing uses ``bytes.find`` and slicing only: no regexes, no per-chunk objects.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

MAX_HEAD_BYTES = 64 * 1024
# A chunk-size line (with extensions) or one trailer line longer than this is an attack or
# a bug, not a stream: fail instead of buffering it.
MAX_LINE_BYTES = 64 * 1024
_HEX = b"0123456789abcdefABCDEF"
_DIGITS = b"0123456789"
_FORBIDDEN_IN_FIELD = (b"\r", b"\n", b"\0")


class ProtocolViolation(httpx.RemoteProtocolError):
    """The response broke HTTP/1.1 or a limit lens sets (an unsupported coding, a head or
    body too large, 101 Switching Protocols): the request's record says ``protocol_error``.

    A plain ``httpx.RemoteProtocolError`` still means the peer closed or cut the exchange.
    """


def build_request_head(request: httpx.Request, body_length: int) -> tuple[bytes, bool]:
    """The request line and header block for ``request`` with a body of ``body_length``,
    and whether the request asked to close the connection (``Connection: close``).

    Framing is ours: any Content-Length / Transfer-Encoding the caller set is replaced by
    one Content-Length of the bytes actually sent (the body is always sent whole), so
    exactly one framing header goes out.  A request that had neither and has no body gets
    none, like httpx's own GET.
    """
    # httpx.URL percent-encodes spaces and rejects control characters: the target is safe.
    lines = [request.method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
    had_framing = False
    has_host = False
    close = False
    for name, value in request.headers.raw:
        lower = name.lower()
        if lower in (b"content-length", b"transfer-encoding"):
            had_framing = True
            continue
        if lower == b"host":
            has_host = True
        elif lower == b"connection":
            close = close or b"close" in _tokens(value)
        for bad in _FORBIDDEN_IN_FIELD:
            if bad in name or bad in value:
                raise httpx.LocalProtocolError(f"illegal character in header {name!r}")
        lines += (name, b": ", value, b"\r\n")
    if not has_host:
        lines[4:4] = (b"Host: ", request.url.netloc, b"\r\n")
    if had_framing or body_length:
        lines += (b"Content-Length: ", str(body_length).encode("ascii"), b"\r\n")
    lines.append(b"\r\n")
    return b"".join(lines), close


def _tokens(value: bytes) -> list[bytes]:
    """The lower-cased elements of a comma-separated header value."""
    return [t.strip(b" \t").lower() for t in value.split(b",")]


@dataclass(frozen=True, slots=True)
class ResponseHead:
    status: int
    http_version: bytes  # b"HTTP/1.1" or b"HTTP/1.0"
    reason: bytes
    headers: list[tuple[bytes, bytes]]  # as received (original case, original order)
    # The headers that decide framing and reuse, as lower-cased tokens; None if absent.
    connection: list[bytes] | None = None
    transfer_encoding: list[bytes] | None = None
    content_length: list[bytes] | None = None


_FRAMING_HEADERS = (b"connection", b"transfer-encoding", b"content-length")


def parse_response_head(head: bytes) -> ResponseHead:
    """Parse a response head without its final CRLF CRLF; malformed => RemoteProtocolError."""
    lines = head.split(b"\r\n")
    status_line = lines[0]
    version, _, rest = status_line.partition(b" ")
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise httpx.RemoteProtocolError(f"malformed status line {status_line[:80]!r}")
    code = rest[:3]
    if len(code) != 3 or code.strip(_DIGITS) or (len(rest) > 3 and rest[3:4] != b" "):
        raise httpx.RemoteProtocolError(f"malformed status line {status_line[:80]!r}")
    headers: list[tuple[bytes, bytes]] = []
    framing: dict[bytes, list[bytes]] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        # An empty name, whitespace before the colon (RFC 9112 5.1) or an obs-fold line
        # (leading whitespace, 5.2) are all rejected: none comes from a sane server.
        if not colon or not name or name != name.strip(b" \t") or b"\0" in value:
            raise httpx.RemoteProtocolError(f"malformed header line {line[:80]!r}")
        value = value.strip(b" \t")
        headers.append((name, value))
        lower = name.lower()
        if lower in _FRAMING_HEADERS:
            framing.setdefault(lower, []).extend(_tokens(value))
    return ResponseHead(
        int(code),
        version,
        rest[4:],
        headers,
        framing.get(b"connection"),
        framing.get(b"transfer-encoding"),
        framing.get(b"content-length"),
    )


def response_framing(
    method: str, head: ResponseHead, *, request_close: bool = False
) -> tuple[BodyDecoder, bool]:
    """The body decoder for a response (RFC 9112 6.3) and whether the connection may
    carry another request afterwards."""
    status = head.status
    keep_alive = (
        head.http_version == b"HTTP/1.1"
        and not request_close
        and (head.connection is None or b"close" not in head.connection)
    )
    if method == "HEAD" or status in (204, 304) or status < 200:
        # 101 Switching Protocols ends HTTP on this connection.
        return LengthDecoder(0), keep_alive and status != 101
    codings = head.transfer_encoding
    if codings is not None:
        if codings[-1] != b"chunked":
            return CloseDecoder(), False  # 6.3 item 4: the body runs until close
        # Both framings smell of request smuggling: honour chunked, never reuse (6.3 item 3).
        return ChunkedDecoder(), keep_alive and head.content_length is None
    if head.content_length is not None:
        return LengthDecoder(_content_length(head.content_length)), keep_alive
    return CloseDecoder(), False


def _content_length(values: list[bytes]) -> int:
    """Repeated equal values are allowed (RFC 9110 8.6); anything else is an error."""
    first = values[0]
    if not first or first.strip(_DIGITS) or len(first) > 18 or any(v != first for v in values):
        raise httpx.RemoteProtocolError(f"malformed content-length {b','.join(values)[:80]!r}")
    return int(first)


class PartialBody(httpx.RemoteProtocolError):
    """A read carried payload and then a framing error: the caller yields ``payload``,
    then raises ``error``.  Raised by ``ChunkedDecoder.feed``; free unless raised."""

    def __init__(self, payload: bytes, error: httpx.RemoteProtocolError) -> None:
        super().__init__(str(error))
        self.payload = payload
        self.error = error


class BodyDecoder:
    """Interface of the framing decoders: ``feed`` once per read, ``eof`` at EOF.

    ``done`` turns true when the message is complete; ``trailing`` when bytes beyond the
    end of the message arrived (a server bug or an unsolicited response: the connection
    must not be reused).
    """

    __slots__ = ("done", "trailing")

    def __init__(self) -> None:
        self.done = False
        self.trailing = False

    def feed(self, data: bytes) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError

    def eof(self) -> None:
        """The peer closed; raise unless that ends the message."""
        if not self.done:
            raise httpx.RemoteProtocolError(
                f"peer closed connection without sending complete message body ({self.progress()})"
            )

    def progress(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError


class LengthDecoder(BodyDecoder):
    """``Content-Length: n``: exactly n bytes."""

    __slots__ = ("_expected", "_remaining")

    def __init__(self, length: int) -> None:
        super().__init__()
        self._expected = length
        self._remaining = length
        self.done = length == 0

    def feed(self, data: bytes) -> bytes:
        remaining = self._remaining
        if len(data) < remaining:
            self._remaining = remaining - len(data)
            return data
        self._remaining = 0
        self.done = True
        if len(data) > remaining:
            self.trailing = True
            return data[:remaining]
        return data

    def progress(self) -> str:
        return f"received {self._expected - self._remaining} of {self._expected} bytes"


class CloseDecoder(BodyDecoder):
    """No length and not chunked: the body is everything until the peer closes."""

    __slots__ = ("_received",)

    def __init__(self) -> None:
        super().__init__()
        self._received = 0

    def feed(self, data: bytes) -> bytes:
        self._received += len(data)
        return data

    def eof(self) -> None:
        self.done = True

    def progress(self) -> str:  # pragma: no cover - eof() never fails
        return f"received {self._received} bytes"


# ChunkedDecoder states between reads (inside chunk data is "remaining > 0" instead).
_SIZE = 0  # expecting a chunk-size line
_CRLF = 1  # expecting the CRLF that ends a chunk's data
_TRAILER = 2  # after the last chunk: trailer lines until an empty line
_DONE = 3


class ChunkedDecoder(BodyDecoder):
    """``Transfer-Encoding: chunked`` (RFC 9112 7.1), one pass over each read.

    Chunk data is passed through as soon as it arrives, even when its chunk is not
    complete yet; only a chunk-size line, CRLF or trailer line split across reads is
    buffered (a few bytes).  Chunk extensions and trailers are checked for size and
    otherwise ignored.
    """

    __slots__ = ("_partial", "_received", "_remaining", "_state")

    def __init__(self) -> None:
        super().__init__()
        self._state = _SIZE
        self._remaining = 0  # data bytes still to come in the current chunk
        self._partial = b""  # an incomplete line carried over from the previous read
        self._received = 0

    def feed(self, data: bytes) -> bytes:
        if self._partial:
            data = self._partial + data
            self._partial = b""
        end = len(data)
        pos = 0
        remaining = self._remaining
        state = self._state
        first = b""  # the common case is one piece of payload per read: no list for it
        more: list[bytes] | None = None
        error: str | None = None  # set instead of raising, so good payload is not lost
        while pos < end:
            if remaining:
                stop = pos + remaining
                if stop >= end:
                    piece = data[pos:] if pos else data
                    remaining = stop - end
                    pos = end
                    if not remaining:
                        state = _CRLF
                else:
                    piece = data[pos:stop]
                    remaining = 0
                    # The CRLF after the data is nearly always in the same read: skip it
                    # here instead of going round the loop for an empty line.
                    if data.startswith(b"\r\n", stop):
                        pos = stop + 2
                    else:
                        pos = stop
                        state = _CRLF
                if not first:
                    first = piece
                elif more is None:
                    more = [first, piece]
                else:
                    more.append(piece)
                continue
            eol = data.find(b"\r\n", pos)
            if eol < 0:
                partial = data[pos:]
                if len(partial) > MAX_LINE_BYTES or (state == _CRLF and partial != b"\r"):
                    error = f"malformed chunked body near {partial[:40]!r}"
                    break
                self._partial = partial
                break
            line = data[pos:eol]
            pos = eol + 2
            if state == _SIZE:
                # Fast path: a bare hex size (what every server sends); else the full rule.
                if line and len(line) <= 16 and not line.strip(_HEX):
                    remaining = int(line, 16)
                else:
                    remaining = _chunk_size(line)
                    if remaining < 0:
                        error = f"malformed chunk size line {line[:40]!r}"
                        break
                if not remaining:
                    state = _TRAILER
            elif state == _CRLF:
                if line:
                    error = f"malformed chunked body: chunk data followed by {line[:40]!r}"
                    break
                state = _SIZE
            elif line:  # _TRAILER: a trailer field, ignored
                if len(line) > MAX_LINE_BYTES:
                    error = "trailer line too long"
                    break
            else:
                state = _DONE
                self.done = True
                self.trailing = pos < end
                break
        self._remaining = remaining
        self._state = state
        payload = b"".join(more) if more is not None else first
        self._received += len(payload)
        if error is not None:
            exc = httpx.RemoteProtocolError(error)
            if payload:
                # Deliver the good payload this read carried before the error surfaces.
                raise PartialBody(payload, exc)
            raise exc
        return payload

    def progress(self) -> str:
        return f"received {self._received} payload bytes"


def _chunk_size(line: bytes) -> int:
    """A chunk-size line with extensions or whitespace before them; -1 if malformed."""
    semi = line.find(b";")
    digits = (line if semi < 0 else line[:semi]).rstrip(b" \t")  # BWS before extensions
    if not digits or len(digits) > 16 or digits.strip(_HEX):
        return -1
    return int(digits, 16)

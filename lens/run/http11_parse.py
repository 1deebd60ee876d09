"""Pure HTTP/1.1 framing for lens.run.http11: request heads, response heads, body decoders
(framing, then gzip/deflate content decoding when the response uses it).

Responses are read as h11 (httpx's default parser) reads them, rule for rule: bare-LF
line ends accepted, obs-fold unfolded, anything h11 refuses a ProtocolViolation; the
differential test in tests/run/test_http11_h11_diff.py holds the two together and lists
the few deliberate differences.

Nothing here does I/O, so every rule can be tested byte by byte.  The body decoders are
built for the streaming hot path: ``feed`` is called once per network read and returns
*all* the payload that read completed as one ``bytes`` (``b""`` when it completed none),
so the caller yields at most once per read and never holds back a byte that arrived.
Body decoding uses ``bytes.find`` and slicing only: no regexes, no per-chunk objects (the
end of a head is found with one regex search per read, once per response).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

import httpx

MAX_HEAD_BYTES = 64 * 1024
# A chunk-size line (with extensions) or one trailer line longer than this is an attack or
# a bug, not a stream: fail instead of buffering it.
MAX_LINE_BYTES = 64 * 1024
# The most body bytes (after content decoding) one response may deliver: a server that
# streams forever, or a gzip bomb, ends as a protocol error instead of eating memory.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
_HEX = b"0123456789abcdefABCDEF"
_DIGITS = b"0123456789"
# RFC 9110 5.6.2 tchar: what a header name may be made of.
_TCHAR = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_FORBIDDEN_IN_FIELD = (b"\r", b"\n", b"\0")
# The end of a response head: an empty line, whatever mix of CRLF and bare LF ends the
# lines around it (RFC 9112 2.2 lets a recipient accept LF; h11 does).
_HEAD_END = re.compile(rb"\n\r?\n")
# Longest chunk-size and Content-Length digit strings accepted (h11's limit: 20).
_MAX_DIGITS = 20


class ProtocolViolation(httpx.RemoteProtocolError):
    """The response broke HTTP/1.1 or a limit lens sets (an unsupported coding, a head or
    body too large, 101 Switching Protocols): the request's record says ``protocol_error``.

    A plain ``httpx.RemoteProtocolError`` still means the peer closed or cut the exchange.
    """


def find_head_end(buf: bytes, start: int = 0) -> tuple[int, int]:
    """Where the head in ``buf`` ends: (end of its last line, start of the body), or
    (-1, -1) when no empty line has arrived yet.  Resume later searches at
    ``max(0, len(buf) - 2)``: the search is then linear in the bytes received."""
    match = _HEAD_END.search(buf, start)
    if match is None:
        return -1, -1
    return match.start(), match.end()


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
    http_version: bytes  # b"HTTP/1.1" or b"HTTP/1.0" (or another HTTP/1.x)
    reason: bytes
    headers: list[tuple[bytes, bytes]]  # original case, original order, obs-fold unfolded
    # The headers that decide framing and reuse, as lower-cased tokens; None if absent.
    connection: list[bytes] | None = None
    transfer_encoding: list[bytes] | None = None  # only ever [b"chunked"]: see parse
    content_length: list[bytes] | None = None  # validated: equal values of digits
    content_encoding: list[bytes] | None = None  # without "identity" and empty tokens

    def decoded_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers for the body lens delivers when it decodes a content coding:
        without the Content-Encoding and Content-Length that describe the encoded body
        (so that httpx does not decode it a second time)."""
        return [(n, v) for n, v in self.headers if n.lower() not in _ENCODED_BODY_HEADERS]


_ENCODED_BODY_HEADERS = (b"content-encoding", b"content-length")


def parse_response_head(head: bytes) -> ResponseHead:
    """Parse a response head without its final empty line; malformed => ProtocolViolation.

    Lines end in CRLF or a bare LF; obs-fold continuation lines are unfolded (RFC 9112
    5.2).  What h11 rejects is rejected: a status other than three digits in 100-599, a
    header name that is not a token (NUL, space, CTL, ...), a bare CR, NUL, VT or FF
    anywhere, Content-Length values that are not equal digit strings, and any
    Transfer-Encoding other than one header saying ``chunked``.
    """
    head = _check_chars(head, "response head")
    lines = head.split(b"\n")
    status_line = lines[0]
    version, _, rest = status_line.partition(b" ")
    code = rest[:3]
    if (
        len(version) != 8
        or not version.startswith(b"HTTP/1.")
        or version[7] not in _DIGITS
        or len(code) != 3
        or code.strip(_DIGITS)
        or (len(rest) > 3 and rest[3] != 0x20)
    ):
        raise ProtocolViolation(f"malformed status line {status_line[:80]!r}")
    status = int(code)
    if not 100 <= status <= 599:
        raise ProtocolViolation(f"status {status} outside 100-599 in {status_line[:80]!r}")
    headers = parse_fields(lines[1:])
    framing: dict[bytes, list[bytes]] = {}
    transfer_encoding: list[bytes] | None = None
    for name, value in headers:
        lower = name.lower()
        if lower in _FRAMING_HEADERS:
            framing.setdefault(lower, []).extend(_tokens(value))
        elif lower == b"transfer-encoding":
            # Lens decodes no transfer coding but chunked: a body still gzip-encoded
            # under chunked framing would otherwise pass as data.
            if transfer_encoding is not None:
                raise ProtocolViolation("more than one Transfer-Encoding header")
            if value.lower() != b"chunked":
                raise ProtocolViolation(
                    f"unsupported Transfer-Encoding {value[:80].decode('latin-1')!r} "
                    "(lens reads only chunked)"
                )
            transfer_encoding = [b"chunked"]
    content_length = framing.get(b"content-length")
    if content_length is not None:
        _content_length(content_length)  # h11 checks it whatever the framing: so do we
    content_encoding = framing.get(b"content-encoding")
    if content_encoding is not None:
        content_encoding = [t for t in content_encoding if t and t != b"identity"] or None
    return ResponseHead(
        status,
        version,
        rest[4:],
        headers,
        framing.get(b"connection"),
        transfer_encoding,
        content_length,
        content_encoding,
    )


_FRAMING_HEADERS = (b"connection", b"content-length", b"content-encoding")


def _check_chars(block: bytes, what: str) -> bytes:
    """``block`` with its CRLF line ends turned into LF, after checking it holds no byte
    h11 refuses anywhere in a head: NUL, VT, FF, or a CR that does not end a line."""
    for bad in (b"\0", b"\x0b", b"\x0c"):
        if bad in block:
            raise ProtocolViolation(f"illegal character {bad!r} in {what}")
    if b"\r" in block:
        block = block[:-1] if block.endswith(b"\r") else block
        block = block.replace(b"\r\n", b"\n")
        if b"\r" in block:
            raise ProtocolViolation(f"bare CR in {what}")
    return block


def parse_fields(lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    """Header (or trailer) lines without line ends, already through ``_check_chars``,
    => (name, value) pairs, as h11 reads them: obs-fold lines are joined to the previous
    line with one space, names must be tokens directly followed by ``:``, values lose
    surrounding spaces and tabs."""
    if any(line[:1] in (b" ", b"\t") for line in lines):
        lines = _unfold(lines)
    fields: list[tuple[bytes, bytes]] = []
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or not name or name.translate(None, _TCHAR):
            raise ProtocolViolation(f"malformed header line {line[:80]!r}")
        fields.append((name, value.strip(b" \t")))
    return fields


def _unfold(lines: list[bytes]) -> list[bytes]:
    """RFC 9112 5.2: a line starting with SP or HTAB continues the previous field."""
    out: list[list[bytes]] = []  # pieces of each logical line: joined once, linear time
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not out:
                raise ProtocolViolation(f"continuation line before any header {line[:80]!r}")
            out[-1].append(line.lstrip(b" \t"))
        else:
            out.append([line])
    return [b" ".join(pieces) for pieces in out]


def response_framing(
    method: str,
    head: ResponseHead,
    *,
    request_close: bool = False,
    max_body: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> tuple[BodyDecoder, bool]:
    """The body decoder for a response (RFC 9112 6.3) and whether the connection may
    carry another request afterwards.

    A body in ``Content-Encoding: gzip`` or ``deflate`` is decoded as it arrives (at most
    ``max_body`` decoded bytes); any other content coding is a ProtocolViolation.
    """
    status = head.status
    keep_alive = (
        head.http_version != b"HTTP/1.0"
        and not request_close
        and (head.connection is None or b"close" not in head.connection)
    )
    if method == "HEAD" or status in (204, 304) or status < 200:
        # 101 Switching Protocols ends HTTP on this connection (the transport refuses it).
        return LengthDecoder(0), keep_alive and status != 101
    decoder: BodyDecoder
    if head.transfer_encoding is not None:  # parse_response_head let only "chunked" in
        # Both framings smell of request smuggling: honour chunked, never reuse (6.3 item 3).
        decoder = ChunkedDecoder()
        keep_alive = keep_alive and head.content_length is None
    elif head.content_length is not None:
        decoder = LengthDecoder(_content_length(head.content_length))
    else:
        decoder, keep_alive = CloseDecoder(), False
    codings = head.content_encoding
    if codings is not None:
        coding = codings[0] if len(codings) == 1 else b", ".join(codings)
        wbits = _CONTENT_CODINGS.get(coding)
        if wbits is None:
            raise ProtocolViolation(
                f"unsupported Content-Encoding {coding[:80].decode('latin-1')!r} "
                "(lens asks for identity)"
            )
        if not decoder.done:  # an empty body needs no decoder
            decoder = ContentDecoder(decoder, wbits, max_body)
    return decoder, keep_alive


def _content_length(values: list[bytes]) -> int:
    """Repeated equal values are allowed (RFC 9110 8.6); anything else is an error."""
    first = values[0]
    if (
        not first
        or first.strip(_DIGITS)
        or len(first) > _MAX_DIGITS
        or any(v != first for v in values)
    ):
        raise ProtocolViolation(f"malformed content-length {b','.join(values)[:80]!r}")
    return int(first)


def body_too_large(limit: int) -> ProtocolViolation:
    size = f"{limit // (1024 * 1024)} MiB" if limit % (1024 * 1024) == 0 else f"{limit} bytes"
    return ProtocolViolation(f"response body larger than {size} (limits.max_response_bytes)")


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

    def eof(self) -> bytes:
        """The peer closed; raise unless that ends the message, else return any payload
        still held (only a content decoder holds any)."""
        if not self.done:
            raise httpx.RemoteProtocolError(
                f"peer closed connection without sending complete message body ({self.progress()})"
            )
        return b""

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

    def eof(self) -> bytes:
        self.done = True
        return b""

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
    buffered (a few bytes).  Chunk extensions are checked for size and otherwise
    ignored; trailers are checked like header lines (h11 rejects bad ones) and dropped.
    As in h11, chunk-size lines and the line end after chunk data must be CRLF, while
    trailer lines may end in a bare LF.
    """

    __slots__ = ("_partial", "_received", "_remaining", "_state", "_trailer_size", "_trailers")

    def __init__(self) -> None:
        super().__init__()
        self._state = _SIZE
        self._remaining = 0  # data bytes still to come in the current chunk
        self._partial = b""  # an incomplete line carried over from the previous read
        self._received = 0
        self._trailers: list[bytes] = []
        self._trailer_size = 0

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
            if state == _TRAILER:
                error = self._trailer_lines(data, pos)
                if self.done:
                    state = _DONE
                break
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
                if line and len(line) <= _MAX_DIGITS and not line.strip(_HEX):
                    remaining = int(line, 16)
                else:
                    remaining = _chunk_size(line)
                    if remaining < 0:
                        error = f"malformed chunk size line {line[:40]!r}"
                        break
                if not remaining:
                    state = _TRAILER
            else:  # _CRLF
                if line:
                    error = f"malformed chunked body: chunk data followed by {line[:40]!r}"
                    break
                state = _SIZE
        self._remaining = remaining
        self._state = state
        payload = b"".join(more) if more is not None else first
        self._received += len(payload)
        if error is not None:
            exc = ProtocolViolation(error)
            if payload:
                # Deliver the good payload this read carried before the error surfaces.
                raise PartialBody(payload, exc)
            raise exc
        return payload

    def _trailer_lines(self, data: bytes, pos: int) -> str | None:
        """Consume trailer lines from ``data[pos:]`` (the rest of the read); sets ``done``
        at the empty line that ends them.  Returns an error message, or None."""
        end = len(data)
        trailers = self._trailers
        while pos < end:
            eol = data.find(b"\n", pos)
            if eol < 0:
                partial = data[pos:]
                if len(partial) > MAX_LINE_BYTES:
                    return "trailer line too long"
                self._partial = partial
                return None
            line = data[pos:eol]
            pos = eol + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if line:
                trailers.append(line)
                self._trailer_size += len(line)
                if self._trailer_size > MAX_HEAD_BYTES:
                    return f"trailers larger than {MAX_HEAD_BYTES} bytes"
                continue
            self.done = True
            self.trailing = pos < end
            if trailers:
                try:
                    _parse_trailers(trailers)
                except ProtocolViolation as exc:
                    return f"malformed trailer: {exc}"
            return None
        return None

    def progress(self) -> str:
        return f"received {self._received} payload bytes"


def _parse_trailers(lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    block = b"\n".join(lines)
    if b"\r" in block:  # line ends are gone: any CR is a bare one
        raise ProtocolViolation("bare CR in trailers")
    _check_chars(block, "trailers")
    return parse_fields(lines)


def _chunk_size(line: bytes) -> int:
    """A chunk-size line with extensions or whitespace before them; -1 if malformed."""
    semi = line.find(b";")
    # RFC 9112 7.1.1 allows BWS before the extensions (h11 does not: see the differential
    # test); an LF inside them is not allowed by either.
    digits = (line if semi < 0 else line[:semi]).rstrip(b" \t")
    if not digits or len(digits) > _MAX_DIGITS or digits.strip(_HEX) or b"\n" in line:
        return -1
    return int(digits, 16)


# Content codings lens decodes, with the zlib ``wbits`` that reads them (RFC 9110 8.4.1):
# gzip, and deflate = the zlib format; _DEFLATE_ANY also takes raw deflate, which some
# servers send and browsers accept.
_DEFLATE_ANY = 0
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_CONTENT_CODINGS = {b"gzip": _GZIP_WBITS, b"x-gzip": _GZIP_WBITS, b"deflate": _DEFLATE_ANY}


class ContentDecoder(BodyDecoder):
    """A framing decoder's payload, decoded from gzip or deflate as it arrives.

    Each ``feed`` returns what that read's compressed bytes decode to (zlib emits
    output as soon as its input allows), so decoded bytes keep the arrival stamp of the
    read that carried them.  At most ``limit`` decoded bytes are produced: a gzip bomb
    stops at the limit instead of filling memory.  A corrupt stream, or one still
    incomplete when the framing says the body is complete, is a ProtocolViolation; an
    incomplete one when a close-delimited body ends is a cut stream.
    """

    __slots__ = ("_coding", "_head", "_inner", "_limit", "_out", "_seen", "_wbits", "_zlib")

    def __init__(self, inner: BodyDecoder, wbits: int, limit: int) -> None:
        super().__init__()
        self._inner = inner
        self._wbits = wbits
        self._coding = "gzip" if wbits == _GZIP_WBITS else "deflate"
        self._limit = limit
        self._out = 0  # decoded bytes so far
        self._seen = False  # whether any compressed byte arrived
        self._head = b""  # deflate: the first byte, until the second says zlib or raw
        self._zlib: zlib._Decompress | None = (
            zlib.decompressobj(wbits) if wbits != _DEFLATE_ANY else None
        )

    def feed(self, data: bytes) -> bytes:
        inner = self._inner
        try:
            payload = inner.feed(data)
        except PartialBody as partial:
            try:
                decoded = self._decode(partial.payload) if partial.payload else b""
            except ProtocolViolation:
                raise partial.error from None
            if decoded:
                raise PartialBody(decoded, partial.error) from None
            raise partial.error from None
        out = self._decode(payload) if payload else b""
        if inner.done:
            self.trailing = inner.trailing
            out += self._finish(cut=False)
        return out

    def eof(self) -> bytes:
        self._inner.eof()  # raises when the framing says the body was cut
        return self._finish(cut=True)

    def progress(self) -> str:
        return self._inner.progress()

    def _decode(self, data: bytes) -> bytes:
        self._seen = True
        d = self._zlib
        if d is None:  # deflate, format not known yet
            data = self._head + data
            if len(data) < 2:
                self._head = data
                return b""
            self._head = b""
            d = self._zlib = zlib.decompressobj(
                zlib.MAX_WBITS if _is_zlib_header(data) else -zlib.MAX_WBITS
            )
        room = self._limit - self._out
        try:
            # max_length bounds the output of this call: room + 1 bytes prove "too large".
            out = d.decompress(data, room + 1)
            while d.eof and d.unused_data and self._wbits == _GZIP_WBITS and len(out) <= room:
                # A gzip body may hold several members (RFC 1952 2.2): decode them all.
                rest = d.unused_data
                d = self._zlib = zlib.decompressobj(_GZIP_WBITS)
                out += d.decompress(rest, room + 1 - len(out))
        except zlib.error as exc:
            raise ProtocolViolation(f"corrupt {self._coding} body: {exc}") from None
        if len(out) > room:
            raise body_too_large(self._limit)
        if d.eof and d.unused_data:
            raise ProtocolViolation(f"bytes after the end of the {self._coding} body")
        self._out += len(out)
        return out

    def _finish(self, *, cut: bool) -> bytes:
        """The body's framing ended: flush, and check the compressed stream ended too."""
        self.done = True
        if not self._seen:
            return b""  # no compressed byte at all: an empty body
        d = self._zlib
        if d is not None and d.eof:
            return b""
        out = b""
        if d is not None:  # else one byte of deflate arrived: too short to be whole
            try:
                out = d.flush()
            except zlib.error as exc:  # pragma: no cover - flush errs on corrupt input only
                raise ProtocolViolation(f"corrupt {self._coding} body: {exc}") from None
        if d is None or not d.eof:
            if cut:
                raise httpx.RemoteProtocolError(
                    f"peer closed connection before the end of the {self._coding} body"
                )
            raise ProtocolViolation(f"truncated {self._coding} body")
        return out


def _is_zlib_header(data: bytes) -> bool:
    """RFC 1950 2.2: CM = 8 (deflate), and CMF*256 + FLG a multiple of 31."""
    return data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0

"""lens.run.http11_parse: request heads, response heads and the body decoders, byte by byte."""

from __future__ import annotations

import itertools
import zlib

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lens.run.http11_parse import (
    MAX_LINE_BYTES,
    ChunkedDecoder,
    CloseDecoder,
    ContentDecoder,
    LengthDecoder,
    PartialBody,
    ProtocolViolation,
    build_request_head,
    find_head_end,
    parse_response_head,
    response_framing,
)

# -- chunked encoding helpers ---------------------------------------------------------------


def encode_chunked(
    payloads: list[bytes], *, ext: bytes = b"", trailers: bytes = b""
) -> tuple[bytes, list[bool]]:
    """The chunked encoding of ``payloads`` and, per byte, whether it is payload."""
    out = bytearray()
    mask: list[bool] = []

    def add(data: bytes, payload: bool) -> None:
        out.extend(data)
        mask.extend([payload] * len(data))

    for p in payloads:
        add(b"%x%s\r\n" % (len(p), ext), False)
        add(p, True)
        add(b"\r\n", False)
    add(b"0%s\r\n%s\r\n" % (ext, trailers), False)
    return bytes(out), mask


def split_at(data: bytes, cuts: list[int]) -> list[tuple[int, int]]:
    bounds = sorted({c for c in cuts if 0 < c < len(data)})
    edges = [0, *bounds, len(data)]
    return list(itertools.pairwise(edges))


payload_lists = st.lists(st.binary(min_size=1, max_size=40), min_size=0, max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    payloads=payload_lists,
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=30),
    ext=st.sampled_from([b"", b";name=value", b" ; x"]),
    trailers=st.sampled_from([b"", b"x-checksum: abc\r\n", b"a: 1\r\nb: 2\r\n"]),
)
def test_chunked_any_split_yields_exactly_the_payload_of_each_read(
    payloads: list[bytes], cuts: list[int], ext: bytes, trailers: bytes
) -> None:
    """Every read returns the payload bytes it carried: none held back, none early."""
    wire, mask = encode_chunked(payloads, ext=ext, trailers=trailers)
    decoder = ChunkedDecoder()
    for start, end in split_at(wire, cuts):
        assert not decoder.done
        expected = bytes(
            b for b, is_payload in zip(wire[start:end], mask[start:end], strict=True) if is_payload
        )
        assert decoder.feed(wire[start:end]) == expected
    assert decoder.done
    assert not decoder.trailing


def test_chunked_every_byte_boundary() -> None:
    wire, _ = encode_chunked([b"data: one\n\n", b"data: two\n\n", b"x" * 300])
    for cut in range(1, len(wire)):
        decoder = ChunkedDecoder()
        got = decoder.feed(wire[:cut]) + decoder.feed(wire[cut:])
        assert got == b"data: one\n\ndata: two\n\n" + b"x" * 300
        assert decoder.done


def test_chunked_byte_at_a_time() -> None:
    wire, mask = encode_chunked([b"abc", b"d" * 20], trailers=b"t: 1\r\n")
    decoder = ChunkedDecoder()
    for k in range(len(wire)):
        out = decoder.feed(wire[k : k + 1])
        assert out == (wire[k : k + 1] if mask[k] else b"")
    assert decoder.done


def test_chunked_whole_message_in_one_read_is_one_bytes() -> None:
    wire, _ = encode_chunked([b"a", b"bb", b"ccc"])
    decoder = ChunkedDecoder()
    assert decoder.feed(wire) == b"abbccc"
    assert decoder.done


def test_chunked_one_chunk_per_read_is_a_slice_and_the_whole_read_when_possible() -> None:
    decoder = ChunkedDecoder()
    assert decoder.feed(b"5\r\nhel") == b"hel"
    data = b"lo"
    assert decoder.feed(data) is data  # no copy when the whole read is payload
    assert decoder.feed(b"\r\n0\r\n\r\n") == b""
    assert decoder.done


def test_chunked_bytes_after_terminator_mark_trailing() -> None:
    decoder = ChunkedDecoder()
    assert decoder.feed(b"1\r\na\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n") == b"a"
    assert decoder.done
    assert decoder.trailing


def test_chunked_uppercase_hex_and_leading_zeros() -> None:
    decoder = ChunkedDecoder()
    assert decoder.feed(b"00A\r\n0123456789\r\n0000\r\n\r\n") == b"0123456789"
    assert decoder.done


@pytest.mark.parametrize(
    "wire",
    [
        b"zz\r\n",
        b"-5\r\nhello\r\n",
        b"0x5\r\nhello\r\n",
        b"+5\r\nhello\r\n",
        b"5_0\r\n",
        b" 5\r\nhello\r\n",
        b"\r\n",
        b";ext\r\n",
        b"1" * 21 + b"\r\n",  # more than 20 hex digits (h11's limit)
        b"5;a\nb\r\nhello\r\n",  # an LF inside the extensions
        b"5\nhello\r\n",  # an LF-only chunk-size line (h11 wants CRLF too)
        b"5\r\nhello\n0\r\n\r\n",  # an LF-only line end after chunk data
        b"5\r\nhelloXY",  # data not followed by CRLF
        b"5\r\nhello\r\nxx\r\n",  # garbage size line
        b"3\r\nabcdef\r\n",  # more data than announced
    ],
)
def test_chunked_malformed(wire: bytes) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        ChunkedDecoder().feed(wire)


def test_chunked_error_after_good_payload_keeps_the_payload() -> None:
    decoder = ChunkedDecoder()
    with pytest.raises(PartialBody) as info:
        decoder.feed(b"3\r\nabc\r\n2\r\nde\r\nzz\r\n")
    assert info.value.payload == b"abcde"
    assert "chunk size" in str(info.value.error)
    with pytest.raises(PartialBody) as info:
        ChunkedDecoder().feed(b"3\r\nabcdef")
    assert info.value.payload == b"abc"


def test_chunked_malformed_crlf_split_across_reads() -> None:
    decoder = ChunkedDecoder()
    assert decoder.feed(b"3\r\nabc") == b"abc"
    with pytest.raises(httpx.RemoteProtocolError):
        decoder.feed(b"X")


def test_chunked_crlf_split_after_cr() -> None:
    decoder = ChunkedDecoder()
    assert decoder.feed(b"3\r\nabc\r") == b"abc"
    assert decoder.feed(b"\n0\r\n\r\n") == b""
    assert decoder.done


def test_chunked_size_line_too_long() -> None:
    decoder = ChunkedDecoder()
    with pytest.raises(httpx.RemoteProtocolError):
        decoder.feed(b"5;" + b"x" * (MAX_LINE_BYTES + 1))


def test_chunked_trailer_line_too_long() -> None:
    decoder = ChunkedDecoder()
    with pytest.raises(httpx.RemoteProtocolError, match="trailer"):
        decoder.feed(b"0\r\n" + b"x" * (MAX_LINE_BYTES + 1) + b"\r\n\r\n")


def test_chunked_eof_reports_progress() -> None:
    decoder = ChunkedDecoder()
    decoder.feed(b"5\r\nhel")
    with pytest.raises(httpx.RemoteProtocolError, match="received 3 payload bytes"):
        decoder.eof()


def test_length_decoder() -> None:
    decoder = LengthDecoder(5)
    assert decoder.feed(b"ab") == b"ab"
    assert not decoder.done
    with pytest.raises(httpx.RemoteProtocolError, match="received 2 of 5 bytes"):
        decoder.eof()
    assert decoder.feed(b"cde") == b"cde"
    assert decoder.done
    assert not decoder.trailing
    decoder.eof()  # complete: EOF now is fine


def test_length_decoder_extra_bytes() -> None:
    decoder = LengthDecoder(2)
    assert decoder.feed(b"abc") == b"ab"
    assert decoder.done
    assert decoder.trailing


def test_length_zero_is_done() -> None:
    assert LengthDecoder(0).done


def test_close_decoder() -> None:
    decoder = CloseDecoder()
    assert decoder.feed(b"abc") == b"abc"
    assert not decoder.done
    decoder.eof()
    assert decoder.done


# -- response heads ----------------------------------------------------------------------


def test_parse_response_head() -> None:
    head = parse_response_head(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A:  spaced \t\r\n"
        b"Connection: Keep-Alive, Upgrade\r\nContent-Length: 5\r\nSet-Cookie: a\r\n"
        b"Set-Cookie: b"
    )
    assert head.status == 200
    assert head.http_version == b"HTTP/1.1"
    assert head.reason == b"OK"
    assert head.headers == [
        (b"Content-Type", b"text/plain"),
        (b"X-A", b"spaced"),
        (b"Connection", b"Keep-Alive, Upgrade"),
        (b"Content-Length", b"5"),
        (b"Set-Cookie", b"a"),
        (b"Set-Cookie", b"b"),
    ]
    assert head.connection == [b"keep-alive", b"upgrade"]
    assert head.content_length == [b"5"]
    assert head.transfer_encoding is None


@pytest.mark.parametrize(
    ("line", "status", "reason"),
    [
        (b"HTTP/1.0 404 Not Found", 404, b"Not Found"),
        (b"HTTP/1.1 200", 200, b""),
        (b"HTTP/1.1 200 ", 200, b""),
        (b"HTTP/1.1 599 Whatever it is", 599, b"Whatever it is"),
    ],
)
def test_status_lines(line: bytes, status: int, reason: bytes) -> None:
    head = parse_response_head(line)
    assert (head.status, head.reason) == (status, reason)


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/2 200 OK",
        b"ICY 200 OK",
        b"HTTP/1.1 2000 OK",
        b"HTTP/1.1 20 OK",
        b"HTTP/1.1 abc OK",
        b"HTTP/1.1 200OK",
        b"",
        b"HTTP/1.1 200 OK\r\nno colon here",
        b"HTTP/1.1 200 OK\r\n: empty name",
        b"HTTP/1.1 200 OK\r\nName : space before colon",
        b"HTTP/1.1 200 OK\r\nA: nul\0byte",
    ],
)
def test_malformed_heads(head: bytes) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        parse_response_head(head)


# -- framing ---------------------------------------------------------------------------


def _framing(
    head: bytes, method: str = "GET", request_close: bool = False
) -> tuple[type, bool, bool]:
    decoder, keep = response_framing(method, parse_response_head(head), request_close=request_close)
    return type(decoder), decoder.done, keep


@pytest.mark.parametrize(
    ("head", "method", "expected"),
    [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", "GET", (ChunkedDecoder, False, True)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3", "GET", (LengthDecoder, False, True)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0", "GET", (LengthDecoder, True, True)),
        (b"HTTP/1.1 200 OK", "GET", (CloseDecoder, False, False)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3", "HEAD", (LengthDecoder, True, True)),
        (b"HTTP/1.1 204 No Content", "GET", (LengthDecoder, True, True)),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9", "GET", (LengthDecoder, True, True)),
        (b"HTTP/1.1 101 Switching Protocols", "GET", (LengthDecoder, True, False)),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close",
            "GET",
            (LengthDecoder, False, False),
        ),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 3", "GET", (LengthDecoder, False, False)),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3",
            "GET",
            (ChunkedDecoder, False, False),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3",
            "GET",
            (LengthDecoder, False, True),
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3", "GET", (LengthDecoder, False, True)),
    ],
)
def test_framing(head: bytes, method: str, expected: tuple[type, bool, bool]) -> None:
    assert _framing(head, method) == expected


def test_framing_request_close_forbids_reuse() -> None:
    assert _framing(b"HTTP/1.1 200 OK\r\nContent-Length: 3", request_close=True)[2] is False


@pytest.mark.parametrize("value", [b"-1", b"abc", b"", b"3, 4", b"1" * 21, b"+3", b"3,,3"])
def test_malformed_content_length(value: bytes) -> None:
    with pytest.raises(ProtocolViolation, match="content-length"):
        _framing(b"HTTP/1.1 200 OK\r\nContent-Length: " + value)


# -- request heads ---------------------------------------------------------------------


def test_request_head_post_json() -> None:
    request = httpx.Request(
        "POST", "http://example.test:8080/v1/chat?x=1&y=%20", json={"a": 1}, headers={"X-K": "v"}
    )
    head, close = build_request_head(request, len(request.content))
    assert not close
    assert head.startswith(b"POST /v1/chat?x=1&y=%20 HTTP/1.1\r\nHost: example.test:8080\r\n")
    assert head.endswith(b"\r\n\r\n")
    assert head.lower().count(b"content-length:") == 1
    assert b"Content-Length: %d\r\n" % len(request.content) in head
    assert b"X-K: v\r\n" in head
    assert b"transfer-encoding" not in head.lower()


def test_request_head_get_has_no_framing_and_default_port_host() -> None:
    head, _ = build_request_head(httpx.Request("GET", "https://example.test/"), 0)
    assert head.startswith(b"GET / HTTP/1.1\r\nHost: example.test\r\n")
    assert b"content-length" not in head.lower()


def test_request_head_replaces_transfer_encoding_with_length() -> None:
    async def gen() -> object:
        yield b"abc"  # pragma: no cover - never iterated here

    request = httpx.Request("POST", "http://h/", content=gen())  # type: ignore[arg-type]
    assert request.headers["transfer-encoding"] == "chunked"
    head, _ = build_request_head(request, 3)
    assert b"transfer-encoding" not in head.lower()
    assert head.lower().count(b"content-length: 3\r\n") == 1


def test_request_head_adds_host_when_missing() -> None:
    request = httpx.Request("GET", "http://[::1]:9000/p")
    del request.headers["host"]
    head, _ = build_request_head(request, 0)
    assert head.startswith(b"GET /p HTTP/1.1\r\nHost: [::1]:9000\r\n")


def test_request_head_connection_close() -> None:
    request = httpx.Request("GET", "http://h/", headers={"Connection": "Upgrade, Close"})
    assert build_request_head(request, 0)[1] is True


@pytest.mark.parametrize("value", ["a\r\nInjected: 1", "a\nb", "nul\0"])
def test_request_head_rejects_injection(value: str) -> None:
    request = httpx.Request("GET", "http://h/", headers={"X-Bad": value})
    with pytest.raises(httpx.LocalProtocolError):
        build_request_head(request, 0)


# -- wire conformance with h11 (see also test_http11_h11_diff.py) --------------------------


@pytest.mark.parametrize(
    "buf",
    [
        b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody",
        b"HTTP/1.1 200 OK\nA: b\n\nbody",
        b"HTTP/1.1 200 OK\r\nA: b\n\r\nbody",
        b"HTTP/1.1 200 OK\nA: b\r\n\nbody",
    ],
)
def test_find_head_end_with_crlf_or_bare_lf(buf: bytes) -> None:
    end, body = find_head_end(buf)
    assert buf[:end].rstrip(b"\r").replace(b"\r\n", b"\n") == b"HTTP/1.1 200 OK\nA: b"
    assert buf[body:] == b"body"


@pytest.mark.parametrize("buf", [b"HTTP/1.1 200 OK\r\nA: b\r\n", b"HTTP/1.1 200 OK\r\nA: b\r\n\r"])
def test_find_head_end_needs_an_empty_line(buf: bytes) -> None:
    assert find_head_end(buf) == (-1, -1)


def test_find_head_end_resumes_across_reads() -> None:
    buf = b"HTTP/1.1 200 OK\r\nA: b\r\n"
    assert find_head_end(buf) == (-1, -1)
    buf += b"\r\n"
    assert find_head_end(buf, max(0, len(buf) - 2 - 2)) == (len(buf) - 3, len(buf))


def test_lf_only_head_parses_like_crlf() -> None:
    crlf = parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: 1")
    lf = parse_response_head(b"HTTP/1.1 200 OK\nContent-Length: 3\nX-A: 1")
    mixed = parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 3\nX-A: 1\r")
    assert crlf == lf == mixed
    assert lf.headers == [(b"Content-Length", b"3"), (b"X-A", b"1")]


@pytest.mark.parametrize(
    ("head", "value"),
    [
        (b"HTTP/1.1 200 OK\r\nA: b\r\n  folded continuation", b"b folded continuation"),
        (b"HTTP/1.1 200 OK\r\nA: b\r\n\tc\r\n d", b"b c d"),
        (b"HTTP/1.1 200 OK\nA: b \n \tc", b"b  c"),  # h11 keeps the first line's space
        (b"HTTP/1.1 200 OK\r\nA:\r\n c", b"c"),
        (b"HTTP/1.1 200 OK\r\nA: b\r\n   ", b"b"),
    ],
)
def test_obs_fold_is_unfolded(head: bytes, value: bytes) -> None:
    parsed = parse_response_head(head + b"\r\nZ: z")
    assert parsed.headers == [(b"A", value), (b"Z", b"z")]


@pytest.mark.parametrize(
    ("head", "match"),
    [
        (b"HTTP/1.1 200 OK\r\n folded first", "continuation line before any header"),
        (b"HTTP/1.1 200 OK\r\nA\0B: c", "illegal character"),
        (b"HTTP/1.1 200 OK\r\nA B: c", "malformed header line"),
        (b"HTTP/1.1 200 OK\r\nA\x01: c", "malformed header line"),
        (b"HTTP/1.1 200 OK\r\nA\x7f: c", "malformed header line"),
        (b"HTTP/1.1 200 OK\r\nA@: c", "malformed header line"),
        (b"HTTP/1.1 200 OK\r\n(A): c", "malformed header line"),
        (b"HTTP/1.1 200 OK\r\n\xc3\x84: c", "malformed header line"),
        (b"HTTP/1.1 200 OK\r\nA: b\rc", "bare CR"),
        (b"HTTP/1.1 200 OK\r\nA: b\r\r\nC: d", "bare CR"),
        (b"HTTP/1.1 200 OK\rA: b", "bare CR"),
        (b"HTTP/1.1 200 OK\r\nA: b\x0bc", "illegal character"),
        (b"HTTP/1.1 200 OK\r\nA: b\x0cc", "illegal character"),
        (b"HTTP/1.1 200 O\0K", "illegal character"),
        (b"HTTP/1.1 099 Low", "outside 100-599"),
        (b"HTTP/1.1 000 Zero", "outside 100-599"),
        (b"HTTP/1.1 600 High", "outside 100-599"),
        (b"HTTP/1.1 999", "outside 100-599"),
        (b"HTTP/1.1 1a0 X", "malformed status line"),
        (b"HTTP/2.0 200 OK", "malformed status line"),
        (b"HTTP/1.1  200 OK", "malformed status line"),
        (b"HTTP/1.1 200\tOK", "malformed status line"),
        (b"HTTP/1.1 204 No Content\r\nContent-Length: x", "content-length"),
    ],
)
def test_what_h11_rejects_is_a_protocol_violation(head: bytes, match: str) -> None:
    with pytest.raises(ProtocolViolation, match=match):
        parse_response_head(head)


def test_other_controls_in_values_are_kept_as_h11_does() -> None:
    head = parse_response_head(b"HTTP/1.1 200 OK\r\nSet-Cookie: a\x01b\r\nX: \xff\tz")
    assert head.headers == [(b"Set-Cookie", b"a\x01b"), (b"X", b"\xff\tz")]


def test_other_http_1_minor_versions_are_http_1_1() -> None:
    head = parse_response_head(b"HTTP/1.2 200 OK\r\nContent-Length: 1")
    assert head.http_version == b"HTTP/1.2"
    assert response_framing("GET", head)[1] is True  # not 1.0: persistent by default


@pytest.mark.parametrize(
    ("te", "match"),
    [
        (b"Transfer-Encoding: gzip, chunked", "unsupported Transfer-Encoding 'gzip, chunked'"),
        (b"Transfer-Encoding: chunked, chunked", "unsupported Transfer-Encoding"),
        (b"Transfer-Encoding: identity", "unsupported Transfer-Encoding 'identity'"),
        (b"Transfer-Encoding: gzip", "unsupported Transfer-Encoding"),
        (b"Transfer-Encoding: chunked, gzip", "unsupported Transfer-Encoding"),
        (b"Transfer-Encoding: x-custom", "unsupported Transfer-Encoding"),
        (b"Transfer-Encoding:", "unsupported Transfer-Encoding"),
        (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked", "more than one"),
    ],
)
def test_transfer_codings_other_than_one_chunked_are_rejected(te: bytes, match: str) -> None:
    with pytest.raises(ProtocolViolation, match=match):
        parse_response_head(b"HTTP/1.1 200 OK\r\n" + te)


def test_chunked_in_any_case_is_chunked() -> None:
    head = parse_response_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding:  Chunked ")
    assert head.transfer_encoding == [b"chunked"]
    assert isinstance(response_framing("GET", head)[0], ChunkedDecoder)


# -- trailers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tail",
    [
        b"0\r\n\n",
        b"0\r\nA: b\n\n",
        b"0\r\nA: b\r\n\n",
        b"0\r\nA: b\n\r\n",
        b"0\r\nA: b\r\n c\r\n\r\n",  # obs-fold in a trailer, as h11 reads it
    ],
)
def test_trailer_lines_may_end_in_lf(tail: bytes) -> None:
    decoder = ChunkedDecoder()
    assert decoder.feed(b"3\r\nabc\r\n" + tail) == b"abc"
    assert decoder.done
    assert not decoder.trailing


def test_trailers_split_across_reads() -> None:
    wire = b"1\r\na\r\n0\r\nX-Sum: 7\r\nX-B: 2\n\r\n"
    for cut in range(1, len(wire)):
        decoder = ChunkedDecoder()
        assert decoder.feed(wire[:cut]) + decoder.feed(wire[cut:]) == b"a"
        assert decoder.done


@pytest.mark.parametrize(
    "trailer",
    [b"A b\r\n", b"A: b\rc\r\n", b"A: \0\r\n", b" fold\r\n", b"A: b\r\r\n", b": x\r\n"],
)
def test_malformed_trailers_are_rejected(trailer: bytes) -> None:
    decoder = ChunkedDecoder()
    with pytest.raises(PartialBody) as info:
        decoder.feed(b"3\r\nabc\r\n0\r\n" + trailer + b"\r\n")
    assert info.value.payload == b"abc"
    assert isinstance(info.value.error, ProtocolViolation)
    assert "trailer" in str(info.value.error)


def test_trailers_too_large() -> None:
    decoder = ChunkedDecoder()
    assert decoder.feed(b"0\r\n") == b""
    line = b"X: " + b"y" * 1000 + b"\r\n"
    for _ in range(65):  # 65 x 1005 bytes fit in 64 KiB, 66 do not
        assert decoder.feed(line) == b""
    with pytest.raises(ProtocolViolation, match="trailers larger than 65536 bytes"):
        decoder.feed(line)


# -- content codings -----------------------------------------------------------------------


def gzip_bytes(data: bytes, *, level: int = 6) -> bytes:
    c = zlib.compressobj(level, wbits=16 + zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


def deflate_bytes(data: bytes, *, raw: bool = False) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


def _length_framing(body: bytes, coding: bytes, limit: int = 1 << 26) -> ContentDecoder:
    head = parse_response_head(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d" % (coding, len(body))
    )
    decoder, _ = response_framing("GET", head, max_body=limit)
    assert isinstance(decoder, ContentDecoder)
    return decoder


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        (b"gzip", gzip_bytes),
        (b"x-gzip", gzip_bytes),
        (b"GZIP", gzip_bytes),
        (b"deflate", deflate_bytes),
        (b"deflate", lambda d: deflate_bytes(d, raw=True)),
        (b"identity, gzip", gzip_bytes),
    ],
)
def test_content_codings_decode_at_every_split(coding: bytes, encode: object) -> None:
    text = b"data: " + b"hello world " * 40 + b"\n\n"
    body = encode(text)  # type: ignore[operator]
    for cut in range(len(body)):
        decoder = _length_framing(body, coding)
        got = decoder.feed(body[:cut]) if cut else b""
        assert not decoder.done
        got += decoder.feed(body[cut:])
        assert decoder.done
        assert got == text


def test_gzip_pieces_come_out_with_the_read_that_carried_them() -> None:
    """A server flushing its gzip stream after each event: each read decodes to its event."""
    c = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    events = [b'data: {"n": %d}\n\n' % k for k in range(5)]
    reads = [c.compress(e) + c.flush(zlib.Z_SYNC_FLUSH) for e in events]
    reads[-1] += c.flush()
    wire, _ = encode_chunked(reads)
    head = parse_response_head(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked"
    )
    decoder, keep = response_framing("GET", head)
    assert keep
    pos = 0
    for k, r in enumerate(reads):
        framed = b"%x\r\n%s\r\n" % (len(r), r)
        assert decoder.feed(framed) == events[k]
        pos += len(framed)
    assert decoder.feed(wire[pos:]) == b""
    assert decoder.done


def test_multi_member_gzip() -> None:
    body = gzip_bytes(b"first ") + gzip_bytes(b"second")
    decoder = _length_framing(body, b"gzip")
    assert decoder.feed(body[:30]) + decoder.feed(body[30:]) == b"first second"


@pytest.mark.parametrize(
    ("coding", "body", "match"),
    [
        (b"gzip", gzip_bytes(b"x" * 100)[:-4], "truncated gzip body"),
        (b"gzip", b"not gzip at all", "corrupt gzip body"),
        (b"deflate", deflate_bytes(b"x" * 100)[:-3], "truncated deflate body"),
        (b"deflate", b"\x78", "truncated deflate body"),
        (b"deflate", deflate_bytes(b"x") + b"junk", "bytes after the end of the deflate body"),
        (b"gzip", gzip_bytes(b"x") + b"junk", "corrupt gzip body"),
    ],
)
def test_bad_compressed_bodies_are_protocol_violations(
    coding: bytes, body: bytes, match: str
) -> None:
    decoder = _length_framing(body, coding)
    with pytest.raises(ProtocolViolation, match=match):
        decoder.feed(body)


def test_gzip_cut_by_close_is_a_cut_not_a_violation() -> None:
    head = parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip")
    decoder, keep = response_framing("GET", head)
    assert not keep
    body = gzip_bytes(b"y" * 1000)
    assert decoder.feed(body[:-8]) == b"y" * 1000  # the data decodes; the checksum is cut
    with pytest.raises(httpx.RemoteProtocolError, match="before the end of the gzip") as info:
        decoder.eof()
    assert not isinstance(info.value, ProtocolViolation)


def test_gzip_close_delimited_complete() -> None:
    head = parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip")
    decoder, _ = response_framing("GET", head)
    assert decoder.feed(gzip_bytes(b"whole")) == b"whole"
    assert decoder.eof() == b""
    assert decoder.done


def test_gzip_framing_cut_is_a_cut() -> None:
    body = gzip_bytes(b"z" * 100)
    decoder = _length_framing(body + b"", b"gzip")
    decoder.feed(body[:10])
    with pytest.raises(httpx.RemoteProtocolError, match="peer closed connection without"):
        decoder.eof()


def test_empty_encoded_body_is_empty() -> None:
    head = parse_response_head(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked"
    )
    decoder, _ = response_framing("GET", head)
    assert decoder.feed(b"0\r\n\r\n") == b""
    assert decoder.done
    zero = parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 0")
    assert isinstance(response_framing("GET", zero)[0], LengthDecoder)


def test_gzip_bomb_stops_at_the_limit() -> None:
    body = gzip_bytes(b"\0" * (8 << 20), level=9)  # 8 MiB from about 8 KiB
    assert len(body) < 16384
    decoder = _length_framing(body, b"gzip", limit=1 << 20)
    with pytest.raises(ProtocolViolation, match=r"larger than 1 MiB \(limits.max_response_bytes\)"):
        decoder.feed(body)


def test_chunked_error_after_gzip_payload_keeps_the_decoded_payload() -> None:
    body = gzip_bytes(b"kept")
    head = parse_response_head(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked"
    )
    decoder, _ = response_framing("GET", head)
    with pytest.raises(PartialBody) as info:
        decoder.feed(b"%x\r\n%s\r\nzz\r\n" % (len(body), body))
    assert info.value.payload == b"kept"
    assert isinstance(info.value.error, ProtocolViolation)


@pytest.mark.parametrize(
    ("coding", "shown"),
    [
        (b"br", "br"),
        (b"zstd", "zstd"),
        (b"compress", "compress"),
        (b"x-unknown", "x-unknown"),
        (b"gzip, gzip", "gzip, gzip"),
        (b"gzip, br", "gzip, br"),
        (b"deflate\r\nContent-Encoding: gzip", "deflate, gzip"),
    ],
)
def test_unsupported_content_codings(coding: bytes, shown: str) -> None:
    head = parse_response_head(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Encoding: " + coding
    )
    with pytest.raises(
        ProtocolViolation,
        match=rf"unsupported Content-Encoding '{shown}' \(lens asks for identity\)",
    ):
        response_framing("GET", head)
    # A response without a body has nothing to decode: no complaint.
    assert response_framing("HEAD", head)[0].done


def test_identity_content_coding_is_no_coding() -> None:
    head = parse_response_head(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Encoding: identity"
    )
    assert head.content_encoding is None
    assert type(response_framing("GET", head)[0]) is LengthDecoder


def test_decoded_headers_drop_what_describes_the_encoded_body() -> None:
    head = parse_response_head(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\nX-Id: 1"
    )
    assert head.decoded_headers() == [(b"X-Id", b"1")]

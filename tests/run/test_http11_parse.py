"""lens.run.http11_parse: request heads, response heads and the body decoders, byte by byte."""

from __future__ import annotations

import itertools

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lens.run.http11_parse import (
    MAX_LINE_BYTES,
    ChunkedDecoder,
    CloseDecoder,
    LengthDecoder,
    PartialBody,
    build_request_head,
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
        b"11111111111111111\r\n",  # more than 16 hex digits
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
        b"HTTP/1.1 200 OK\r\nA: b\r\n  folded continuation",
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
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip",
            "GET",
            (CloseDecoder, False, False),
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked",
            "GET",
            (ChunkedDecoder, False, True),
        ),
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


@pytest.mark.parametrize("value", [b"-1", b"abc", b"", b"3, 4", b"1" * 19, b"+3"])
def test_malformed_content_length(value: bytes) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
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

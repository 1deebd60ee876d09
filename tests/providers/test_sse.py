from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lens.providers.sse import (
    DEFAULT_MAX_EVENT_BYTES,
    SseDecoder,
    SseEvent,
    SseEventTooLarge,
    _parse_block,
)


def _all(dec: SseDecoder, parts: list[bytes]) -> list[SseEvent]:
    out: list[SseEvent] = []
    for part in parts:
        out.extend(dec.feed(part))
    out.extend(dec.close())
    return out


def test_events_are_returned_by_the_read_that_completed_them() -> None:
    dec = SseDecoder()
    assert dec.feed(b"data: a\n\ndata: b") == [(b"", b"a")]
    assert dec.feed(b"\n\n") == [(b"", b"b")]
    assert dec.events_seen == 2


def test_crlf_and_cr_line_ends() -> None:
    dec = SseDecoder()
    evs = dec.feed(b"data: x\r\n\r\ndata: y\r\rdata: z\r\n\r\n")
    assert [e[1] for e in evs] == [b"x", b"y", b"z"]


def test_crlf_split_across_reads_is_one_line_end() -> None:
    dec = SseDecoder()
    assert dec.feed(b"data: x\r") == []
    assert dec.feed(b"\n\r") == []
    assert dec.feed(b"\n") == [(b"", b"x")]
    assert not dec.pending


def test_event_field_multiline_data_comments_and_space_rules() -> None:
    dec = SseDecoder()
    raw = b": keepalive\nevent: error\ndata: line1\ndata:line2\nid: 7\nretry: 10\n\n"
    assert dec.feed(raw) == [(b"error", b"line1\nline2")]


def test_event_without_data_is_not_dispatched_but_empty_data_is() -> None:
    dec = SseDecoder()
    assert dec.feed(b"event: ping\n\n") == []
    assert dec.feed(b"data:\n\n") == [(b"", b"")]


def test_cut_event_is_pending_and_not_dispatched() -> None:
    dec = SseDecoder()
    assert dec.feed(b'data: {"partial') == []
    assert dec.pending
    assert dec.close() == []


def test_trailing_lone_cr_is_flushed_at_close() -> None:
    dec = SseDecoder()
    assert dec.feed(b"data: last\r\r") == []
    assert dec.close() == [(b"", b"last")]


@given(
    payloads=st.lists(
        st.binary(min_size=0, max_size=20).filter(lambda b: b"\r" not in b and b"\n" not in b),
        max_size=8,
    ),
    eol=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6),
)
def test_any_split_of_the_stream_yields_the_same_events(
    payloads: list[bytes], eol: bytes, cuts: list[int]
) -> None:
    stream = b"".join(b"data: " + p + eol + eol for p in payloads)
    points = sorted({min(c, len(stream)) for c in cuts})
    parts = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    got = [e[1] for e in _all(SseDecoder(), parts)]
    # The spec strips exactly one leading space after the colon.
    assert got == payloads


def _reference(stream: bytes) -> list[SseEvent]:
    """The whole stream at once, straight from the spec: normalise, split, parse."""
    text = stream.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    blocks = text.split(b"\n\n")[:-1]  # the last piece has no blank line after it: cut
    return [ev for ev in map(_parse_block, blocks) if ev is not None]


_line = st.one_of(
    st.builds(lambda v: b"data: " + v, st.binary(max_size=12)),
    st.builds(lambda v: b"data:" + v, st.binary(max_size=6)),
    st.builds(lambda v: b"event: " + v, st.sampled_from([b"error", b"ping", b""])),
    st.sampled_from([b": comment", b"id: 7", b"retry: 5", b"data", b""]),
).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(st.tuples(_line, st.sampled_from([b"\n", b"\r\n", b"\r"])), max_size=16),
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=12),
)
def test_any_stream_any_split_matches_the_whole_stream_reference(
    lines: list[tuple[bytes, bytes]], cuts: list[int]
) -> None:
    """Mixed line ends (a CRLF may be split across reads), blank lines anywhere."""
    stream = b"".join(line + eol for line, eol in lines)
    points = sorted({min(c, len(stream)) for c in cuts})
    parts = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    dec = SseDecoder()
    got = _all(dec, parts)
    # A lone CR at the very end is a line end only once the stream closes.
    assert got == _reference(stream)
    tail = stream.replace(b"\r\n", b"\n").replace(b"\r", b"\n").rsplit(b"\n\n", 1)[-1]
    assert dec.pending == bool(tail.strip(b"\n"))


def test_blank_line_split_across_reads() -> None:
    dec = SseDecoder()
    assert dec.feed(b"data: a\n") == []
    assert dec.feed(b"\ndata: b\n") == [(b"", b"a")]
    assert dec.feed(b"\n") == [(b"", b"b")]
    assert not dec.pending


def test_event_larger_than_the_limit_without_an_end_is_an_error() -> None:
    dec = SseDecoder(max_event_bytes=100)
    assert dec.feed(b"data: " + b"x" * 90) == []
    with pytest.raises(SseEventTooLarge, match=r"larger than 100 bytes .*limits\.max_event_bytes"):
        dec.feed(b"x" * 20)


def test_events_up_to_the_limit_pass_and_the_limit_is_per_event() -> None:
    dec = SseDecoder(max_event_bytes=100)
    event = b"data: " + b"y" * 94  # 100 bytes before its blank line
    for _ in range(5):
        assert dec.feed(event[:50]) == []
        assert dec.feed(event[50:] + b"\n\n") == [(b"", b"y" * 94)]


def test_default_limit_is_one_mib() -> None:
    assert DEFAULT_MAX_EVENT_BYTES == 1024 * 1024
    dec = SseDecoder()
    dec.feed(b"data: ")
    for _ in range(15):  # 6 + 15 x 64 KiB: under 1 MiB
        dec.feed(b"z" * 65536)
    with pytest.raises(SseEventTooLarge, match="larger than 1 MiB"):
        dec.feed(b"z" * 65536)
    with pytest.raises(ValueError, match="max_event_bytes"):
        SseDecoder(max_event_bytes=0)


def test_an_endless_line_costs_linear_time() -> None:
    """64 MiB that never end an event, in 64 KiB reads: each read is scanned once.

    The old decoder rescanned the whole buffer per read (about 35 CPU-s here); linear
    work is a fraction of a second.  The bound is generous for a loaded CI machine.
    """
    dec = SseDecoder(max_event_bytes=1 << 30)
    piece = b"x" * 65536
    start = time.process_time()
    dec.feed(b"data: ")
    for _ in range(1024):
        dec.feed(piece)
    assert time.process_time() - start < 10.0
    assert dec.pending
    assert dec.feed(b"\n\n")[0][1][-3:] == b"xxx"

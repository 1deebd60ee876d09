from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lens.providers.sse import SseDecoder, SseEvent


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

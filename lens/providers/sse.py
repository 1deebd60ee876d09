"""Server-Sent Events framing, per the WHATWG spec, on bytes as they arrive.

Lines may end in CRLF, LF or CR (Gemini uses CRLF); ``data:`` lines of one event are joined
with LF; lines starting with ``:`` are comments; one optional space after the colon is
stripped.  ``feed`` takes the bytes of one network read and returns the events that read
*completed*: the caller stamps them all with that read's arrival time, which is when the
client could first have acted on them.  Several events completed by one read honestly
share its stamp.

The decoder is on lens's hottest path, so it works on whole buffers with C-level bytes
methods (``find``, ``split``, ``replace``), returns plain ``(event, data)`` tuples, and never
walks characters in Python.  Each read is scanned once: an event still incomplete is kept
as a list of already-normalised pieces, joined once when the event completes, so a line
that never ends costs time linear in its length (and is cut off at ``max_event_bytes``)
instead of a rescan of everything buffered on every read.
"""

from __future__ import annotations

SseEvent = tuple[bytes, bytes]  # (event name or b"" for "message", data)

# The largest incomplete event buffered before the stream is declared broken: an LLM event
# is a few hundred bytes to a few KiB; a server streaming one endless line is not a stream.
DEFAULT_MAX_EVENT_BYTES = 1024 * 1024


class SseEventTooLarge(ValueError):
    """An event grew past ``max_event_bytes`` without ending (a server bug or attack)."""


class SseDecoder:
    __slots__ = ("_cr", "_max", "_parts", "_size", "events_seen")

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        if max_event_bytes < 1:
            raise ValueError("max_event_bytes must be >= 1")
        self._max = max_event_bytes
        # The incomplete event: pieces with line ends already normalised to LF, never
        # empty; ``_size`` their total length.
        self._parts: list[bytes] = []
        self._size = 0
        # A CR ended the last read: the first half of a CRLF split across reads, or a
        # line end of its own; the next read (or close) decides.
        self._cr = False
        self.events_seen = 0

    def feed(self, data: bytes) -> list[SseEvent]:
        """Add the bytes of one read; return the events they completed."""
        if self._cr or b"\r" in data:
            data = self._normalise(data)
        if self._parts:
            return self._continue(data)
        # The common case: no event carried over.
        end = data.rfind(b"\n\n")
        if end < 0:
            if data:
                self._hold(data)
            return []
        if end + 2 < len(data):
            self._hold(data[end + 2 :])
        # _events, inlined: a method call is a measurable part of a one-event read.
        out: list[SseEvent] = []
        for block in data[:end].split(b"\n\n"):
            if block[:6] == b"data: " and b"\n" not in block:
                out.append((b"", block[6:]))  # the common single-line event
            else:
                ev = _parse_block(block)
                if ev is not None:
                    out.append(ev)
        self.events_seen += len(out)
        return out

    def _normalise(self, data: bytes) -> bytes:
        """This read's line ends as LF; a trailing CR waits for the next read."""
        if self._cr:
            self._cr = False
            data = b"\r" + data
        if data.endswith(b"\r"):
            self._cr = True
            data = data[:-1]
        return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")

    def _continue(self, data: bytes) -> list[SseEvent]:
        """``data`` (normalised) after the held pieces of an incomplete event."""
        parts = self._parts
        end = data.rfind(b"\n\n")
        if end >= 0:
            head = parts[0] if len(parts) == 1 else b"".join(parts)
            buf = head + data[:end]
            rest = data[end + 2 :]
        elif data[:1] == b"\n" and parts[-1][-1:] == b"\n":
            # The blank line straddles the reads: "...\n" then "\n...".
            buf = (parts[0] if len(parts) == 1 else b"".join(parts))[:-1]
            rest = data[1:]
        else:
            if data:
                self._hold(data)
            return []
        parts.clear()
        self._size = 0
        if rest:
            self._hold(rest)
        return self._events(buf)

    def _hold(self, piece: bytes) -> None:
        self._parts.append(piece)
        self._size += len(piece)
        if self._size > self._max:
            size, self._size = self._size, 0
            self._parts.clear()
            raise SseEventTooLarge(
                f"SSE event larger than {_size_text(self._max)} without an end "
                f"({size} bytes buffered; limits.max_event_bytes)"
            )

    def _events(self, buf: bytes) -> list[SseEvent]:
        out: list[SseEvent] = []
        for block in buf.split(b"\n\n"):
            if block[:6] == b"data: " and b"\n" not in block:
                out.append((b"", block[6:]))  # the common single-line event
            else:
                ev = _parse_block(block)
                if ev is not None:
                    out.append(ev)
        self.events_seen += len(out)
        return out

    def close(self) -> list[SseEvent]:
        """End of stream: flush an event whose last line end was a lone CR held back.

        An event still missing its blank line is discarded, as the spec says; ``pending``
        tells the caller one was cut.
        """
        if self._cr:
            self._cr = False
            return self.feed(b"\n")
        return []

    @property
    def pending(self) -> bool:
        """True when bytes of an unfinished event are buffered (a cut stream)."""
        return any(p.strip(b"\n") for p in self._parts)


def _size_text(n: int) -> str:
    mib = 1024 * 1024
    return f"{n // mib} MiB" if n % mib == 0 else f"{n} bytes"


def _parse_block(block: bytes) -> SseEvent | None:
    data: list[bytes] = []
    event = b""
    for line in block.split(b"\n"):
        if not line or line[:1] == b":":
            continue
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value
        # ``id`` and ``retry`` do not matter to a one-shot stream; unknown fields are ignored.
    if not data:
        return None  # the spec dispatches nothing for an event without data
    return (event, b"\n".join(data))

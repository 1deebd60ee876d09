"""Server-Sent Events framing, per the WHATWG spec, on bytes as they arrive.

Lines may end in CRLF, LF or CR (Gemini uses CRLF); ``data:`` lines of one event are joined
with LF; lines starting with ``:`` are comments; one optional space after the colon is
stripped.  ``feed`` takes the bytes of one network read and returns the events that read
*completed*: the caller stamps them all with that read's arrival time, which is when the
client could first have acted on them.  Several events completed by one read honestly
share its stamp.

The decoder is on lens's hottest path, so it works on whole buffers with C-level bytes
methods (``find``, ``split``, ``replace``), returns plain ``(event, data)`` tuples, and never
walks characters in Python.
"""

from __future__ import annotations

SseEvent = tuple[bytes, bytes]  # (event name or b"" for "message", data)


class SseDecoder:
    __slots__ = ("_buf", "events_seen")

    def __init__(self) -> None:
        self._buf = b""
        self.events_seen = 0

    def feed(self, data: bytes) -> list[SseEvent]:
        """Add the bytes of one read; return the events they completed."""
        buf = self._buf + data if self._buf else data
        if b"\r" in buf:
            # Normalise line ends. A trailing CR may be the first half of a CRLF split
            # across reads, so it waits for the next read (or the end of the stream).
            hold = buf.endswith(b"\r")
            if hold:
                buf = buf[:-1]
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if hold:
                buf += b"\r"
        end = buf.rfind(b"\n\n")
        if end < 0:
            self._buf = buf
            return []
        self._buf = buf[end + 2 :]
        out: list[SseEvent] = []
        for block in buf[:end].split(b"\n\n"):
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
        if self._buf.endswith(b"\r"):
            buf, self._buf = self._buf[:-1] + b"\n", b""
            return self.feed(buf)
        return []

    @property
    def pending(self) -> bool:
        """True when bytes of an unfinished event are buffered (a cut stream)."""
        return bool(self._buf.strip(b"\r\n"))


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

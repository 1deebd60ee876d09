"""InfluxDB line protocol: escaping and one point per line.

``measurement[,tag=value...] field=value[,field=value...] timestamp_ns``

* measurement: ``,`` and space are escaped with ``\\``;
* tag keys, tag values, field keys: ``,``, ``=`` and space are escaped;
* string field values are double-quoted with ``"`` and ``\\`` escaped;
* integers carry an ``i`` suffix; floats are written in full precision; NaN and infinities
  (which line protocol cannot carry) and ``None`` leave the field out; a tag whose value is
  empty or ``None`` is left out (InfluxDB rejects empty tag values).

Line protocol has no escape for a newline, and a backslash at the end of a name or tag value
would escape the delimiter after it.  So, before escaping, a carriage return or line feed
anywhere becomes the two characters ``\\r`` / ``\\n`` (as Telegraf does), and trailing
backslashes of names, tag keys/values and field keys are dropped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

FieldValue = float | int | str | bool | None

_NEWLINES = str.maketrans({"\n": "\\n", "\r": "\\r"})
_MEASUREMENT = str.maketrans({",": "\\,", " ": "\\ "})
_KEY = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})


def _clean_name(text: str) -> str:
    return text.translate(_NEWLINES).rstrip("\\")


def escape_measurement(name: str) -> str:
    return _clean_name(name).translate(_MEASUREMENT)


def escape_key(text: str) -> str:
    """A tag key, tag value or field key."""
    return _clean_name(text).translate(_KEY)


def escape_string(value: str) -> str:
    """A string field value, quotes included."""
    body = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + body.replace("\n", "\\\\n").replace("\r", "\\\\r") + '"'


def format_field(value: float | int | str | bool) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    return escape_string(value)


def line(
    measurement: str,
    tags: Mapping[str, str | None],
    fields: Mapping[str, FieldValue],
    timestamp_ns: int,
) -> str | None:
    """One point, or ``None`` when it would have no field (line protocol needs one)."""
    tag_part = "".join(
        f",{escape_key(k)}={escape_key(v)}"
        for k, v in sorted(tags.items())
        if v is not None and escape_key(v)
    )
    field_parts = [
        f"{escape_key(k)}={text}"
        for k, v in fields.items()
        if v is not None and (text := format_field(v)) is not None
    ]
    if not field_parts:
        return None
    return f"{escape_measurement(measurement)}{tag_part} {','.join(field_parts)} {timestamp_ns}"


def batches(lines: Iterable[str], size: int) -> Iterable[str]:
    """Lines joined into request bodies of at most ``size`` lines each."""
    chunk: list[str] = []
    for text in lines:
        chunk.append(text)
        if len(chunk) == size:
            yield "\n".join(chunk) + "\n"
            chunk = []
    if chunk:
        yield "\n".join(chunk) + "\n"

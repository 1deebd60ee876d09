"""A line-protocol parser for the tests, following InfluxDB 1.x: a delimiter preceded by a
backslash is escaped; tags and keys unescape ``\\,`` ``\\=`` ``\\ ``, measurements ``\\,``
``\\ ``, string fields ``\\\\`` and ``\\"``; a string runs to an unescaped ``"``."""

from __future__ import annotations

from dataclasses import dataclass

Field = float | int | str | bool


@dataclass(frozen=True)
class Point:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, Field]
    timestamp: int


def _scan(text: str, i: int, stops: str) -> int:
    """Index of the first character of ``stops`` at or after ``i`` not after a backslash."""
    while i < len(text) and not (text[i] in stops and (i == 0 or text[i - 1] != "\\")):
        i += 1
    return i


def _unescape(text: str, chars: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in chars:
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _string(text: str, i: int) -> tuple[str, int]:
    """A quoted string starting at ``text[i] == '"'``; returns the value and the index after."""
    assert text[i] == '"'
    out, i = [], i + 1
    while text[i] != '"':
        if text[i] == "\\" and text[i + 1] in '\\"':
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out), i + 1


def _value(raw: str) -> Field:
    if raw.endswith("i"):
        return int(raw[:-1])
    if raw in ("true", "false"):
        return raw == "true"
    return float(raw)


def parse(line: str) -> Point:
    assert "\n" not in line, "one point per line"
    end = _scan(line, 0, ", ")
    measurement = _unescape(line[:end], ", ")
    tags: dict[str, str] = {}
    i = end
    while line[i] == ",":
        eq = _scan(line, i + 1, "=")
        stop = _scan(line, eq + 1, ", ")
        tags[_unescape(line[i + 1 : eq], ",= ")] = _unescape(line[eq + 1 : stop], ",= ")
        i = stop
    assert line[i] == " "
    fields: dict[str, Field] = {}
    i += 1
    while True:
        eq = _scan(line, i, "=")
        key = _unescape(line[i:eq], ",= ")
        if line[eq + 1] == '"':
            fields[key], i = _string(line, eq + 1)
        else:
            stop = _scan(line, eq + 1, ", ")
            fields[key], i = _value(line[eq + 1 : stop]), stop
        if line[i] == " ":
            break
        assert line[i] == ","
        i += 1
    return Point(measurement, tags, fields, int(line[i + 1 :]))

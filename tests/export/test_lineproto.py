"""Line-protocol escaping: round trips through a parser, and the real influxd accepts it."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lens.export.lineproto import (
    FieldValue,
    batches,
    escape_key,
    escape_measurement,
    escape_string,
    line,
)
from tests.export.lineparse import parse
from tests.export.servers import Server, create_database, influx_query

AWKWARD = st.text(
    alphabet=st.sampled_from([*',= "\\\n\rab', "é", "☃", "\t", "\x00"]) | st.characters(),
    max_size=20,
)
NAMES = AWKWARD.filter(lambda s: bool(escape_key(s)) and bool(escape_measurement(s)))


def normalised_name(text: str) -> str:
    """What a name, tag or field key reads back as (see lens.export.lineproto)."""
    return text.replace("\n", "\\n").replace("\r", "\\r").rstrip("\\")


def normalised_string(text: str) -> str:
    return text.replace("\n", "\\n").replace("\r", "\\r")


@given(
    measurement=NAMES,
    tags=st.dictionaries(NAMES, AWKWARD, max_size=4),
    key=NAMES,
    text=AWKWARD,
    number=st.integers(-(2**63), 2**63 - 1),
    real=st.floats(allow_nan=False, allow_infinity=False),
)
def test_escaping_round_trips(
    measurement: str, tags: dict[str, str], key: str, text: str, number: int, real: float
) -> None:
    fields: dict[str, FieldValue] = {key: text, f"{key}_n": number, f"{key}_x": real}
    written = line(measurement, tags, fields, 1_700_000_000_000_000_123)
    assert written is not None
    point = parse(written)
    assert point.measurement == normalised_name(measurement)
    expected_tags = {normalised_name(k): normalised_name(v) for k, v in tags.items()}
    assert point.tags == {k: v for k, v in expected_tags.items() if v}
    assert point.fields == {
        normalised_name(key): normalised_string(text),
        normalised_name(f"{key}_n"): number,
        normalised_name(f"{key}_x"): real,
    }
    assert point.timestamp == 1_700_000_000_000_000_123


def test_details() -> None:
    assert escape_measurement("a,b c=d") == "a\\,b\\ c=d"
    assert escape_key("a,b c=d") == "a\\,b\\ c\\=d"
    assert escape_string('say "hi" \\ bye') == '"say \\"hi\\" \\\\ bye"'
    assert line("m", {"empty": "", "none": None}, {"v": None, "nan": float("nan")}, 1) is None
    assert (
        line("m", {}, {"i": 3, "f": 1.5, "b": True, "s": "x"}, 7) == 'm i=3i,f=1.5,b=true,s="x" 7'
    )
    assert list(batches(["a", "b", "c"], 2)) == ["a\nb\n", "c\n"]


TRICKY = [
    "plain",
    "a,b=c d",
    'quote " and back\\slash',
    "ends in backslash\\",
    "back\\,comma and back\\ space",
    "line\nbreak",
    "snow ☃ man",
]


def test_the_real_influxd_reads_back_what_was_written(influxdb: Server) -> None:
    create_database(influxdb, "escaping")
    lines = [
        line("esc, m", {"t k": value, "i": str(i)}, {"f k": value, "n": i}, 1_000 + i)
        for i, value in enumerate(TRICKY)
    ]
    body = "\n".join(text for text in lines if text is not None) + "\n"
    response = httpx.post(f"{influxdb.url}/write", params={"db": "escaping"}, content=body)
    assert response.status_code == 204, response.text
    rows = influx_query(influxdb, "escaping", 'SELECT * FROM "esc, m"')
    got = sorted((int(str(r["n"])), r["t k"], r["f k"]) for r in rows)
    assert got == [(i, normalised_name(v), normalised_string(v)) for i, v in enumerate(TRICKY)]
    for text in lines:  # and the test parser agrees with the server
        assert text is not None
        point = parse(text)
        assert point.tags["t k"] == normalised_name(TRICKY[int(point.tags["i"])])


@pytest.mark.parametrize("bad", ["m f=1 2 3", "m, f=1 1"])
def test_the_real_influxd_rejects_malformed_lines(influxdb: Server, bad: str) -> None:
    """Guards the test above: the server does check what it is sent."""
    create_database(influxdb, "escaping")
    response = httpx.post(f"{influxdb.url}/write", params={"db": "escaping"}, content=bad)
    assert response.status_code == 400

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lens.scenario.units import (
    DURATION_PATTERN,
    PERCENT_PATTERN,
    RATE_PATTERN,
    SIZE_PATTERN,
    parse_duration,
    parse_percent,
    parse_rate,
    parse_size,
    show,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("150ms", 0.15),
        ("30s", 30.0),
        ("2m", 120.0),
        ("1.5s", 1.5),
        (" 2 s ", 2.0),
        (".5s", 0.5),
        ("10", 10.0),
        (3, 3.0),
        (0.25, 0.25),
        (0, 0.0),
        ("1h", 3600.0),
        ("1.5h", 5400.0),
        ("1h30m", 5400.0),
        ("2m30s", 150.0),
        ("1h 0m 5s", 3605.0),
        ("1s500ms", 1.5),
        ("1h2m3s4ms", 3723.004),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "bad",
    [
        "fast",
        "1d",
        "-1s",
        "1e3ms",
        "",
        True,
        None,
        [1],
        -2,
        math.inf,
        "1m1h",
        "30m1h",
        "1h1h",
        "1h30",
        "h",
        "ms",
        "1hh",
        "1h-3m",
        "30mm",
        "1 h x",
    ],
)
def test_bad_durations_say_what_is_expected(bad: object) -> None:
    with pytest.raises(ValueError, match=r"expected a duration like 150ms, 2s, 1m, 1h or 1h30m"):
        parse_duration(bad)


def test_positive_duration_rejects_zero() -> None:
    with pytest.raises(ValueError, match="longer than zero, got '0ms'"):
        parse_duration("0ms", positive=True)


def test_rate_of_zero_only_where_allowed() -> None:
    assert parse_rate("0/s", allow_zero=True) == 0.0
    assert parse_rate(0, allow_zero=True) == 0.0
    assert parse_rate("3/m", allow_zero=True) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="and zero or more, got -1"):
        parse_rate(-1, allow_zero=True)
    with pytest.raises(ValueError, match="and greater than zero, got 0"):
        parse_rate(0)


@pytest.mark.parametrize(
    ("text", "per_second"),
    [("5/s", 5.0), ("300/m", 5.0), ("2.5", 2.5), (7, 7.0), ("10 / s", 10.0), (0.5, 0.5)],
)
def test_rates(text: object, per_second: float) -> None:
    assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize("bad", ["5/h", "fast", "0/s", 0, -1, False, "5 per s"])
def test_bad_rates(bad: object) -> None:
    with pytest.raises(ValueError, match=r"expected a rate like 5/s or 300/m"):
        parse_rate(bad)


@pytest.mark.parametrize(
    ("text", "fraction"),
    [("1%", 0.01), ("0.5%", 0.005), ("100%", 1.0), (0.01, 0.01), ("0.2", 0.2), (1, 1.0), (0, 0.0)],
)
def test_percent(text: object, fraction: float) -> None:
    assert parse_percent(text) == pytest.approx(fraction)


def test_percent_errors() -> None:
    with pytest.raises(ValueError, match=r"did you mean '5%'"):
        parse_percent(5)
    with pytest.raises(ValueError, match="at most 100%"):
        parse_percent("150%")
    with pytest.raises(ValueError, match="expected a percentage like 1%"):
        parse_percent("lots")
    with pytest.raises(ValueError, match="expected a percentage like 1%"):
        parse_percent(-0.1)


def test_show_uses_yaml_words() -> None:
    values: tuple[object, ...] = (True, False, None, {}, [], "x", 3)
    assert [show(v) for v in values] == [
        "true",
        "false",
        "null",
        "a mapping",
        "a list",
        "'x'",
        "3",
    ]
    assert show("x" * 100) == "'" + "x" * 56 + "..."


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "": 1.0}


@given(
    whole=st.integers(min_value=0, max_value=10**6),
    frac=st.integers(min_value=0, max_value=999),
    unit=st.sampled_from(sorted(_UNITS)),
)
def test_duration_text_round_trips(whole: int, frac: int, unit: str) -> None:
    text = f"{whole}.{frac:03d}{unit}"
    assert re.match(DURATION_PATTERN, text)  # the JSON Schema accepts what the parser does
    assert parse_duration(text) == pytest.approx((whole + frac / 1000) * _UNITS[unit])


@given(
    parts=st.lists(st.integers(min_value=0, max_value=999), min_size=4, max_size=4),
    used=st.lists(st.booleans(), min_size=4, max_size=4).filter(any),
)
def test_mixed_unit_durations_round_trip(parts: list[int], used: list[bool]) -> None:
    units = (("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 0.001))
    text = "".join(f"{n}{u}" for n, (u, _), on in zip(parts, units, used, strict=True) if on)
    assert re.match(DURATION_PATTERN, text)
    expected = sum(n * f for n, (_, f), on in zip(parts, units, used, strict=True) if on)
    assert parse_duration(text) == pytest.approx(expected)


@given(
    value=st.floats(min_value=0.001, max_value=1e6, allow_nan=False),
    unit=st.sampled_from(["/s", "/m", ""]),
)
def test_rate_text_round_trips(value: float, unit: str) -> None:
    text = f"{value:.3f}{unit}"
    assert re.match(RATE_PATTERN, text)
    expected = round(value, 3) / (60.0 if unit == "/m" else 1.0)
    assert parse_rate(text) == pytest.approx(expected)


@given(st.text(max_size=12))
def test_parsers_accept_exactly_what_the_schema_patterns_accept(text: str) -> None:
    """Anything the schema pattern rejects, the parser rejects too (and vice versa), so the
    JSON Schema and the loader never disagree on unit strings."""
    for pattern, parse in (
        (DURATION_PATTERN, parse_duration),
        (RATE_PATTERN, parse_rate),
        (PERCENT_PATTERN, parse_percent),
        (SIZE_PATTERN, parse_size),
    ):
        matches = re.match(pattern, text) is not None
        try:
            parse(text)
        except ValueError:
            ok = False
        else:
            ok = True
        if ok:
            assert matches, (pattern, text)
        if not matches:
            assert not ok


def test_integers_too_large_for_a_float_are_rejected_not_crashed() -> None:
    with pytest.raises(ValueError, match="expected a rate"):
        parse_rate(10**400)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1MiB", 1 << 20),
        ("64 MiB", 64 << 20),
        ("2GiB", 2 << 30),
        ("1KiB", 1024),
        ("500kB", 500_000),
        ("500KB", 500_000),
        ("10MB", 10_000_000),
        ("1GB", 1_000_000_000),
        ("1.5KiB", 1536),
        ("12B", 12),
        ("4096", 4096),
        (4096, 4096),
    ],
)
def test_sizes(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["1TB", "1 mib", "-1", "MiB", "", 1.5, True, None, [1]])
def test_bad_sizes_say_what_is_expected(bad: object) -> None:
    with pytest.raises(ValueError, match=r"expected a size like 1MiB, 64MiB or 500kB"):
        parse_size(bad)


@pytest.mark.parametrize("bad", [0, "0", "0.1B", "0 KiB"])
def test_sizes_must_be_positive(bad: object) -> None:
    with pytest.raises(ValueError, match="must be at least one byte"):
        parse_size(bad)

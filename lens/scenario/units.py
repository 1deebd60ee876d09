"""Durations, rates, percentages, sizes and dollar amounts as people write them in a scenario.

Each parser accepts either a YAML number or a string with a unit, and returns one canonical
float (seconds, requests per second, a fraction).  The same regular expressions feed the JSON
Schema (see ``*_json_schema``) so an editor and the loader accept exactly the same spellings.
The error messages are the ones users read, so they show an example of the right form.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

# One number grammar for all three kinds: no sign (negatives are never meaningful here), no
# exponent (nobody writes "1e3ms"), optional spaces before the unit.
_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
# A bare number (seconds), or parts in descending units, each at most once: 150ms, 2m30s,
# 1h30m, 1.5h, 1h 0m 5s.  ``m(?!s)``: minutes, not the start of ``ms``.
DURATION_PATTERN = (
    rf"^\s*(?:{_NUMBER}|(?=[0-9.])(?:{_NUMBER}\s*h\s*)?(?:{_NUMBER}\s*m(?!s)\s*)?"
    rf"(?:{_NUMBER}\s*s\s*)?(?:{_NUMBER}\s*ms\s*)?)\s*$"
)
RATE_PATTERN = rf"^\s*{_NUMBER}\s*(?:/\s*(?:s|m))?\s*$"
PERCENT_PATTERN = rf"^\s*{_NUMBER}\s*%?\s*$"
USD_PATTERN = rf"^\s*\$?\s*{_NUMBER}\s*(?:USD)?\s*$"
REQUESTS_PATTERN = r"^\s*[0-9]+\s*requests?\s*$"
SIZE_PATTERN = rf"^\s*{_NUMBER}\s*(?:B|kB|KB|MB|GB|KiB|MiB|GiB)?\s*$"

_DURATION = re.compile(DURATION_PATTERN)
_DURATION_PART = re.compile(rf"(?P<num>{_NUMBER})\s*(?P<unit>ms|h|m|s)?")
_RATE = re.compile(rf"^\s*(?P<num>{_NUMBER})\s*(?:/\s*(?P<unit>s|m))?\s*$")
_PERCENT = re.compile(rf"^\s*(?P<num>{_NUMBER})\s*(?P<pct>%)?\s*$")
_USD = re.compile(rf"^\s*\$?\s*(?P<num>{_NUMBER})\s*(?:USD)?\s*$")
_REQUESTS = re.compile(r"^\s*(?P<num>[0-9]+)\s*requests?\s*$")
_SIZE = re.compile(rf"^\s*(?P<num>{_NUMBER})\s*(?P<unit>B|kB|KB|MB|GB|KiB|MiB|GiB)?\s*$")
_BYTES_PER_UNIT = {
    None: 1,
    "B": 1,
    "kB": 1000,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}

# Seconds per unit; milliseconds are divided (150 / 1000), so ``150ms`` is the float 0.15.
_SECONDS_PER_UNIT = {None: 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
_PER_SECOND_FACTOR = {None: 1.0, "s": 1.0, "m": 1.0 / 60.0}


def show(value: object) -> str:
    """A short rendering of a user value in YAML terms, for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _plain_number(value: object) -> float | None:
    """A YAML int/float as a float; ``None`` for anything else (bools are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:  # an integer with hundreds of digits
        return math.inf


def parse_duration(value: object, *, positive: bool = False) -> float:
    """``150ms``, ``30s``, ``2m``, ``1.5h``, mixed units in descending order (``1h30m``,
    ``2m30s``, ``1s500ms``) or a bare number of seconds -> seconds."""
    expected = "expected a duration like 150ms, 2s, 1m, 1h or 1h30m (a bare number means seconds)"
    seconds = _plain_number(value)
    if seconds is None:
        if not isinstance(value, str) or _DURATION.match(value) is None:
            raise ValueError(f"{expected}, got {show(value)}")
        seconds = 0.0
        for part in _DURATION_PART.finditer(value):
            unit = part["unit"]
            number = float(part["num"])
            seconds += number / 1000 if unit == "ms" else number * _SECONDS_PER_UNIT[unit]
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{expected}, got {show(value)}")
    if positive and seconds <= 0:
        raise ValueError(f"must be longer than zero, got {show(value)}")
    return seconds


def parse_span(value: object) -> tuple[float | None, int | None]:
    """``10s`` (a duration, a bare number being seconds) or ``5 requests`` -> (seconds,
    None) or (None, count): how long a warmup or cooldown lasts (zero: none)."""
    m = _REQUESTS.match(value) if isinstance(value, str) else None
    if m is None:
        try:
            return parse_duration(value), None
        except ValueError:
            raise ValueError(
                f"expected a duration like 10s or a count like '5 requests', got {show(value)}"
            ) from None
    return None, int(m["num"])


def parse_rate(value: object, *, allow_zero: bool = False) -> float:
    """``5/s``, ``300/m`` or a bare number per second -> requests per second (> 0, or >= 0
    with ``allow_zero``: a ramp may start or end at rest)."""
    expected = "expected a rate like 5/s or 300/m (a bare number means per second)"
    per_second = _plain_number(value)
    if per_second is None:
        m = _RATE.match(value) if isinstance(value, str) else None
        if m is None:
            raise ValueError(f"{expected}, got {show(value)}")
        per_second = float(m["num"]) * _PER_SECOND_FACTOR[m["unit"]]
    if allow_zero and per_second == 0:
        return per_second
    if not math.isfinite(per_second) or per_second <= 0:
        bound = "zero or more" if allow_zero else "greater than zero"
        raise ValueError(f"{expected} and {bound}, got {show(value)}")
    return per_second


def parse_percent(value: object) -> float:
    """``1%`` or a fraction ``0.01`` -> a fraction in [0, 1]."""
    expected = "expected a percentage like 1% or a fraction like 0.01"
    fraction = _plain_number(value)
    percent_sign = False
    if fraction is None:
        m = _PERCENT.match(value) if isinstance(value, str) else None
        if m is None:
            raise ValueError(f"{expected}, got {show(value)}")
        percent_sign = m["pct"] is not None
        fraction = float(m["num"]) / 100.0 if percent_sign else float(m["num"])
    if not math.isfinite(fraction) or fraction < 0:
        raise ValueError(f"{expected}, got {show(value)}")
    if fraction > 1:
        if percent_sign:
            raise ValueError(f"must be at most 100%, got {show(value)}")
        # "5" almost always means five percent: say so instead of a bare range error.
        raise ValueError(
            f"a fraction must be between 0 and 1, got {show(value)} (did you mean '{value}%'?)"
        )
    return fraction


@dataclass(frozen=True, slots=True)
class Precision:
    """How close a rate search must get: a share of the rate (``5%``) or a rate (``0.5/s``)."""

    value: float  # a fraction when relative, else requests per second
    relative: bool

    def reached(self, passing: float, failing: float) -> bool:
        """Whether the bracket ``[passing, failing)`` is narrow enough to stop."""
        allowed = self.value * passing if self.relative else self.value
        return failing - passing <= allowed

    def __str__(self) -> str:
        return f"{self.value * 100:g}%" if self.relative else f"{self.value:g}/s"


def parse_precision(value: object) -> Precision:
    """``5%`` (of the rate) or ``0.5/s`` (a bare number is per second) -> a ``Precision``."""
    if isinstance(value, Precision):
        return value
    if isinstance(value, str) and value.strip().endswith("%"):
        fraction = parse_percent(value)
        if not 0 < fraction < 1:
            raise ValueError(f"a relative precision must be above 0% and below 100%, got {value}")
        return Precision(fraction, relative=True)
    try:
        return Precision(parse_rate(value), relative=False)
    except ValueError:
        raise ValueError(
            f"expected a precision like 5% (of the rate) or 0.5/s, got {show(value)}"
        ) from None


def parse_usd(value: object) -> Decimal:
    """``$10``, ``0.15``, ``"2.5 USD"`` -> an exact ``Decimal`` of US dollars.

    A YAML float goes through its shortest repr (0.15 -> "0.15"), so no binary noise
    reaches a price.
    """
    expected = "expected an amount of US dollars like $10 or 0.15"
    if isinstance(value, bool):
        raise ValueError(f"{expected}, got {show(value)}")
    if isinstance(value, int | float):
        text = repr(value)
    elif isinstance(value, str) and (m := _USD.match(value)) is not None:
        text = m["num"]
    else:
        raise ValueError(f"{expected}, got {show(value)}")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{expected}, got {show(value)}") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{expected}, got {show(value)}")
    return amount


def parse_size(value: object) -> int:
    """``1MiB``, ``64 MiB``, ``500kB``, ``2GB`` or a whole number of bytes -> bytes (> 0).

    KiB/MiB/GiB are powers of 1024, kB/KB/MB/GB powers of 1000; a fraction of a unit is
    rounded down to whole bytes.
    """
    expected = "expected a size like 1MiB, 64MiB or 500kB (a bare whole number means bytes)"
    if isinstance(value, bool | float):
        raise ValueError(f"{expected}, got {show(value)}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (m := _SIZE.match(value)) is not None:
        size = int(Decimal(m["num"]) * _BYTES_PER_UNIT[m["unit"]])
    else:
        raise ValueError(f"{expected}, got {show(value)}")
    if size < 1:
        raise ValueError(f"must be at least one byte, got {show(value)}")
    return size


def size_json_schema() -> dict[str, Any]:
    return {
        "anyOf": [
            {"type": "integer", "minimum": 1},
            {"type": "string", "pattern": SIZE_PATTERN},
        ]
    }


def duration_json_schema(*, positive: bool) -> dict[str, Any]:
    number: dict[str, Any] = {"type": "number"}
    number["exclusiveMinimum" if positive else "minimum"] = 0
    return {"anyOf": [number, {"type": "string", "pattern": DURATION_PATTERN}]}


def span_json_schema() -> dict[str, Any]:
    return {
        "anyOf": [
            *duration_json_schema(positive=False)["anyOf"],
            {"type": "string", "pattern": REQUESTS_PATTERN},
        ]
    }


def rate_json_schema(*, allow_zero: bool = False) -> dict[str, Any]:
    return {
        "anyOf": [
            {"type": "number", "minimum" if allow_zero else "exclusiveMinimum": 0},
            {"type": "string", "pattern": RATE_PATTERN},
        ]
    }


def usd_json_schema() -> dict[str, Any]:
    return {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": USD_PATTERN}]}


def precision_json_schema() -> dict[str, Any]:
    return {
        "anyOf": [
            {"type": "number", "exclusiveMinimum": 0},
            {"type": "string", "pattern": rf"{RATE_PATTERN}|^\s*{_NUMBER}\s*%\s*$"},
        ],
        "description": "5% (of the rate) or 0.5/s (a bare number is per second)",
    }


def percent_json_schema() -> dict[str, Any]:
    return {
        "anyOf": [
            {"type": "number", "minimum": 0, "maximum": 1},
            {"type": "string", "pattern": PERCENT_PATTERN},
        ]
    }

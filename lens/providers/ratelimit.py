"""Rate-limit hints in their three wire formats, normalised to seconds.

Providers say "try again later" differently (wire-formats.md §8): ``retry-after`` in
seconds or as an HTTP date, ``retry-after-ms``; OpenAI's ``x-ratelimit-reset-*`` as Go
durations (``6m0s``, ``2m59.56s``, ``4ms``); Anthropic's ``anthropic-ratelimit-*-reset`` as
RFC 3339 instants.  The raw headers are kept verbatim; these functions add ``*_s`` values
so results can be compared across providers.  Instants are turned into a delay against the
response's own ``date`` header (the server's clock), never lens's wall clock; without a
``date`` they stay raw only.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from email.utils import parsedate_to_datetime

_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")
_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def go_duration_s(text: str) -> float | None:
    """``1h2m3.5s`` / ``250ms`` / ``0s`` → seconds; None if it is not a Go duration."""
    text = text.strip()
    if not text:
        return None
    pos, total = 0, 0.0
    for m in _GO_PART.finditer(text):
        if m.start() != pos:
            return None
        total += float(m[1]) * _GO_UNITS[m[2]]
        pos = m.end()
    return total if pos == len(text) else None


def _instant(text: str) -> datetime | None:
    text = text.strip()
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None


def seconds_until(text: str, server_date: str | None) -> float | None:
    """Delay from the server's ``date`` to the instant ``text`` (RFC 3339 or HTTP date)."""
    when = _instant(text)
    now = _instant(server_date) if server_date else None
    if when is None or now is None or when.tzinfo is None or now.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


def retry_after_s(
    retry_after: str | None, retry_after_ms: str | None, date: str | None
) -> float | None:
    """The wait a 429/503 asks for: ``retry-after-ms`` first (as OpenAI's SDK does).

    Only a finite, non-negative number of seconds counts: ``nan`` or ``inf`` from a
    hostile server would otherwise reach the retry scheduler's sleep."""
    if retry_after_ms:
        try:
            return _wait(float(retry_after_ms) / 1000.0)
        except ValueError:
            pass
    if retry_after:
        try:
            return _wait(float(retry_after))
        except ValueError:
            return seconds_until(retry_after, date)
    return None


def _wait(seconds: float) -> float:
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("not a wait")
    return seconds


def normalise(facts: dict[str, str], date: str | None) -> dict[str, str]:
    """``facts`` plus ``retry_after_s`` and a ``<header>_s`` for every reset header."""
    out = dict(facts)
    wait = retry_after_s(facts.get("retry-after"), facts.get("retry-after-ms"), date)
    if wait is not None:
        out["retry_after_s"] = f"{wait:g}"
    for name, value in facts.items():
        if not name.endswith("-reset") and "-reset-" not in name:
            continue
        seconds = go_duration_s(value)
        if seconds is None:
            seconds = seconds_until(value, date)
        if seconds is not None:
            out[f"{name}_s"] = f"{seconds:g}"
    return out

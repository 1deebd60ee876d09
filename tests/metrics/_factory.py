"""Hand-built RequestRecords for the metrics tests: times given in ms, stored in ns."""

from __future__ import annotations

from typing import Any

from lens.records import ErrorClass, RequestRecord, TokenSource


def ns(ms: float) -> int:
    """Milliseconds to integer nanoseconds, exactly for the values the tests use."""
    return round(ms * 1_000_000)


def record(**overrides: Any) -> RequestRecord:
    """A successful 4-token stream: dispatched at 10 ms, headers at 60, tokens at
    210/220/230/240 (one per chunk), end at 250.  Keyword ``*_ms`` stamps override."""
    fields: dict[str, Any] = {
        "provider": "p",
        "stage": "s",
        "prompt": "q",
        "index": 0,
        "ok": True,
        "error_class": None,
        "error_message": None,
        "http_status": 200,
        "t_intended": None,
        "t_dispatch": ns(10),
        "t_headers": ns(60),
        "t_first_chunk": ns(210),
        "t_first_token": ns(210),
        "t_first_visible": ns(210),
        "t_last_token": ns(240),
        "t_end": ns(250),
        "chunk_times": (ns(210), ns(220), ns(230), ns(240)),
        "chunk_tokens": (1, 1, 1, 1),
        "input_tokens": 12,
        "output_tokens": 4,
        "token_source": TokenSource.USAGE,
    }
    fields.update(overrides)
    return RequestRecord(**fields)


def failed(error_class: ErrorClass | None = ErrorClass.HTTP_5XX, **overrides: Any) -> RequestRecord:
    """A failed request: a fast 500 by default (headers at 12 ms, end at 13 ms)."""
    fields: dict[str, Any] = {
        "ok": False,
        "error_class": error_class,
        "error_message": "boom",
        "http_status": 500,
        "t_headers": ns(12),
        "t_first_chunk": None,
        "t_first_token": None,
        "t_first_visible": None,
        "t_last_token": None,
        "t_end": ns(13),
        "chunk_times": (),
        "chunk_tokens": (),
        "input_tokens": None,
        "output_tokens": None,
        "token_source": None,
    }
    fields.update(overrides)
    return record(**fields)

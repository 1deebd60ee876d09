from __future__ import annotations

import httpx
import pytest

from lens.providers.base import header_facts
from lens.providers.ratelimit import go_duration_s, retry_after_s, seconds_until


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("6m0s", 360.0), ("2m59.56s", 179.56), ("4ms", 0.004), ("0s", 0.0), ("1h2m3s", 3723.0)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert go_duration_s(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "12", "5 s", "s", "2025-02-24T22:25:32Z", "3x"])
def test_not_go_durations(text: str) -> None:
    assert go_duration_s(text) is None


def test_rfc3339_reset_against_the_server_date() -> None:
    date = "Mon, 24 Feb 2025 22:25:02 GMT"
    assert seconds_until("2025-02-24T22:25:32Z", date) == 30.0
    assert seconds_until("2025-02-24T22:25:00Z", date) == 0.0  # already past
    assert seconds_until("2025-02-24T22:25:32Z", None) is None
    assert seconds_until("soon", date) is None


def test_retry_after_forms() -> None:
    assert retry_after_s("37", None, None) == 37.0
    assert retry_after_s("37", "1500", None) == 1.5  # the ms header wins, as in OpenAI's SDK
    assert (
        retry_after_s("Mon, 24 Feb 2025 22:25:12 GMT", None, "Mon, 24 Feb 2025 22:25:02 GMT") == 10
    )
    assert retry_after_s("x", "y", None) is None
    assert retry_after_s(None, None, None) is None


def test_header_facts_keep_raw_values_and_add_seconds() -> None:
    headers = httpx.Headers(
        {
            "date": "Mon, 24 Feb 2025 22:25:02 GMT",
            "retry-after": "20",
            "x-ratelimit-reset-tokens": "2m59.56s",
            "anthropic-ratelimit-requests-reset": "2025-02-24T22:25:32Z",
            "content-type": "application/json",
        }
    )
    facts = header_facts(headers)
    assert facts["retry-after"] == "20"
    assert facts["retry_after_s"] == "20"
    assert facts["x-ratelimit-reset-tokens"] == "2m59.56s"
    assert facts["x-ratelimit-reset-tokens_s"] == "179.56"
    assert facts["anthropic-ratelimit-requests-reset_s"] == "30"
    assert "content-type" not in facts
    assert header_facts(httpx.Headers({"content-type": "x"})) == {}

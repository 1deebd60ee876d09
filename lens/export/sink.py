"""Where exported bytes go: a file replaced atomically, or an HTTP request with bounded retries.

Exporting happens after the run, so a synchronous httpx client is enough.  Every failure is
an ``ExportError`` naming the destination in its masked form and what went wrong.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from lens.errors import ExportError
from lens.targets import ExportTarget

# A server's error body is quoted in messages up to this length.
_MAX_REASON = 300


def write_atomic(path: Path, data: str) -> None:
    """Write ``data`` so a reader (node_exporter's textfile collector) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(data, encoding="utf-8")
    tmp.replace(path)


def append_text(path: Path, data: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(data)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts per request; the wait before attempt k+1 is ``backoff_s * 2**(k-1)``.

    Connection errors and 5xx are retried (a restarting server); 4xx never are (the same
    bytes would be refused again)."""

    attempts: int = 3
    backoff_s: float = 0.5
    timeout_s: float = 10.0


DEFAULT_RETRY = RetryPolicy()


def send(
    target: ExportTarget,
    method: str,
    url: str,
    *,
    content: bytes,
    headers: Mapping[str, str],
    retry: RetryPolicy = DEFAULT_RETRY,
    sleep: Callable[[float], None] = time.sleep,
) -> httpx.Response:
    """Send one request; return the 2xx response or raise ``ExportError``."""
    problem = ""
    with httpx.Client(timeout=retry.timeout_s) as client:
        for attempt in range(1, retry.attempts + 1):
            if attempt > 1:
                sleep(retry.backoff_s * 2 ** (attempt - 2))
            try:
                response = client.request(method, url, content=content, headers=dict(headers))
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                continue
            if response.is_success:
                return response
            problem = f"HTTP {response.status_code}: {_reason(response)}"
            if response.status_code < 500:
                break
    tried = f" (after {attempt} attempts)" if attempt > 1 else ""
    raise ExportError(target.scrub(f"{problem}{tried}"))


def _reason(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    if len(text) > _MAX_REASON:
        text = text[:_MAX_REASON] + "..."
    return text or response.reason_phrase

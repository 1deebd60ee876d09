"""Anthropic Messages streaming (``POST /v1/messages``, ``stream: true``).

Wire facts (wire-formats.md §4, §0): ``event: <type>`` + ``data: <json>`` where the JSON
``type`` repeats the event name, and the JSON is often padded with runs of spaces
(``{"type":"message_stop"    }``); ``ping`` can come anywhere (``{"type": "ping"}``).
``message_start`` carries the input usage, where ``input_tokens`` *excludes* cache reads and
writes; ``message_delta`` carries the *cumulative* output count (thinking included) and the
stop reason; ``message_stop`` ends the stream.  A mid-stream ``event: error`` is followed by
EOF (no usage, no ``message_stop``); ``overloaded_error`` is the 529 of a 200 stream.

Token-bearing deltas: ``text_delta`` (visible), ``thinking_delta`` (reasoning: counts for
TTFT, not for the first visible token; the empty one that closes a thinking block is not a
token), ``input_json_delta`` (tool input, visible).  ``signature_delta`` and unknown deltas
carry no token.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from lens.plan.model import AnthropicSettings, PromptSpec, ProviderSpec
from lens.plan.workloads import deep_merge
from lens.providers.base import (
    SYSTEM_ROLES,
    StreamOutcome,
    TokenTimeline,
    Usage,
    classify_status,
    error_text,
    header_facts,
    json_string_bytes,
    masked_request,
    settings_of,
)
from lens.providers.sse import DEFAULT_MAX_EVENT_BYTES, SseDecoder
from lens.records import ErrorClass

DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_MAX_TOKENS = (
    1024  # Anthropic requires max_tokens: used when neither prompt nor stage has one
)
_QUOTE = ord('"')
_CONTENT_BLOCK_DELTA = b"content_block_delta"
# (marker just before the delta's string value, visible).  In compact JSON each marker can
# only occur structurally (a quote inside a string value is escaped), so finding one means
# the event is that delta; anything else takes the JSON path.
_DELTA_MARKERS: tuple[tuple[bytes, bool], ...] = (
    (b'"type":"text_delta","text":"', True),
    (b'"type":"thinking_delta","thinking":"', False),
    (b'"type":"input_json_delta","partial_json":"', True),
)
_DELTA_FIELDS: dict[str, tuple[str, bool]] = {
    "text_delta": ("text", True),
    "thinking_delta": ("thinking", False),
    "input_json_delta": ("partial_json", True),
}


def split_system(prompt: PromptSpec) -> tuple[str | None, list[dict[str, str]]]:
    """System text (system/developer messages joined by blank lines) and the other turns."""
    system = [m.content for m in prompt.messages if m.role in SYSTEM_ROLES]
    turns = [
        {"role": m.role, "content": m.content}
        for m in prompt.messages
        if m.role not in SYSTEM_ROLES
    ]
    return ("\n\n".join(system) if system else None), turns


class AnthropicAdapter:
    def __init__(self, spec: ProviderSpec) -> None:
        self.spec = spec
        base = (spec.base_url or DEFAULT_BASE_URL).rstrip("/")
        self._url = base + ("/messages" if base.endswith("/v1") else "/v1/messages")
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream",
            # identity: lens stamps raw bytes as they arrive (see openai_chat).
            "accept-encoding": "identity",
            "anthropic-version": settings_of(spec, AnthropicSettings).version,
        }
        headers.update(dict(spec.headers))
        if spec.api_key is not None and spec.api_key.reveal():
            headers["x-api-key"] = spec.api_key.reveal()
        self._headers = headers

    def __repr__(self) -> str:
        return f"AnthropicAdapter(provider={self.spec.id!r}, url={self._url!r})"

    def build_request(self, prompt: PromptSpec, max_tokens: int | None) -> httpx.Request:
        system, turns = split_system(prompt)
        limit = prompt.token_limit(max_tokens)
        body: dict[str, Any] = {
            "model": self.spec.model,
            "max_tokens": limit if limit is not None else DEFAULT_MAX_TOKENS,
            "messages": turns,
            "stream": True,
        }
        if system is not None:
            body["system"] = system
        if prompt.body:
            body = deep_merge(body, prompt.body)
        return masked_request(self._url, self._headers, json.dumps(body).encode())

    def new_decoder(self, prompt: PromptSpec) -> AnthropicDecoder:
        del prompt
        return AnthropicDecoder(self.spec.limits.max_event_bytes)

    def response_facts(self, headers: httpx.Headers) -> dict[str, str]:
        # request-id, retry-after and every anthropic-ratelimit-* header.
        return header_facts(headers)

    def classify_http_error(
        self, status: int, headers: httpx.Headers, body: bytes
    ) -> tuple[ErrorClass, str]:
        del headers
        cls = classify_status(status)
        if _error_type(body) == "overloaded_error":
            cls = ErrorClass.OVERLOADED  # 529, or the same error behind a 503 gateway
        return cls, f"HTTP {status}: {error_text(body)}"


def _error_type(body: bytes) -> str | None:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):  # too deep: unparseable too
        return None
    err = doc.get("error") if isinstance(doc, dict) else None
    kind = err.get("type") if isinstance(err, dict) else None
    return kind if isinstance(kind, str) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class AnthropicDecoder:
    __slots__ = (
        "_cache_read",
        "_cache_write",
        "_done",
        "_error",
        "_error_class",
        "_input",
        "_output",
        "_sse",
        "_stop_reason",
        "_timeline",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._sse = SseDecoder(max_event_bytes)
        self._timeline = TokenTimeline()
        self._input: int | None = None
        self._cache_read: int | None = None
        self._cache_write: int | None = None
        self._output: int | None = None
        self._stop_reason: str | None = None
        self._done = False
        self._error: str | None = None
        self._error_class = ErrorClass.STREAM_ERROR

    def feed(self, data: bytes, t_ns: int) -> None:
        for event, payload in self._sse.feed(data):
            self._on_event(event, payload, t_ns)

    def _on_event(self, event: bytes, data: bytes, t_ns: int) -> None:
        if event == _CONTENT_BLOCK_DELTA:
            # Fast path for the common event: no JSON parse.
            for marker, visible in _DELTA_MARKERS:
                i = data.find(marker)
                if i >= 0:
                    start = i + len(marker)
                    if start < len(data):
                        if data[start] != _QUOTE:  # an empty string is not a token
                            self._timeline.add(
                                t_ns, json_string_bytes(data, start), visible=visible
                            )
                        return
        try:
            obj = json.loads(data)  # tolerates the padding spaces
        except (ValueError, RecursionError):  # too deep: unparseable too
            self._set_error(f"unparseable event: {data[:120]!r}")
            return
        if not isinstance(obj, dict):
            return
        kind = event.decode("utf-8", "replace") if event else str(obj.get("type") or "")
        if kind == "content_block_delta":
            self._on_delta(obj.get("delta"), t_ns)
        elif kind == "content_block_start":
            block = obj.get("content_block")
            if isinstance(block, dict):
                # Blocks start empty in every recording; if one ever starts with text, it counts.
                text = block.get("text") or block.get("thinking")
                if isinstance(text, str) and text:
                    self._timeline.add(t_ns, len(text), visible=block.get("type") != "thinking")
        elif kind == "message_start":
            message = obj.get("message")
            if isinstance(message, dict):
                self._take_usage(message.get("usage"), output=False)
        elif kind == "message_delta":
            self._take_usage(obj.get("usage"), output=True)
            delta = obj.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
                self._stop_reason = delta["stop_reason"]
        elif kind == "message_stop":
            self._done = True
        elif kind == "error":
            err = obj.get("error")
            err = err if isinstance(err, dict) else obj
            if err.get("type") == "overloaded_error" and self._error is None:
                self._error_class = ErrorClass.OVERLOADED
            msg = err.get("message") or err.get("type") or "error event in stream"
            self._set_error(str(msg))
        # ping, content_block_stop and event types added later carry nothing lens needs.

    def _on_delta(self, delta: object, t_ns: int) -> None:
        if not isinstance(delta, dict):
            return
        field = _DELTA_FIELDS.get(str(delta.get("type")))
        if field is None:
            return  # signature_delta, citations_delta, future delta types
        value = delta.get(field[0])
        if isinstance(value, str) and value:
            self._timeline.add(t_ns, len(value), visible=field[1])

    def _take_usage(self, usage: object, *, output: bool) -> None:
        if not isinstance(usage, dict):
            return
        # message_delta may repeat the input fields (newer API versions): the later wins.
        self._input = _int(usage.get("input_tokens")) if "input_tokens" in usage else self._input
        if "cache_read_input_tokens" in usage:
            self._cache_read = _int(usage.get("cache_read_input_tokens"))
        if "cache_creation_input_tokens" in usage:
            self._cache_write = _int(usage.get("cache_creation_input_tokens"))
        if output and "output_tokens" in usage:
            # message_start's output_tokens is a placeholder (1); only message_delta counts.
            self._output = _int(usage.get("output_tokens"))

    def _set_error(self, message: str) -> None:
        if self._error is None:
            self._error = message[:300]

    def usage(self) -> Usage:
        """Anthropic usage → lens usage (input includes cache reads and writes)."""
        total_in: int | None = None
        if self._input is not None:
            total_in = self._input + (self._cache_read or 0) + (self._cache_write or 0)
        return Usage(
            input_tokens=total_in,
            output_tokens=self._output,
            cached_input_tokens=self._cache_read,
            reasoning_tokens=None,  # not reported separately: it is inside output_tokens
            cache_write_tokens=self._cache_write,
        )

    def finish(self, t_ns: int, *, eof: bool) -> StreamOutcome:
        for event, payload in self._sse.close():
            self._on_event(event, payload, t_ns)
        error_class: ErrorClass | None = None
        message: str | None = None
        if self._error is not None:
            error_class, message = self._error_class, self._error
        elif not eof or not self._done:
            error_class = ErrorClass.CUT_STREAM
            message = "stream ended before message_stop" if eof else "connection lost mid-stream"
        extra = {"stop_reason": self._stop_reason} if self._stop_reason else None
        return self._timeline.outcome(
            self.usage(),
            error_class=error_class,
            error_message=message,
            events=self._sse.events_seen,
            extra=extra,
        )

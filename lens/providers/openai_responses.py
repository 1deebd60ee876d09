"""OpenAI Responses API streaming (``POST /responses``, ``stream: true``); Azure too.

Wire facts (wire-formats.md §2, §0): ``event: <type>`` + ``data: <json>`` with the JSON
``type`` equal to the event name, and **no** ``[DONE]``: the stream ends after a terminal
event.  ``response.completed`` and ``response.incomplete`` (``incomplete_details.reason``, e.g.
``max_output_tokens``) end a good response and carry the usage; ``response.failed`` and the
``error`` event report in-band failures (the error fields sit at the top level in the SDK's
types but nested under ``error`` on the recorded wire: both are accepted).  Usage:
``input_tokens`` includes ``input_tokens_details.cached_tokens``; ``output_tokens`` includes
``output_tokens_details.reasoning_tokens``.  Reasoning models usually stream no reasoning
text at all (an encrypted ``reasoning`` item): those tokens are hidden, not spread over the
visible chunks.  Unknown events (58 types and counting) are ignored.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from lens.plan.model import PromptSpec, ProviderSpec
from lens.plan.workloads import deep_merge
from lens.providers.base import (
    StreamOutcome,
    TokenTimeline,
    Usage,
    classify_status,
    error_text,
    header_facts,
    json_string_bytes,
    masked_request,
    no_settings,
)
from lens.providers.sse import DEFAULT_MAX_EVENT_BYTES, SseDecoder
from lens.records import ErrorClass

DEFAULT_BASE_URL = "https://api.openai.com/v1"

_QUOTE = ord('"')
_DELTA = b'"delta":"'
# Token-bearing events → visible?  Reasoning text counts for TTFT, not for TTFOT.
_TOKEN_EVENTS: dict[bytes, bool] = {
    b"response.output_text.delta": True,
    b"response.refusal.delta": True,
    b"response.function_call_arguments.delta": True,
    b"response.custom_tool_call_input.delta": True,
    b"response.reasoning_summary_text.delta": False,
    b"response.reasoning_text.delta": False,
}
_TERMINAL_OK = frozenset({"response.completed", "response.incomplete"})


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class OpenAIResponsesAdapter:
    def __init__(self, spec: ProviderSpec) -> None:
        no_settings(spec)
        self.spec = spec
        self._url = (spec.base_url or DEFAULT_BASE_URL).rstrip("/") + "/responses"
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream",
            "accept-encoding": "identity",  # lens stamps raw bytes as they arrive
        }
        headers.update(dict(spec.headers))
        if spec.api_key is not None and spec.api_key.reveal():
            headers["authorization"] = f"Bearer {spec.api_key.reveal()}"
        self._headers = headers

    def __repr__(self) -> str:
        return f"OpenAIResponsesAdapter(provider={self.spec.id!r}, url={self._url!r})"

    def build_request(self, prompt: PromptSpec, max_tokens: int | None) -> httpx.Request:
        body: dict[str, Any] = {
            "model": self.spec.model,
            "input": [{"role": m.role, "content": m.content} for m in prompt.messages],
            "stream": True,
        }
        limit = prompt.token_limit(max_tokens)
        if limit is not None:
            body["max_output_tokens"] = limit
        if prompt.body:
            body = deep_merge(body, prompt.body)
        return masked_request(self._url, self._headers, json.dumps(body).encode())

    def new_decoder(self, prompt: PromptSpec) -> OpenAIResponsesDecoder:
        del prompt
        return OpenAIResponsesDecoder(self.spec.limits.max_event_bytes)

    def response_facts(self, headers: httpx.Headers) -> dict[str, str]:
        return header_facts(headers)

    def classify_http_error(
        self, status: int, headers: httpx.Headers, body: bytes
    ) -> tuple[ErrorClass, str]:
        del headers
        return classify_status(status), f"HTTP {status}: {error_text(body)}"


class OpenAIResponsesDecoder:
    __slots__ = ("_done", "_error", "_sse", "_stop_reason", "_timeline", "_usage")

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._sse = SseDecoder(max_event_bytes)
        self._timeline = TokenTimeline()
        self._usage: dict[str, Any] | None = None
        self._stop_reason: str | None = None
        self._done = False
        self._error: str | None = None

    def feed(self, data: bytes, t_ns: int) -> None:
        for event, payload in self._sse.feed(data):
            self._on_event(event, payload, t_ns)

    def _on_event(self, event: bytes, data: bytes, t_ns: int) -> None:
        visible = _TOKEN_EVENTS.get(event)
        if visible is not None and data.count(_DELTA) == 1:
            # Fast path for delta events: no JSON parse.  ``"delta":"`` can only occur
            # structurally (quotes inside strings are escaped); a server that writes
            # ``"delta": "`` simply takes the JSON path.
            start = data.find(_DELTA) + len(_DELTA)
            if start < len(data):
                if data[start] != _QUOTE:  # an empty delta is not a token
                    self._timeline.add(t_ns, json_string_bytes(data, start), visible=visible)
                return
        try:
            obj = json.loads(data)
        except (ValueError, RecursionError):  # too deep: unparseable too
            self._set_error(f"unparseable event: {data[:120]!r}")
            return
        if not isinstance(obj, dict):
            return
        kind = event.decode("utf-8", "replace") if event else str(obj.get("type") or "")
        visible = _TOKEN_EVENTS.get(kind.encode())
        if visible is not None:
            delta = obj.get("delta")
            if isinstance(delta, str) and delta:
                self._timeline.add(t_ns, len(delta), visible=visible)
            return
        if kind in _TERMINAL_OK:
            self._done = True
            response = obj.get("response")
            if isinstance(response, dict):
                self._take_usage(response)
                details = response.get("incomplete_details")
                if isinstance(details, dict) and isinstance(details.get("reason"), str):
                    self._stop_reason = details["reason"]
                elif kind == "response.incomplete":
                    self._stop_reason = "incomplete"
        elif kind == "response.failed":
            response = obj.get("response")
            response = response if isinstance(response, dict) else {}
            self._take_usage(response)
            self._set_error(_message(response.get("error")) or "response.failed")
        elif kind == "error":
            # The SDK type has code/message at the top level; the wire nests them in "error".
            self._set_error(_message(obj.get("error")) or _message(obj) or "error event")

    def _take_usage(self, response: dict[str, Any]) -> None:
        usage = response.get("usage")
        if isinstance(usage, dict):
            self._usage = usage

    def _set_error(self, message: str) -> None:
        if self._error is None:
            self._error = message[:300]

    def finish(self, t_ns: int, *, eof: bool) -> StreamOutcome:
        for event, payload in self._sse.close():
            self._on_event(event, payload, t_ns)
        usage, hidden = map_responses_usage(self._usage)
        if self._timeline.reasoning_chars:
            hidden = 0  # reasoning text was streamed, so its tokens are inside the chunks
        error_class: ErrorClass | None = None
        message: str | None = None
        if self._error is not None:
            error_class, message = ErrorClass.STREAM_ERROR, self._error
        elif not eof:
            error_class, message = ErrorClass.CUT_STREAM, "connection lost mid-stream"
        elif not self._done:
            error_class = ErrorClass.CUT_STREAM
            message = "stream ended before response.completed"
        extra = {"stop_reason": self._stop_reason} if self._stop_reason else None
        return self._timeline.outcome(
            usage,
            error_class=error_class,
            error_message=message,
            events=self._sse.events_seen,
            hidden_reasoning_tokens=hidden,
            extra=extra,
        )


def _message(err: object) -> str | None:
    if isinstance(err, str):
        return err or None
    if not isinstance(err, dict):
        return None
    msg = err.get("message")
    if isinstance(msg, str) and msg:
        return msg
    code = err.get("code")
    return code if isinstance(code, str) and code else None


def map_responses_usage(raw: dict[str, Any] | None) -> tuple[Usage, int]:
    """Responses usage → lens usage, plus the reasoning tokens (hidden unless streamed)."""
    if not raw:
        return Usage(), 0
    in_details = raw.get("input_tokens_details")
    in_details = in_details if isinstance(in_details, dict) else {}
    out_details = raw.get("output_tokens_details")
    out_details = out_details if isinstance(out_details, dict) else {}
    cache_write = _int(in_details.get("cache_write_tokens"))
    if cache_write is None:
        cache_write = _int(raw.get("cache_write_tokens"))
    reasoning = _int(out_details.get("reasoning_tokens"))
    usage = Usage(
        input_tokens=_int(raw.get("input_tokens")),
        output_tokens=_int(raw.get("output_tokens")),
        cached_input_tokens=_int(in_details.get("cached_tokens")),
        reasoning_tokens=reasoning,
        cache_write_tokens=cache_write,
    )
    return usage, reasoning or 0

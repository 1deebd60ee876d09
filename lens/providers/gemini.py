"""Google Gemini API streaming (``models/{model}:streamGenerateContent?alt=sse``).

Wire facts (wire-formats.md §5, §0): ``data: <json>`` events framed with CRLF (the SSE
decoder normalises line ends), JSON with spaces after colons, no ``event:`` lines and no
``[DONE]``: the body just ends, and ``finishReason`` on the last chunk is the only sign of
completion.  ``usageMetadata`` is cumulative on every chunk (the last one wins);
``promptTokenCount`` includes cached tokens and ``candidatesTokenCount`` *excludes*
``thoughtsTokenCount``, so lens output = candidates + thoughts.  Parts with
``"thought": true`` are thought summaries (reasoning, not visible output).  Errors arrive
in-band as ``{"error": {"code", "message", "status"}}`` followed by EOF; a blocked prompt is
a chunk with ``promptFeedback.blockReason`` and no candidates.  HTTP errors carry their retry
hint in the body (``google.rpc.RetryInfo.retryDelay``), not in a header.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from lens.plan.model import PromptSpec, ProviderSpec
from lens.plan.workloads import deep_merge
from lens.providers.base import (
    SYSTEM_ROLES,
    StreamOutcome,
    TokenTimeline,
    Usage,
    classify_status,
    error_text,
    header_facts,
    masked_request,
    no_settings,
)
from lens.providers.sse import DEFAULT_MAX_EVENT_BYTES, SseDecoder
from lens.records import ErrorClass

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
_OVERLOADED_STATUS = "UNAVAILABLE"  # 503 "The model is overloaded / experiencing high demand"


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _google_error(body: bytes) -> dict[str, Any] | None:
    """The ``error`` object of a Google API error body (also inside a one-element array)."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):  # too deep: unparseable too
        return None
    if isinstance(doc, list) and doc:
        doc = doc[0]
    err = doc.get("error") if isinstance(doc, dict) else None
    return err if isinstance(err, dict) else None


def _retry_delay(err: dict[str, Any]) -> str | None:
    for detail in err.get("details") or ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, str) and delay:
                return delay
    return None


class GeminiAdapter:
    def __init__(self, spec: ProviderSpec) -> None:
        no_settings(spec)
        self.spec = spec
        base = (spec.base_url or DEFAULT_BASE_URL).rstrip("/")
        if not base.endswith(("/v1beta", "/v1", "/v1alpha")):
            base += "/v1beta"
        model = spec.model.removeprefix("models/")
        self._url = f"{base}/models/{model}:streamGenerateContent?alt=sse"
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream",
            "accept-encoding": "identity",  # lens stamps raw bytes as they arrive
        }
        headers.update(dict(spec.headers))
        if spec.api_key is not None and spec.api_key.reveal():
            # A header, never ``?key=``: a query string ends up in URLs, reprs and logs.
            headers["x-goog-api-key"] = spec.api_key.reveal()
        self._headers = headers

    def __repr__(self) -> str:
        return f"GeminiAdapter(provider={self.spec.id!r}, url={self._url!r})"

    def build_request(self, prompt: PromptSpec, max_tokens: int | None) -> httpx.Request:
        system = [m.content for m in prompt.messages if m.role in SYSTEM_ROLES]
        contents = [
            {
                "role": "model" if m.role in ("assistant", "model") else "user",
                "parts": [{"text": m.content}],
            }
            for m in prompt.messages
            if m.role not in SYSTEM_ROLES
        ]
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
        limit = prompt.token_limit(max_tokens)
        if limit is not None:
            body["generationConfig"] = {"maxOutputTokens": limit}
        if prompt.body:
            body = deep_merge(body, prompt.body)
        return masked_request(self._url, self._headers, json.dumps(body).encode())

    def new_decoder(self, prompt: PromptSpec) -> GeminiDecoder:
        del prompt
        return GeminiDecoder(self.spec.limits.max_event_bytes)

    def response_facts(self, headers: httpx.Headers) -> dict[str, str]:
        # server-timing ("gfet4t7; dur=859") is Google's own server-side duration.
        return header_facts(headers)

    def classify_http_error(
        self, status: int, headers: httpx.Headers, body: bytes
    ) -> tuple[ErrorClass, str]:
        del headers
        cls = classify_status(status)
        err = _google_error(body)
        if err is None:
            if status == 503:
                cls = ErrorClass.OVERLOADED
            return cls, f"HTTP {status}: {error_text(body)}"
        name = err.get("status")
        if status == 503 or name == _OVERLOADED_STATUS:
            cls = ErrorClass.OVERLOADED
        head = f"HTTP {status}"
        if isinstance(name, str) and name:
            head += f" {name}"
        delay = _retry_delay(err)
        if delay is not None:
            head += f" (retry in {delay})"
        message = err.get("message")
        text = message[:300] if isinstance(message, str) and message else error_text(body)
        return cls, f"{head}: {text}"


class GeminiDecoder:
    __slots__ = (
        "_error",
        "_error_class",
        "_finish_reason",
        "_sse",
        "_thoughts_streamed",
        "_timeline",
        "_usage",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._sse = SseDecoder(max_event_bytes)
        self._timeline = TokenTimeline()
        self._usage: dict[str, Any] | None = None
        self._finish_reason: str | None = None
        self._thoughts_streamed = False
        self._error: str | None = None
        self._error_class = ErrorClass.STREAM_ERROR

    def feed(self, data: bytes, t_ns: int) -> None:
        for _event, payload in self._sse.feed(data):
            self._on_event(payload, t_ns)

    def _on_event(self, data: bytes, t_ns: int) -> None:
        # Gemini chunks are few and large (many tokens each), and every one carries usage:
        # parsing each is cheap next to OpenAI-style one-token chunks.
        try:
            obj = json.loads(data)
        except (ValueError, RecursionError):  # too deep: unparseable too
            self._set_error(f"unparseable event: {data[:120]!r}")
            return
        if isinstance(obj, list) and len(obj) == 1:
            obj = obj[0]  # tolerate a JSON-array style element
        if not isinstance(obj, dict):
            return
        err = obj.get("error")
        if err is not None:
            self._on_error(err)
            return
        usage = obj.get("usageMetadata")
        if isinstance(usage, dict):
            self._usage = usage
        candidates = obj.get("candidates")
        if not candidates:
            feedback = obj.get("promptFeedback")
            if isinstance(feedback, dict) and feedback.get("blockReason"):
                self._set_error(f"blocked: {feedback['blockReason']}")
            return
        visible = thought = 0
        any_visible = any_thought = False
        for cand in candidates if isinstance(candidates, list) else ():
            if not isinstance(cand, dict):
                continue
            content = cand.get("content")
            parts = content.get("parts") if isinstance(content, dict) else None
            for part in parts if isinstance(parts, list) else ():
                if not isinstance(part, dict):
                    continue
                text = part.get("text")
                if isinstance(text, str) and text:
                    if part.get("thought") is True:
                        thought += len(text)
                        any_thought = True
                    else:
                        visible += len(text)
                        any_visible = True
                elif isinstance(part.get("functionCall"), dict):
                    # A tool call arrives whole (args as an object): visible output.
                    visible += len(json.dumps(part["functionCall"].get("args") or {}))
                    any_visible = True
            finish = cand.get("finishReason")
            if isinstance(finish, str) and finish:
                self._finish_reason = finish
        # One timeline entry per event: its parts arrived together.
        if any_thought:
            self._thoughts_streamed = True
        if any_visible:
            self._timeline.add(t_ns, visible + thought)
        elif any_thought:
            self._timeline.add(t_ns, thought, visible=False)

    def _on_error(self, err: object) -> None:
        if not isinstance(err, dict):
            self._set_error(str(err))
            return
        status = err.get("status")
        if self._error is None and (err.get("code") == 503 or status == _OVERLOADED_STATUS):
            self._error_class = ErrorClass.OVERLOADED
        message = str(err.get("message") or "error event in stream")
        self._set_error(f"{status}: {message}" if isinstance(status, str) and status else message)

    def _set_error(self, message: str) -> None:
        if self._error is None:
            self._error = message[:300]

    def usage(self) -> tuple[Usage, int]:
        """Gemini usage → lens usage, plus thought tokens that were never streamed."""
        raw = self._usage
        if not raw:
            return Usage(), 0
        candidates = _int(raw.get("candidatesTokenCount"))
        thoughts = _int(raw.get("thoughtsTokenCount"))
        output = None
        if candidates is not None or thoughts is not None:
            output = (candidates or 0) + (thoughts or 0)
        usage = Usage(
            input_tokens=_int(raw.get("promptTokenCount")),
            output_tokens=output,
            cached_input_tokens=_int(raw.get("cachedContentTokenCount")),
            reasoning_tokens=thoughts,
        )
        return usage, (thoughts or 0)

    def finish(self, t_ns: int, *, eof: bool) -> StreamOutcome:
        for _event, payload in self._sse.close():
            self._on_event(payload, t_ns)
        usage, hidden = self.usage()
        if self._thoughts_streamed:
            hidden = 0  # thought parts were streamed: their tokens are inside the chunks
        error_class: ErrorClass | None = None
        message: str | None = None
        if self._error is not None:
            error_class, message = self._error_class, self._error
        elif not eof:
            error_class, message = ErrorClass.CUT_STREAM, "connection lost mid-stream"
        elif self._finish_reason is None:
            error_class, message = ErrorClass.CUT_STREAM, "stream ended without a finishReason"
        extra = {"stop_reason": self._finish_reason} if self._finish_reason else None
        return self._timeline.outcome(
            usage,
            error_class=error_class,
            error_message=message,
            events=self._sse.events_seen,
            hidden_reasoning_tokens=hidden,
            extra=extra,
        )

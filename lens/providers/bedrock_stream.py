"""Bedrock response streams: ``application/vnd.amazon.eventstream`` → ``StreamOutcome``.

Wire facts (wire-formats.md §6.2-6.5): binary messages, each with a CRC-checked prelude and a
CRC over the whole message; the event name is the ``:event-type`` header and the payload is
the member body only; every payload carries a random ``"p"`` padding field (ignored).  The
body just ends (EOF): there is no terminator, so a stream is complete only when it said so
(ConverseStream ``messageStop``, Anthropic-on-invoke ``message_stop``).

Framing and both CRCs are botocore's ``EventStreamBuffer``: a CRC mismatch or a malformed
prelude ends the request as ``stream_error`` ("corrupt event stream"), since nothing after
it can be trusted.

Mid-stream failures (§6.5):

- ``:message-type: exception`` frames name their member in ``:exception-type``:
  ``throttlingException`` → ``http_429`` (Bedrock's in-band form of its 429
  ThrottlingException: same meaning, same class, so throttling counts alike whenever it
  strikes); ``serviceUnavailableException`` → ``overloaded`` (the in-band 503);
  ``modelStreamErrorException``, ``internalServerException``, ``validationException``,
  ``modelTimeoutException`` and anything unknown → ``stream_error``.
- ``:message-type: error`` frames carry ``:error-code`` / ``:error-message`` headers →
  ``stream_error``.

Usage (§9): ConverseStream reports usage only in the ``metadata`` event after
``messageStop``.  lens's ``input_tokens`` counts every prompt token, cached ones included;
whether Bedrock's ``inputTokens`` already includes ``cacheReadInputTokens`` /
``cacheWriteInputTokens`` is not documented, and AWS's examples (and Anthropic's own
semantics, which Claude on Bedrock follows) say it does not.  So ``input_tokens = inputTokens
+ cacheRead + cacheWrite`` unless ``totalTokens`` proves otherwise: when the cache counts
are non-zero and ``totalTokens == inputTokens + outputTokens``, ``inputTokens`` evidently
already holds them and is taken as is.  ``metadata`` never arriving after ``messageStop``
is not an error: the output tokens are then estimated from the text.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import struct
from typing import Any

from lens.providers.base import StreamOutcome, TokenTimeline, Usage
from lens.records import ErrorClass

# Mid-stream exception members whose meaning matches an HTTP status lens already classes.
_EXCEPTION_CLASS: dict[str, ErrorClass] = {
    "throttlingException": ErrorClass.HTTP_429,
    "serviceUnavailableException": ErrorClass.OVERLOADED,
}
_MESSAGE_LIMIT = 300


@functools.cache
def _corrupt_errors() -> tuple[type[BaseException], ...]:
    """What botocore's buffer raises on bytes that are not a valid event stream.

    ``ParserError`` covers CRC mismatches and bad lengths; a CRC-valid message with
    nonsense inside (a made-up header type, broken UTF-8, a length field of 0) surfaces
    as the low-level error of the field it broke.
    """
    from botocore.eventstream import ParserError  # noqa: PLC0415 (botocore is slow to import)

    return (ParserError, KeyError, IndexError, ValueError, struct.error)


def _new_buffer() -> Any:
    from botocore.eventstream import EventStreamBuffer  # noqa: PLC0415

    return EventStreamBuffer()


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


class _EventStreamDecoder:
    """What both Bedrock streaming APIs share: framing, exception frames, the verdict."""

    _terminator = "messageStop"

    def __init__(self) -> None:
        self._buffer = _new_buffer()
        self._timeline = TokenTimeline()
        self._events = 0
        self._fed = 0
        self._consumed = 0
        self._done = False
        self._corrupt = False
        self._error: tuple[ErrorClass, str] | None = None
        self._extra: dict[str, str] = {}

    # -- framing ---------------------------------------------------------------------------

    def feed(self, data: bytes, t_ns: int) -> None:
        if self._corrupt or not data:
            return
        self._fed += len(data)
        self._buffer.add_data(data)
        while True:
            try:
                message = next(self._buffer)
            except StopIteration:
                return
            except _corrupt_errors() as exc:
                self._corrupt = True
                detail = str(exc) or type(exc).__name__
                self._fail(ErrorClass.STREAM_ERROR, f"corrupt event stream: {detail}")
                return
            self._consumed += message.prelude.total_length
            self._events += 1
            self._on_message(message.headers, message.payload, t_ns)

    def _on_message(self, headers: dict[str, Any], payload: bytes, t_ns: int) -> None:
        kind = _text(headers.get(":message-type", "event"))
        if kind == "event":
            self._on_event(_text(headers.get(":event-type")), payload, t_ns)
        elif kind == "exception":
            self._on_exception(_text(headers.get(":exception-type")) or "exception", payload)
        elif kind == "error":
            code = _text(headers.get(":error-code")) or "error"
            message = _text(headers.get(":error-message")) or "error frame in stream"
            self._fail(ErrorClass.STREAM_ERROR, f"{code}: {message}")
        # Any other message type is new to lens: ignored, like unknown events.

    def _on_exception(self, name: str, payload: bytes) -> None:
        doc = self._json(payload, quiet=True)
        message = _text(doc.get("message") or doc.get("Message")) if doc else ""
        if not message:
            message = payload[:_MESSAGE_LIMIT].decode("utf-8", "replace").strip()
        text = f"{name}: {message or 'exception frame in stream'}"
        if doc is not None and ("originalStatusCode" in doc or "originalMessage" in doc):
            original = ", ".join(
                str(doc[key]) for key in ("originalStatusCode", "originalMessage") if key in doc
            )
            text += f" (model said: {original})"
        self._fail(_EXCEPTION_CLASS.get(name, ErrorClass.STREAM_ERROR), text)

    def _json(self, payload: bytes, *, quiet: bool = False) -> dict[str, Any] | None:
        try:
            doc = json.loads(payload)
        except (ValueError, RecursionError):  # too deep: unparseable too
            if not quiet:
                self._fail(ErrorClass.STREAM_ERROR, f"unparseable event payload: {payload[:120]!r}")
            return None
        return doc if isinstance(doc, dict) else None

    def _fail(self, error_class: ErrorClass, message: str) -> None:
        """Keep the first failure: later ones are usually its echo."""
        if self._error is None:
            self._error = (error_class, message[:_MESSAGE_LIMIT])

    # -- protocol hooks (the base knows no event and no usage) -----------------------------

    def _on_event(self, name: str, payload: bytes, t_ns: int) -> None:
        del name, payload, t_ns

    def _usage(self) -> Usage:
        return Usage()

    # -- verdict ---------------------------------------------------------------------------

    def finish(self, t_ns: int, *, eof: bool) -> StreamOutcome:
        del t_ns  # every token was stamped by the read that completed its message
        error_class: ErrorClass | None = None
        message: str | None = None
        if self._error is not None:
            error_class, message = self._error
        elif not eof:
            error_class, message = ErrorClass.CUT_STREAM, "connection lost mid-stream"
        elif self._fed > self._consumed:
            error_class = ErrorClass.CUT_STREAM
            message = (
                f"stream ended inside an event-stream message "
                f"({self._fed - self._consumed} bytes of it arrived)"
            )
        elif not self._done:
            error_class = ErrorClass.CUT_STREAM
            message = f"stream ended before {self._terminator}"
        return self._timeline.outcome(
            self._usage(),
            error_class=error_class,
            error_message=message,
            events=self._events,
            extra=dict(self._extra),
        )


class ConverseStreamDecoder(_EventStreamDecoder):
    """``POST /model/{id}/converse-stream``: one JSON member body per message (§6.3)."""

    def __init__(self) -> None:
        super().__init__()
        self._raw_usage: dict[str, Any] | None = None

    def _on_event(self, name: str, payload: bytes, t_ns: int) -> None:
        if name not in ("contentBlockDelta", "messageStop", "metadata"):
            return  # messageStart, contentBlockStart/Stop and new events carry no token
        doc = self._json(payload)
        if doc is None:
            return
        if name == "contentBlockDelta":
            self._on_delta(doc.get("delta"), t_ns)
        elif name == "messageStop":
            self._done = True
            reason = doc.get("stopReason")
            if isinstance(reason, str):
                self._extra["stop_reason"] = reason
        else:
            usage = doc.get("usage")
            if isinstance(usage, dict):
                self._raw_usage = usage
            metrics = doc.get("metrics")
            latency = _int(metrics.get("latencyMs")) if isinstance(metrics, dict) else None
            if latency is not None:
                self._extra["bedrock_latency_ms"] = str(latency)

    def _on_delta(self, delta: object, t_ns: int) -> None:
        if not isinstance(delta, dict):
            return
        text = delta.get("text")
        if isinstance(text, str):
            if text:  # an empty text delta is not a token
                self._timeline.add(t_ns, len(text))
            return
        reasoning = delta.get("reasoningContent")
        if isinstance(reasoning, dict):
            # Only ``text`` is reasoning the model streams; ``signature`` and
            # ``redactedContent`` are opaque blobs, not tokens.
            thought = reasoning.get("text")
            if isinstance(thought, str) and thought:
                self._timeline.add(t_ns, len(thought), visible=False)
            return
        tool = delta.get("toolUse")
        if isinstance(tool, dict):
            args = tool.get("input")
            if isinstance(args, str) and args:
                self._timeline.add(t_ns, len(args))
        # citation, image and new delta kinds: not text tokens.

    def _usage(self) -> Usage:
        return converse_usage(self._raw_usage)


def converse_usage(raw: dict[str, Any] | None) -> Usage:
    """ConverseStream ``metadata.usage`` → lens usage (see the module doc for the cache rule)."""
    if not raw:
        return Usage()
    inputs = _int(raw.get("inputTokens"))
    outputs = _int(raw.get("outputTokens"))
    total = _int(raw.get("totalTokens"))
    read = _int(raw.get("cacheReadInputTokens"))
    write = _int(raw.get("cacheWriteInputTokens"))
    cache = (read or 0) + (write or 0)
    if inputs is not None and cache:
        already_inside = outputs is not None and total == inputs + outputs
        if not already_inside:
            inputs += cache
    return Usage(
        input_tokens=inputs,
        output_tokens=outputs,
        cached_input_tokens=read,
        cache_write_tokens=write,
    )


class InvokeStreamDecoder(_EventStreamDecoder):
    """``POST /model/{id}/invoke-with-response-stream`` for Anthropic models (§6.4).

    Every ``chunk`` event is ``{"bytes": "<base64>"}`` holding one Anthropic Messages event
    (§4): input usage in ``message_start`` (cache excluded), cumulative output usage in
    ``message_delta``, and a final ``message_stop`` that Bedrock extends with
    ``amazon-bedrock-invocationMetrics``.  Self-contained on purpose (no shared code with
    the Anthropic adapter): the two evolve separately.
    """

    _terminator = "message_stop"

    def __init__(self) -> None:
        super().__init__()
        self._anthropic: dict[str, int] = {}
        self._metrics: dict[str, Any] = {}

    def _on_event(self, name: str, payload: bytes, t_ns: int) -> None:
        if name != "chunk":
            return
        doc = self._json(payload)
        if doc is None:
            return
        try:
            raw = base64.b64decode(_text(doc.get("bytes")), validate=True)
        except (binascii.Error, ValueError):
            self._fail(ErrorClass.STREAM_ERROR, "chunk event whose bytes are not base64")
            return
        event = self._json(raw)
        if event is not None:
            self._on_anthropic(event, t_ns)

    def _on_anthropic(self, event: dict[str, Any], t_ns: int) -> None:
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta")
            if not isinstance(delta, dict):
                return
            dtype = delta.get("type")
            if dtype == "text_delta":
                self._add(delta.get("text"), t_ns, visible=True)
            elif dtype == "thinking_delta":
                self._add(delta.get("thinking"), t_ns, visible=False)
            elif dtype == "input_json_delta":
                self._add(delta.get("partial_json"), t_ns, visible=True)
            # signature_delta, citations_delta and new kinds: not tokens
        elif kind == "message_start":
            message = event.get("message")
            if isinstance(message, dict):
                self._take_usage(message.get("usage"), outputs=False)
        elif kind == "message_delta":
            delta = event.get("delta")
            reason = delta.get("stop_reason") if isinstance(delta, dict) else None
            if isinstance(reason, str):
                self._extra["stop_reason"] = reason
            self._take_usage(event.get("usage"), outputs=True)
        elif kind == "message_stop":
            self._done = True
            metrics = event.get("amazon-bedrock-invocationMetrics")
            if isinstance(metrics, dict):
                self._metrics = metrics
                for key, fact in (
                    ("firstByteLatency", "bedrock_first_byte_latency_ms"),
                    ("invocationLatency", "bedrock_latency_ms"),
                ):
                    value = _int(metrics.get(key))
                    if value is not None:
                        self._extra[fact] = str(value)
        elif kind == "error":
            err = event.get("error")
            etype = _text(err.get("type")) if isinstance(err, dict) else ""
            message = _text(err.get("message")) if isinstance(err, dict) else ""
            error_class = ErrorClass.OVERLOADED if etype == "overloaded_error" else None
            self._fail(
                error_class or ErrorClass.STREAM_ERROR,
                f"{etype or 'error'}: {message or 'error event in stream'}",
            )
        # ping, content_block_start/stop and new event types carry no token

    def _add(self, text: object, t_ns: int, *, visible: bool) -> None:
        if isinstance(text, str) and text:
            self._timeline.add(t_ns, len(text), visible=visible)

    def _take_usage(self, usage: object, *, outputs: bool) -> None:
        if not isinstance(usage, dict):
            return
        keys = ["input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"]
        if outputs:
            keys.append("output_tokens")  # message_start's output_tokens is a placeholder
        for key in keys:
            value = _int(usage.get(key))
            if value is not None:
                self._anthropic[key] = value

    def _usage(self) -> Usage:
        """Anthropic's counts first (they are the model's own); invocation metrics else."""
        got, metrics = self._anthropic, self._metrics
        read = got.get("cache_read_input_tokens")
        write = got.get("cache_creation_input_tokens")
        if read is None:
            read = _int(metrics.get("cacheReadInputTokenCount"))
        if write is None:
            write = _int(metrics.get("cacheWriteInputTokenCount"))
        inputs = got.get("input_tokens")
        if inputs is None:
            inputs = _int(metrics.get("inputTokenCount"))
        if inputs is not None:
            inputs += (read or 0) + (write or 0)  # Anthropic's input_tokens excludes the cache
        outputs = got.get("output_tokens")
        if outputs is None:
            outputs = _int(metrics.get("outputTokenCount"))
        return Usage(
            input_tokens=inputs,
            output_tokens=outputs,
            cached_input_tokens=read,
            cache_write_tokens=write,
        )

"""AWS Bedrock runtime on the wire (docs/wire-formats.md sections 6 and 8).

Routes (``{modelId}`` raw with ``:`` as the Anthropic SDK sends it, or ``%3A``-encoded
as botocore does; both are accepted):

* ``POST /model/{modelId}/converse-stream``: ConverseStream events ``messageStart``,
  one ``contentBlockDelta`` per token, ``contentBlockStop``, ``messageStop`` (stop
  reason), ``metadata`` (usage, ``metrics.latencyMs``).
* ``POST /model/{modelId}/invoke-with-response-stream``: ``chunk`` events whose
  ``bytes`` are base64 Anthropic Messages events (Claude's native stream), the last one
  carrying ``amazon-bedrock-invocationMetrics``.
* ``/converse`` and ``/invoke``: the non-streamed forms.

The body is ``application/vnd.amazon.eventstream`` (``eventstream.py``), one message per
HTTP chunk; every payload carries a ``"p"`` padding field of varying length, as Bedrock's
do.  Any ``Authorization`` header is accepted: SigV4 signatures are *not* verified (a
local simulator has no secret to check them against), only a missing header is refused.
Errors are rest-json: ``{"message": ...}`` with ``x-amzn-errortype``.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from typing import Any, ClassVar

from lens.sim.anthropic import STOP_REASONS, parse_messages_body
from lens.sim.eventstream import encode_message, event_headers, exception_headers
from lens.sim.http import CHUNK_END, HttpError, Request, frame_chunk
from lens.sim.protocol_base import (
    Exchange,
    FinishReason,
    Headers,
    ParsedRequest,
    Reply,
    ReplyFault,
    SimProtocol,
    StreamHead,
    StreamRenderer,
    Timing,
    compact,
    json_object,
    method_not_allowed,
    positive_int,
)
from lens.sim.text import VOCAB, completion_text, cycle, text_of, tokens_for

_ROUTE = re.compile(r"/model/(.+)/(converse-stream|invoke-with-response-stream|converse|invoke)")
EVENTSTREAM_TYPE = "application/vnd.amazon.eventstream"
ERROR_TYPES: dict[int, str] = {
    400: "ValidationException",
    403: "MissingAuthenticationTokenException",
    404: "UnknownOperationException",
    405: "UnknownOperationException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}
THROTTLING_MESSAGE = "Too many requests, please wait before trying again."
INTERNAL_MESSAGE = "The server encountered an internal error while processing the request."
UNAVAILABLE_MESSAGE = "Bedrock is unable to process your request."
MODEL_STREAM_ERROR = {
    "message": "Model Stream Error (simulated by lens-sim)",
    "originalStatusCode": 500,
    "originalMessage": "The model stream failed.",
}
_P_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_SORTED = json.JSONEncoder(separators=(",", ":"), sort_keys=True, ensure_ascii=False)
_EVENT_HEADERS: dict[str, bytes] = {
    name: event_headers(name)
    for name in ("messageStart", "contentBlockStop", "messageStop", "metadata", "chunk")
}


def padding(j: int) -> str:
    """The ``"p"`` value of the ``j``-th padded payload: 1..60 characters, varied."""
    return _P_ALPHABET[: (j * 37 + 11) % 60 + 1]


def _message(event_type: str, payload: dict[str, Any]) -> bytes:
    """One eventstream event framed as one HTTP chunk; payload keys sorted like Bedrock's."""
    data = _SORTED.encode(payload).encode()
    return frame_chunk(
        encode_message(_EVENT_HEADERS.get(event_type) or event_headers(event_type), data)
    )


def _chunk(event: bytes, j: int) -> bytes:
    """An InvokeModelWithResponseStream ``chunk`` carrying one provider-native event."""
    return _message("chunk", {"bytes": base64.b64encode(event).decode(), "p": padding(j)})


# Request-independent, so rendered once: the per-token messages of both APIs.
_CONVERSE_DELTAS: list[bytes] = [
    _message("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": w}, "p": padding(k)})
    for k, w in enumerate(VOCAB)
]
_INVOKE_DELTAS: list[bytes] = [
    _chunk(
        compact(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": w},
            }
        ),
        k,
    )
    for k, w in enumerate(VOCAB)
]
_EXCEPTION = (
    frame_chunk(
        encode_message(exception_headers("modelStreamErrorException"), compact(MODEL_STREAM_ERROR))
    )
    + CHUNK_END
)


def bedrock_message_id(ex: Exchange) -> str:
    return f"msg_bdrk_sim{ex.hex}"


class _ConverseStream(StreamRenderer):
    __slots__ = ("_j", "_prompt_tokens", "_timing")

    def __init__(self, parsed: ParsedRequest, ex: Exchange, timing: Timing) -> None:
        self._prompt_tokens = parsed.prompt_tokens
        self._timing = timing
        self._j = ex.index
        super().__init__(_message("messageStart", {"p": padding(self._j), "role": "assistant"}))

    def tokens(self, count: int) -> list[bytes]:
        return cycle(count, _CONVERSE_DELTAS)

    def suffix(self, n: int, finish: FinishReason) -> bytes:
        p, j = self._prompt_tokens, self._j
        usage = {"inputTokens": p, "outputTokens": n, "serverToolUsage": {}, "totalTokens": p + n}
        return b"".join(
            [
                _message("contentBlockStop", {"contentBlockIndex": 0, "p": padding(j + 1)}),
                _message("messageStop", {"p": padding(j + 2), "stopReason": STOP_REASONS[finish]}),
                _message(
                    "metadata",
                    {
                        "metrics": {"latencyMs": self._timing.total_ms},
                        "p": padding(j + 3),
                        "usage": usage,
                    },
                ),
                CHUNK_END,
            ]
        )

    def midstream_error(self, sent: int) -> bytes:
        return _EXCEPTION


class _InvokeStream(StreamRenderer):
    __slots__ = ("_j", "_prompt_tokens", "_timing")

    def __init__(self, parsed: ParsedRequest, ex: Exchange, timing: Timing) -> None:
        self._prompt_tokens = parsed.prompt_tokens
        self._timing = timing
        self._j = j = ex.index
        start = {
            "type": "message_start",
            "message": {
                "id": bedrock_message_id(ex),
                "type": "message",
                "role": "assistant",
                "model": parsed.model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": parsed.prompt_tokens,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "output_tokens": 1,
                },
            },
        }
        block = {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "text", "text": ""},
        }
        super().__init__(_chunk(compact(start), j) + _chunk(compact(block), j + 1))

    def tokens(self, count: int) -> list[bytes]:
        return cycle(count, _INVOKE_DELTAS)

    def suffix(self, n: int, finish: FinishReason) -> bytes:
        j, timing = self._j, self._timing
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": STOP_REASONS[finish], "stop_sequence": None},
            "usage": {"output_tokens": n},
        }
        stop = {
            "type": "message_stop",
            "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": self._prompt_tokens,
                "outputTokenCount": n,
                "invocationLatency": timing.total_ms,
                "firstByteLatency": timing.first_ms,
            },
        }
        return b"".join(
            [
                _chunk(compact({"type": "content_block_stop", "index": 0}), j + 2),
                _chunk(compact(delta), j + 3),
                _chunk(compact(stop), j + 4),
                CHUNK_END,
            ]
        )

    def midstream_error(self, sent: int) -> bytes:
        return _EXCEPTION


def _validation(message: str) -> HttpError:
    return HttpError(400, message)


def _parse_converse(data: dict[str, Any]) -> tuple[int | None, int]:
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _validation(
            "A conversation must start with a user message. Try again with a conversation "
            "that starts with a user message."
        )
    config = data.get("inferenceConfig", {})
    if not isinstance(config, dict):
        raise _validation("The provided request is not valid: inferenceConfig must be an object")
    max_tokens = config.get("maxTokens")
    if max_tokens is not None and not positive_int(max_tokens):
        raise _validation(
            f"1 validation error detected: Value {json.dumps(max_tokens)} at "
            "'inferenceConfig.maxTokens' failed to satisfy constraint: Member must have value "
            "greater than or equal to 1"
        )
    texts = [text_of(m.get("content")) for m in messages if isinstance(m, dict)]
    texts.append(text_of(data.get("system")))
    return max_tokens, tokens_for(texts)


def _parse_invoke(data: dict[str, Any]) -> tuple[int, int]:
    for key in ("anthropic_version", "max_tokens", "messages"):
        if key not in data:
            raise _validation(
                f"Malformed input request: #: required key [{key}] not found, please reformat "
                "your input and try again."
            )
    try:
        _, max_tokens, prompt_tokens = parse_messages_body(data, require_model=False)
    except HttpError as exc:
        raise _validation(f"Malformed input request: {exc.message}") from None
    return max_tokens, prompt_tokens


def _request_id(ex: Exchange) -> Headers:
    return (("x-amzn-requestid", ex.uuid),)


class BedrockRuntime(SimProtocol):
    name: ClassVar[str] = "bedrock"

    def parse_request(self, req: Request, default_model: str) -> ParsedRequest:
        match = _ROUTE.fullmatch(req.path)
        if match is None:
            raise HttpError(404, f"Unknown operation: {req.method} {req.path}")
        if req.method != "POST":
            raise method_not_allowed(req)
        if not req.headers.get("authorization"):
            raise HttpError(403, "Missing Authentication Token")
        model = urllib.parse.unquote(match.group(1))
        operation = match.group(2)
        data = json_object(req.body)
        if operation.startswith("converse"):
            max_tokens, prompt_tokens = _parse_converse(data)
            variant = "converse"
        else:
            max_tokens, prompt_tokens = _parse_invoke(data)
            variant = "invoke"
        return ParsedRequest(
            model=model,
            stream=operation.endswith("stream"),
            max_tokens=max_tokens,
            prompt_tokens=prompt_tokens,
            variant=variant,
        )

    def _error(self, status: int, message: str, ex: Exchange, headers: Headers = ()) -> Reply:
        error_type = ERROR_TYPES.get(
            status, "ValidationException" if status < 500 else "InternalServerException"
        )
        return Reply(
            status,
            compact({"message": message}),
            headers=(*headers, ("x-amzn-errortype", error_type), *_request_id(ex)),
        )

    def error_reply(self, error: HttpError, ex: Exchange) -> Reply:
        return self._error(error.status, error.message, ex, error.headers)

    def fault_reply(self, fault: ReplyFault, parsed: ParsedRequest, ex: Exchange) -> Reply:
        if fault == "429":
            return self._error(429, THROTTLING_MESSAGE, ex)
        if fault == "529":
            return self._error(503, UNAVAILABLE_MESSAGE, ex)
        return self._error(500, INTERNAL_MESSAGE, ex)

    def stream_head(self, parsed: ParsedRequest, ex: Exchange, processing_ms: int) -> StreamHead:
        headers = _request_id(ex)
        if parsed.variant == "invoke":
            headers += (("x-amzn-bedrock-content-type", "application/json"),)
        return StreamHead(EVENTSTREAM_TYPE, headers)

    def renderer(self, parsed: ParsedRequest, ex: Exchange, timing: Timing) -> StreamRenderer:
        if parsed.variant == "invoke":
            return _InvokeStream(parsed, ex, timing)
        return _ConverseStream(parsed, ex, timing)

    def completion(
        self,
        parsed: ParsedRequest,
        ex: Exchange,
        n: int,
        finish: FinishReason,
        processing_ms: int,
        timing: Timing,
    ) -> Reply:
        p = parsed.prompt_tokens
        if parsed.variant == "invoke":
            body = compact(
                {
                    "id": bedrock_message_id(ex),
                    "type": "message",
                    "role": "assistant",
                    "model": parsed.model,
                    "content": [{"type": "text", "text": completion_text(n)}] if n else [],
                    "stop_reason": STOP_REASONS[finish],
                    "stop_sequence": None,
                    "usage": {"input_tokens": p, "output_tokens": n},
                }
            )
            headers = (
                *_request_id(ex),
                ("x-amzn-bedrock-invocation-latency", str(timing.total_ms)),
                ("x-amzn-bedrock-output-token-count", str(n)),
                ("x-amzn-bedrock-input-token-count", str(p)),
            )
            return Reply(200, body, headers=headers)
        body = compact(
            {
                "metrics": {"latencyMs": timing.total_ms},
                "output": {
                    "message": {"content": [{"text": completion_text(n)}], "role": "assistant"}
                },
                "stopReason": STOP_REASONS[finish],
                "usage": {
                    "inputTokens": p,
                    "outputTokens": n,
                    "serverToolUsage": {},
                    "totalTokens": p + n,
                },
            }
        )
        return Reply(200, body, headers=_request_id(ex))

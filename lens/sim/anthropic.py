"""Anthropic Messages on the wire (docs/wire-formats.md sections 4 and 8).

``POST /v1/messages`` (the SDK's beta client adds ``?beta=true``; any query is accepted)
with ``x-api-key`` (or ``Authorization: Bearer``) and ``anthropic-version``.  A stream is
``event: <type>\\ndata: <json>\\n\\n`` events, one HTTP chunk each: ``message_start``,
``content_block_start``, ``ping`` (at once), one ``content_block_delta`` per token, then
``content_block_stop``, ``message_delta`` (stop reason, cumulative usage) and
``message_stop``.  Like the real API, most events' JSON carries a run of spaces before
its closing brace (``{"type":"message_stop"    }``), and ``ping`` is ``{"type": "ping"}``.
A mid-stream error is an ``event: error`` (``overloaded_error``), then the end of the
body and of the connection: no ``message_delta``, no ``message_stop``.

The delta events do not depend on the request, so they are rendered once at import.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

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
    bearer,
    compact,
    json_object,
    method_not_allowed,
    positive_int,
)
from lens.sim.text import VOCAB_JSON, completion_text, cycle, text_of, tokens_for

MESSAGES_PATH = "/v1/messages"
STOP_REASONS: dict[FinishReason, str] = {"stop": "end_turn", "length": "max_tokens"}
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
RATE_LIMIT_MESSAGE = (
    "This request would exceed the rate limit for your organization (simulated by "
    "lens-sim). Please try again in 1 second."
)
# Quoted from a real stream (docs/wire-formats.md section 4), one space before the brace.
MIDSTREAM_ERROR_DATA = (
    b'{"type":"error","error":{"details":null,"type":"overloaded_error","message":"Overloaded"} }'
)
_MIDSTREAM_ERROR = frame_chunk(b"event: error\ndata: " + MIDSTREAM_ERROR_DATA + b"\n\n") + CHUNK_END
_PING = frame_chunk(b'event: ping\ndata: {"type": "ping"}\n\n')
# Lengths of the space runs: varied like the recordings' (0..15), fixed so that the
# bytes of a given position are reproducible.
_PADS = (12, 8, 6, 0, 15, 4, 9, 2, 13, 7, 11, 1, 14, 5, 10, 3)


def _event(name: bytes, data_without_brace: bytes, pad: int) -> bytes:
    """One framed event whose JSON ends in ``pad`` spaces and the closing brace."""
    return frame_chunk(b"event: %b\ndata: %b%b}\n\n" % (name, data_without_brace, b" " * pad))


_DELTAS: list[bytes] = [
    _event(
        b"content_block_delta",
        b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":%b}' % word,
        _PADS[k % len(_PADS)],
    )
    for k, word in enumerate(VOCAB_JSON)
]


def rfc3339(unix_seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix_seconds))


def message_id(ex: Exchange) -> str:
    return f"msg_sim{ex.hex}"


def request_id(ex: Exchange) -> str:
    return f"req_sim{ex.hex}"


def _usage_in(prompt_tokens: int) -> bytes:
    return (
        b'"input_tokens":%d,"cache_creation_input_tokens":0,"cache_read_input_tokens":0'
        % prompt_tokens
    )


def parse_messages_body(
    data: dict[str, Any], *, require_model: bool
) -> tuple[str | None, int, int]:
    """(model, max_tokens, prompt tokens) of a Messages body; 400 messages like the API's."""
    model = data.get("model")
    if require_model and model is None:
        raise HttpError(400, "model: Field required")
    if model is not None and (not isinstance(model, str) or not model):
        raise HttpError(400, "model: Input should be a valid string")
    max_tokens = data.get("max_tokens")
    if max_tokens is None:
        raise HttpError(400, "max_tokens: Field required")
    if not positive_int(max_tokens):
        raise HttpError(400, "max_tokens: Input should be an integer greater than or equal to 1")
    messages = data.get("messages")
    if messages is None:
        raise HttpError(400, "messages: Field required")
    if not isinstance(messages, list) or not messages:
        raise HttpError(400, "messages: Input should be a non-empty list")
    system = data.get("system")
    texts = [text_of(m.get("content")) for m in messages if isinstance(m, dict)]
    texts.append(text_of(system))
    assert isinstance(max_tokens, int)
    return model, max_tokens, tokens_for(texts)


class _MessagesStream(StreamRenderer):
    __slots__ = ("_pad0", "_prompt_tokens")
    closes_after_error = True  # the error event ends the stream and the connection

    def __init__(self, parsed: ParsedRequest, ex: Exchange) -> None:
        self._prompt_tokens = parsed.prompt_tokens
        self._pad0 = ex.index
        start = (
            b'{"type":"message_start","message":{"model":%b,"id":"%b","type":"message",'
            b'"role":"assistant","content":[],"stop_reason":null,"stop_sequence":null,'
            b'"usage":{%b,"cache_creation":{"ephemeral_5m_input_tokens":0,'
            b'"ephemeral_1h_input_tokens":0},"output_tokens":1,"service_tier":"standard",'
            b'"inference_geo":"not_available"}}'
            % (compact(parsed.model), message_id(ex).encode(), _usage_in(parsed.prompt_tokens))
        )
        block = b'{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}'
        super().__init__(
            _event(b"message_start", start, self._pad(0))
            + _event(b"content_block_start", block, self._pad(1))
            + _PING
        )

    def _pad(self, j: int) -> int:
        return _PADS[(self._pad0 + j) % len(_PADS)]

    def tokens(self, count: int) -> list[bytes]:
        return cycle(count, _DELTAS)

    def suffix(self, n: int, finish: FinishReason) -> bytes:
        delta = (
            b'{"type":"message_delta","delta":{"stop_reason":"%b","stop_sequence":null},'
            b'"usage":{%b,"output_tokens":%d}'
            % (STOP_REASONS[finish].encode(), _usage_in(self._prompt_tokens), n)
        )
        return (
            _event(b"content_block_stop", b'{"type":"content_block_stop","index":0', self._pad(2))
            + _event(b"message_delta", delta, self._pad(3))
            + _event(b"message_stop", b'{"type":"message_stop"', self._pad(4))
            + CHUNK_END
        )

    def midstream_error(self, sent: int) -> bytes:
        return _MIDSTREAM_ERROR


def error_body(type_: str, message: str, ex: Exchange) -> bytes:
    return compact(
        {
            "type": "error",
            "error": {"type": type_, "message": message},
            "request_id": request_id(ex),
        }
    )


def rate_limit_headers(ex: Exchange, remaining: int) -> Headers:
    reset = rfc3339(ex.created + 1)
    return (
        ("anthropic-ratelimit-requests-limit", "4000"),
        ("anthropic-ratelimit-requests-remaining", str(remaining)),
        ("anthropic-ratelimit-requests-reset", reset),
        ("anthropic-ratelimit-tokens-limit", "2000000"),
        ("anthropic-ratelimit-tokens-remaining", "1999000" if remaining else "0"),
        ("anthropic-ratelimit-tokens-reset", reset),
    )


class AnthropicMessages(SimProtocol):
    name: ClassVar[str] = "anthropic"

    def parse_request(self, req: Request, default_model: str) -> ParsedRequest:
        if req.path != MESSAGES_PATH:
            raise HttpError(404, f"Not found: {req.method} {req.path}")
        if req.method != "POST":
            raise method_not_allowed(req)
        headers = req.headers
        if not headers.get("x-api-key") and not bearer(headers):
            raise HttpError(401, "x-api-key header is required")
        if not headers.get("anthropic-version"):
            raise HttpError(400, "anthropic-version: header is required")
        data = json_object(req.body)
        model, max_tokens, prompt_tokens = parse_messages_body(data, require_model=True)
        stream = data.get("stream", False)
        if not isinstance(stream, bool):
            raise HttpError(400, "stream: Input should be a valid boolean")
        return ParsedRequest(
            model=model or default_model,
            stream=stream,
            max_tokens=max_tokens,
            prompt_tokens=prompt_tokens,
        )

    def error_reply(self, error: HttpError, ex: Exchange) -> Reply:
        type_ = ERROR_TYPES.get(error.status, "invalid_request_error")
        body = error_body(type_, error.message, ex)
        return Reply(error.status, body, headers=(*error.headers, ("request-id", request_id(ex))))

    def fault_reply(self, fault: ReplyFault, parsed: ParsedRequest, ex: Exchange) -> Reply:
        rid = ("request-id", request_id(ex))
        if fault == "429":
            body = error_body("rate_limit_error", RATE_LIMIT_MESSAGE, ex)
            headers = (("retry-after", "1"), *rate_limit_headers(ex, 0), rid)
            return Reply(429, body, headers=headers)
        if fault == "529":
            return Reply(529, error_body("overloaded_error", "Overloaded", ex), headers=(rid,))
        return Reply(500, error_body("api_error", "Internal server error", ex), headers=(rid,))

    def stream_head(self, parsed: ParsedRequest, ex: Exchange, processing_ms: int) -> StreamHead:
        return StreamHead(
            "text/event-stream; charset=utf-8",
            (
                ("cache-control", "no-cache"),
                ("request-id", request_id(ex)),
                ("anthropic-organization-id", "00000000-0000-4000-8000-00006c656e73"),
                *rate_limit_headers(ex, 3999),
            ),
        )

    def renderer(self, parsed: ParsedRequest, ex: Exchange, timing: Timing) -> StreamRenderer:
        return _MessagesStream(parsed, ex)

    def completion(
        self,
        parsed: ParsedRequest,
        ex: Exchange,
        n: int,
        finish: FinishReason,
        processing_ms: int,
        timing: Timing,
    ) -> Reply:
        body = compact(
            {
                "id": message_id(ex),
                "type": "message",
                "role": "assistant",
                "model": parsed.model,
                "content": [{"type": "text", "text": completion_text(n)}] if n else [],
                "stop_reason": STOP_REASONS[finish],
                "stop_sequence": None,
                "usage": {
                    "input_tokens": parsed.prompt_tokens,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "cache_creation": {
                        "ephemeral_5m_input_tokens": 0,
                        "ephemeral_1h_input_tokens": 0,
                    },
                    "output_tokens": n,
                    "service_tier": "standard",
                    "inference_geo": "not_available",
                },
            }
        )
        return Reply(200, body, headers=(("request-id", request_id(ex)),))

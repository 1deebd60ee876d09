"""Google Gemini ``generateContent`` on the wire (docs/wire-formats.md sections 5 and 8).

``POST /v1beta/models/{model}:streamGenerateContent?alt=sse`` (and ``/v1/``) streams
``data: <json>\\r\\n\\r\\n`` events (CRLF, no ``event:`` lines, no terminator: the body
just ends), one token per event here.  The JSON is spaced the way Google's is (a space
after every colon, none after commas).  Every event carries the cumulative
``usageMetadata``; the last one carries ``finishReason``.  A mid-stream error is a
``data: {"error": ...}`` event (503 ``UNAVAILABLE``), then EOF (the connection closes).
``:generateContent`` answers one pretty-printed JSON object.  Auth is ``x-goog-api-key``,
``?key=`` or a bearer token.

Errors are Google's pretty-printed ``{"error": {"code", "message", "status"}}``; a 429
carries its retry hint in ``details`` (``google.rpc.RetryInfo``), never in headers.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from typing import Any, ClassVar

from lens.sim.http import CHUNK_END, HttpError, Request, frame_chunk
from lens.sim.protocol_base import (
    Exchange,
    FinishReason,
    ParsedRequest,
    Reply,
    ReplyFault,
    SimProtocol,
    StreamHead,
    StreamRenderer,
    Timing,
    bearer,
    json_object,
    method_not_allowed,
    positive_int,
)
from lens.sim.text import VOCAB_JSON, completion_text, text_of, tokens_for

_ROUTE = re.compile(r"/(v1beta|v1)/models/([^/:]+):(streamGenerateContent|generateContent)")
FINISH_REASONS: dict[FinishReason, str] = {"stop": "STOP", "length": "MAX_TOKENS"}
STATUSES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    405: "INVALID_ARGUMENT",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
JSON_TYPE = "application/json; charset=UTF-8"
NO_KEY_MESSAGE = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
RATE_LIMIT_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details "
    "(simulated by lens-sim). Please retry in 1s."
)
INTERNAL_MESSAGE = (
    "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting"
)
OVERLOADED_MESSAGE = "The model is overloaded. Please try again later."
_MIDSTREAM_ERROR = (
    frame_chunk(
        b'data: {"error":{"code":503,"message":"%b","status":"UNAVAILABLE"}}\r\n\r\n'
        % OVERLOADED_MESSAGE.encode()
    )
    + CHUNK_END
)
# Google's front end sends these on every response.
_COMMON_HEADERS: tuple[tuple[str, str], ...] = (
    ("vary", "Origin"),
    ("vary", "X-Origin"),
    ("vary", "Referer"),
    ("server", "scaffolding on HTTPServer2"),
    ("x-xss-protection", "0"),
    ("x-frame-options", "SAMEORIGIN"),
    ("x-content-type-options", "nosniff"),
)


def spaced(value: Any) -> bytes:
    """JSON spaced like a Gemini stream event: ``{"a": 1,"b": [2]}``."""
    return json.dumps(value, separators=(",", ": "), ensure_ascii=False).encode()


def pretty(value: Any) -> bytes:
    """JSON as Google's non-streamed bodies print it (two-space indent)."""
    return json.dumps(value, indent=2, ensure_ascii=False).encode()


def response_id(ex: Exchange) -> str:
    return base64.urlsafe_b64encode(bytes.fromhex(ex.hex)).rstrip(b"=").decode()


def _escape(data: bytes) -> bytes:
    """Literal bytes for a ``%``-format template."""
    return data.replace(b"%", b"%%")


class _GenerateStream(StreamRenderer):
    __slots__ = ("_empty", "_final", "_prompt", "_template")
    closes_after_error = True  # the error event ends the stream and the connection

    def __init__(self, parsed: ParsedRequest, ex: Exchange) -> None:
        p = parsed.prompt_tokens
        self._prompt = p
        details = b'"promptTokensDetails": [{"modality": "TEXT","tokenCount": %d}]' % p
        tail = _escape(
            b'%b,"serviceTier": "standard"},"modelVersion": %b,"responseId": %b}\r\n\r\n'
            % (details, spaced(parsed.model), spaced(response_id(ex)))
        )
        head = b'data: {"candidates": [{"content": {"parts": [{"text": %b}],"role": "model"},'
        counts = b'"usageMetadata": {"promptTokenCount": %d,' % p
        counts += b'"candidatesTokenCount": %d,"totalTokenCount": %d,'
        # Token k: the word, k + 1 candidate tokens, p + k + 1 in total.
        self._template = head + b'"index": 0}],' + counts + tail
        # The last token: the same with the finish reason (filled in twice).
        self._final = head + b'"finishReason": "%b","index": 0}],' + counts + tail
        # No token at all: Google omits zero counts.
        self._empty = (
            b'data: {"candidates": [{"content": {"parts": [{"text": ""}],"role": "model"},'
            b'"finishReason": "%b","index": 0}],"usageMetadata": {"promptTokenCount": '
            + b"%d" % p
            + b',"totalTokenCount": '
            + b"%d" % p
            + b","
            + tail
        )
        super().__init__(b"")

    def tokens(self, count: int) -> list[bytes]:
        template, p, words = self._template, self._prompt, VOCAB_JSON
        v = len(words)
        # Cumulative usage differs per token, so each token is one %-format (no JSON).
        return [frame_chunk(template % (words[k % v], k + 1, p + k + 1)) for k in range(count)]

    def suffix(self, n: int, finish: FinishReason) -> bytes:
        """A closing event of its own (empty text); used for the empty stream."""
        reason = FINISH_REASONS[finish].encode()
        if n == 0:
            return frame_chunk(self._empty % (reason,)) + CHUNK_END
        last = self._final % (b'""', reason, n, self._prompt + n)
        return frame_chunk(last) + CHUNK_END

    def complete(self, n: int, finish: FinishReason) -> tuple[list[bytes], bytes]:
        if n == 0:
            return [], self.suffix(0, finish)
        payloads = self.tokens(n - 1)
        word = VOCAB_JSON[(n - 1) % len(VOCAB_JSON)]
        reason = FINISH_REASONS[finish].encode()
        payloads.append(frame_chunk(self._final % (word, reason, n, self._prompt + n)))
        return payloads, CHUNK_END

    def midstream_error(self, sent: int) -> bytes:
        return _MIDSTREAM_ERROR


def google_error(status: int, message: str, details: list[Any] | None = None) -> bytes:
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": STATUSES.get(status, "INVALID_ARGUMENT" if status < 500 else "INTERNAL"),
    }
    if details:
        error["details"] = details
    return pretty({"error": error})


class GeminiGenerateContent(SimProtocol):
    name: ClassVar[str] = "gemini"

    def parse_request(self, req: Request, default_model: str) -> ParsedRequest:
        match = _ROUTE.fullmatch(req.path)
        if match is None:
            raise HttpError(404, f"The requested URL {req.path} was not found on this server.")
        if req.method != "POST":
            raise method_not_allowed(req)
        query = req.query()
        if not (req.headers.get("x-goog-api-key") or query.get("key") or bearer(req.headers)):
            raise HttpError(403, NO_KEY_MESSAGE)
        stream = match.group(3) == "streamGenerateContent"
        if stream and query.get("alt") != "sse":
            raise HttpError(
                400,
                "lens-sim streams Gemini responses as server-sent events only; add ?alt=sse "
                "(what the Google SDKs send).",
            )
        data = json_object(req.body)
        contents = data.get("contents")
        if not isinstance(contents, list) or not contents:
            raise HttpError(400, "* GenerateContentRequest.contents: contents is not specified\n")
        config = data.get("generationConfig", {})
        if not isinstance(config, dict):
            raise HttpError(400, 'Invalid JSON payload received. Unknown name "generationConfig"')
        max_tokens = config.get("maxOutputTokens")
        if max_tokens is not None and not positive_int(max_tokens):
            raise HttpError(
                400,
                "* GenerateContentRequest.generation_config.max_output_tokens: "
                "max_output_tokens must be positive.\n",
            )
        texts = [text_of(c.get("parts")) for c in contents if isinstance(c, dict)]
        system = data.get("systemInstruction")
        if isinstance(system, dict):
            texts.append(text_of(system.get("parts")))
        return ParsedRequest(
            model=urllib.parse.unquote(match.group(2)),
            stream=stream,
            max_tokens=max_tokens,
            prompt_tokens=tokens_for(texts),
        )

    def error_reply(self, error: HttpError, ex: Exchange) -> Reply:
        body = google_error(error.status, error.message)
        return Reply(error.status, body, JSON_TYPE, (*error.headers, *_COMMON_HEADERS))

    def fault_reply(self, fault: ReplyFault, parsed: ParsedRequest, ex: Exchange) -> Reply:
        if fault == "429":
            details = [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaMetric": "generativelanguage.googleapis.com/"
                            "generate_content_requests",
                            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                            "quotaDimensions": {"location": "global", "model": parsed.model},
                            "quotaValue": "1000",
                        }
                    ],
                },
                {
                    "@type": "type.googleapis.com/google.rpc.Help",
                    "links": [
                        {
                            "description": "Learn more about Gemini API quotas",
                            "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                        }
                    ],
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"},
            ]
            body = google_error(429, RATE_LIMIT_MESSAGE, details)
            return Reply(429, body, JSON_TYPE, _COMMON_HEADERS)
        if fault == "529":
            return Reply(503, google_error(503, OVERLOADED_MESSAGE), JSON_TYPE, _COMMON_HEADERS)
        return Reply(500, google_error(500, INTERNAL_MESSAGE), JSON_TYPE, _COMMON_HEADERS)

    def stream_head(self, parsed: ParsedRequest, ex: Exchange, processing_ms: int) -> StreamHead:
        return StreamHead(
            "text/event-stream",
            (
                ("content-disposition", "attachment"),
                *_COMMON_HEADERS,
                ("server-timing", f"gfet4t7; dur={processing_ms}"),
            ),
        )

    def renderer(self, parsed: ParsedRequest, ex: Exchange, timing: Timing) -> StreamRenderer:
        return _GenerateStream(parsed, ex)

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
        usage: dict[str, Any] = {"promptTokenCount": p}
        if n:
            usage["candidatesTokenCount"] = n
        usage["totalTokenCount"] = p + n
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": p}]
        body = pretty(
            {
                "candidates": [
                    {
                        "content": {"parts": [{"text": completion_text(n)}], "role": "model"},
                        "finishReason": FINISH_REASONS[finish],
                        "index": 0,
                    }
                ],
                "usageMetadata": usage,
                "modelVersion": parsed.model,
                "responseId": response_id(ex),
            }
        )
        headers = (*_COMMON_HEADERS, ("server-timing", f"gfet4t7; dur={processing_ms}"))
        return Reply(200, body, JSON_TYPE, headers)

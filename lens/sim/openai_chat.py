"""OpenAI Chat Completions on the wire: request interpretation and pre-rendered chunks.

Byte layout follows docs/wire-formats.md section 1 (``data: <json>\\n\\n`` per event,
``data: [DONE]`` last, usage in an extra ``choices: []`` chunk only on request).  Every
per-request JSON fragment is rendered once in ``ChunkRenderer.__init__``; a content chunk
is a concatenation of those bytes with a pre-encoded vocabulary word, done once per
distinct word, and the token list is that cycle repeated: no per-token formatting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from lens.sim.http import CHUNK_END, HttpError, Request, error_body, frame_chunk
from lens.sim.openai_endpoints import (
    COMPLETIONS_PATH,
    EMBEDDINGS_PATH,
    TextCompletionStream,
    completions_prompt,
    embeddings_body,
    parse_embeddings,
    text_completion_body,
)
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
    json_object,
    method_not_allowed,
)
from lens.sim.text import VOCAB, VOCAB_JSON, completion_text, cycle, text_of, tokens_for

__all__ = [
    "DONE_CHUNK",
    "MIDSTREAM_ERROR_CHUNK",
    "MIDSTREAM_ERROR_MESSAGE",
    "VOCAB",
    "ChatRequest",
    "ChunkRenderer",
    "OpenAIChat",
    "completion_body",
    "completion_text",
    "estimate_prompt_tokens",
    "parse_chat_request",
]

CHAT_PATH = "/v1/chat/completions"
DONE_CHUNK = frame_chunk(b"data: [DONE]\n\n")
MIDSTREAM_ERROR_MESSAGE = "The server had an error while streaming the response (lens-sim)."
MIDSTREAM_ERROR_CHUNK = frame_chunk(
    b"data: " + error_body(MIDSTREAM_ERROR_MESSAGE, "server_error") + b"\n\n"
)
RATE_LIMIT_MESSAGE = (
    "Rate limit reached for requests (simulated by lens-sim). Please try again in 1s."
)
SERVER_ERROR_MESSAGE = "The server had an error while processing your request (lens-sim)."
OVERLOADED_MESSAGE = (
    "That model is currently overloaded with other requests. You can retry your request "
    "(simulated by lens-sim)."
)


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    stream: bool
    include_usage: bool
    max_tokens: int | None  # max_completion_tokens wins over the legacy max_tokens
    prompt_tokens: int
    obfuscation: bool = True
    ignore_eos: bool = False  # vLLM: generate to max_tokens
    min_tokens: int | None = None  # vLLM: no fewer than this


def _bad(message: str, param: str | None = None) -> HttpError:
    return HttpError(400, message if param is None else f"{param}: {message}")


def estimate_prompt_tokens(messages: list[Any]) -> int:
    """About four characters per token over the message texts, at least 1."""
    return tokens_for(text_of(m.get("content")) for m in messages if isinstance(m, dict))


def _max_tokens(body: dict[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _bad(f"expected an integer >= 1, got {value!r}", key)
        return value
    return None


def parse_chat_request(body: bytes, default_model: str) -> ChatRequest:
    """Validate the fields the simulator uses; ignore the rest as a tolerant server would."""
    data = json_object(body)
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("expected a non-empty array of messages", "messages")
    model = _model(data, default_model)
    stream, options = _stream_fields(data)
    return ChatRequest(
        model=model,
        stream=stream,
        include_usage=options.get("include_usage") is True,
        max_tokens=_max_tokens(data),
        prompt_tokens=estimate_prompt_tokens(messages),
        obfuscation=options.get("include_obfuscation") is not False,
        ignore_eos=data.get("ignore_eos") is True,
        min_tokens=_min_tokens(data),
    )


def _model(data: dict[str, Any], default_model: str) -> str:
    model = data.get("model", default_model)
    if not isinstance(model, str) or not model:
        raise _bad("expected a non-empty string", "model")
    return model


def _stream_fields(data: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """``stream`` and ``stream_options``, checked as OpenAI's endpoints take them."""
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad(f"expected a boolean, got {stream!r}", "stream")
    options = data.get("stream_options") or {}
    if not isinstance(options, dict):
        raise _bad("expected an object", "stream_options")
    return stream, options


def _min_tokens(body: dict[str, Any]) -> int | None:
    value = body.get("min_tokens")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _bad(f"expected an integer >= 0, got {value!r}", "min_tokens")
    return value


class ChunkRenderer:
    """All chunks of one streamed completion, each already framed as one HTTP chunk."""

    __slots__ = ("_content_pre", "_cycle", "_head", "role")

    _CONTENT_POST = b'},"logprobs":null,"finish_reason":null}],"usage":null}\n\n'

    def __init__(self, completion_id: str, created: int, model: str) -> None:
        # The one json.dumps of the request: everything before "choices" is shared.
        self._head = b'data: {"id":%b,"object":"chat.completion.chunk","created":%d,"model":%b' % (
            json.dumps(completion_id).encode(),
            created,
            json.dumps(model).encode(),
        )
        self._content_pre = self._head + b',"choices":[{"index":0,"delta":{"content":'
        self._cycle: list[bytes] = []  # framed chunk per vocabulary word, filled lazily
        self.role = frame_chunk(
            self._head + b',"choices":[{"index":0,"delta":{"role":"assistant","content":""},'
            b'"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
        )

    def tokens(self, n: int) -> list[bytes]:
        """Framed content chunks of tokens ``0..n-1`` (a fresh list the caller may edit).

        Each distinct word is rendered once per request; the list is then built by
        repeating that cycle, at C speed, instead of formatting per token.
        """
        unit = self._cycle
        while len(unit) < min(n, len(VOCAB_JSON)):
            word = VOCAB_JSON[len(unit)]
            unit.append(frame_chunk(self._content_pre + word + self._CONTENT_POST))
        return cycle(n, unit)

    def finish(self, reason: FinishReason, timings: bytes = b"") -> bytes:
        """The finish chunk; ``timings`` (llama.cpp's ``,"timings":{...}``) rides on it."""
        return frame_chunk(
            self._head
            + b',"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"%b"}],'
            b'"usage":null%b}\n\n' % (reason.encode(), timings)
        )

    def usage(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        return frame_chunk(
            self._head + b',"choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,'
            b'"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":0},'
            b'"completion_tokens_details":{"reasoning_tokens":0}}}\n\n'
            % (prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)
        )


def completion_body(
    completion_id: str,
    created: int,
    model: str,
    n: int,
    finish: FinishReason,
    prompt_tokens: int,
) -> bytes:
    """A non-streamed ``chat.completion`` object (rare path: plain json.dumps)."""
    payload = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": completion_text(n), "refusal": None},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": n,
            "total_tokens": prompt_tokens + n,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }
    return json.dumps(payload, separators=(",", ":")).encode()


# -- the protocol ------------------------------------------------------------------------------


def chat_to_parsed(chat: ChatRequest, **extra: Any) -> ParsedRequest:
    return ParsedRequest(
        model=chat.model,
        stream=chat.stream,
        max_tokens=chat.max_tokens,
        prompt_tokens=chat.prompt_tokens,
        include_usage=chat.include_usage,
        obfuscation=chat.obfuscation,
        ignore_eos=chat.ignore_eos,
        min_tokens=chat.min_tokens,
        **extra,
    )


def llama_timings_json(timing: Timing, prompt_tokens: int, n: int) -> bytes:
    """llama.cpp's ``timings`` object for the planned timeline: the prefill is the wait for
    the first token less the wait for a slot, the decode the span from first to last token
    (``predicted_per_token_ms`` over its n - 1 gaps).  No prompt cache: ``cache_n`` 0."""
    prompt_ms = float(max(timing.first_ms - timing.queued_ms, 0))
    predicted_ms = float(max(timing.total_ms - timing.first_ms, 0))
    per_token = predicted_ms / (n - 1) if n > 1 else predicted_ms
    return (
        b',"timings":'
        + json.dumps(
            {
                "cache_n": 0,
                "prompt_n": prompt_tokens,
                "prompt_ms": prompt_ms,
                "prompt_per_token_ms": prompt_ms / max(prompt_tokens, 1),
                "predicted_n": n,
                "predicted_ms": predicted_ms,
                "predicted_per_token_ms": per_token,
            },
            separators=(",", ":"),
        ).encode()
    )


class _ChatStream(StreamRenderer):
    __slots__ = ("_chunks", "_include_usage", "_prompt_tokens", "_timing")

    def __init__(
        self, parsed: ParsedRequest, completion_id: str, created: int, timing: Timing
    ) -> None:
        self._chunks = ChunkRenderer(completion_id, created, parsed.model)
        self._include_usage = parsed.include_usage
        self._prompt_tokens = parsed.prompt_tokens
        self._timing = timing if timing.engine_timings else None
        super().__init__(self._chunks.role)

    def tokens(self, count: int) -> list[bytes]:
        return self._chunks.tokens(count)

    def suffix(self, n: int, finish: FinishReason) -> bytes:
        timing = self._timing
        timings = b"" if timing is None else llama_timings_json(timing, self._prompt_tokens, n)
        trailer = self._chunks.finish(finish, timings)
        if self._include_usage:
            trailer += self._chunks.usage(self._prompt_tokens, n)
        return trailer + DONE_CHUNK + CHUNK_END

    def midstream_error(self, sent: int) -> bytes:
        return MIDSTREAM_ERROR_CHUNK + CHUNK_END


def request_id(ex: Exchange) -> str:
    return f"req_sim{ex.hex}"


def openai_error_reply(error: HttpError, ex: Exchange) -> Reply:
    """Any ``HttpError`` in OpenAI's envelope (also Azure's and Responses')."""
    body = error_body(error.message, "invalid_request_error", error.code, error.param)
    return Reply(error.status, body, headers=(*error.headers, ("x-request-id", request_id(ex))))


def openai_fault_reply(fault: ReplyFault, ex: Exchange) -> Reply:
    headers: tuple[tuple[str, str], ...] = (("x-request-id", request_id(ex)),)
    if fault == "429":
        body = error_body(RATE_LIMIT_MESSAGE, "requests", "rate_limit_exceeded")
        return Reply(429, body, headers=(("retry-after", "1"), *headers))
    if fault == "529":
        return Reply(503, error_body(OVERLOADED_MESSAGE, "server_error"), headers=headers)
    message = MIDSTREAM_ERROR_MESSAGE if fault == "midstream-error" else SERVER_ERROR_MESSAGE
    return Reply(500, error_body(message, "server_error"), headers=headers)


_PATHS = (CHAT_PATH, COMPLETIONS_PATH, EMBEDDINGS_PATH)


def _parse_other(path: str, body: bytes, default_model: str) -> ParsedRequest:
    """``/v1/completions`` or ``/v1/embeddings``: validated as chat is."""
    data = json_object(body)
    model = _model(data, default_model)
    if path == EMBEDDINGS_PATH:
        return parse_embeddings(data, model)
    stream, options = _stream_fields(data)
    return ParsedRequest(
        model=model,
        stream=stream,
        max_tokens=_max_tokens(data),
        prompt_tokens=tokens_for([completions_prompt(data)]),
        include_usage=options.get("include_usage") is True,
        variant="completions",
        ignore_eos=data.get("ignore_eos") is True,
        min_tokens=_min_tokens(data),
    )


class OpenAIChat(SimProtocol):
    """``POST /v1/chat/completions``, ``/v1/completions`` and ``/v1/embeddings``
    (lens.sim.openai_endpoints); no auth required (any key is accepted)."""

    name: ClassVar[str] = "openai"

    def parse_request(self, req: Request, default_model: str) -> ParsedRequest:
        if req.path not in _PATHS:
            raise HttpError(
                404, f"Unknown request URL: {req.method} {req.path}.", code="unknown_url"
            )
        if req.method != "POST":
            raise method_not_allowed(req)
        if req.path == CHAT_PATH:
            return chat_to_parsed(parse_chat_request(req.body, default_model))
        return _parse_other(req.path, req.body, default_model)

    def error_reply(self, error: HttpError, ex: Exchange) -> Reply:
        return openai_error_reply(error, ex)

    def fault_reply(self, fault: ReplyFault, parsed: ParsedRequest, ex: Exchange) -> Reply:
        return openai_fault_reply(fault, ex)

    def stream_head(self, parsed: ParsedRequest, ex: Exchange, processing_ms: int) -> StreamHead:
        return StreamHead(
            "text/event-stream; charset=utf-8",
            (
                ("cache-control", "no-cache"),
                ("openai-version", "2020-10-01"),
                ("openai-processing-ms", str(processing_ms)),
                ("x-request-id", request_id(ex)),
            ),
        )

    def renderer(self, parsed: ParsedRequest, ex: Exchange, timing: Timing) -> StreamRenderer:
        if parsed.variant == "completions":
            return TextCompletionStream(
                parsed, f"cmpl-sim{ex.hex}", ex.created, MIDSTREAM_ERROR_CHUNK
            )
        return _ChatStream(parsed, f"chatcmpl-sim{ex.hex}", ex.created, timing)

    def completion(
        self,
        parsed: ParsedRequest,
        ex: Exchange,
        n: int,
        finish: FinishReason,
        processing_ms: int,
        timing: Timing,
    ) -> Reply:
        if parsed.variant == "completions":
            body = text_completion_body(f"cmpl-sim{ex.hex}", ex.created, parsed, n, finish)
        elif parsed.variant == "embeddings":
            body = embeddings_body(parsed)
        else:
            body = completion_body(
                f"chatcmpl-sim{ex.hex}", ex.created, parsed.model, n, finish, parsed.prompt_tokens
            )
        headers = (("x-request-id", request_id(ex)), ("openai-processing-ms", str(processing_ms)))
        return Reply(200, body, headers=headers)

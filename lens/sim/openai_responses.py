"""OpenAI Responses API on the wire (docs/wire-formats.md section 2).

``POST /v1/responses`` streams ``event: <type>\\ndata: <json>\\n\\n`` events, one HTTP
chunk each, with a ``sequence_number`` counting from 0 and no ``[DONE]``::

    response.created, response.in_progress, response.output_item.added,
    response.content_part.added                                     at once
    response.output_text.delta                                      one per token
    response.output_text.done, response.content_part.done,
    response.output_item.done, response.completed (usage)           with the last token

``max_output_tokens`` caps the output and ends the stream with ``response.incomplete``
(reason ``max_output_tokens``); a mid-stream error is an ``error`` event followed by
``response.failed``.  Errors use OpenAI's envelope, as in Chat Completions.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from lens.sim.http import CHUNK_END, HttpError, Request, frame_chunk
from lens.sim.openai_chat import (
    MIDSTREAM_ERROR_MESSAGE,
    openai_error_reply,
    openai_fault_reply,
    request_id,
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
    compact,
    json_object,
    method_not_allowed,
    positive_int,
)
from lens.sim.text import OBFUSCATIONS, VOCAB_JSON, completion_text, text_of, tokens_for

RESPONSES_PATH = "/v1/responses"
MIN_OUTPUT_TOKENS = 16  # the API rejects smaller max_output_tokens
_PREFIX_EVENTS = 4  # sequence numbers 0..3 come before the first delta
_OBFUSCATIONS: tuple[bytes, ...] = tuple(b'"obfuscation":"%b",' % o.encode() for o in OBFUSCATIONS)


def response_id(ex: Exchange) -> str:
    return f"resp_sim{ex.hex}"


def item_id(ex: Exchange) -> str:
    return f"msg_sim{ex.hex}"


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _message(ex: Exchange, status: str, content: list[Any]) -> dict[str, Any]:
    return {
        "id": item_id(ex),
        "type": "message",
        "status": status,
        "content": content,
        "role": "assistant",
    }


def response_object(
    parsed: ParsedRequest,
    ex: Exchange,
    *,
    status: str = "in_progress",
    output: list[Any] | None = None,
    usage: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    incomplete: str | None = None,
) -> dict[str, Any]:
    """The ``response`` object, fields in the API's order."""
    done = status == "completed"
    return {
        "id": response_id(ex),
        "object": "response",
        "created_at": ex.created,
        "status": status,
        "background": False,
        "completed_at": ex.created if done else None,
        "error": error,
        "frequency_penalty": 0.0,
        "incomplete_details": None if incomplete is None else {"reason": incomplete},
        "instructions": parsed.instructions,
        "max_output_tokens": parsed.max_tokens,
        "max_tool_calls": None,
        "model": parsed.model,
        "output": output or [],
        "parallel_tool_calls": True,
        "presence_penalty": 0.0,
        "previous_response_id": None,
        "prompt_cache_key": None,
        "prompt_cache_retention": None,
        "reasoning": {"effort": None, "summary": None},
        "safety_identifier": None,
        "service_tier": "default" if done else "auto",
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_logprobs": 0,
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


def usage_object(prompt_tokens: int, n: int) -> dict[str, Any]:
    return {
        "input_tokens": prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": n,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt_tokens + n,
    }


def _final_status(finish: FinishReason) -> tuple[str, str | None]:
    return ("completed", None) if finish == "stop" else ("incomplete", "max_output_tokens")


# The streamed response object, rendered from ``response_object`` once at import with
# ``%(field)b`` holes for what varies, so a request costs a few small formats instead of
# one ``json.dumps`` of a 35-field object per event.
_HOLES = (
    "id",
    "created_at",
    "status",
    "completed_at",
    "error",
    "incomplete_details",
    "instructions",
    "max_output_tokens",
    "model",
    "output",
    "service_tier",
    "usage",
)


def _response_template() -> bytes:
    sample = response_object(
        ParsedRequest(model="", stream=True, max_tokens=None, prompt_tokens=0),
        Exchange(0, "0" * 32, 0),
    )
    sample |= {name: f"@@{name}@@" for name in _HOLES}
    template = compact(sample).replace(b"%", b"%%")
    for name in _HOLES:
        template = template.replace(b'"@@%b@@"' % name.encode(), b"%%(%b)b" % name.encode())
    return template


_RESPONSE = _response_template()
_ITEM = (
    b'{"id":%b,"type":"message","status":"%b","content":[{"type":"output_text",'
    b'"annotations":[],"logprobs":[],"text":%b}],"role":"assistant"}'
)


class _ResponsesStream(StreamRenderer):
    __slots__ = ("_fields", "_item", "_obfuscation", "_prompt_tokens", "_template")

    def __init__(self, parsed: ParsedRequest, ex: Exchange) -> None:
        self._prompt_tokens = parsed.prompt_tokens
        self._obfuscation = parsed.obfuscation
        self._item = item = compact(item_id(ex))
        self._fields: dict[bytes, bytes] = {
            b"id": compact(response_id(ex)),
            b"created_at": b"%d" % ex.created,
            b"status": b'"in_progress"',
            b"completed_at": b"null",
            b"error": b"null",
            b"incomplete_details": b"null",
            b"instructions": compact(parsed.instructions),
            b"max_output_tokens": compact(parsed.max_tokens),
            b"model": compact(parsed.model),
            b"output": b"[]",
            b"service_tier": b'"auto"',
            b"usage": b"null",
        }
        # Everything of a delta event but the word, its padding and the sequence number.
        self._template = (
            b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
            b'"content_index":0,"delta":%b,"item_id":'
            + item.replace(b"%", b"%%")
            + b',"logprobs":[],%b"output_index":0,"sequence_number":%d}\n\n'
        )
        created = _RESPONSE % self._fields
        part = b'{"type":"output_text","annotations":[],"logprobs":[],"text":""}'
        super().__init__(
            _sse(
                b"response.created",
                b'{"type":"response.created","response":%b,"sequence_number":0}' % created,
            )
            + _sse(
                b"response.in_progress",
                b'{"type":"response.in_progress","response":%b,"sequence_number":1}' % created,
            )
            + _sse(
                b"response.output_item.added",
                b'{"type":"response.output_item.added","item":{"id":%b,"type":"message",'
                b'"status":"in_progress","content":[],"role":"assistant"},"output_index":0,'
                b'"sequence_number":2}' % item,
            )
            + _sse(
                b"response.content_part.added",
                b'{"type":"response.content_part.added","content_index":0,"item_id":%b,'
                b'"output_index":0,"part":%b,"sequence_number":3}' % (item, part),
            )
        )

    def tokens(self, count: int) -> list[bytes]:
        template, words = self._template, VOCAB_JSON
        obfuscations = _OBFUSCATIONS if self._obfuscation else (b"",) * len(words)
        v = len(words)
        # The sequence number differs per token: one %-format each, no JSON.
        return [
            frame_chunk(template % (words[k % v], obfuscations[k % v], _PREFIX_EVENTS + k))
            for k in range(count)
        ]

    def suffix(self, n: int, finish: FinishReason) -> bytes:
        text = compact(completion_text(n))
        item = self._item
        seq = _PREFIX_EVENTS + n
        status, incomplete = _final_status(finish)
        item_status = b"completed" if incomplete is None else b"incomplete"
        done_item = _ITEM % (item, item_status, text)
        final = _RESPONSE % {
            **self._fields,
            b"status": compact(status),
            b"completed_at": self._fields[b"created_at"] if incomplete is None else b"null",
            b"incomplete_details": compact(None if incomplete is None else {"reason": incomplete}),
            b"output": b"[%b]" % done_item,
            b"service_tier": b'"default"',
            b"usage": compact(usage_object(self._prompt_tokens, n)),
        }
        terminal = b"response.%b" % status.encode()
        part = b'{"type":"output_text","annotations":[],"logprobs":[],"text":%b}' % text
        return b"".join(
            [
                _sse(
                    b"response.output_text.done",
                    b'{"type":"response.output_text.done","content_index":0,"item_id":%b,'
                    b'"logprobs":[],"output_index":0,"sequence_number":%d,"text":%b}'
                    % (item, seq, text),
                ),
                _sse(
                    b"response.content_part.done",
                    b'{"type":"response.content_part.done","content_index":0,"item_id":%b,'
                    b'"output_index":0,"part":%b,"sequence_number":%d}' % (item, part, seq + 1),
                ),
                _sse(
                    b"response.output_item.done",
                    b'{"type":"response.output_item.done","item":%b,"output_index":0,'
                    b'"sequence_number":%d}' % (done_item, seq + 2),
                ),
                _sse(
                    terminal,
                    b'{"type":"%b","response":%b,"sequence_number":%d}'
                    % (terminal, final, seq + 3),
                ),
                CHUNK_END,
            ]
        )

    def midstream_error(self, sent: int) -> bytes:
        seq = _PREFIX_EVENTS + sent
        message = compact(MIDSTREAM_ERROR_MESSAGE)
        failed = _RESPONSE % {
            **self._fields,
            b"status": b'"failed"',
            b"error": b'{"code":"server_error","message":%b}' % message,
        }
        return (
            _sse(
                b"error",
                b'{"type":"error","sequence_number":%d,"error":{"type":"server_error",'
                b'"code":"server_error","message":%b,"param":null}}' % (seq, message),
            )
            + _sse(
                b"response.failed",
                b'{"type":"response.failed","sequence_number":%d,"response":%b}'
                % (seq + 1, failed),
            )
            + CHUNK_END
        )


def _sse(name: bytes, data: bytes) -> bytes:
    return frame_chunk(b"event: %b\ndata: %b\n\n" % (name, data))


def _input_texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text_of(item.get("content")) for item in value if isinstance(item, dict)]
    return []


def _bad(message: str, param: str, code: str | None = None) -> HttpError:
    return HttpError(400, message, param=param, code=code)


class OpenAIResponses(SimProtocol):
    """``POST /v1/responses``; no auth required (any key is accepted)."""

    name: ClassVar[str] = "openai-responses"

    def parse_request(self, req: Request, default_model: str) -> ParsedRequest:
        if req.path != RESPONSES_PATH:
            raise HttpError(
                404, f"Unknown request URL: {req.method} {req.path}.", code="unknown_url"
            )
        if req.method != "POST":
            raise method_not_allowed(req)
        data = json_object(req.body)
        model = data.get("model", default_model)
        if not isinstance(model, str) or not model:
            raise _bad("Invalid type for 'model': expected a string.", "model", "invalid_type")
        value = data.get("input")
        if value is not None and not isinstance(value, str | list):
            raise _bad(
                "Invalid type for 'input': expected a string or an array.", "input", "invalid_type"
            )
        instructions = data.get("instructions")
        if instructions is not None and not isinstance(instructions, str):
            raise _bad(
                "Invalid type for 'instructions': expected a string.",
                "instructions",
                "invalid_type",
            )
        stream = data.get("stream", False)
        if not isinstance(stream, bool):
            raise _bad("Invalid type for 'stream': expected a boolean.", "stream", "invalid_type")
        max_tokens = data.get("max_output_tokens")
        if max_tokens is not None:
            if not positive_int(max_tokens):
                raise _bad(
                    "Invalid type for 'max_output_tokens': expected an integer.",
                    "max_output_tokens",
                    "invalid_type",
                )
            if max_tokens < MIN_OUTPUT_TOKENS:
                raise _bad(
                    "Invalid 'max_output_tokens': integer below minimum value. Expected a "
                    f"value >= {MIN_OUTPUT_TOKENS}, but got {max_tokens} instead.",
                    "max_output_tokens",
                    "integer_below_min_value",
                )
        options = data.get("stream_options") or {}
        if not isinstance(options, dict):
            raise _bad("Invalid type for 'stream_options': expected an object.", "stream_options")
        texts = _input_texts(value)
        if instructions:
            texts.append(instructions)
        return ParsedRequest(
            model=model,
            stream=stream,
            max_tokens=max_tokens,
            prompt_tokens=tokens_for(texts),
            obfuscation=options.get("include_obfuscation") is not False,
            instructions=instructions,
        )

    def error_reply(self, error: HttpError, ex: Exchange) -> Reply:
        return openai_error_reply(error, ex)

    def fault_reply(self, fault: ReplyFault, parsed: ParsedRequest, ex: Exchange) -> Reply:
        return openai_fault_reply(fault, ex)

    def stream_head(self, parsed: ParsedRequest, ex: Exchange, processing_ms: int) -> StreamHead:
        return StreamHead(
            "text/event-stream; charset=utf-8",
            (
                ("openai-version", "2020-10-01"),
                ("openai-processing-ms", str(processing_ms)),
                ("x-request-id", request_id(ex)),
            ),
        )

    def renderer(self, parsed: ParsedRequest, ex: Exchange, timing: Timing) -> StreamRenderer:
        return _ResponsesStream(parsed, ex)

    def completion(
        self,
        parsed: ParsedRequest,
        ex: Exchange,
        n: int,
        finish: FinishReason,
        processing_ms: int,
        timing: Timing,
    ) -> Reply:
        status, incomplete = _final_status(finish)
        item = _message(
            ex,
            "completed" if incomplete is None else "incomplete",
            [_output_text(completion_text(n))],
        )
        obj = response_object(
            parsed,
            ex,
            status=status,
            output=[item],
            usage=usage_object(parsed.prompt_tokens, n),
            incomplete=incomplete,
        )
        # The API pretty-prints non-streamed bodies.
        body = json.dumps(obj, indent=2, ensure_ascii=False).encode()
        headers = (("x-request-id", request_id(ex)), ("openai-processing-ms", str(processing_ms)))
        return Reply(200, body, headers=headers)

"""Azure OpenAI Chat Completions on the wire (docs/wire-formats.md sections 3 and 8).

Routes: ``POST /openai/deployments/{deployment}/chat/completions?api-version=...`` (the
deployment picks the model: the response reports the server's ``--model``) and
``POST /openai/v1/chat/completions`` (no api-version; ``model`` names the deployment).
Auth: ``api-key`` or ``Authorization: Bearer``.

The stream is OpenAI's framing with Azure's content: a first chunk with
``prompt_filter_results`` and empty ``choices``/``id``/``model``/``object``, then chunks
whose every choice has ``content_filter_results`` and whose keys are sorted (Azure
re-serialises), the usage chunk only with ``include_usage``, and ``[DONE]``.  Azure's own
errors (401, 404, 429) use its ``{"error": {"code": "<status>", "message"}}`` shape; the
rest is OpenAI's envelope, which Azure passes through.
"""

from __future__ import annotations

import dataclasses
import json
import re
import urllib.parse
from typing import Any, ClassVar

from lens.sim.http import CHUNK_END, HttpError, Request, frame_chunk
from lens.sim.openai_chat import (
    DONE_CHUNK,
    MIDSTREAM_ERROR_CHUNK,
    chat_to_parsed,
    completion_text,
    openai_error_reply,
    openai_fault_reply,
    parse_chat_request,
)
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
    method_not_allowed,
)
from lens.sim.text import OBFUSCATIONS, VOCAB_JSON, cycle

_OBFUSCATIONS: tuple[bytes, ...] = tuple(b',"obfuscation":"%b"' % o.encode() for o in OBFUSCATIONS)

_DEPLOYMENT_ROUTE = re.compile(r"/openai/deployments/([^/]+)/chat/completions")
V1_PATH = "/openai/v1/chat/completions"
REGION = "lens-sim"
NOT_FOUND_BODY = b'{"error":{"code":"404","message": "Resource not found"}}'  # sic: one space
UNAUTHORIZED_MESSAGE = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
    "provide a valid key for an active subscription and use a correct regional API "
    "endpoint for your resource."
)
_SAFE = {"filtered": False, "severity": "safe"}
CONTENT_FILTER_RESULTS: dict[str, Any] = {
    "hate": _SAFE,
    "self_harm": _SAFE,
    "sexual": _SAFE,
    "violence": _SAFE,
}
PROMPT_FILTER_RESULTS: list[Any] = [
    {
        "prompt_index": 0,
        "content_filter_results": {
            "hate": _SAFE,
            "jailbreak": {"filtered": False, "detected": False},
            "self_harm": _SAFE,
            "sexual": _SAFE,
            "violence": _SAFE,
        },
    }
]
_PROMPT_FILTER_CHUNK = frame_chunk(
    b'data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":'
    + compact(PROMPT_FILTER_RESULTS)
    + b"}\n\n"
)
_FILTERS = compact(CONTENT_FILTER_RESULTS)


class _AzureChatStream(StreamRenderer):
    __slots__ = ("_cycle", "_include_usage", "_obfuscation", "_prompt_tokens", "_tail")

    def __init__(self, parsed: ParsedRequest, completion_id: str, created: int) -> None:
        self._include_usage = parsed.include_usage
        self._prompt_tokens = parsed.prompt_tokens
        self._obfuscation = parsed.obfuscation
        # Everything after "choices", minus obfuscation and usage: sorted keys.
        self._tail = b',"created":%d,"id":%b,"model":%b' % (
            created,
            compact(completion_id),
            compact(parsed.model),
        )
        self._cycle: list[bytes] = []
        role = (
            b'{"content_filter_results":{},"delta":{"content":"","refusal":null,'
            b'"role":"assistant"},"finish_reason":null,"index":0,"logprobs":null}'
        )
        super().__init__(_PROMPT_FILTER_CHUNK + self._chunk(role, 0))

    def _chunk(self, choice: bytes, k: int, usage: bytes = b"null") -> bytes:
        choices = b"[%b]" % choice if choice else b"[]"
        obfuscation = _OBFUSCATIONS[k % len(_OBFUSCATIONS)] if self._obfuscation else b""
        return frame_chunk(
            b'data: {"choices":%b%b%b,"object":"chat.completion.chunk",'
            b'"system_fingerprint":null,"usage":%b}\n\n' % (choices, self._tail, obfuscation, usage)
        )

    def tokens(self, count: int) -> list[bytes]:
        unit = self._cycle
        while len(unit) < min(count, len(VOCAB_JSON)):
            k = len(unit)
            choice = (
                b'{"content_filter_results":%b,"delta":{"content":%b},"finish_reason":null,'
                b'"index":0,"logprobs":null}' % (_FILTERS, VOCAB_JSON[k])
            )
            unit.append(self._chunk(choice, k + 1))
        return cycle(count, unit)

    def suffix(self, n: int, finish: FinishReason) -> bytes:
        choice = (
            b'{"content_filter_results":{},"delta":{},"finish_reason":"%b","index":0,'
            b'"logprobs":null}' % finish.encode()
        )
        trailer = self._chunk(choice, 2)
        if self._include_usage:
            p = self._prompt_tokens
            usage = (
                b'{"completion_tokens":%d,"completion_tokens_details":{'
                b'"accepted_prediction_tokens":0,"audio_tokens":0,"reasoning_tokens":0,'
                b'"rejected_prediction_tokens":0},"prompt_tokens":%d,"prompt_tokens_details":'
                b'{"audio_tokens":0,"cached_tokens":0},"total_tokens":%d}' % (n, p, p + n)
            )
            trailer += self._chunk(b"", 3, usage)
        return trailer + DONE_CHUNK + CHUNK_END

    def midstream_error(self, sent: int) -> bytes:
        return MIDSTREAM_ERROR_CHUNK + CHUNK_END


def _azure_error(status: int, message: str) -> bytes:
    return compact({"error": {"code": str(status), "message": message}})


def _request_headers(ex: Exchange) -> Headers:
    return (("apim-request-id", ex.uuid), ("x-request-id", ex.uuid), ("x-ms-region", REGION))


class AzureOpenAIChat(SimProtocol):
    name: ClassVar[str] = "azure-openai"

    def parse_request(self, req: Request, default_model: str) -> ParsedRequest:
        query = req.query()
        match = _DEPLOYMENT_ROUTE.fullmatch(req.path)
        if match is not None:
            api_version = query.get("api-version", "")
            if not api_version:
                raise HttpError(404, "Resource not found")
        elif req.path == V1_PATH:
            api_version = "v1"
        else:
            raise HttpError(404, "Resource not found")
        if req.method != "POST":
            raise method_not_allowed(req)
        if not req.headers.get("api-key") and not bearer(req.headers):
            raise HttpError(401, UNAUTHORIZED_MESSAGE)
        chat = parse_chat_request(req.body, default_model)
        if match is not None:
            # The deployment decides the model; the body's model is ignored.
            chat = dataclasses.replace(chat, model=default_model)
            variant = f"deployments/{urllib.parse.unquote(match.group(1))}"
        else:
            variant = "v1"
        return chat_to_parsed(chat, variant=variant, api_version=api_version)

    def error_reply(self, error: HttpError, ex: Exchange) -> Reply:
        if error.status == 404:
            body = NOT_FOUND_BODY
        elif error.status == 401:
            body = _azure_error(401, error.message)
        else:
            return openai_error_reply(error, ex)
        return Reply(error.status, body, headers=(*error.headers, *_request_headers(ex)))

    def fault_reply(self, fault: ReplyFault, parsed: ParsedRequest, ex: Exchange) -> Reply:
        if fault != "429":
            reply = openai_fault_reply(fault, ex)
            return Reply(reply.status, reply.body, headers=_request_headers(ex))
        message = (
            f"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
            f"{parsed.api_version} have exceeded token rate limit of your current OpenAI S0 "
            "pricing tier (simulated by lens-sim). Please retry after 1 second. Please go here: "
            "https://aka.ms/oai/quotaincrease if you would like to further increase the "
            "default rate limit."
        )
        headers = (
            ("retry-after", "1"),
            ("retry-after-ms", "1000"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-remaining-tokens", "0"),
            *_request_headers(ex),
        )
        return Reply(429, _azure_error(429, message), headers=headers)

    def stream_head(self, parsed: ParsedRequest, ex: Exchange, processing_ms: int) -> StreamHead:
        return StreamHead(
            "text/event-stream; charset=utf-8",
            (
                *_request_headers(ex),
                ("x-ratelimit-remaining-requests", "999"),
                ("x-ratelimit-remaining-tokens", "999000"),
                ("x-content-type-options", "nosniff"),
            ),
        )

    def renderer(self, parsed: ParsedRequest, ex: Exchange, timing: Timing) -> StreamRenderer:
        return _AzureChatStream(parsed, f"chatcmpl-sim{ex.hex}", ex.created)

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
        payload = {
            "choices": [
                {
                    "content_filter_results": CONTENT_FILTER_RESULTS,
                    "finish_reason": finish,
                    "index": 0,
                    "logprobs": None,
                    "message": {
                        "annotations": [],
                        "content": completion_text(n),
                        "refusal": None,
                        "role": "assistant",
                    },
                }
            ],
            "created": ex.created,
            "id": f"chatcmpl-sim{ex.hex}",
            "model": parsed.model,
            "object": "chat.completion",
            "prompt_filter_results": PROMPT_FILTER_RESULTS,
            "system_fingerprint": None,
            "usage": {
                "completion_tokens": n,
                "completion_tokens_details": {
                    "accepted_prediction_tokens": 0,
                    "audio_tokens": 0,
                    "reasoning_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
                "prompt_tokens": p,
                "prompt_tokens_details": {"audio_tokens": 0, "cached_tokens": 0},
                "total_tokens": p + n,
            },
        }
        body = json.dumps(payload, separators=(",", ":")).encode()
        return Reply(200, body, headers=_request_headers(ex))

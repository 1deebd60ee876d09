"""OpenAI Chat Completions on the wire: request interpretation and pre-rendered chunks.

Byte layout follows docs/wire-formats.md section 1 (``data: <json>\\n\\n`` per event,
``data: [DONE]`` last, usage in an extra ``choices: []`` chunk only on request).  Every
per-request JSON fragment is rendered once in ``ChunkRenderer.__init__``; a content chunk
is a concatenation of those bytes with a pre-encoded vocabulary word, done once per
distinct word, and the token list is that cycle repeated: no per-token formatting.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

from lens.sim.http import HttpError, error_body, frame_chunk

FinishReason = Literal["stop", "length"]

# Deterministic output text: token k is VOCAB[k % len(VOCAB)].  Short ASCII words, each
# one "token", so a client counting deltas and a client reading usage agree.
_LOREM = (
    "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis "
    "nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat."
)
VOCAB: tuple[str, ...] = tuple(f"{w} " for w in _LOREM.split(" "))
_VOCAB_JSON: tuple[bytes, ...] = tuple(json.dumps(w).encode() for w in VOCAB)

DONE_CHUNK = frame_chunk(b"data: [DONE]\n\n")
MIDSTREAM_ERROR_MESSAGE = "The server had an error while streaming the response (lens-sim)."
MIDSTREAM_ERROR_CHUNK = frame_chunk(
    b"data: " + error_body(MIDSTREAM_ERROR_MESSAGE, "server_error") + b"\n\n"
)


def completion_text(n: int) -> str:
    """The text of an ``n``-token completion (what the streamed deltas concatenate to)."""
    v = len(VOCAB)
    return "".join(VOCAB[k % v] for k in range(n))


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    stream: bool
    include_usage: bool
    max_tokens: int | None  # max_completion_tokens wins over the legacy max_tokens
    prompt_tokens: int


def _bad(message: str, param: str | None = None) -> HttpError:
    return HttpError(400, message if param is None else f"{param}: {message}")


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": "..."}]
        return "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def estimate_prompt_tokens(messages: list[Any]) -> int:
    """About four characters per token over the message texts, at least 1."""
    chars = sum(len(_text_of(m.get("content"))) for m in messages if isinstance(m, dict))
    return max(1, math.ceil(chars / 4))


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
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise _bad("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _bad("the request body must be a JSON object")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("expected a non-empty array of messages", "messages")
    model = data.get("model", default_model)
    if not isinstance(model, str) or not model:
        raise _bad("expected a non-empty string", "model")
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad(f"expected a boolean, got {stream!r}", "stream")
    options = data.get("stream_options") or {}
    if not isinstance(options, dict):
        raise _bad("expected an object", "stream_options")
    return ChatRequest(
        model=model,
        stream=stream,
        include_usage=options.get("include_usage") is True,
        max_tokens=_max_tokens(data),
        prompt_tokens=estimate_prompt_tokens(messages),
    )


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
        cycle = self._cycle
        v = len(_VOCAB_JSON)
        while len(cycle) < min(n, v):
            word = _VOCAB_JSON[len(cycle)]
            cycle.append(frame_chunk(self._content_pre + word + self._CONTENT_POST))
        if n <= len(cycle):
            return cycle[:n]
        return (cycle * (n // v + 1))[:n]

    def finish(self, reason: FinishReason) -> bytes:
        return frame_chunk(
            self._head
            + b',"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"%b"}],'
            b'"usage":null}\n\n' % reason.encode()
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

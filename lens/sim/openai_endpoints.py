"""OpenAI's ``/v1/completions`` and ``/v1/embeddings`` on the simulator (the chat protocol
routes them here: ``lens.sim.openai_chat.OpenAIChat``).

``/v1/completions`` streams ``data: {"object": "text_completion", "choices": [{"text": ...}]}``
events, a finish chunk, the usage chunk when ``stream_options.include_usage`` asks, and
``data: [DONE]``; not streamed, one ``text_completion`` object.  ``/v1/embeddings`` answers
one ``list`` of embeddings, one per input, once the simulated first token would be due (an
embedding is a prefill: no output tokens).
"""

from __future__ import annotations

import json
import math
from typing import Any

from lens.sim.http import CHUNK_END, HttpError, frame_chunk
from lens.sim.protocol_base import FinishReason, ParsedRequest, StreamRenderer, compact
from lens.sim.text import VOCAB_JSON, completion_text, cycle, tokens_for

COMPLETIONS_PATH = "/v1/completions"
EMBEDDINGS_PATH = "/v1/embeddings"
EMBEDDING_DIMENSIONS = 8  # small: the simulator measures latency, not meaning
DONE_CHUNK = frame_chunk(b"data: [DONE]\n\n")


def _bad(message: str, param: str) -> HttpError:
    return HttpError(400, f"{param}: {message}")


def completions_prompt(data: dict[str, Any]) -> str:
    """The ``prompt`` of a completions request: a string or an array of strings."""
    prompt = data.get("prompt")
    if isinstance(prompt, str) and prompt:
        return prompt
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return "".join(prompt)
    raise _bad("expected a non-empty string or array of strings", "prompt")


def embedding_inputs(data: dict[str, Any]) -> list[str]:
    """The ``input`` of an embeddings request: a string or a non-empty array of strings."""
    value = data.get("input")
    if isinstance(value, str) and value:
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    raise _bad("expected a non-empty string or array of strings", "input")


def parse_embeddings(data: dict[str, Any], model: str) -> ParsedRequest:
    inputs = embedding_inputs(data)
    return ParsedRequest(
        model=model,
        stream=False,
        max_tokens=1,  # answered when the first token would be due: the prefill's time
        prompt_tokens=tokens_for(inputs),
        variant="embeddings",
        inputs=len(inputs),
    )


class TextCompletionStream(StreamRenderer):
    """A streamed ``/v1/completions`` response, pre-rendered like chat's."""

    __slots__ = ("_cycle", "_error", "_head", "_include_usage", "_pre", "_prompt_tokens")

    _POST = b',"index":0,"logprobs":null,"finish_reason":null}]}\n\n'

    def __init__(
        self, parsed: ParsedRequest, completion_id: str, created: int, error_chunk: bytes
    ) -> None:
        self._error = error_chunk  # chat's in-band error event, framed
        self._head = b'data: {"id":%b,"object":"text_completion","created":%d,"model":%b' % (
            json.dumps(completion_id).encode(),
            created,
            json.dumps(parsed.model).encode(),
        )
        self._pre = self._head + b',"choices":[{"text":'
        self._cycle: list[bytes] = []
        self._include_usage = parsed.include_usage
        self._prompt_tokens = parsed.prompt_tokens
        super().__init__(b"")  # no role chunk: the first event carries the first token

    def tokens(self, count: int) -> list[bytes]:
        unit = self._cycle
        while len(unit) < min(count, len(VOCAB_JSON)):
            unit.append(frame_chunk(self._pre + VOCAB_JSON[len(unit)] + self._POST))
        return cycle(count, unit)

    def suffix(self, n: int, finish: FinishReason) -> bytes:
        out = frame_chunk(
            self._pre
            + b'"","index":0,"logprobs":null,"finish_reason":"%b"}]}\n\n' % finish.encode()
        )
        if self._include_usage:
            p = self._prompt_tokens
            out += frame_chunk(
                self._head + b',"choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,'
                b'"total_tokens":%d}}\n\n' % (p, n, p + n)
            )
        return out + DONE_CHUNK + CHUNK_END

    def midstream_error(self, sent: int) -> bytes:
        return self._error + CHUNK_END


def text_completion_body(
    completion_id: str, created: int, parsed: ParsedRequest, n: int, finish: FinishReason
) -> bytes:
    p = parsed.prompt_tokens
    return compact(
        {
            "id": completion_id,
            "object": "text_completion",
            "created": created,
            "model": parsed.model,
            "choices": [
                {"text": completion_text(n), "index": 0, "logprobs": None, "finish_reason": finish}
            ],
            "usage": {"prompt_tokens": p, "completion_tokens": n, "total_tokens": p + n},
        }
    )


def embeddings_body(parsed: ParsedRequest) -> bytes:
    """One unit vector per input, the same for every input (deterministic)."""
    vector = [round(1 / math.sqrt(EMBEDDING_DIMENSIONS), 6)] * EMBEDDING_DIMENSIONS
    p = parsed.prompt_tokens
    return compact(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": vector}
                for i in range(parsed.inputs)
            ],
            "model": parsed.model,
            "usage": {"prompt_tokens": p, "total_tokens": p},
        }
    )

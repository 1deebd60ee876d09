"""The OpenAI chat decoder keeps the finish reason, wherever the server puts it, without
parsing the plain deltas that carry none."""

from __future__ import annotations

from lens.providers.openai_chat import OpenAIChatDecoder

HEAD = b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":'


def chunk(content: str, finish: str | None) -> bytes:
    reason = "null" if finish is None else f'"{finish}"'
    return HEAD + (
        b'[{"index":0,"delta":{"content":"%b"},"logprobs":null,"finish_reason":%b}]}\n\n'
        % (content.encode(), reason.encode())
    )


def decode(body: bytes) -> dict[str, str]:
    decoder = OpenAIChatDecoder()
    for i in range(0, len(body), 7):  # reads that split events anywhere
        decoder.feed(body[i : i + 7], i)
    out = decoder.finish(len(body), eof=True)
    assert out.error_class is None
    return out.extra


def test_the_last_token_may_carry_the_finish_reason_vllm() -> None:
    body = b"".join(chunk(w, None) for w in ("a", "b", "c")) + chunk("d", "length")
    assert decode(body + b"data: [DONE]\n\n") == {"stop_reason": "length"}


def test_a_finish_chunk_of_its_own_openai() -> None:
    body = b"".join(chunk(w, None) for w in ("a", "b"))
    finish = HEAD + b'[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}\n\n'
    assert decode(body + finish + b"data: [DONE]\n\n") == {"stop_reason": "stop"}


def test_no_finish_reason_means_none_is_kept() -> None:
    body = b"".join(chunk(w, None) for w in ("a", "b"))
    assert decode(body + b"data: [DONE]\n\n") == {}

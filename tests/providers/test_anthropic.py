"""Anthropic Messages streams, on hand-written bytes modelled on wire-formats.md §4."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lens.plan.model import AnthropicSettings, Message, PromptSpec, ProviderSpec, Secret
from lens.providers.anthropic import (
    DEFAULT_MAX_TOKENS,
    AnthropicAdapter,
    AnthropicDecoder,
)
from lens.providers.base import MaskedHeaders, StreamOutcome
from lens.providers.registry import adapter_for
from lens.records import ErrorClass, TokenSource

KEY = "sk-ant-secret-123"


def ev(name: str, obj: Mapping[str, object], pad: str = "") -> bytes:
    """One SSE event as Anthropic frames it, JSON compact and optionally space-padded."""
    return f"event: {name}\ndata: {json.dumps(obj, separators=(',', ':'))}{pad}\n\n".encode()


def message_start(inp: int = 5, cache_read: int = 0, cache_write: int = 0) -> bytes:
    usage = {
        "input_tokens": inp,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": cache_write,
            "ephemeral_1h_input_tokens": 0,
        },
        "output_tokens": 1,
        "service_tier": "standard",
    }
    message: dict[str, object] = {
        "model": "claude-x",
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [],
        "stop_reason": None,
        "usage": usage,
    }
    return ev("message_start", {"type": "message_start", "message": message}, " " * 12)


def block_start(index: int, kind: str) -> bytes:
    block: dict[str, object] = {"type": kind}
    if kind == "text":
        block["text"] = ""
    elif kind == "thinking":
        block.update(thinking="", signature="")
    else:
        block.update(id="toolu_1", name="get_weather", input={})
    obj = {"type": "content_block_start", "index": index, "content_block": block}
    return ev("content_block_start", obj, " " * 10)


def delta(index: int, kind: str, field: str, value: str, pad: str = "      ") -> bytes:
    obj = {"type": "content_block_delta", "index": index, "delta": {"type": kind, field: value}}
    return ev("content_block_delta", obj, pad)


def text(value: str, index: int = 1) -> bytes:
    return delta(index, "text_delta", "text", value)


def thinking(value: str, index: int = 0) -> bytes:
    return delta(index, "thinking_delta", "thinking", value)


def block_stop(index: int) -> bytes:
    return ev("content_block_stop", {"type": "content_block_stop", "index": index}, " " * 15)


PING = b'event: ping\ndata: {"type": "ping"}\n\n'


def message_delta(output: int, stop: str = "end_turn", **usage: int) -> bytes:
    obj = {
        "type": "message_delta",
        "delta": {"stop_reason": stop, "stop_sequence": None},
        "usage": {**usage, "output_tokens": output},
    }
    return ev("message_delta", obj, " " * 6)


MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"         }\n\n'


def error_event(kind: str, message: str) -> bytes:
    obj = {"type": "error", "error": {"details": None, "type": kind, "message": message}}
    return ev("error", obj, " ")


def full_stream() -> list[bytes]:
    """A thinking block, then text: one event per element."""
    return [
        message_start(inp=5, cache_read=100, cache_write=20),
        block_start(0, "thinking"),
        PING,
        thinking("Let me"),
        thinking(" think."),
        thinking(""),
        delta(0, "signature_delta", "signature", "EvMCabc"),
        block_stop(0),
        block_start(1, "text"),
        text("Hello"),
        text(", world"),
        block_stop(1),
        message_delta(40),
        MESSAGE_STOP,
    ]


def run(parts: list[bytes], stamps: list[int] | None = None, *, eof: bool = True) -> StreamOutcome:
    dec = AnthropicDecoder()
    for i, part in enumerate(parts):
        dec.feed(part, stamps[i] if stamps else 10 * (i + 1))
    return dec.finish(10_000, eof=eof)


def test_thinking_then_text_usage_and_timing() -> None:
    out = run(full_stream())
    assert out.error_class is None
    # thinking deltas at 40, 50 (the empty one at 60 is not a token); text at 100, 110
    assert out.chunk_times == (40, 50, 100, 110)
    assert out.t_first_token == 40
    assert out.t_first_visible == 100
    assert out.t_first_token < out.t_first_visible
    assert out.t_last_token == 110
    # input_tokens excludes cache on the wire; lens input includes it (§9).
    assert out.usage.input_tokens == 125
    assert out.usage.cached_input_tokens == 100
    assert out.usage.cache_write_tokens == 20
    assert out.usage.output_tokens == 40
    assert out.usage.reasoning_tokens is None
    assert out.token_source is TokenSource.USAGE
    assert sum(out.chunk_tokens) == 40
    assert out.extra == {"stop_reason": "end_turn"}
    assert out.events == 14


def test_events_in_one_read_share_its_stamp() -> None:
    out = run([b"".join(full_stream())], [7])
    assert out.chunk_times == (7, 7, 7, 7)
    assert out.error_class is None


@pytest.mark.parametrize("seed", range(20))
def test_split_at_awkward_boundaries(seed: int) -> None:
    whole = b"".join(full_stream())
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(whole)), 40))
    parts = [whole[a:b] for a, b in zip([0, *cuts], [*cuts, len(whole)], strict=True)]
    dec = AnthropicDecoder()
    for i, part in enumerate(parts):
        dec.feed(part, i)
    out = dec.finish(999, eof=True)
    assert out.error_class is None
    assert len(out.chunk_times) == 4
    assert out.usage.output_tokens == 40
    # each token is stamped with the read that completed its event
    ends = [
        whole.find(b"\n\n", whole.find(s)) + 2 for s in (b"Let me", b" think.", b"Hello", b", w")
    ]
    bounds = [*cuts, len(whole)]
    assert list(out.chunk_times) == [next(i for i, b in enumerate(bounds) if b >= e) for e in ends]


def test_byte_by_byte() -> None:
    whole = b"".join(full_stream())
    dec = AnthropicDecoder()
    for i in range(len(whole)):
        dec.feed(whole[i : i + 1], i)
    out = dec.finish(len(whole), eof=True)
    assert out.error_class is None
    assert len(out.chunk_times) == 4


def test_spaced_json_takes_the_full_path() -> None:
    spaced = (
        b"event: content_block_delta\n"
        b'data: {"type": "content_block_delta", "index": 0, '
        b'"delta": {"type": "text_delta", "text": "hi there"}}   \n\n'
    )
    out = run([message_start(), spaced, message_delta(2), MESSAGE_STOP])
    assert out.chunk_times == (20,)
    assert out.error_class is None


def test_event_without_event_line_uses_the_json_type() -> None:
    obj = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}}
    bare = b"data: " + json.dumps(obj).encode() + b"\n\n"
    stop = b'data: {"type": "message_stop"}\n\n'
    out = run([message_start(), bare, message_delta(1), stop])
    assert out.chunk_times == (20,)
    assert out.error_class is None


def test_tool_input_json_deltas_are_visible_tokens() -> None:
    parts = [
        message_start(),
        block_start(0, "tool_use"),
        delta(0, "input_json_delta", "partial_json", ""),
        delta(0, "input_json_delta", "partial_json", '{"city": '),
        delta(0, "input_json_delta", "partial_json", '"Paris"}'),
        block_stop(0),
        message_delta(12, stop="tool_use"),
        MESSAGE_STOP,
    ]
    out = run(parts)
    assert out.chunk_times == (40, 50)
    assert out.t_first_visible == 40
    assert out.extra == {"stop_reason": "tool_use"}


def test_unknown_events_and_deltas_carry_no_token() -> None:
    parts = [
        message_start(),
        ev("future_event", {"type": "future_event", "x": 1}),
        delta(1, "citations_delta", "citation", "c"),
        ev("content_block_delta", {"type": "content_block_delta", "delta": "odd"}),
        ev("content_block_start", {"type": "content_block_start", "content_block": None}),
        b"event: ping\ndata: [1, 2]\n\n",
        text("ok"),
        message_delta(1),
        MESSAGE_STOP,
    ]
    out = run(parts)
    assert out.chunk_times == (70,)
    assert out.error_class is None


def test_a_block_that_starts_with_text_counts() -> None:
    block = {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": "Hi"},
    }
    out = run([message_start(), ev("content_block_start", block), message_delta(1), MESSAGE_STOP])
    assert out.chunk_times == (20,)
    assert out.t_first_visible == 20


def test_message_delta_repeating_input_fields_wins() -> None:
    parts = [
        message_start(inp=9),
        text("a"),
        message_delta(3, input_tokens=10, cache_read_input_tokens=4, cache_creation_input_tokens=2),
        MESSAGE_STOP,
    ]
    out = run(parts)
    assert out.usage.input_tokens == 16
    assert out.usage.cached_input_tokens == 4
    assert out.usage.cache_write_tokens == 2


def test_no_message_delta_means_estimated_output() -> None:
    out = run([message_start(), text("abcdefgh"), MESSAGE_STOP])
    assert out.error_class is None
    assert out.token_source is TokenSource.ESTIMATED
    assert out.usage.output_tokens == 2  # ~4 characters per token
    assert out.usage.input_tokens == 5


def test_no_usage_at_all() -> None:
    out = run([text("abcd"), MESSAGE_STOP])
    assert out.usage.input_tokens is None
    assert out.usage.cached_input_tokens is None


def test_mid_stream_overloaded_error() -> None:
    out = run(
        [
            message_start(),
            block_start(1, "text"),
            PING,
            text("2"),
            error_event("overloaded_error", "Overloaded"),
        ]
    )
    assert out.error_class is ErrorClass.OVERLOADED
    assert out.error_message == "Overloaded"
    assert out.t_first_token == 40
    assert out.extra == {}


def test_mid_stream_other_error_is_stream_error() -> None:
    out = run([message_start(), text("2"), error_event("api_error", "Internal server error")])
    assert out.error_class is ErrorClass.STREAM_ERROR
    assert out.error_message == "Internal server error"


def test_first_error_wins() -> None:
    out = run([error_event("api_error", "first"), error_event("overloaded_error", "second")])
    assert out.error_class is ErrorClass.STREAM_ERROR
    assert out.error_message == "first"


def test_error_with_top_level_fields() -> None:
    out = run([ev("error", {"type": "error", "message": "flat"})])
    assert out.error_class is ErrorClass.STREAM_ERROR
    assert out.error_message == "flat"


def test_cut_stream_without_message_stop() -> None:
    parts = [message_start(), text("a"), message_delta(1)]
    out = run(parts)
    assert out.error_class is ErrorClass.CUT_STREAM
    assert out.error_message == "stream ended before message_stop"
    lost = run(parts, eof=False)
    assert lost.error_class is ErrorClass.CUT_STREAM
    assert lost.error_message == "connection lost mid-stream"


def test_connection_lost_after_message_stop_is_still_cut() -> None:
    out = run([message_start(), text("a"), message_delta(1), MESSAGE_STOP], eof=False)
    assert out.error_class is ErrorClass.CUT_STREAM


def test_empty_stream_and_empty_body() -> None:
    out = run(
        [message_start(), block_start(0, "text"), block_stop(0), message_delta(0), MESSAGE_STOP]
    )
    assert out.error_class is ErrorClass.EMPTY
    assert out.t_first_token is None
    assert out.usage.output_tokens == 0
    nothing = run([])
    assert nothing.error_class is ErrorClass.CUT_STREAM
    assert nothing.events == 0


def test_unparseable_event_is_a_stream_error() -> None:
    out = run([message_start(), text("a"), b"event: message_delta\ndata: {nope\n\n", MESSAGE_STOP])
    assert out.error_class is ErrorClass.STREAM_ERROR
    assert out.error_message is not None
    assert out.error_message.startswith("unparseable event")


def test_truncated_fast_path_marker_falls_back() -> None:
    out = run([b'event: content_block_delta\ndata: {"type":"text_delta","text":"\n\n'])
    assert out.error_class is ErrorClass.STREAM_ERROR


@given(st.text(max_size=40))
def test_fast_path_agrees_with_the_json_path(value: str) -> None:
    compact = text(value)
    obj = {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "text_delta", "text": value},
    }
    spaced = b"event: content_block_delta\ndata: " + json.dumps(obj).encode() + b"\n\n"
    fast, slow = AnthropicDecoder(), AnthropicDecoder()
    fast.feed(compact, 3)
    slow.feed(spaced, 3)
    a, b = fast.finish(4, eof=False), slow.finish(4, eof=False)
    assert a.chunk_times == b.chunk_times == ((3,) if value else ())


# -- requests ---------------------------------------------------------------------------


def spec(**kw: object) -> ProviderSpec:
    base: dict[str, object] = {
        "id": "claude",
        "type": "anthropic",
        "model": "claude-sonnet-4-5",
        "base_url": None,
        "api_key": Secret(KEY, "${ANTHROPIC_API_KEY}"),
        "settings": AnthropicSettings(),
    }
    base.update(kw)
    return ProviderSpec(**base)  # type: ignore[arg-type]


PROMPT = PromptSpec(
    id="q",
    messages=(
        Message("system", "Be brief."),
        Message("user", "hi"),
        Message("assistant", "hello"),
        Message("system", "Use English."),
        Message("user", "and?"),
    ),
)


def test_request_url_headers_and_body() -> None:
    adapter = AnthropicAdapter(spec(headers=(("anthropic-beta", "x-2025"),)))
    req = adapter.build_request(PROMPT, 64)
    assert req.method == "POST"
    assert str(req.url) == "https://api.anthropic.com/v1/messages"
    assert req.headers["x-api-key"] == KEY
    assert req.headers["anthropic-version"] == "2023-06-01"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["accept"] == "text/event-stream"
    assert req.headers["accept-encoding"] == "identity"
    assert req.headers["anthropic-beta"] == "x-2025"
    assert "authorization" not in req.headers
    assert json.loads(req.content) == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "and?"},
        ],
        "system": "Be brief.\n\nUse English.",
        "stream": True,
    }


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("https://api.anthropic.com", "https://api.anthropic.com/v1/messages"),
        ("https://proxy.local/anthropic/", "https://proxy.local/anthropic/v1/messages"),
        ("https://proxy.local/v1", "https://proxy.local/v1/messages"),
        ("http://127.0.0.1:8080/v1/", "http://127.0.0.1:8080/v1/messages"),
    ],
)
def test_base_url_is_not_doubled(base: str, url: str) -> None:
    assert str(AnthropicAdapter(spec(base_url=base)).build_request(PROMPT, 1).url) == url


def test_max_tokens_defaults_and_prompt_wins() -> None:
    adapter = AnthropicAdapter(spec(settings=AnthropicSettings(version="2099-01-01"), api_key=None))
    plain = PromptSpec(id="p", messages=(Message("user", "x"),))
    req = adapter.build_request(plain, None)
    body = json.loads(req.content)
    assert body["max_tokens"] == DEFAULT_MAX_TOKENS == 1024
    assert "system" not in body
    assert "x-api-key" not in req.headers
    assert req.headers["anthropic-version"] == "2099-01-01"
    own = PromptSpec(id="p", messages=(Message("user", "x"),), max_tokens=7)
    assert json.loads(adapter.build_request(own, 500).content)["max_tokens"] == 7


def test_no_secret_in_any_repr() -> None:
    adapter = AnthropicAdapter(spec())
    req = adapter.build_request(PROMPT, 8)
    for shown in (
        repr(adapter),
        str(adapter),
        repr(req),
        str(req),
        repr(req.headers),
        str(req.headers),
    ):
        assert KEY not in shown
    assert "[secure]" in repr(req.headers)
    assert isinstance(req.headers, MaskedHeaders)
    dec = adapter.new_decoder(PROMPT)
    dec.feed(error_event("authentication_error", "invalid x-api-key"), 1)
    assert KEY not in repr(dec.finish(2, eof=True))
    _, msg = adapter.classify_http_error(401, httpx.Headers(), b'{"type":"error"}')
    assert KEY not in msg


def test_new_decoder_is_fresh_each_time() -> None:
    adapter = AnthropicAdapter(spec())
    a, b = adapter.new_decoder(PROMPT), adapter.new_decoder(PROMPT)
    assert a is not b
    assert isinstance(a, AnthropicDecoder)


def test_registry_knows_anthropic() -> None:
    assert isinstance(adapter_for(spec()), AnthropicAdapter)


# -- HTTP errors ------------------------------------------------------------------------


def body(kind: str, message: str) -> bytes:
    obj = {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_1"}
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("status", "payload", "cls", "message"),
    [
        (
            429,
            body("rate_limit_error", "Number of requests exceeded"),
            ErrorClass.HTTP_429,
            "HTTP 429: Number of requests exceeded",
        ),
        (
            529,
            body("overloaded_error", "Overloaded"),
            ErrorClass.OVERLOADED,
            "HTTP 529: Overloaded",
        ),
        (
            503,
            body("overloaded_error", "Overloaded"),
            ErrorClass.OVERLOADED,
            "HTTP 503: Overloaded",
        ),
        (502, b"upstream connect error", ErrorClass.HTTP_5XX, "HTTP 502: upstream connect error"),
        (
            400,
            body("invalid_request_error", "max_tokens: Field required"),
            ErrorClass.HTTP_4XX,
            "HTTP 400: max_tokens: Field required",
        ),
        (500, b"[1]", ErrorClass.HTTP_5XX, "HTTP 500: [1]"),
    ],
)
def test_http_errors(status: int, payload: bytes, cls: ErrorClass, message: str) -> None:
    adapter = AnthropicAdapter(spec())
    assert adapter.classify_http_error(status, httpx.Headers(), payload) == (cls, message)


def test_response_facts_keep_request_id_and_rate_limits() -> None:
    headers = httpx.Headers(
        {
            "request-id": "req_123",
            "retry-after": "12",
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-tokens-reset": "2025-02-24T22:25:32Z",
            "content-type": "text/event-stream",
        }
    )
    facts = AnthropicAdapter(spec()).response_facts(headers)
    assert facts == {
        "request-id": "req_123",
        "retry-after": "12",
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-tokens-reset": "2025-02-24T22:25:32Z",
        "retry_after_s": "12",  # no date header: the RFC 3339 reset stays raw only
    }


def test_message_delta_without_usage_and_a_trailing_cr() -> None:
    no_usage = ev("message_delta", {"type": "message_delta", "delta": {}, "usage": None})
    stop_cr = MESSAGE_STOP.replace(b"\n", b"\r")
    out = run([message_start(), text("a"), no_usage, stop_cr])
    assert out.error_class is None  # the CR-ended message_stop is flushed at EOF
    assert out.token_source is TokenSource.ESTIMATED
    assert out.extra == {}

from __future__ import annotations

import json

import httpx
from hypothesis import given
from hypothesis import strategies as st

from lens.plan.model import Message, OpenAISettings, PromptSpec, ProviderSpec, Secret
from lens.providers.openai_chat import OpenAIChatAdapter, OpenAIChatDecoder
from lens.records import ErrorClass, TokenSource

ROLE = (
    b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,'
    b'"delta":{"role":"assistant","content":"","refusal":null},"finish_reason":null}],'
    b'"usage":null}\n\n'
)
FINISH = (
    b'data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}\n\n'
)
DONE = b"data: [DONE]\n\n"


def content(text: str) -> bytes:
    obj = {"id": "c1", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def usage(prompt: int, completion: int, cached: int = 0, reasoning: int = 0) -> bytes:
    obj = {
        "id": "c1",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        },
    }
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def spec(**kw: object) -> ProviderSpec:
    base: dict[str, object] = {
        "id": "p",
        "type": "openai-compatible",
        "model": "m",
        "base_url": "http://127.0.0.1:9/v1/",
        "settings": OpenAISettings(),
    }
    base.update(kw)
    return ProviderSpec(**base)  # type: ignore[arg-type]


PROMPT = PromptSpec(id="q", messages=(Message("user", "hello there"),))


def test_role_chunk_is_not_a_token_and_usage_is_taken() -> None:
    dec = OpenAIChatDecoder()
    dec.feed(ROLE, 100)
    dec.feed(content("Hel"), 200)
    dec.feed(content("lo"), 300)
    dec.feed(FINISH + usage(7, 2, cached=3) + DONE, 400)
    out = dec.finish(410, eof=True)
    assert out.error_class is None
    assert out.t_first_token == 200
    assert out.t_first_visible == 200
    assert out.t_last_token == 300
    assert out.chunk_times == (200, 300)
    assert out.chunk_tokens == (1, 1)
    assert out.usage.input_tokens == 7
    assert out.usage.output_tokens == 2
    assert out.usage.cached_input_tokens == 3
    assert out.token_source is TokenSource.USAGE
    assert out.events == 6


def test_events_in_one_read_share_its_stamp() -> None:
    dec = OpenAIChatDecoder()
    dec.feed(ROLE + content("a") + content("b") + content("c"), 50)
    dec.feed(FINISH + usage(1, 3) + DONE, 60)
    out = dec.finish(61, eof=True)
    assert out.chunk_times == (50, 50, 50)


def test_multi_token_chunks_share_surplus_by_characters() -> None:
    dec = OpenAIChatDecoder()
    dec.feed(ROLE + content("aaaa") + content("bbbbbbbbbbbb"), 1)
    dec.feed(usage(1, 6) + DONE, 2)
    out = dec.finish(3, eof=True)
    # 6 tokens over 2 chunks: each at least 1, the 4 extra split 4:12 by characters.
    assert out.chunk_tokens == (2, 4)
    assert sum(out.chunk_tokens) == 6


def test_no_usage_means_estimated_tokens() -> None:
    dec = OpenAIChatDecoder()
    dec.feed(ROLE + content("abcdefgh") + FINISH + DONE, 1)
    out = dec.finish(2, eof=True)
    assert out.token_source is TokenSource.ESTIMATED
    assert out.usage.output_tokens == 2
    assert out.usage.input_tokens is None


def test_in_band_error_is_stream_error_with_message() -> None:
    dec = OpenAIChatDecoder()
    dec.feed(ROLE + content("x"), 1)
    dec.feed(b'data: {"error":{"message":"boom","type":"server_error"}}\n\n', 2)
    out = dec.finish(3, eof=True)
    assert out.error_class is ErrorClass.STREAM_ERROR
    assert out.error_message == "boom"
    assert out.t_first_token == 1


def test_groq_style_error_event() -> None:
    dec = OpenAIChatDecoder()
    dec.feed(b'event: error\ndata: {"error":{"message":"tool_use_failed"}}\n\n', 1)
    out = dec.finish(2, eof=True)
    assert out.error_class is ErrorClass.STREAM_ERROR
    assert out.error_message == "tool_use_failed"


def test_missing_done_is_a_cut_stream() -> None:
    dec = OpenAIChatDecoder()
    dec.feed(ROLE + content("x"), 1)
    out = dec.finish(2, eof=True)
    assert out.error_class is ErrorClass.CUT_STREAM
    assert dec.finish(3, eof=False).error_message == "connection lost mid-stream"


def test_no_tokens_is_empty() -> None:
    dec = OpenAIChatDecoder()
    dec.feed(ROLE + FINISH + usage(3, 0) + DONE, 1)
    out = dec.finish(2, eof=True)
    assert out.error_class is ErrorClass.EMPTY
    assert out.t_first_token is None


def test_azure_filter_chunk_and_null_choices_are_tolerated() -> None:
    dec = OpenAIChatDecoder()
    dec.feed(b'data: {"choices":[],"created":0,"id":"","prompt_filter_results":[]}\n\n', 1)
    dec.feed(b'data: {"choices":null,"usage":null}\n\n', 2)
    dec.feed(content("hi") + usage(2, 1) + DONE, 3)
    out = dec.finish(4, eof=True)
    assert out.error_class is None
    assert out.t_first_token == 3


def test_streamed_reasoning_counts_for_ttft_not_ttfot() -> None:
    dec = OpenAIChatDecoder()
    dec.feed(b'data: {"choices":[{"delta":{"reasoning_content":"think"}}]}\n\n', 10)
    dec.feed(content("answer"), 20)
    dec.feed(usage(1, 5, reasoning=3) + DONE, 30)
    out = dec.finish(31, eof=True)
    assert out.t_first_token == 10
    assert out.t_first_visible == 20
    assert out.usage.reasoning_tokens == 3
    assert sum(out.chunk_tokens) == 5


def test_hidden_reasoning_is_not_spread_over_visible_chunks() -> None:
    dec = OpenAIChatDecoder()
    dec.feed(content("a") + content("b"), 10)
    dec.feed(usage(1, 66, reasoning=64) + DONE, 30)
    out = dec.finish(31, eof=True)
    assert out.chunk_tokens == (1, 1)
    assert out.usage.output_tokens == 66


def test_tool_call_arguments_are_tokens() -> None:
    dec = OpenAIChatDecoder()
    dec.feed(
        b'data: {"choices":[{"delta":{"tool_calls":[{"index":0,'
        b'"function":{"arguments":"{\\"a\\""}}]}}]}\n\n',
        5,
    )
    out = dec.finish(6, eof=False)
    assert out.t_first_token == 5
    assert out.error_class is ErrorClass.CUT_STREAM


def test_unparseable_event_is_a_stream_error() -> None:
    dec = OpenAIChatDecoder()
    dec.feed(content("a") + b"data: {not json\n\n" + DONE, 1)
    assert dec.finish(2, eof=True).error_class is ErrorClass.STREAM_ERROR


def test_request_body_and_headers() -> None:
    adapter = OpenAIChatAdapter(
        spec(
            api_key=Secret("sk-123", "${K}"),
            headers=(("x-team", "a"),),
            settings=OpenAISettings(max_tokens_field="max_completion_tokens"),
        )
    )
    req = adapter.build_request(PROMPT, 32)
    assert str(req.url) == "http://127.0.0.1:9/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer sk-123"
    assert req.headers["x-team"] == "a"
    assert req.headers["accept-encoding"] == "identity"
    body = json.loads(req.content)
    assert body == {
        "model": "m",
        "messages": [{"role": "user", "content": "hello there"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_completion_tokens": 32,
    }


def test_prompt_max_tokens_wins_and_no_key_no_auth() -> None:
    adapter = OpenAIChatAdapter(spec(settings=OpenAISettings(include_usage=False)))
    prompt = PromptSpec(id="q", messages=(Message("user", "x"),), max_tokens=5)
    req = adapter.build_request(prompt, 100)
    assert "authorization" not in req.headers
    body = json.loads(req.content)
    assert body["max_tokens"] == 5
    assert "stream_options" not in body


def test_http_errors_are_classified_with_the_provider_message() -> None:
    adapter = OpenAIChatAdapter(spec())
    body = b'{"error":{"message":"Rate limit reached","code":"rate_limit_exceeded"}}'
    cls, msg = adapter.classify_http_error(429, httpx.Headers(), body)
    assert cls is ErrorClass.HTTP_429
    assert "Rate limit reached" in msg
    assert adapter.classify_http_error(404, httpx.Headers(), b"nope")[0] is ErrorClass.HTTP_4XX
    assert adapter.classify_http_error(502, httpx.Headers(), b"")[0] is ErrorClass.HTTP_5XX
    assert adapter.classify_http_error(503, httpx.Headers(), b"")[0] is ErrorClass.OVERLOADED


@given(st.text(min_size=0, max_size=30))
def test_fast_path_agrees_with_full_json_parse(text: str) -> None:
    compact = json.dumps(
        {"id": "c", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]},
        separators=(",", ":"),
    ).encode()
    spaced = json.dumps(
        {"id": "c", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    ).encode()
    fast, slow = OpenAIChatDecoder(), OpenAIChatDecoder()
    fast.feed(b"data: " + compact + b"\n\n" + DONE, 7)
    slow.feed(b"data: " + spaced + b"\n\n" + DONE, 7)
    a, b = fast.finish(8, eof=True), slow.finish(8, eof=True)
    assert a.chunk_times == b.chunk_times == ((7,) if text else ())
    if text:
        # Sizes agree up to JSON escaping (the fast path counts escaped bytes).
        escaped = len(json.dumps(text)) - 2
        assert fast._timeline.chars == [escaped]
        assert slow._timeline.chars == [len(text)]


def test_escaped_quotes_and_backslashes_in_content() -> None:
    for text, size in (('say "hi"', 10), ("a\\", 3), ('\\"', 4)):
        dec = OpenAIChatDecoder()
        dec.feed(content(text) + DONE, 1)
        assert dec._timeline.chars == [size], text


@given(st.lists(st.text(max_size=12), min_size=1, max_size=8))
def test_repeated_deltas_read_as_each_alone(texts: list[str]) -> None:
    """After the first plain delta, a stream's deltas match its head and tail and skip the
    marker search: the tokens come out as a fresh decoder reads each event."""
    stream = OpenAIChatDecoder()
    for k, text in enumerate(texts):
        stream.feed(content(text), k)
    alone: list[int] = []
    for text in texts:
        one = OpenAIChatDecoder()
        one.feed(content(text), 0)
        alone += one._timeline.chars
    assert stream._timeline.chars == alone
    assert stream._timeline.times == [k for k, text in enumerate(texts) if text]


def test_same_head_with_news_in_the_tail_takes_the_full_path() -> None:
    """vLLM may put usage on a content chunk, and the last delta carries finish_reason:
    the head matches the plain deltas before, the tail does not."""
    head = b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"'
    with_usage = (
        head + b'b"},"finish_reason":null}],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n'
    )
    last = head + b'c"},"finish_reason":"stop"}]}\n\n'
    tool = head + b'","tool_calls":[{"function":{"arguments":"{}"}}]},"finish_reason":null}]}\n\n'
    dec = OpenAIChatDecoder()
    dec.feed(content("a") + with_usage + last + tool + content("d") + DONE, 5)
    out = dec.finish(6, eof=True)
    assert out.usage.output_tokens == 2
    assert dec._timeline.chars == [1, 1, 1, 2, 1]  # a, b, c, the tool call's "{}", d
    assert out.error_class is None

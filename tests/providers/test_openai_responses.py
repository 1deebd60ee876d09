"""OpenAI Responses API streams, on hand-written bytes modelled on wire-formats.md §2."""

from __future__ import annotations

import json
import random

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lens.plan.model import Message, PromptSpec, ProviderSpec, Secret
from lens.providers.base import StreamOutcome, Usage
from lens.providers.openai_responses import (
    OpenAIResponsesAdapter,
    OpenAIResponsesDecoder,
    map_responses_usage,
)
from lens.providers.registry import adapter_for
from lens.records import ErrorClass, TokenSource

KEY = "sk-proj-responses-789"
_seq = iter(range(10**6))


def ev(kind: str, **fields: object) -> bytes:
    obj = {"type": kind, **fields, "sequence_number": next(_seq)}
    return f"event: {kind}\ndata: {json.dumps(obj, separators=(',', ':'))}\n\n".encode()


def response(status: str, **fields: object) -> dict[str, object]:
    return {"id": "resp_1", "object": "response", "status": status, "output": [], **fields}


def usage(
    inp: int, out: int, cached: int = 0, reasoning: int = 0, **extra: int
) -> dict[str, object]:
    return {
        "input_tokens": inp,
        "input_tokens_details": {"cached_tokens": cached, **extra},
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": inp + out,
    }


CREATED = ev("response.created", response=response("in_progress", usage=None))
IN_PROGRESS = ev("response.in_progress", response=response("in_progress", usage=None))


def text(value: str) -> bytes:
    return ev(
        "response.output_text.delta",
        content_index=0,
        delta=value,
        item_id="msg_1",
        logprobs=[],
        obfuscation="abcdef",
        output_index=1,
    )


def reasoning_summary(value: str) -> bytes:
    return ev(
        "response.reasoning_summary_text.delta",
        item_id="rs_1",
        output_index=0,
        summary_index=0,
        delta=value,
    )


def args(value: str) -> bytes:
    return ev("response.function_call_arguments.delta", delta=value, item_id="fc_1", output_index=2)


def completed(u: dict[str, object]) -> bytes:
    return ev("response.completed", response=response("completed", usage=u))


def reasoning_item() -> bytes:
    item = {
        "id": "rs_1",
        "type": "reasoning",
        "content": [],
        "encrypted_content": "gAAAA",
        "summary": [],
    }
    return ev("response.output_item.added", item=item, output_index=0)


def run(parts: list[bytes], stamps: list[int] | None = None, *, eof: bool = True) -> StreamOutcome:
    dec = OpenAIResponsesDecoder()
    for i, part in enumerate(parts):
        dec.feed(part, stamps[i] if stamps else 10 * (i + 1))
    return dec.finish(10_000, eof=eof)


def plain_stream() -> list[bytes]:
    return [
        CREATED,
        IN_PROGRESS,
        ev(
            "response.output_item.added",
            item={"id": "msg_1", "type": "message", "content": []},
            output_index=0,
        ),
        ev(
            "response.content_part.added", part={"type": "output_text", "text": ""}, item_id="msg_1"
        ),
        text("2"),
        text("+2"),
        text(" = 4"),
        ev("response.output_text.done", text="2+2 = 4", item_id="msg_1"),
        ev("response.content_part.done", item_id="msg_1"),
        ev("response.output_item.done", item={"id": "msg_1"}, output_index=0),
        completed(usage(20, 10, cached=8, cache_write_tokens=4)),
    ]


def test_plain_stream_usage_and_timing() -> None:
    out = run(plain_stream())
    assert out.error_class is None
    assert out.chunk_times == (50, 60, 70)
    assert out.t_first_token == out.t_first_visible == 50
    assert out.usage == Usage(
        input_tokens=20,
        output_tokens=10,
        cached_input_tokens=8,
        reasoning_tokens=0,
        cache_write_tokens=4,
    )
    assert out.token_source is TokenSource.USAGE
    assert sum(out.chunk_tokens) == 10
    assert out.extra == {}
    assert out.events == 11


def test_events_in_one_read_share_its_stamp() -> None:
    out = run([b"".join(plain_stream())], [3])
    assert out.chunk_times == (3, 3, 3)


@pytest.mark.parametrize("seed", range(20))
def test_split_at_awkward_boundaries(seed: int) -> None:
    whole = b"".join(plain_stream())
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(whole)), 50))
    dec = OpenAIResponsesDecoder()
    for i, (a, b) in enumerate(zip([0, *cuts], [*cuts, len(whole)], strict=True)):
        dec.feed(whole[a:b], i)
    out = dec.finish(999, eof=True)
    assert out.error_class is None
    assert len(out.chunk_times) == 3
    assert out.usage.output_tokens == 10


def test_hidden_reasoning_then_text_and_tool_call() -> None:
    parts = [
        CREATED,
        reasoning_item(),
        ev("response.output_item.done", item={"id": "rs_1", "type": "reasoning"}, output_index=0),
        text("I will"),
        text(" check."),
        args('{"country":'),
        args('"X"}'),
        ev("response.function_call_arguments.done", arguments='{"country":"X"}'),
        completed(usage(63, 69, reasoning=26, cache_write_tokens=0)),
    ]
    out = run(parts)
    assert out.error_class is None
    assert out.chunk_times == (40, 50, 60, 70)
    assert out.t_first_token == out.t_first_visible == 40
    assert out.usage.reasoning_tokens == 26
    assert out.usage.output_tokens == 69
    assert out.usage.cache_write_tokens == 0
    assert sum(out.chunk_tokens) == 69 - 26  # hidden reasoning is not spread over the chunks


def test_streamed_reasoning_summary_counts_for_ttft_not_ttfot() -> None:
    parts = [
        CREATED,
        reasoning_item(),
        reasoning_summary("**Thinking** about"),
        reasoning_summary(" it"),
        ev("response.reasoning_text.delta", delta="raw thought", item_id="rs_1"),
        text("Answer"),
        completed(usage(5, 30, reasoning=20)),
    ]
    out = run(parts)
    assert out.t_first_token == 30
    assert out.t_first_visible == 60
    assert out.t_first_token < out.t_first_visible
    assert sum(out.chunk_tokens) == 30  # reasoning was streamed: it is inside the chunks


def test_incomplete_is_done_with_its_reason() -> None:
    details = {"reason": "max_output_tokens"}
    inc = ev(
        "response.incomplete",
        response=response("incomplete", incomplete_details=details, usage=usage(3, 16)),
    )
    out = run([CREATED, text("cut short"), inc])
    assert out.error_class is None
    assert out.extra == {"stop_reason": "max_output_tokens"}
    assert out.usage.output_tokens == 16
    bare = run([text("x"), ev("response.incomplete", response=response("incomplete"))])
    assert bare.extra == {"stop_reason": "incomplete"}
    assert bare.error_class is None


def test_error_event_nested_then_failed() -> None:
    err = {
        "type": "insufficient_quota",
        "code": "insufficient_quota",
        "message": "You exceeded your quota.",
        "param": None,
    }
    failed = ev(
        "response.failed",
        response=response("failed", error={"code": "server_error", "message": "later"}),
    )
    out = run([CREATED, IN_PROGRESS, ev("error", error=err), failed])
    assert out.error_class is ErrorClass.STREAM_ERROR
    assert out.error_message == "You exceeded your quota."
    assert out.t_first_token is None


def test_error_event_with_top_level_fields() -> None:
    out = run(
        [
            CREATED,
            text("a"),
            ev("error", code="server_error", message="Top-level message", param=None),
        ]
    )
    assert out.error_class is ErrorClass.STREAM_ERROR
    assert out.error_message == "Top-level message"
    code_only = run([ev("error", code="rate_limit_exceeded")])
    assert code_only.error_message == "rate_limit_exceeded"
    nothing = run([ev("error")])
    assert nothing.error_message == "error event"


def test_failed_alone() -> None:
    failed = ev(
        "response.failed",
        response=response(
            "failed", error={"code": "server_error", "message": "The server had an error"}
        ),
    )
    out = run([CREATED, text("x"), failed])
    assert out.error_class is ErrorClass.STREAM_ERROR
    assert out.error_message == "The server had an error"
    odd = run([ev("response.failed", response=None)])
    assert odd.error_message == "response.failed"


def test_no_terminal_event_is_cut() -> None:
    out = run(plain_stream()[:-1])
    assert out.error_class is ErrorClass.CUT_STREAM
    assert out.error_message == "stream ended before response.completed"
    assert out.usage.output_tokens == 3  # estimated
    assert out.token_source is TokenSource.ESTIMATED
    lost = run(plain_stream(), eof=False)
    assert lost.error_class is ErrorClass.CUT_STREAM
    assert lost.error_message == "connection lost mid-stream"


def test_empty_stream() -> None:
    out = run([CREATED, completed(usage(3, 0))])
    assert out.error_class is ErrorClass.EMPTY
    assert run([]).error_class is ErrorClass.CUT_STREAM


def test_unknown_events_empty_deltas_and_missing_event_lines() -> None:
    bare = b'data: {"type": "response.output_text.delta", "delta": "spaced"}\n\n'
    spaced = (
        b"event: response.output_text.delta\n"
        b'data: {"type": "response.output_text.delta", "delta": "x"}\n\n'
    )
    parts = [
        ev("response.queued", response=response("queued")),
        ev("response.web_search_call.searching"),
        text(""),
        b'event: response.output_text.delta\ndata: {"delta": 5}\n\n',
        b"event: response.created\ndata: [1]\n\n",
        bare,
        spaced,
        b'data: {"type": "response.completed", "response": {"usage": null}}\n\n',
    ]
    out = run(parts)
    assert out.chunk_times == (60, 70)
    assert out.error_class is None
    assert out.token_source is TokenSource.ESTIMATED


def test_unparseable_event_is_a_stream_error() -> None:
    out = run([text("a"), b"event: response.completed\ndata: {oops\n\n"])
    assert out.error_class is ErrorClass.STREAM_ERROR
    assert out.error_message is not None
    assert out.error_message.startswith("unparseable event")


def test_truncated_fast_path_falls_back() -> None:
    out = run([b'event: response.output_text.delta\ndata: {"delta":"\n\n'])
    assert out.error_class is ErrorClass.STREAM_ERROR


def test_usage_mapping_variants() -> None:
    assert map_responses_usage(None) == (Usage(), 0)
    top = {
        "input_tokens": 5,
        "output_tokens": 2,
        "cache_write_tokens": 3,
        "input_tokens_details": None,
    }
    u, hidden = map_responses_usage(top)
    assert u == Usage(input_tokens=5, output_tokens=2, cache_write_tokens=3)
    assert hidden == 0


@given(st.text(max_size=40))
def test_fast_path_agrees_with_the_json_path(value: str) -> None:
    fast, slow = OpenAIResponsesDecoder(), OpenAIResponsesDecoder()
    fast.feed(text(value), 3)
    spaced = json.dumps({"type": "response.output_text.delta", "delta": value}).encode()
    slow.feed(b"event: response.output_text.delta\ndata: " + spaced + b"\n\n", 3)
    a, b = fast.finish(4, eof=False), slow.finish(4, eof=False)
    assert a.chunk_times == b.chunk_times == ((3,) if value else ())


# -- requests ---------------------------------------------------------------------------


def spec(**kw: object) -> ProviderSpec:
    base: dict[str, object] = {
        "id": "resp",
        "type": "openai-responses",
        "model": "gpt-5.2",
        "base_url": None,
        "api_key": Secret(KEY, "${OPENAI_API_KEY}"),
    }
    base.update(kw)
    return ProviderSpec(**base)  # type: ignore[arg-type]


PROMPT = PromptSpec(
    id="q", messages=(Message("system", "Answer directly."), Message("user", "2+2?"))
)


def test_request_url_headers_and_body() -> None:
    adapter = OpenAIResponsesAdapter(spec(headers=(("OpenAI-Project", "proj_1"),)))
    req = adapter.build_request(PROMPT, 50)
    assert str(req.url) == "https://api.openai.com/v1/responses"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.headers["openai-project"] == "proj_1"
    assert req.headers["accept-encoding"] == "identity"
    assert req.headers["accept"] == "text/event-stream"
    assert json.loads(req.content) == {
        "model": "gpt-5.2",
        "input": [
            {"role": "system", "content": "Answer directly."},
            {"role": "user", "content": "2+2?"},
        ],
        "stream": True,
        "max_output_tokens": 50,
    }


def test_custom_base_no_limit_no_key() -> None:
    adapter = OpenAIResponsesAdapter(spec(base_url="http://127.0.0.1:9/v1/", api_key=None))
    req = adapter.build_request(PROMPT, None)
    assert str(req.url) == "http://127.0.0.1:9/v1/responses"
    assert "authorization" not in req.headers
    assert "max_output_tokens" not in json.loads(req.content)
    own = PromptSpec(id="p", messages=(Message("user", "x"),), max_tokens=4)
    assert json.loads(adapter.build_request(own, 100).content)["max_output_tokens"] == 4


def test_no_secret_in_any_repr() -> None:
    adapter = OpenAIResponsesAdapter(spec())
    req = adapter.build_request(PROMPT, 8)
    for shown in (repr(adapter), repr(req), repr(req.headers), str(req.headers)):
        assert KEY not in shown
    assert isinstance(adapter.new_decoder(PROMPT), OpenAIResponsesDecoder)
    assert isinstance(adapter_for(spec()), OpenAIResponsesAdapter)


@pytest.mark.parametrize(
    ("status", "payload", "cls", "message"),
    [
        (
            429,
            b'{"error":{"message":"Rate limit reached","code":"rate_limit_exceeded"}}',
            ErrorClass.HTTP_429,
            "HTTP 429: Rate limit reached",
        ),
        (
            400,
            b'{"error":{"message":"Unsupported parameter","param":"temperature"}}',
            ErrorClass.HTTP_4XX,
            "HTTP 400: Unsupported parameter",
        ),
        (503, b'{"error":{"message":"Slow down"}}', ErrorClass.OVERLOADED, "HTTP 503: Slow down"),
        (529, b"", ErrorClass.OVERLOADED, "HTTP 529: "),
    ],
)
def test_http_errors(status: int, payload: bytes, cls: ErrorClass, message: str) -> None:
    adapter = OpenAIResponsesAdapter(spec())
    assert adapter.classify_http_error(status, httpx.Headers(), payload) == (cls, message)


def test_response_facts() -> None:
    headers = httpx.Headers(
        {
            "x-request-id": "req_1",
            "openai-processing-ms": "66",
            "x-ratelimit-remaining-tokens": "9",
            "date": "x",
        }
    )
    assert OpenAIResponsesAdapter(spec()).response_facts(headers) == {
        "x-request-id": "req_1",
        "openai-processing-ms": "66",
        "x-ratelimit-remaining-tokens": "9",
    }


def test_error_as_a_string_and_a_trailing_cr() -> None:
    out = run([text("a"), ev("error", error="plain message")])
    assert out.error_message == "plain message"
    last = completed(usage(1, 1)).replace(b"\n", b"\r")
    ok = run([text("a"), last])
    assert ok.error_class is None
    assert ok.usage.output_tokens == 1

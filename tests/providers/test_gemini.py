"""Gemini streamGenerateContent (alt=sse) streams, on hand-written bytes (wire-formats.md §5)."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping

import httpx
import pytest

from lens.plan.model import Message, PromptSpec, ProviderSpec, Secret
from lens.providers.base import StreamOutcome
from lens.providers.gemini import GeminiAdapter, GeminiDecoder
from lens.providers.registry import adapter_for
from lens.records import ErrorClass, TokenSource

KEY = "AIza-gemini-secret-456"


def event(obj: object) -> bytes:
    """One Gemini SSE event: spaces after colons, CRLF line ends."""
    return b"data: " + json.dumps(obj).encode() + b"\r\n\r\n"


def usage(
    prompt: int, candidates: int | None, thoughts: int | None = None, cached: int | None = None
) -> dict[str, object]:
    meta: dict[str, object] = {"promptTokenCount": prompt}
    if candidates is not None:
        meta["candidatesTokenCount"] = candidates
    if thoughts is not None:
        meta["thoughtsTokenCount"] = thoughts
    if cached is not None:
        meta["cachedContentTokenCount"] = cached
    meta["totalTokenCount"] = prompt + (candidates or 0) + (thoughts or 0)
    return meta


def chunk(
    *parts: Mapping[str, object],
    finish: str | None = None,
    meta: dict[str, object] | None = None,
) -> bytes:
    cand: dict[str, object] = {"content": {"parts": list(parts), "role": "model"}, "index": 0}
    if finish is not None:
        cand["finishReason"] = finish
    obj: dict[str, object] = {
        "candidates": [cand],
        "modelVersion": "gemini-2.5-flash",
        "responseId": "r1",
    }
    if meta is not None:
        obj["usageMetadata"] = meta
    return event(obj)


def t(value: str) -> dict[str, object]:
    return {"text": value}


def thought(value: str) -> dict[str, object]:
    return {"text": value, "thought": True}


def run(parts: list[bytes], stamps: list[int] | None = None, *, eof: bool = True) -> StreamOutcome:
    dec = GeminiDecoder()
    for i, part in enumerate(parts):
        dec.feed(part, stamps[i] if stamps else 10 * (i + 1))
    return dec.finish(10_000, eof=eof)


def hidden_thoughts_stream() -> list[bytes]:
    """A thinking model without includeThoughts: thoughts are counted, never streamed."""
    return [
        chunk(t("1\n2\n3\n1"), meta=usage(18, 31, thoughts=35)),
        chunk(t("4\n15\n3"), meta=usage(18, 79, thoughts=35)),
        chunk(t("0"), finish="STOP", meta=usage(18, 80, thoughts=35, cached=8)),
    ]


def test_usage_is_cumulative_and_hidden_thoughts_are_not_spread() -> None:
    out = run(hidden_thoughts_stream())
    assert out.error_class is None
    assert out.chunk_times == (10, 20, 30)
    assert out.t_first_token == out.t_first_visible == 10
    assert out.usage.input_tokens == 18  # promptTokenCount includes cached tokens
    assert out.usage.cached_input_tokens == 8
    assert out.usage.output_tokens == 115  # candidates 80 + thoughts 35
    assert out.usage.reasoning_tokens == 35
    assert out.usage.cache_write_tokens is None
    assert out.token_source is TokenSource.USAGE
    assert sum(out.chunk_tokens) == 80  # the 35 hidden thought tokens are not in any chunk
    assert out.extra == {"stop_reason": "STOP"}
    assert out.events == 3


def test_streamed_thoughts_count_for_ttft_not_ttfot() -> None:
    parts = [
        chunk(thought("**Planning**\n\nI am thinking"), meta=usage(34, None, thoughts=100)),
        chunk(thought("**More**"), meta=usage(34, None, thoughts=200)),
        chunk({"text": "Answer", "thoughtSignature": "CiIB"}, meta=usage(34, 3, thoughts=300)),
        chunk(t(" done."), finish="STOP", meta=usage(34, 6, thoughts=300)),
    ]
    out = run(parts)
    assert out.t_first_token == 10
    assert out.t_first_visible == 30
    assert out.t_first_token < out.t_first_visible
    assert out.usage.output_tokens == 306
    assert sum(out.chunk_tokens) == 306  # thoughts were streamed: spread over the chunks


def test_thought_and_text_in_one_event_make_one_visible_chunk() -> None:
    parts = [chunk(thought("hmm"), t("Hi"), finish="STOP", meta=usage(3, 1, thoughts=4))]
    out = run(parts)
    assert out.chunk_times == (10,)
    assert out.t_first_visible == 10
    assert sum(out.chunk_tokens) == 5


def test_crlf_events_in_one_read_share_its_stamp() -> None:
    out = run([b"".join(hidden_thoughts_stream())], [5])
    assert out.chunk_times == (5, 5, 5)


@pytest.mark.parametrize("seed", range(20))
def test_split_at_awkward_boundaries_including_mid_crlf(seed: int) -> None:
    whole = b"".join(hidden_thoughts_stream())
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(whole)), 25))
    # and always one cut between a CR and its LF
    cr = whole.find(b"\r\n\r\n") + 1
    cuts = sorted({*cuts, cr})
    dec = GeminiDecoder()
    for i, (a, b) in enumerate(zip([0, *cuts], [*cuts, len(whole)], strict=True)):
        dec.feed(whole[a:b], i)
    out = dec.finish(999, eof=True)
    assert out.error_class is None
    assert len(out.chunk_times) == 3
    assert out.usage.output_tokens == 115


def test_eof_without_finish_reason_is_cut() -> None:
    out = run(hidden_thoughts_stream()[:2])
    assert out.error_class is ErrorClass.CUT_STREAM
    assert out.error_message == "stream ended without a finishReason"
    assert out.usage.output_tokens == 79 + 35
    lost = run(hidden_thoughts_stream(), eof=False)
    assert lost.error_class is ErrorClass.CUT_STREAM
    assert lost.error_message == "connection lost mid-stream"


def test_empty_text_and_empty_stream() -> None:
    out = run([chunk(t(""), finish="STOP", meta=usage(4, None))])
    assert out.error_class is ErrorClass.EMPTY
    assert out.usage.output_tokens is None
    assert out.usage.input_tokens == 4
    nothing = run([])
    assert nothing.error_class is ErrorClass.CUT_STREAM
    assert nothing.usage.input_tokens is None


def test_safety_finish_with_no_text_is_empty_with_its_reason() -> None:
    out = run([chunk(finish="SAFETY", meta=usage(4, 0))])
    assert out.error_class is ErrorClass.EMPTY
    assert out.extra == {"stop_reason": "SAFETY"}


def test_mid_stream_unavailable_is_overloaded() -> None:
    err = {
        "error": {
            "code": 503,
            "message": "This model is currently experiencing high demand.",
            "status": "UNAVAILABLE",
        }
    }
    out = run([chunk(t("partial"), meta=usage(3, 1)), event(err)])
    assert out.error_class is ErrorClass.OVERLOADED
    assert out.error_message == "UNAVAILABLE: This model is currently experiencing high demand."
    assert out.t_first_token == 10


def test_mid_stream_other_error_is_stream_error() -> None:
    err = {
        "error": {"code": 500, "message": "An internal error has occurred.", "status": "INTERNAL"}
    }
    out = run(
        [chunk(t("partial")), event(err), event({"error": {"code": 503, "status": "UNAVAILABLE"}})]
    )
    assert out.error_class is ErrorClass.STREAM_ERROR
    assert out.error_message == "INTERNAL: An internal error has occurred."


def test_odd_error_shapes() -> None:
    assert run([event({"error": "plain text"})]).error_message == "plain text"
    assert run([event({"error": {"code": 400}})]).error_message == "error event in stream"


def test_blocked_prompt() -> None:
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": usage(9, None)}
    out = run([event(blocked)])
    assert out.error_class is ErrorClass.STREAM_ERROR
    assert out.error_message == "blocked: SAFETY"
    assert out.usage.input_tokens == 9


def test_function_call_parts_are_visible_tokens() -> None:
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    out = run([chunk(call, finish="STOP", meta=usage(10, 5))])
    assert out.chunk_times == (10,)
    assert out.t_first_visible == 10
    assert out.error_class is None


def test_unknown_shapes_are_ignored() -> None:
    odd = [
        event(
            {
                "candidates": [
                    None,
                    {"content": None},
                    {"content": {"parts": [None, {"inlineData": {}}]}},
                ]
            }
        ),
        event({"candidates": "x"}),
        event({"usageMetadata": None}),
        event([1, 2]),
        event([{"candidates": [{"content": {"parts": [{"text": "ok"}]}, "finishReason": "STOP"}]}]),
    ]
    out = run(odd)
    assert out.chunk_times == (50,)
    assert out.error_class is None
    assert out.usage.output_tokens == 1  # estimated: no usage
    assert out.token_source is TokenSource.ESTIMATED


def test_unparseable_event_is_a_stream_error() -> None:
    out = run([chunk(t("a")), b"data: {broken\r\n\r\n", chunk(t("b"), finish="STOP")])
    assert out.error_class is ErrorClass.STREAM_ERROR
    assert out.error_message is not None
    assert out.error_message.startswith("unparseable event")


def test_trailing_lone_cr_is_flushed_at_eof() -> None:
    out = run([chunk(t("hi"), finish="STOP", meta=usage(1, 1))[:-1]])
    assert out.error_class is None
    assert out.chunk_times == (10_000,)  # only complete at EOF: stamped then


# -- requests ---------------------------------------------------------------------------


def spec(**kw: object) -> ProviderSpec:
    base: dict[str, object] = {
        "id": "gem",
        "type": "gemini",
        "model": "gemini-2.5-flash",
        "base_url": None,
        "api_key": Secret(KEY, "${GEMINI_API_KEY}"),
    }
    base.update(kw)
    return ProviderSpec(**base)  # type: ignore[arg-type]


PROMPT = PromptSpec(
    id="q",
    messages=(
        Message("system", "Be brief."),
        Message("user", "hi"),
        Message("assistant", "hello"),
        Message("user", "count"),
    ),
)


def test_request_url_headers_and_body() -> None:
    adapter = GeminiAdapter(spec(headers=(("x-team", "a"),)))
    req = adapter.build_request(PROMPT, 128)
    assert str(req.url) == (
        "https://generativelanguage.googleapis.com/v1beta/models/"
        "gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    assert "key=" not in str(req.url)
    assert req.headers["x-goog-api-key"] == KEY
    assert req.headers["accept-encoding"] == "identity"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["x-team"] == "a"
    assert json.loads(req.content) == {
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [{"text": "hello"}]},
            {"role": "user", "parts": [{"text": "count"}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"maxOutputTokens": 128},
    }


@pytest.mark.parametrize(
    ("base", "model", "url"),
    [
        (
            "http://127.0.0.1:9/",
            "models/g-1",
            "http://127.0.0.1:9/v1beta/models/g-1:streamGenerateContent?alt=sse",
        ),
        ("http://h/v1beta", "g-1", "http://h/v1beta/models/g-1:streamGenerateContent?alt=sse"),
        ("http://h/v1/", "g-1", "http://h/v1/models/g-1:streamGenerateContent?alt=sse"),
    ],
)
def test_base_urls(base: str, model: str, url: str) -> None:
    adapter = GeminiAdapter(spec(base_url=base, model=model))
    assert str(adapter.build_request(PROMPT, None).url) == url


def test_no_limit_no_system_no_key() -> None:
    adapter = GeminiAdapter(spec(api_key=None))
    req = adapter.build_request(PromptSpec(id="p", messages=(Message("user", "x"),)), None)
    assert json.loads(req.content) == {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}
    assert "x-goog-api-key" not in req.headers
    own = PromptSpec(id="p", messages=(Message("user", "x"),), max_tokens=3)
    body = json.loads(adapter.build_request(own, 99).content)
    assert body["generationConfig"] == {"maxOutputTokens": 3}


def test_no_secret_in_any_repr() -> None:
    adapter = GeminiAdapter(spec())
    req = adapter.build_request(PROMPT, 8)
    for shown in (repr(adapter), repr(req), str(req.url), repr(req.headers), str(req.headers)):
        assert KEY not in shown
    assert isinstance(adapter.new_decoder(PROMPT), GeminiDecoder)
    assert isinstance(adapter_for(spec()), GeminiAdapter)


# -- HTTP errors ------------------------------------------------------------------------

RATE_LIMITED = json.dumps(
    {
        "error": {
            "code": 429,
            "message": "You exceeded your current quota.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel"}],
                },
                {"@type": "type.googleapis.com/google.rpc.Help", "links": []},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34s"},
            ],
        }
    }
).encode()


@pytest.mark.parametrize(
    ("status", "payload", "cls", "message"),
    [
        (
            429,
            RATE_LIMITED,
            ErrorClass.HTTP_429,
            "HTTP 429 RESOURCE_EXHAUSTED (retry in 34s): You exceeded your current quota.",
        ),
        (
            503,
            b'{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}',
            ErrorClass.OVERLOADED,
            "HTTP 503 UNAVAILABLE: The model is overloaded.",
        ),
        (503, b"Service Unavailable", ErrorClass.OVERLOADED, "HTTP 503: Service Unavailable"),
        (
            400,
            b'[{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT"}}]',
            ErrorClass.HTTP_4XX,
            "HTTP 400 INVALID_ARGUMENT: API key not valid.",
        ),
        (
            404,
            b'{"error":{"code":404,"details":[null]}}',
            ErrorClass.HTTP_4XX,
            'HTTP 404: {"error":{"code":404,"details":[null]}}',
        ),
        (500, b"<html>oops</html>", ErrorClass.HTTP_5XX, "HTTP 500: <html>oops</html>"),
    ],
)
def test_http_errors(status: int, payload: bytes, cls: ErrorClass, message: str) -> None:
    adapter = GeminiAdapter(spec())
    assert adapter.classify_http_error(status, httpx.Headers(), payload) == (cls, message)


def test_response_facts_keep_server_timing() -> None:
    headers = httpx.Headers(
        {"server-timing": "gfet4t7; dur=859", "content-disposition": "attachment"}
    )
    assert GeminiAdapter(spec()).response_facts(headers) == {"server-timing": "gfet4t7; dur=859"}

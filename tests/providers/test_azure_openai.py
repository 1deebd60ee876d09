"""Azure OpenAI Chat Completions: Azure URLs and auth on the OpenAI Chat wire (§3)."""

from __future__ import annotations

import dataclasses
import json
import random

import httpx
import pytest

from lens.errors import ProviderError
from lens.plan.model import AzureSettings, Message, PromptSpec, ProviderSpec, Secret
from lens.providers.azure_openai import AzureChatDecoder, AzureOpenAIAdapter, azure_endpoint
from lens.providers.base import StreamOutcome
from lens.providers.openai_chat import OpenAIChatDecoder
from lens.providers.registry import adapter_for
from lens.records import ErrorClass, TokenSource

KEY = "azure-key-0123456789abcdef"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOi.entra.token"

SAFE = {"filtered": False, "severity": "safe"}
PROMPT_FILTER = (
    b'data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":'
    b'[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},'
    b'"jailbreak":{"filtered":false,"detected":false}}}]}\n\n'
)
DONE = b"data: [DONE]\n\n"


def chunk(
    delta: dict[str, object], finish: str | None = None, usage: dict[str, object] | None = None
) -> bytes:
    """An Azure chunk: alphabetically sorted keys, content_filter_results on every choice."""
    choice = {
        "content_filter_results": {"hate": SAFE, "self_harm": SAFE} if delta.get("content") else {},
        "delta": delta,
        "finish_reason": finish,
        "index": 0,
        "logprobs": None,
    }
    obj = {
        "choices": [choice],
        "created": 1762317021,
        "id": "chatcmpl-1",
        "model": "gpt-5-nano-2025-08-07",
        "object": "chat.completion.chunk",
        "system_fingerprint": None,
        "usage": usage,
    }
    return b"data: " + json.dumps(obj, separators=(",", ":"), sort_keys=True).encode() + b"\n\n"


def usage_chunk(prompt: int, completion: int, reasoning: int = 0, cached: int = 0) -> bytes:
    usage = {
        "completion_tokens": completion,
        "completion_tokens_details": {"reasoning_tokens": reasoning},
        "prompt_tokens": prompt,
        "prompt_tokens_details": {"cached_tokens": cached},
        "total_tokens": prompt + completion,
    }
    obj = {"choices": [], "created": 1, "id": "chatcmpl-1", "usage": usage}
    return b"data: " + json.dumps(obj, separators=(",", ":"), sort_keys=True).encode() + b"\n\n"


def stream(finish: str = "stop") -> list[bytes]:
    return [
        PROMPT_FILTER,
        chunk({"content": "", "refusal": None, "role": "assistant"}),
        chunk({"content": "Capital"}),
        chunk({"content": " of"}),
        chunk({"content": " Denmark."}),
        chunk({}, finish=finish),
        usage_chunk(15, 78, reasoning=64, cached=5),
        DONE,
    ]


def run(parts: list[bytes], *, eof: bool = True) -> StreamOutcome:
    dec = AzureChatDecoder()
    for i, part in enumerate(parts):
        dec.feed(part, 10 * (i + 1))
    return dec.finish(10_000, eof=eof)


def test_prompt_filter_chunk_with_empty_choices_is_tolerated() -> None:
    out = run(stream())
    assert out.error_class is None
    assert out.chunk_times == (30, 40, 50)  # neither the filter chunk nor the role chunk
    assert out.t_first_token == out.t_first_visible == 30
    assert out.usage.input_tokens == 15
    assert out.usage.cached_input_tokens == 5
    assert out.usage.output_tokens == 78
    assert out.usage.reasoning_tokens == 64
    assert out.token_source is TokenSource.USAGE
    assert sum(out.chunk_tokens) == 78 - 64  # hidden reasoning stays out of the chunks
    assert out.extra == {"stop_reason": "stop"}


def test_plain_openai_decoder_tolerates_the_filter_chunk_too() -> None:
    dec = OpenAIChatDecoder()
    dec.feed(b"".join(stream()), 1)
    out = dec.finish(2, eof=True)
    assert out.error_class is None
    assert len(out.chunk_times) == 3


def test_content_filter_finish_is_ok_with_its_reason() -> None:
    parts = [
        PROMPT_FILTER,
        chunk({"content": "I can"}),
        chunk({}, finish="content_filter"),
        usage_chunk(5, 2),
        DONE,
    ]
    out = run(parts)
    assert out.error_class is None
    assert out.extra == {"stop_reason": "content_filter"}


def test_spaced_finish_reason_and_nulls() -> None:
    spaced = b'data: {"choices": [{"delta": {}, "finish_reason": "length", "index": 0}]}\n\n'
    nulls = (
        b'data: {"choices": [{"delta": {"content": "a"}, "finish_reason": null, "index": 0}]}\n\n'
    )
    out = run([nulls, spaced, DONE])
    assert out.extra == {"stop_reason": "length"}


def test_odd_finish_chunks_are_left_to_the_base_decoder() -> None:
    out = run([chunk({"content": "a"}), b'data: {"finish_reason":"x",\n\n', DONE])
    assert out.error_class is ErrorClass.STREAM_ERROR  # unparseable, reported by the base class
    assert out.extra == {}
    odd = run([chunk({"content": "a"}), b'data: ["finish_reason", 1]\n\n', DONE])
    assert odd.error_class is None
    assert odd.extra == {}


@pytest.mark.parametrize("seed", range(10))
def test_split_at_awkward_boundaries(seed: int) -> None:
    whole = b"".join(stream(finish="content_filter"))
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(whole)), 30))
    dec = AzureChatDecoder()
    for i, (a, b) in enumerate(zip([0, *cuts], [*cuts, len(whole)], strict=True)):
        dec.feed(whole[a:b], i)
    out = dec.finish(999, eof=True)
    assert out.error_class is None
    assert len(out.chunk_times) == 3
    assert out.extra == {"stop_reason": "content_filter"}


def test_in_band_error_cut_and_empty() -> None:
    err = run(
        [
            PROMPT_FILTER,
            chunk({"content": "a"}),
            b'data: {"error":{"message":"boom","code":"500"}}\n\n',
        ]
    )
    assert err.error_class is ErrorClass.STREAM_ERROR
    assert err.error_message == "boom"
    cut = run(stream()[:-1])
    assert cut.error_class is ErrorClass.CUT_STREAM
    empty = run([PROMPT_FILTER, chunk({}, finish="stop"), usage_chunk(3, 0), DONE])
    assert empty.error_class is ErrorClass.EMPTY
    assert empty.extra == {"stop_reason": "stop"}


# -- requests ---------------------------------------------------------------------------


AZURE_FIELDS = {f.name for f in dataclasses.fields(AzureSettings)}


def spec(**kw: object) -> ProviderSpec:
    base: dict[str, object] = {
        "id": "az",
        "type": "azure-openai",
        "model": "gpt-4o",
        "base_url": "https://myres.openai.azure.com/",
        "api_key": Secret(KEY, "${AZURE_OPENAI_API_KEY}"),
    }
    # The Azure fields (deployment, api_version, auth, ...) go to its settings.
    own = {"deployment": "prod-4o"} | {k: kw.pop(k) for k in list(kw) if k in AZURE_FIELDS}
    base.update(kw, settings=AzureSettings(**own))  # type: ignore[arg-type]
    return ProviderSpec(**base)  # type: ignore[arg-type]


PROMPT = PromptSpec(
    id="q", messages=(Message("system", "Be brief."), Message("user", "Capital of Denmark?"))
)


def test_classic_url_with_api_version_and_key_auth() -> None:
    adapter = AzureOpenAIAdapter(
        spec(api_version="2024-10-21", max_tokens_field="max_completion_tokens")
    )
    req = adapter.build_request(PROMPT, 40)
    assert str(req.url) == (
        "https://myres.openai.azure.com/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21"
    )
    assert req.headers["api-key"] == KEY
    assert "authorization" not in req.headers
    assert req.headers["accept-encoding"] == "identity"
    assert req.headers["accept"] == "text/event-stream"
    assert json.loads(req.content) == {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of Denmark?"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_completion_tokens": 40,
    }


def test_v1_url_model_is_the_deployment_and_entra_auth() -> None:
    adapter = AzureOpenAIAdapter(
        spec(auth="entra", api_key=Secret(TOKEN, "${AZURE_OPENAI_AD_TOKEN}"))
    )
    req = adapter.build_request(PROMPT, None)
    assert str(req.url) == "https://myres.openai.azure.com/openai/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    assert "api-key" not in req.headers
    body = json.loads(req.content)
    assert body["model"] == "prod-4o"
    assert "max_tokens" not in body


def test_v1_without_deployment_uses_the_model() -> None:
    adapter = AzureOpenAIAdapter(spec(deployment="", include_usage=False))
    body = json.loads(adapter.build_request(PROMPT, 7).content)
    assert body["model"] == "gpt-4o"
    assert body["max_tokens"] == 7
    assert "stream_options" not in body


@pytest.mark.parametrize(
    ("base", "endpoint"),
    [
        ("https://r.openai.azure.com", "https://r.openai.azure.com"),
        ("https://r.openai.azure.com/", "https://r.openai.azure.com"),
        ("https://r.openai.azure.com/openai", "https://r.openai.azure.com"),
        ("https://r.openai.azure.com/openai/v1/", "https://r.openai.azure.com"),
        ("https://r.cognitiveservices.azure.com/openai/", "https://r.cognitiveservices.azure.com"),
    ],
)
def test_endpoint_suffixes_are_handled(base: str, endpoint: str) -> None:
    assert azure_endpoint(base) == endpoint
    classic = AzureOpenAIAdapter(spec(base_url=base, api_version="2025-04-01-preview"))
    assert str(classic.build_request(PROMPT, 1).url) == (
        f"{endpoint}/openai/deployments/prod-4o/chat/completions?api-version=2025-04-01-preview"
    )
    v1 = AzureOpenAIAdapter(spec(base_url=base))
    assert str(v1.build_request(PROMPT, 1).url) == f"{endpoint}/openai/v1/chat/completions"


def test_deployment_name_is_quoted() -> None:
    adapter = AzureOpenAIAdapter(spec(deployment="my dep/1", api_version="2024-10-21"))
    assert "/deployments/my%20dep%2F1/chat" in str(adapter.build_request(PROMPT, 1).url)


def test_exactly_one_credential_header_whatever_the_extra_headers() -> None:
    key_mode = AzureOpenAIAdapter(
        spec(headers=(("Authorization", "Bearer stray"), ("X-Team", "a")))
    )
    req = key_mode.build_request(PROMPT, 1)
    assert req.headers["api-key"] == KEY
    assert "authorization" not in req.headers
    assert req.headers["x-team"] == "a"
    entra = AzureOpenAIAdapter(
        spec(auth="entra", api_key=Secret(TOKEN), headers=(("api-key", "stray"),))
    )
    req = entra.build_request(PROMPT, 1)
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    assert "api-key" not in req.headers
    no_key = AzureOpenAIAdapter(spec(api_key=None))
    req = no_key.build_request(PROMPT, 1)
    assert "api-key" not in req.headers
    assert "authorization" not in req.headers


def test_invalid_configurations() -> None:
    with pytest.raises(ProviderError, match="no base_url"):
        AzureOpenAIAdapter(spec(base_url=None))
    with pytest.raises(ProviderError, match="need a deployment"):
        AzureOpenAIAdapter(spec(deployment="", api_version="2024-10-21"))
    with pytest.raises(ProviderError, match="key or entra"):
        AzureOpenAIAdapter(spec(auth="aws"))


@pytest.mark.parametrize("auth", ["key", "entra"])
def test_no_secret_in_any_repr(auth: str) -> None:
    adapter = AzureOpenAIAdapter(spec(auth=auth, api_version="2024-10-21"))
    req = adapter.build_request(PROMPT, 8)
    for shown in (
        repr(adapter),
        repr(req),
        str(req.url),
        repr(req.headers),
        str(req.headers),
        repr(adapter.spec),
    ):
        assert KEY not in shown
    assert isinstance(adapter.new_decoder(PROMPT), AzureChatDecoder)
    assert isinstance(adapter_for(spec()), AzureOpenAIAdapter)


AZURE_429 = (
    b'{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under '
    b"Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current tier. "
    b'Please retry after 37 seconds."}}'
)


@pytest.mark.parametrize(
    ("status", "payload", "cls", "fragment"),
    [
        (429, AZURE_429, ErrorClass.HTTP_429, "HTTP 429: Requests to the ChatCompletions_Create"),
        (
            400,
            b'{"error":{"code":"content_filter","message":"The response was filtered"}}',
            ErrorClass.HTTP_4XX,
            "HTTP 400: The response was filtered",
        ),
        (
            401,
            b'{"error":{"code":"401","message":"Access denied due to invalid subscription key."}}',
            ErrorClass.HTTP_4XX,
            "HTTP 401: Access denied",
        ),
        (
            503,
            b'{"error":{"code":"ServiceUnavailable","message":"The service is unavailable"}}',
            ErrorClass.OVERLOADED,
            "HTTP 503: The service",
        ),
    ],
)
def test_http_errors(status: int, payload: bytes, cls: ErrorClass, fragment: str) -> None:
    got_cls, msg = AzureOpenAIAdapter(spec()).classify_http_error(status, httpx.Headers(), payload)
    assert got_cls is cls
    assert msg.startswith(fragment)
    assert KEY not in msg


def test_response_facts_keep_retry_and_rate_limit_headers() -> None:
    headers = httpx.Headers(
        {
            "retry-after": "37",
            "retry-after-ms": "37000",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-remaining-tokens": "120",
            "x-request-id": "abc",
            "apim-request-id": "def",
            "x-ms-region": "Sweden Central",
            "server": "nginx",
        }
    )
    facts = AzureOpenAIAdapter(spec()).response_facts(headers)
    assert facts == {
        "retry-after": "37",
        "retry-after-ms": "37000",
        "retry_after_s": "37",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-remaining-tokens": "120",
        "x-request-id": "abc",
        "apim-request-id": "def",
        "x-ms-region": "Sweden Central",
    }

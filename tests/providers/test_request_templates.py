"""Requests built once per prompt and limit, copied per request (providers.base)."""

from __future__ import annotations

import functools
import json

import httpx
import pytest

from lens.plan.model import Message, OpenAISettings, PromptSpec, ProviderSpec, Secret
from lens.providers.base import MaskedHeaders, RequestTemplates, copy_request, masked_request
from lens.providers.openai_chat import OpenAIChatAdapter

PROMPT = PromptSpec(id="q", messages=(Message("user", "hello there"),))


def _spec() -> ProviderSpec:
    return ProviderSpec(
        id="p",
        type="openai-compatible",
        model="m",
        base_url="http://127.0.0.1:9/v1",
        settings=OpenAISettings(),
        api_key=Secret("sk-123", "${K}"),
    )


def _same(a: httpx.Request, b: httpx.Request) -> None:
    assert a.method == b.method
    assert str(a.url) == str(b.url)
    assert a.headers.raw == b.headers.raw  # Host, Content-Length and order included
    assert a.content == b.content


def test_a_copy_equals_a_freshly_built_request_and_has_its_own_extensions() -> None:
    adapter = OpenAIChatAdapter(_spec())
    fresh = adapter._build(PROMPT, 16)
    first, second = adapter.build_request(PROMPT, 16), adapter.build_request(PROMPT, 16)
    _same(first, fresh)
    _same(second, fresh)
    assert first is not second
    first.extensions["hook"] = 1
    assert "hook" not in second.extensions  # the request layer's hooks stay per request
    assert json.loads(second.content)["max_tokens"] == 16


def test_the_limit_and_the_prompt_are_part_of_the_key() -> None:
    adapter = OpenAIChatAdapter(_spec())
    other = PromptSpec(id="r", messages=(Message("user", "something else"),))
    assert json.loads(adapter.build_request(PROMPT, 16).content)["max_tokens"] == 16
    assert json.loads(adapter.build_request(PROMPT, 32).content)["max_tokens"] == 32
    assert json.loads(adapter.build_request(PROMPT, None).content).get("max_tokens") is None
    body = json.loads(adapter.build_request(other, 16).content)
    assert body["messages"][0]["content"] == "something else"


def test_build_runs_once_per_key_and_the_cache_starts_over_when_full() -> None:
    calls: list[str] = []

    def build(prompt: PromptSpec) -> httpx.Request:
        calls.append(prompt.id)
        return httpx.Request("POST", "http://h/x", content=prompt.id.encode())

    templates = RequestTemplates(limit=2)
    prompts = [PromptSpec(id=f"p{i}", messages=(Message("user", "x"),)) for i in range(3)]

    def send(*which: int) -> None:
        for i in which:
            p = prompts[i]
            assert templates.request(p, 1, functools.partial(build, p)).content == p.id.encode()

    send(0, 1, 0, 1, 0, 1)
    assert calls == ["p0", "p1"]  # within the limit: each built once
    send(2, 2, 2)  # a later unit's prompt: the full cache starts over, and keeps it
    assert calls == ["p0", "p1", "p2"]
    send(0)
    assert calls == ["p0", "p1", "p2", "p0"]  # dropped when the cache started over
    assert len(templates._built) <= 2


def test_a_build_that_fails_is_not_kept() -> None:
    templates = RequestTemplates()
    tries = 0

    def build() -> httpx.Request:
        nonlocal tries
        tries += 1
        raise ValueError("bad URL")

    for _ in range(2):
        with pytest.raises(ValueError):
            templates.request(PROMPT, 1, build)
    assert tries == 2


def test_masked_headers_stay_masked() -> None:
    template = masked_request("http://h/x", {"x-api-key": "secret-value"}, b"{}")
    copy = copy_request(template)
    assert isinstance(copy.headers, MaskedHeaders)
    assert "secret-value" not in repr(copy.headers)
    _same(copy, template)

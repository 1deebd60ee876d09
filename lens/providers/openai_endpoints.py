"""The OpenAI APIs beside streamed Chat Completions: ``/completions``, ``/embeddings``, and
any of them not streamed (``stream: false``).  The scenario's ``endpoint:`` and ``stream:``
(``ProviderSpec.endpoint``) pick them; the streamed chat path stays
``lens.providers.openai_chat``'s, untouched.

Wire facts (OpenAI API reference; vLLM, SGLang and llama.cpp serve the same shapes):

* ``POST /completions`` takes ``prompt`` (a string) and streams ``data: <json>`` events whose
  ``choices[i].text`` carries the tokens, ``data: [DONE]`` last; usage comes in a final
  ``choices: []`` chunk with ``stream_options.include_usage``, as on chat.
* ``POST /embeddings`` takes ``input`` (an array of strings) and answers one JSON object:
  ``data: [{"object": "embedding", "index": i, "embedding": [...]}, ...]`` and
  ``usage: {"prompt_tokens", "total_tokens"}``.  There is no stream.
* ``stream: false`` on chat or completions answers one ``chat.completion`` /
  ``text_completion`` object with ``choices[0].message.content`` / ``choices[0].text``,
  ``finish_reason`` and ``usage`` (always sent: ``stream_options`` is refused without a
  stream by OpenAI, so lens sends none).

What a whole-body response measures: ``e2e`` (and ``ttfb``); no token was timed, so
``ttft``, ``ttfot``, ``itl``, ``icl``, ``tpot`` and ``output_tokens_per_s`` are absent
(None), never equal to ``e2e``.  Tokens come from ``usage``, else the provider's
tokenizer, else lens's estimate (``token_source`` says which).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import httpx

from lens.plan.model import EndpointSpec, PromptSpec, ProviderSpec
from lens.plan.workloads import deep_merge
from lens.providers.base import (
    PayloadShapeError,
    StreamDecoder,
    StreamOutcome,
    Usage,
    estimate_tokens,
    json_kind,
    llama_timings,
)
from lens.providers.openai_chat import (
    OpenAIChatAdapter,
    OpenAIChatDecoder,
    _map_usage,
    stream_error_message,
)
from lens.providers.sse import DEFAULT_MAX_EVENT_BYTES
from lens.records import ErrorClass, TokenSource
from lens.scenario.tokenizers import Tokenizer

PATHS = {"chat": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings"}
_DONE = b"[DONE]"


def completion_prompt(prompt: PromptSpec) -> str:
    """The ``prompt`` string of ``/completions``: the prompt's texts, joined by a blank line
    (a chat template is the server's business on chat; completions send raw text)."""
    return "\n\n".join(m.content for m in prompt.messages)


def embedding_inputs(prompt: PromptSpec, per_request: int | None) -> list[str]:
    """The ``input`` batch of ``/embeddings``: one input per message text, or, with
    ``inputs_per_request: N``, those texts repeated in turn to N."""
    texts = [m.content for m in prompt.messages]
    if per_request is None or not texts:
        return texts
    return [texts[i % len(texts)] for i in range(per_request)]


class OpenAIEndpointAdapter(OpenAIChatAdapter):
    """``OpenAIChatAdapter`` for completions, embeddings and non-streamed requests."""

    def __init__(self, spec: ProviderSpec) -> None:
        super().__init__(spec)
        self.endpoint: EndpointSpec = spec.endpoint
        assert spec.base_url is not None  # the base class has checked it
        self._url = spec.base_url.rstrip("/") + PATHS[self.endpoint.kind]
        if not self.endpoint.streams:
            self._headers["accept"] = "application/json"

    def _build(self, prompt: PromptSpec, max_tokens: int | None) -> httpx.Request:
        endpoint, settings = self.endpoint, self.settings
        body: dict[str, Any] = {"model": self.spec.model}
        if endpoint.kind == "embeddings":
            body["input"] = embedding_inputs(prompt, endpoint.inputs_per_request)
        else:
            if endpoint.kind == "chat":
                body["messages"] = [{"role": m.role, "content": m.content} for m in prompt.messages]
                limit_field = settings.max_tokens_field
            else:
                body["prompt"] = completion_prompt(prompt)
                limit_field = "max_tokens"  # the legacy API knows no other
            body["stream"] = endpoint.stream
            if endpoint.stream and settings.include_usage:
                body["stream_options"] = {"include_usage": True}
            limit = prompt.token_limit(max_tokens)
            if limit is not None:
                body[limit_field] = limit
                if settings.exact_output:
                    body["ignore_eos"] = True
                    body["min_tokens"] = limit
        if prompt.body:
            body = deep_merge(body, prompt.body)
        url = self._parsed_url
        if url is None:
            url = self._parsed_url = httpx.URL(self._url)
        return httpx.Request("POST", url, headers=self._headers, content=json.dumps(body).encode())

    def new_decoder(self, prompt: PromptSpec) -> StreamDecoder:  # type: ignore[override]
        endpoint, limit = self.endpoint, self.spec.limits.max_event_bytes
        if not endpoint.streams:
            inputs = None
            if endpoint.kind == "embeddings":
                inputs = embedding_inputs(prompt, endpoint.inputs_per_request)
            return WholeBodyDecoder(endpoint.kind, self.spec.tokenizer, inputs)
        if endpoint.kind == "completions":
            return CompletionsDecoder(limit, self.spec.tokenizer)
        return super().new_decoder(prompt)


class CompletionsDecoder(OpenAIChatDecoder):
    """A ``/completions`` stream: chat's decoder with the tokens in ``choices[i].text``.

    Every event is parsed (no fast path: the chat decoder's is keyed to ``delta.content``);
    finish reason, usage, errors and the end are read as on chat.  With a ``tokenizer``, a
    stream without usage is counted by it (``token_source: tokenizer``), as chat's is."""

    __slots__ = ("_texts", "_tokenizer")

    def __init__(
        self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES, tokenizer: Tokenizer | None = None
    ) -> None:
        super().__init__(max_event_bytes)
        self._tokenizer = tokenizer
        self._texts: list[str] = []  # kept only to be counted by the tokenizer

    def finish(self, t_ns: int, *, eof: bool) -> StreamOutcome:
        out = super().finish(t_ns, eof=eof)
        if self._tokenizer is None or out.token_source is not TokenSource.ESTIMATED:
            return out
        count = self._tokenizer.count("".join(self._texts))
        return dataclasses.replace(
            out,
            chunk_tokens=self._timeline.tokens_per_chunk(count),
            usage=dataclasses.replace(out.usage, output_tokens=count),
            token_source=TokenSource.TOKENIZER,
        )

    def _on_event(self, data: bytes, event: bytes, t_ns: int) -> None:
        if data == _DONE:
            self._done = True
            return
        try:
            obj = json.loads(data)
        except (ValueError, RecursionError):
            self._error = self._error or f"unparseable event: {data[:120]!r}"
            return
        if not isinstance(obj, dict):
            return
        err = obj.get("error")
        if err is not None or event == b"error":
            if self._error is None:
                self._error = stream_error_message(err, data)
            return
        usage = obj.get("usage")
        if usage:
            if not isinstance(usage, dict):
                raise PayloadShapeError(f"usage is {json_kind(usage)}, not an object")
            self._usage = usage
        timings = obj.get("timings")  # llama.cpp: on the last chunk, as on chat
        if timings is not None:
            self._engine = llama_timings(timings) or self._engine
        for choice in _choices(obj):
            reason = choice.get("finish_reason")
            if isinstance(reason, str) and reason:
                self._finish = reason
            text = choice.get("text")
            if text:
                if not isinstance(text, str):
                    raise PayloadShapeError(f"choices[].text is {json_kind(text)}, not a string")
                self._timeline.add(t_ns, len(text))
                if self._tokenizer is not None:
                    self._texts.append(text)


def _choices(obj: dict[str, Any]) -> list[dict[str, Any]]:
    choices = obj.get("choices")
    if not choices:
        return []
    if not isinstance(choices, list):
        raise PayloadShapeError(f"choices is {json_kind(choices)}, not an array")
    for choice in choices:
        if not isinstance(choice, dict):
            raise PayloadShapeError(f"a choice is {json_kind(choice)}, not an object")
    return choices


class WholeBodyDecoder:
    """One JSON response (``stream: false``, or embeddings): kept whole, read at the end.

    No token is timed, so the outcome has no chunk and no first/last token stamp: the
    record's TTFT, ITL and TPOT are absent.  ``inputs``: the embedding batch sent (None for
    chat and completions)."""

    __slots__ = ("_inputs", "_kind", "_parts", "_tokenizer")

    def __init__(
        self, kind: str, tokenizer: Tokenizer | None = None, inputs: list[str] | None = None
    ) -> None:
        self._kind = kind
        self._tokenizer = tokenizer
        self._inputs = inputs
        self._parts: list[bytes] = []  # the transport bounds the body (max_response_bytes)

    def feed(self, data: bytes, t_ns: int) -> None:
        del t_ns  # nothing in the body is timed: its end is the record's t_end
        self._parts.append(data)

    def finish(self, t_ns: int, *, eof: bool) -> StreamOutcome:
        del t_ns
        if not eof:
            return _failed(ErrorClass.CUT_STREAM, "connection lost before the body ended")
        try:
            obj = json.loads(b"".join(self._parts))
        except (ValueError, RecursionError):
            raise PayloadShapeError("the response body is not JSON") from None
        if not isinstance(obj, dict):
            raise PayloadShapeError(f"the response is {json_kind(obj)}, not an object")
        err = obj.get("error")
        if err is not None:
            return _failed(ErrorClass.STREAM_ERROR, stream_error_message(err, b"error in the body"))
        usage = obj.get("usage")
        if usage is not None and not isinstance(usage, dict):
            raise PayloadShapeError(f"usage is {json_kind(usage)}, not an object")
        if self._kind == "embeddings":
            return self._embeddings(obj, usage)
        return self._completion(obj, usage)

    def _completion(self, obj: dict[str, Any], raw_usage: dict[str, Any] | None) -> StreamOutcome:
        texts: list[str] = []
        reason = None
        for choice in _choices(obj):
            if self._kind == "chat":
                message = choice.get("message") or {}
                if not isinstance(message, dict):
                    raise PayloadShapeError(
                        f"choices[].message is {json_kind(message)}, not an object"
                    )
                parts = [message.get(k) for k in ("content", "reasoning_content", "reasoning")]
            else:
                parts = [choice.get("text")]
            texts += [p for p in parts if isinstance(p, str)]
            found = choice.get("finish_reason")
            if isinstance(found, str) and found:
                reason = found
        usage, _hidden = _map_usage(raw_usage)
        text = "".join(texts)
        source: TokenSource | None = TokenSource.USAGE
        if usage.output_tokens is None:
            if self._tokenizer is not None:
                count, source = self._tokenizer.count(text), TokenSource.TOKENIZER
            else:
                count, source = estimate_tokens(len(text)), TokenSource.ESTIMATED
            usage = Usage(
                usage.input_tokens,
                count,
                usage.cached_input_tokens,
                usage.reasoning_tokens,
                usage.cache_write_tokens,
            )
        error_class, message = None, None
        if not text and not usage.output_tokens:
            error_class, message = ErrorClass.EMPTY, "the response carried no token"
        return StreamOutcome(
            chunk_times=(),
            chunk_tokens=(),
            t_first_token=None,
            t_first_visible=None,
            t_last_token=None,
            usage=usage,
            token_source=source,
            error_class=error_class,
            error_message=message,
            events=1,
            extra={"stop_reason": reason} if reason else {},
            engine=llama_timings(obj.get("timings")),  # llama.cpp's, in the body
        )

    def _embeddings(self, obj: dict[str, Any], raw_usage: dict[str, Any] | None) -> StreamOutcome:
        data = obj.get("data")
        if not isinstance(data, list):
            raise PayloadShapeError(f"data is {json_kind(data)}, not an array")
        for item in data:
            vector = item.get("embedding") if isinstance(item, dict) else None
            if not isinstance(vector, list | str):  # a string: encoding_format base64
                raise PayloadShapeError(f"an embedding is {json_kind(vector)}, not an array")
        sent = self._inputs or []
        if len(data) != len(sent):
            raise PayloadShapeError(f"{len(data)} embeddings for {len(sent)} inputs")
        prompt_tokens = raw_usage.get("prompt_tokens") if raw_usage else None
        source: TokenSource | None = TokenSource.USAGE
        if not isinstance(prompt_tokens, int) or isinstance(prompt_tokens, bool):
            if self._tokenizer is not None:
                prompt_tokens = sum(self._tokenizer.count(t) for t in sent)
                source = TokenSource.TOKENIZER
            else:
                prompt_tokens = sum(estimate_tokens(len(t)) for t in sent)
                source = TokenSource.ESTIMATED
        error_class, message = None, None
        if not data:
            error_class, message = ErrorClass.EMPTY, "the response carried no embedding"
        return StreamOutcome(
            chunk_times=(),
            chunk_tokens=(),
            t_first_token=None,
            t_first_visible=None,
            t_last_token=None,
            usage=Usage(input_tokens=prompt_tokens),
            token_source=source,
            error_class=error_class,
            error_message=message,
            events=1,
            inputs=len(data),
        )


def _failed(error_class: ErrorClass, message: str) -> StreamOutcome:
    return StreamOutcome(
        chunk_times=(),
        chunk_tokens=(),
        t_first_token=None,
        t_first_visible=None,
        t_last_token=None,
        usage=Usage(),
        token_source=None,
        error_class=error_class,
        error_message=message,
    )


def openai_adapter(spec: ProviderSpec) -> OpenAIChatAdapter:
    """The adapter of an ``openai``/``openai-compatible`` spec: the streamed-chat one
    unless its endpoint says otherwise."""
    if spec.endpoint == EndpointSpec():
        return OpenAIChatAdapter(spec)
    return OpenAIEndpointAdapter(spec)

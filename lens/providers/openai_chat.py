"""OpenAI Chat Completions streaming: OpenAI, any OpenAI-compatible server, and lens's simulator.

Wire facts (wire-formats.md §1, §7): ``data: <json>`` events, ``data: [DONE]`` last; the first
chunk is role-only with empty content (never a token); usage comes in a final chunk with
``choices: []`` when ``stream_options.include_usage`` is set (vLLM may send it on every
chunk, Groq on the finish chunk: the last one seen wins); an in-band ``{"error": …}`` ends the
request as ``stream_error``; reasoning text streams as ``delta.reasoning_content`` (vLLM,
DeepSeek) or ``delta.reasoning`` (Groq, Ollama).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import httpx

from lens.errors import ProviderError
from lens.plan.model import OpenAISettings, PromptSpec, ProviderSpec
from lens.plan.workloads import deep_merge
from lens.providers.base import (
    PayloadShapeError,
    RequestTemplates,
    StreamOutcome,
    TokenTimeline,
    Usage,
    classify_status,
    error_text,
    header_facts,
    json_kind,
    json_string_bytes,
    llama_timings,
    settings_of,
)
from lens.providers.sse import DEFAULT_MAX_EVENT_BYTES, SseDecoder
from lens.records import EngineTimings, ErrorClass, TokenSource
from lens.scenario.tokenizers import Tokenizer

_DONE = b"[DONE]"
_CONTENT = b'"content":"'
_QUOTE = ord('"')
# Any of these in an event means it needs the full JSON path.
_SLOW_MARKERS = (b'"usage":{', b'"error"', b'"tool_calls"', b'"reasoning', b'"choices":[{"index":1')


_USAGE, _ERROR, _TOOLS, _REASONING, _SECOND = _SLOW_MARKERS


def _is_plain_delta(data: bytes) -> bool:
    """A compact OpenAI chunk whose only news is ``delta.content`` (JSON left unparsed).

    Compact JSON is what OpenAI, Azure, vLLM and the simulator send; a server that puts
    spaces after colons simply takes the full path.
    """
    # Spelled out: a generator over the markers costs more than the five searches.
    return data.count(_CONTENT) == 1 and not (
        _USAGE in data or _ERROR in data or _TOOLS in data or _REASONING in data or _SECOND in data
    )


class OpenAIChatAdapter:
    def __init__(self, spec: ProviderSpec) -> None:
        if spec.base_url is None:
            raise ProviderError(f"provider {spec.id!r} has no base_url")
        self.spec = spec
        self.settings = settings_of(spec, OpenAISettings)
        self._url = spec.base_url.rstrip("/") + "/chat/completions"
        self._parsed_url: httpx.URL | None = None  # parsed once, on the first request
        # identity: a compressed event stream would be buffered by the compressor and
        # arrive in bursts, and lens reads raw bytes to stamp them before any decoding.
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream",
            "accept-encoding": "identity",
        }
        headers.update(dict(spec.headers))
        if spec.api_key is not None and spec.api_key.reveal():
            headers["authorization"] = f"Bearer {spec.api_key.reveal()}"
        self._headers = headers
        self._requests = RequestTemplates()  # each prompt's request built once

    def build_request(self, prompt: PromptSpec, max_tokens: int | None) -> httpx.Request:
        if prompt.turn is not None:
            # A conversation's turn: its history is sent once, not worth a template.
            return self._build(prompt, max_tokens)
        return self._requests.request(prompt, max_tokens, lambda: self._build(prompt, max_tokens))

    def _build(self, prompt: PromptSpec, max_tokens: int | None) -> httpx.Request:
        body: dict[str, Any] = {
            "model": self.spec.model,
            "messages": [{"role": m.role, "content": m.content} for m in prompt.messages],
            "stream": True,
        }
        if self.settings.include_usage:
            body["stream_options"] = {"include_usage": True}
        limit = prompt.token_limit(max_tokens)
        if limit is not None:
            body[self.settings.max_tokens_field] = limit
            if self.settings.exact_output:
                # vLLM and SGLang: generate through end-of-sequence, and no fewer than the
                # limit, so every response is exactly max_tokens long.
                body["ignore_eos"] = True
                body["min_tokens"] = limit
        if prompt.body:
            body = deep_merge(body, prompt.body)
        url = self._parsed_url
        if url is None:  # a URL httpx cannot parse fails the request, as before
            url = self._parsed_url = httpx.URL(self._url)
        return httpx.Request("POST", url, headers=self._headers, content=json.dumps(body).encode())

    def new_decoder(self, prompt: PromptSpec) -> OpenAIChatDecoder:
        if self.spec.tokenizer is not None or prompt.keep_reply:
            return CountingChatDecoder(
                self.spec.tokenizer, self.spec.limits.max_event_bytes, keep_text=prompt.keep_reply
            )
        return OpenAIChatDecoder(self.spec.limits.max_event_bytes)

    def response_facts(self, headers: httpx.Headers) -> dict[str, str]:
        return header_facts(headers)

    def classify_http_error(
        self, status: int, headers: httpx.Headers, body: bytes
    ) -> tuple[ErrorClass, str]:
        del headers
        return classify_status(status), f"HTTP {status}: {error_text(body)}"


def stream_error_message(err: object, data: bytes) -> str:
    """The message of an in-stream error event (``{"error": ...}``): its ``message``, else
    the event quoted as sent when the message is not text, cut to 300 characters."""
    msg = err.get("message") if isinstance(err, dict) else err
    if not msg:
        return "error event in stream"
    if not isinstance(msg, str | int | float):
        return data[:300].decode("utf-8", "replace")
    return str(msg)[:300]


class OpenAIChatDecoder:
    __slots__ = (
        "_done",
        "_engine",
        "_error",
        "_finish",
        "_head",
        "_last_plain",
        "_sse",
        "_tail",
        "_timeline",
        "_usage",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._sse = SseDecoder(max_event_bytes)
        self._timeline = TokenTimeline()
        self._usage: dict[str, Any] | None = None
        self._done = False
        self._error: str | None = None
        # The last plain delta around its content string: the bytes up to and including
        # '"content":"' and those from the closing quote on.  A server repeats them on
        # every delta of a stream (id, model, created, finish_reason: null), so an event
        # with the same head and tail is plain too: the markers of _is_plain_delta all
        # start with a quote, which the content string cannot hold unescaped.
        self._head = b"\0"  # matches no event until a plain delta sets it
        self._tail = b""
        self._finish: str | None = None  # the finish reason a parsed chunk gave
        # The last plain delta that did not repeat the template above: the finish reason
        # may ride on it (vLLM sends the last token with it); parsed once, at the end.
        self._last_plain: bytes | None = None
        # llama.cpp's ``timings``: on its final chunk (an empty delta, so never a plain
        # delta), which the full path parses anyway; the fast paths look for nothing.
        self._engine: EngineTimings | None = None

    def feed(self, data: bytes, t_ns: int) -> None:
        for event, payload in self._sse.feed(data):
            self._on_event(payload, event, t_ns)

    def _on_event(self, data: bytes, event: bytes, t_ns: int) -> None:
        if data.startswith(self._head) and not event:
            # The plain delta again, as checked below: one compare at each end.
            start = len(self._head)
            size = json_string_bytes(data, start)
            if data.endswith(self._tail) and start + size + len(self._tail) == len(data):
                if size:  # '"content":""' is the role chunk: not a token
                    self._timeline.add(t_ns, size)
                return
        if data == _DONE:
            self._done = True
            return
        if not event and _is_plain_delta(data):
            # Fast path for the overwhelmingly common event, a content delta with nothing
            # else of interest: no JSON parse.  Anything unusual takes the full path.
            start = data.find(_CONTENT) + len(_CONTENT)
            self._last_plain = data  # not on the template path: once or twice a stream
            size = json_string_bytes(data, start)
            if size:  # '"content":""' is the role chunk: not a token
                self._timeline.add(t_ns, size)
            if start + size < len(data):  # a closed string: the template of what follows
                self._head = data[:start]
                self._tail = data[start + size :]
            return
        try:
            obj = json.loads(data)
        except (ValueError, RecursionError):  # too deep: unparseable too
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
        timings = obj.get("timings")
        if timings is not None:
            self._engine = llama_timings(timings) or self._engine
        choices = obj.get("choices")
        if not choices:
            return
        if not isinstance(choices, list):
            raise PayloadShapeError(f"choices is {json_kind(choices)}, not an array")
        for choice in choices:
            if not isinstance(choice, dict):
                raise PayloadShapeError(f"a choice is {json_kind(choice)}, not an object")
            reason = choice.get("finish_reason")
            if isinstance(reason, str) and reason:
                self._finish = reason
            delta = choice.get("delta") or {}
            if not isinstance(delta, dict):
                raise PayloadShapeError(f"choices[].delta is {json_kind(delta)}, not an object")
            content = delta.get("content")
            if content:
                self._timeline.add(t_ns, len(_text(content, "content")))
                continue
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if reasoning:
                self._timeline.add(t_ns, len(_text(reasoning, "reasoning")), visible=False)
                continue
            tool_calls = delta.get("tool_calls")
            if tool_calls:
                self._timeline.add(t_ns, max(_tool_call_chars(tool_calls), 1))

    def finish(self, t_ns: int, *, eof: bool) -> StreamOutcome:
        for event, payload in self._sse.close():
            self._on_event(payload, event, t_ns)
        usage, hidden = _map_usage(self._usage)
        if self._timeline.reasoning_chars:
            hidden = 0  # reasoning was streamed, so it is inside the chunks
        error_class: ErrorClass | None = None
        message: str | None = None
        if self._error is not None:
            error_class, message = ErrorClass.STREAM_ERROR, self._error
        elif not eof or not self._done:
            error_class = ErrorClass.CUT_STREAM
            message = "stream ended before data: [DONE]" if eof else "connection lost mid-stream"
        reason = self._finish_reason()
        return self._timeline.outcome(
            usage,
            error_class=error_class,
            error_message=message,
            events=self._sse.events_seen,
            hidden_reasoning_tokens=hidden,
            extra={"stop_reason": reason} if reason else None,
            engine=self._engine,
        )

    def _finish_reason(self) -> str | None:
        """The stream's finish reason (``stop``, ``length`` ...), None if none was sent."""
        if self._finish is None and self._last_plain is not None:
            try:
                obj = json.loads(self._last_plain)
            except (ValueError, RecursionError):
                return None
            for choice in obj.get("choices") or () if isinstance(obj, dict) else ():
                reason = choice.get("finish_reason") if isinstance(choice, dict) else None
                if isinstance(reason, str) and reason:
                    self._finish = reason
        return self._finish


class CountingChatDecoder(OpenAIChatDecoder):
    """A decoder that also keeps each event, so a response without usage is counted by the
    provider's tokenizer (``token_source: tokenizer``) instead of estimated, and (``keep_text``)
    its reply text is kept for a conversation's next turn.  Only providers that name a
    tokenizer, and conversation turns, get it: the plain decoder keeps nothing."""

    __slots__ = ("_events", "_keep_text", "_tokenizer")

    def __init__(
        self,
        tokenizer: Tokenizer | None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        *,
        keep_text: bool = False,
    ) -> None:
        super().__init__(max_event_bytes)
        self._tokenizer = tokenizer
        self._keep_text = keep_text
        self._events: list[bytes] = []

    def _on_event(self, data: bytes, event: bytes, t_ns: int) -> None:
        self._events.append(data)
        super()._on_event(data, event, t_ns)

    def finish(self, t_ns: int, *, eof: bool) -> StreamOutcome:
        out = super().finish(t_ns, eof=eof)
        if self._keep_text:
            visible = "".join(self._texts(("content",)))
            out = dataclasses.replace(out, text=visible)
        if out.token_source is not TokenSource.ESTIMATED or self._tokenizer is None:
            return out  # the server's usage, or no token at all
        count = self._tokenizer.count("".join(self._texts()))
        return dataclasses.replace(
            out,
            chunk_tokens=self._timeline.tokens_per_chunk(count),
            usage=dataclasses.replace(out.usage, output_tokens=count),
            token_source=TokenSource.TOKENIZER,
        )

    def _texts(
        self, keys: tuple[str, ...] = ("content", "reasoning_content", "reasoning")
    ) -> list[str]:
        texts = []
        for data in self._events:
            try:
                obj = json.loads(data)
            except (ValueError, RecursionError):
                continue
            for choice in obj.get("choices") or () if isinstance(obj, dict) else ():
                delta = choice.get("delta") if isinstance(choice, dict) else None
                if not isinstance(delta, dict):
                    continue
                for key in keys:
                    value = delta.get(key)
                    if isinstance(value, str):
                        texts.append(value)
        return texts


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise PayloadShapeError(f"choices[].delta.{name} is {json_kind(value)}, not a string")
    return value


def _tool_call_chars(tool_calls: object) -> int:
    if not isinstance(tool_calls, list):
        raise PayloadShapeError(f"delta.tool_calls is {json_kind(tool_calls)}, not an array")
    chars = 0
    for call in tool_calls:
        function = call.get("function") if isinstance(call, dict) else None
        arguments = function.get("arguments") if isinstance(function, dict) else None
        chars += len(arguments) if isinstance(arguments, str) else 0
    return chars


def _map_usage(raw: dict[str, Any] | None) -> tuple[Usage, int]:
    """OpenAI usage → lens usage, plus reasoning tokens that were never streamed."""
    if not raw:
        return Usage(), 0
    prompt = raw.get("prompt_tokens")
    completion = raw.get("completion_tokens")
    cached = _detail(raw.get("prompt_tokens_details"), "cached_tokens")
    reasoning = _detail(raw.get("completion_tokens_details"), "reasoning_tokens")
    if reasoning is None:
        reasoning = raw.get("reasoning_tokens")  # SGLang puts it at the top level
    usage = Usage(
        input_tokens=_count(prompt),
        output_tokens=_count(completion),
        cached_input_tokens=_count(cached),
        reasoning_tokens=_count(reasoning),
    )
    return usage, _count(reasoning) or 0


def _detail(details: object, name: str) -> object:
    return details.get(name) if isinstance(details, dict) else None


def _count(value: object) -> int | None:
    """A token count: an int (a bool is not one), else unknown."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None

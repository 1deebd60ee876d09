"""The seam between the executor and the wire protocols.

A provider adapter turns a prompt into an ``httpx.Request`` and a response byte stream into
timed facts.  The executor owns the clock and the socket; adapters never sleep, never read
the clock, and never raise for failures of the system under test: they report them as an
``ErrorClass`` with the provider's own message.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import httpx

from lens.errors import ProviderError
from lens.plan.model import PromptSpec, ProviderSpec
from lens.providers import ratelimit
from lens.records import EngineTimings, ErrorClass, TokenSource

SYSTEM_ROLES = frozenset({"system", "developer"})

# Header names whose values are credentials: masked in reprs (httpx masks only
# ``authorization``).  Shared by the adapters that send keys in their own header.
SECRET_HEADERS = frozenset({"x-api-key", "api-key", "x-goog-api-key", "authorization"})


class MaskedHeaders(httpx.Headers):
    """``httpx.Headers`` whose repr masks every credential header, not only authorization."""

    def __repr__(self) -> str:
        shown = [(k, "[secure]" if k.lower() in SECRET_HEADERS else v) for k, v in self.items()]
        return f"Headers({shown!r})"


def masked_request(url: str | httpx.URL, headers: dict[str, str], body: bytes) -> httpx.Request:
    """A POST whose headers never show a credential in a repr or a log line."""
    request = httpx.Request("POST", url, headers=headers, content=body)
    request.headers = MaskedHeaders(request.headers)
    return request


class RequestTemplates:
    """Requests that repeat, built once each: a copy per request.

    An adapter's request for one prompt and output limit is the same bytes every time
    (the body's JSON, the headers with Host and Content-Length), yet building it costs a
    JSON encoding and httpx's header preparation (lookups, defaults, a rebuilt header
    list): ~14 us of the client's CPU per request on this machine's idle core, against
    ~2 us to copy a built one (``copy_request``).  Keyed by the prompt object and the
    limit.  At most ``limit`` templates are kept: when full, the cache starts over, so a
    later unit's prompts (a unit with a ``body:`` has prompt objects of its own) are cached
    in turn, and a dataset of more prompts than that costs a build per request, as it did,
    rather than a second copy of every body in memory.
    """

    __slots__ = ("_built", "limit")

    def __init__(self, limit: int = 256) -> None:
        self.limit = limit
        self._built: dict[tuple[int, int | None], tuple[PromptSpec, httpx.Request]] = {}

    def request(
        self, prompt: PromptSpec, max_tokens: int | None, build: Callable[[], httpx.Request]
    ) -> httpx.Request:
        """A fresh request equal to ``build()``'s for ``prompt`` and ``max_tokens``;
        ``build`` runs on the first use only (and whenever it raises: nothing is kept)."""
        key = (id(prompt), max_tokens)
        entry = self._built.get(key)
        if entry is not None and entry[0] is prompt:
            return copy_request(entry[1])
        template = build()
        if len(self._built) >= self.limit:
            self._built.clear()
        self._built[key] = (prompt, template)
        return copy_request(template)


def copy_request(template: httpx.Request) -> httpx.Request:
    """A new request with ``template``'s method, URL, headers (of its class: masked stay
    masked) and body, read, and extensions of its own: the request layer hangs its
    per-request hooks there."""
    request = httpx.Request(
        template.method,
        template.url,
        headers=template.headers,
        stream=httpx.ByteStream(template.content),
    )
    if type(template.headers) is not httpx.Headers:
        request.headers = type(template.headers)(request.headers)
    request.read()
    return request


_Settings = TypeVar("_Settings")


def settings_of(spec: ProviderSpec, kind: type[_Settings]) -> _Settings:
    """``spec``'s own settings, which an adapter of its type needs to be a ``kind`` (the
    compiler builds them so; a spec built by hand may not be)."""
    if not isinstance(spec.settings, kind):
        raise ProviderError(
            f"provider {spec.id!r} ({spec.type}) needs {kind.__name__} settings, "
            f"not {type(spec.settings).__name__}"
        )
    return spec.settings


def no_settings(spec: ProviderSpec) -> None:
    """For the types that take nothing beyond the common fields (gemini, openai-responses)."""
    if spec.settings is not None:
        raise ProviderError(
            f"provider {spec.id!r} ({spec.type}) takes no settings of its own, "
            f"not {type(spec.settings).__name__}"
        )


class PayloadShapeError(Exception):
    """Well-formed JSON of the wrong shape (``"choices": [null]``, ``"content": 5``).

    Decoders raise it instead of guessing; the request's error boundary (lens.run.request)
    ends the request as ``protocol_error`` with this message, keeping what was measured."""


def json_kind(value: object) -> str:
    """How a JSON value reads in a message: ``null``, ``a number``, ``an array``..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


CHARS_PER_TOKEN = 4.0  # lens's token estimate when a server reports no usage
# Stop reasons that mean the model chose to stop (end of sequence, a stop sequence), in
# each protocol's words: a response that stops so before its max_tokens ended early.
NATURAL_STOP_REASONS = frozenset(
    {"stop", "end_turn", "stop_sequence", "STOP", "eos", "eos_token", "complete"}
)


def estimate_tokens(chars: int) -> int:
    return max(1, round(chars / CHARS_PER_TOKEN)) if chars > 0 else 0


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts mapped to one model (see wire-formats.md, cheat-sheet §9)."""

    input_tokens: int | None = None  # every prompt token, cached ones included
    output_tokens: int | None = None  # every generated token, reasoning included
    cached_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    cache_write_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class StreamOutcome:
    """What one response stream turned out to contain, with arrival stamps (ns)."""

    chunk_times: tuple[int, ...]
    chunk_tokens: tuple[int, ...]
    t_first_token: int | None
    t_first_visible: int | None
    t_last_token: int | None
    usage: Usage
    token_source: TokenSource | None
    error_class: ErrorClass | None = None
    error_message: str | None = None
    events: int = 0
    extra: dict[str, str] = field(default_factory=dict)  # e.g. stop reason, server latency
    # The reply's visible text, kept only when the prompt asked (``PromptSpec.keep_reply``:
    # a conversation turn whose reply the next turn carries); None otherwise.
    text: str | None = None
    inputs: int | None = None  # embeddings: the inputs of the batch answered
    engine: EngineTimings | None = None  # the engine's own timings, when it sent them


@dataclass(slots=True)
class TokenTimeline:
    """Accumulates token-bearing chunks as they are decoded; shared by every protocol."""

    times: list[int] = field(default_factory=list)
    chars: list[int] = field(default_factory=list)
    t_first_visible: int | None = None
    reasoning_chars: int = 0

    def add(self, t_ns: int, chars: int, *, visible: bool = True) -> None:
        self.times.append(t_ns)
        self.chars.append(chars)
        if visible:
            if self.t_first_visible is None:
                self.t_first_visible = t_ns
        else:
            self.reasoning_chars += chars

    def tokens_per_chunk(self, streamed_tokens: int | None) -> tuple[int, ...]:
        """How many tokens each chunk carried.

        With a server count of the streamed tokens, every chunk carries at least one and
        the surplus is shared out in proportion to each chunk's characters (largest
        remainder, so the parts sum exactly).  Without one, ~4 characters per token.
        """
        n = len(self.chars)
        if streamed_tokens is None:
            return tuple(max(1, estimate_tokens(c)) for c in self.chars)
        extra = streamed_tokens - n
        if extra <= 0:
            return (1,) * n
        total = sum(self.chars)
        shares = [extra * c / total for c in self.chars] if total > 0 else [extra / n] * n
        base = [int(s) for s in shares]
        left = extra - sum(base)
        order = sorted(range(n), key=lambda i: shares[i] - base[i], reverse=True)
        for i in order[:left]:
            base[i] += 1
        return tuple(1 + b for b in base)

    def outcome(
        self,
        usage: Usage,
        *,
        error_class: ErrorClass | None,
        error_message: str | None,
        events: int,
        hidden_reasoning_tokens: int = 0,
        extra: dict[str, str] | None = None,
        engine: EngineTimings | None = None,
    ) -> StreamOutcome:
        if usage.output_tokens is not None:
            source: TokenSource | None = TokenSource.USAGE
            streamed = max(0, usage.output_tokens - hidden_reasoning_tokens)
            per_chunk = self.tokens_per_chunk(streamed)
        elif self.times:
            source = TokenSource.ESTIMATED
            per_chunk = self.tokens_per_chunk(None)
            usage = dataclasses.replace(usage, output_tokens=sum(per_chunk))
        else:
            source, per_chunk = None, ()
        if error_class is None and not self.times:
            error_class, error_message = ErrorClass.EMPTY, "the stream carried no token"
        return StreamOutcome(
            chunk_times=tuple(self.times),
            chunk_tokens=per_chunk,
            t_first_token=self.times[0] if self.times else None,
            t_first_visible=self.t_first_visible,
            t_last_token=self.times[-1] if self.times else None,
            usage=usage,
            token_source=source,
            error_class=error_class,
            error_message=error_message,
            events=events,
            extra=extra or {},
            engine=engine,
        )


class StreamDecoder(Protocol):
    """Turns one response body into a ``StreamOutcome``. One instance per request."""

    def feed(self, data: bytes, t_ns: int) -> None:
        """Bytes of one network read, stamped when they arrived (before any parsing)."""

    def finish(self, t_ns: int, *, eof: bool) -> StreamOutcome:
        """The body ended (``eof``) or was cut (``eof=False``); say what it contained."""


class ProviderAdapter(Protocol):
    """One wire protocol, configured for one provider of the plan."""

    spec: ProviderSpec

    def build_request(self, prompt: PromptSpec, max_tokens: int | None) -> httpx.Request: ...

    def new_decoder(self, prompt: PromptSpec) -> StreamDecoder: ...

    def classify_http_error(
        self, status: int, headers: httpx.Headers, body: bytes
    ) -> tuple[ErrorClass, str]: ...

    def response_facts(self, headers: httpx.Headers) -> dict[str, str]:
        """Headers worth keeping in the record (request id, rate limits, server timings)."""
        ...


# The headers that carry a provider's id of the request (OpenAI and most others,
# Anthropic, AWS), in the order the record's ``request_id`` takes them.
REQUEST_ID_HEADERS: tuple[str, ...] = ("x-request-id", "request-id", "x-amzn-requestid")

# Hugging Face TGI's account of a request, in its response head (ms; its non-streamed
# responses carry them: a stream's head goes out before the figures exist).
TGI_TIMING_HEADERS: tuple[str, ...] = (
    "x-queue-time",
    "x-inference-time",
    "x-time-per-token",
    "x-prompt-tokens",
    "x-generated-tokens",
)

# Headers kept in records when present, whatever the provider (lower-case names).
COMMON_FACT_HEADERS: tuple[str, ...] = (
    "retry-after",
    "retry-after-ms",
    *REQUEST_ID_HEADERS,
    "openai-processing-ms",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "server-timing",
    *TGI_TIMING_HEADERS,
)


def header_facts(
    headers: httpx.Headers, names: tuple[str, ...] = COMMON_FACT_HEADERS
) -> dict[str, str]:
    """The headers of ``names`` (and every ``anthropic-ratelimit-*``) that are present,
    verbatim, plus their waits in seconds (``retry_after_s``, ``<reset header>_s``)."""
    # One pass over the head (names lower-cased, a repeated one joined with ", " as
    # ``headers[name]`` joins it), not a scan of every header per name looked up.
    present = dict(headers.items())
    facts = {name: present[name] for name in names if name in present}
    facts.update(
        (name, value) for name, value in present.items() if name.startswith("anthropic-ratelimit-")
    )
    return ratelimit.normalise(facts, present.get("date")) if facts else facts


def request_id(facts: Mapping[str, str]) -> str | None:
    """The provider's id of the request, from the facts of its response head: the first
    of ``REQUEST_ID_HEADERS`` with a value."""
    found = None
    for name in REQUEST_ID_HEADERS:
        found = facts.get(name)
        if found:
            break
    return found


def classify_status(status: int) -> ErrorClass:
    if status == 429:
        return ErrorClass.HTTP_429
    if status in (503, 529):
        # Anthropic's 529, and the 503 every other provider answers when it is
        # overloaded: capacity, not a bug, so its own class (it still counts as an error).
        return ErrorClass.OVERLOADED
    if 300 <= status < 400:
        return ErrorClass.HTTP_3XX
    if 400 <= status < 500:
        return ErrorClass.HTTP_4XX
    return ErrorClass.HTTP_5XX


def error_text(body: bytes, limit: int = 300) -> str:
    """The provider's own error message from a JSON body, else the start of the body."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):  # too deep: unparseable too
        return body[:limit].decode("utf-8", "replace").strip()
    if isinstance(doc, dict):
        err = doc.get("error", doc)
        if isinstance(err, dict):
            msg = err.get("message")
            if isinstance(msg, str):
                return msg[:limit]
        elif isinstance(err, str):
            return err[:limit]
    return body[:limit].decode("utf-8", "replace").strip()


_QUOTE_CHAR = b'"'
_BACKSLASH = ord("\\")


def json_string_bytes(data: bytes, start: int) -> int:
    """Length in bytes of the JSON string value starting at ``start`` (escapes as written).

    For hot-path decoders that skip ``json.loads`` on plain deltas: it only shares a
    chunk's surplus tokens out by size, where bytes are close enough to characters.
    """
    end = data.find(_QUOTE_CHAR, start)
    while end > 0 and data[end - 1] == _BACKSLASH:
        # An escaped quote, unless the backslash is itself escaped (count the run).
        run = 1
        while data[end - 1 - run] == _BACKSLASH:
            run += 1
        if run % 2 == 0:
            break
        end = data.find(_QUOTE_CHAR, end + 1)
    return (end if end > 0 else len(data)) - start


def _number(value: object) -> float | None:
    """A JSON number as a float (a bool is not one; NaN and infinities are not kept)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _whole(value: object) -> int | None:
    """A JSON count: an int, or a float with no fraction (some servers write 12.0)."""
    number = _number(value)
    return int(number) if number is not None and number.is_integer() else None


def llama_timings(raw: object) -> EngineTimings | None:
    """llama.cpp's ``timings`` object (``prompt_n``, ``prompt_ms``, ``cache_n``,
    ``predicted_n``, ``predicted_ms``, ``predicted_per_token_ms``) normalised; None when
    it is not an object or carries none of them.  A figure of the wrong type is left out
    rather than failing the request: timings are the engine's commentary, not the answer."""
    if not isinstance(raw, dict):
        return None
    timings = EngineTimings(
        prompt_ms=_number(raw.get("prompt_ms")),
        prompt_tokens=_whole(raw.get("prompt_n")),
        cached_tokens=_whole(raw.get("cache_n")),
        decode_ms=_number(raw.get("predicted_ms")),
        decode_tokens=_whole(raw.get("predicted_n")),
        per_token_ms=_number(raw.get("predicted_per_token_ms")),
    )
    return None if timings == EngineTimings() else timings


def header_timings(facts: Mapping[str, str]) -> EngineTimings | None:
    """TGI's timing headers (kept in a record's facts) normalised; None without them.
    TGI reports no prefill time of its own: ``x-inference-time`` covers prefill and decode."""
    if not any(name in facts for name in TGI_TIMING_HEADERS):
        return None

    def number(name: str) -> float | None:
        try:
            return _number(float(facts[name])) if name in facts else None
        except ValueError:
            return None

    tokens = number("x-generated-tokens")
    prompt = number("x-prompt-tokens")
    timings = EngineTimings(
        prompt_tokens=int(prompt) if prompt is not None and prompt.is_integer() else None,
        decode_tokens=int(tokens) if tokens is not None and tokens.is_integer() else None,
        per_token_ms=number("x-time-per-token"),
    )
    return None if timings == EngineTimings() else timings

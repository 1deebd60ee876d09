"""The seam between the protocol-agnostic server core and one provider's wire format.

The core (``server.py``) owns HTTP, keep-alive, the absolute schedule, the pacer, jitter
and fault decisions.  A protocol module owns everything a provider's client would see:
which requests it accepts (routes, auth, body validation, all answered in the provider's
own error format), the response headers, and the bytes of every event.  It implements
``SimProtocol`` and hands the core a ``StreamRenderer`` per streamed response whose
output is *pre-rendered*: framed HTTP chunks, built once per request before the first
token is due, so the pacer only writes bytes (no per-token JSON on the hot path).

A streamed response is laid out on the schedule as::

    head + renderer.prefix          at once (t0)
    tokens[k]                       at t0 + ttft + k*itl          (one framed chunk each)
    suffix (finish, usage, end)     with the last token

and the fault variants reuse the same pieces: a cut stream is ``tokens(k)`` and a closed
connection, a mid-stream error is ``tokens(k)`` plus ``midstream_error(k)``, an empty
stream is ``complete(0, ...)``.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from lens.sim.http import HttpError, Request

FinishReason = Literal["stop", "length"]  # mapped by each protocol to its own names
# Faults answered with a whole HTTP error instead of a stream; "midstream-error" is the
# answer to that fault when the request did not ask for a stream.
ReplyFault = Literal["429", "500", "529", "midstream-error"]
Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """What the core and the renderers need from a request, whatever the protocol."""

    model: str  # what the response reports as its model
    stream: bool
    max_tokens: int | None  # the request's output cap; None when it sets none
    prompt_tokens: int  # estimated from the request's texts (about 4 characters a token)
    include_usage: bool = True  # OpenAI/Azure Chat: stream_options.include_usage
    obfuscation: bool = True  # OpenAI/Azure: stream_options.include_obfuscation
    variant: str = ""  # a protocol's sub-API, e.g. Bedrock "converse" / "invoke"
    instructions: str | None = None  # OpenAI Responses: echoed in the response object
    api_version: str = ""  # Azure: the api-version query parameter ("v1" on /openai/v1)
    # OpenAI Chat, vLLM's extensions: generate through end-of-sequence (to max_tokens), and
    # no fewer than min_tokens.
    ignore_eos: bool = False
    min_tokens: int | None = None
    inputs: int = 0  # OpenAI embeddings: the inputs of the batch


@dataclass(frozen=True, slots=True)
class Exchange:
    """Identity of one answer: every id a protocol prints is derived from ``hex``."""

    index: int  # arrival index of the request (seeds its random decisions)
    hex: str  # 32 lower-case hex digits, unique per server process and request
    created: int  # unix seconds

    @property
    def uuid(self) -> str:
        h = self.hex
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


@dataclass(frozen=True, slots=True)
class Timing:
    """The planned timeline of a response, for protocols that report it in-band."""

    first_ms: int  # request read -> first token due
    total_ms: int  # request read -> last token due
    queued_ms: int = 0  # request read -> a generation slot free (capacity)
    engine_timings: bool = False  # report the timeline in-band as llama.cpp does (openai)


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole HTTP response with a ``Content-Length`` body."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: Headers = ()


@dataclass(frozen=True, slots=True)
class StreamHead:
    """The protocol's part of a streamed response head (the core adds the framing)."""

    content_type: str
    headers: Headers


class StreamRenderer(ABC):
    """The pre-rendered bytes of one streamed response; every piece is framed chunks."""

    __slots__ = ("prefix",)
    # Whether the server closes the connection after ``midstream_error`` (Anthropic and
    # Gemini do) instead of keeping it for the next request (OpenAI does).
    closes_after_error: ClassVar[bool] = False

    def __init__(self, prefix: bytes) -> None:
        self.prefix = prefix  # events sent with the head, before the first token

    @abstractmethod
    def tokens(self, count: int) -> list[bytes]:
        """Tokens ``0..count-1`` as a stream in progress: one framed chunk per token."""

    @abstractmethod
    def suffix(self, n: int, finish: FinishReason) -> bytes:
        """Everything after token ``n-1`` (finish, usage, terminator, end of the body)."""

    @abstractmethod
    def midstream_error(self, sent: int) -> bytes:
        """The in-band error after ``sent`` tokens, and the end of the body."""

    def complete(self, n: int, finish: FinishReason) -> tuple[list[bytes], bytes]:
        """A whole response: ``n`` token chunks and the suffix that goes with the last.

        ``n == 0`` is the empty-stream variant.  Protocols whose last token carries the
        finish (Gemini) override this.
        """
        return self.tokens(n), self.suffix(n, finish)


class SimProtocol(ABC):
    """One provider's wire protocol, stateless: one instance serves every request."""

    name: ClassVar[str]

    @abstractmethod
    def parse_request(self, req: Request, default_model: str) -> ParsedRequest:
        """Route, authenticate and validate ``req``.

        Raises ``HttpError`` (404 unknown path, 405 wrong method, 401/403 auth, 400 body)
        for ``error_reply`` to render.  ``default_model`` is the server's ``--model``.
        """

    @abstractmethod
    def error_reply(self, error: HttpError, ex: Exchange) -> Reply:
        """``error`` in the provider's own error format."""

    @abstractmethod
    def fault_reply(self, fault: ReplyFault, parsed: ParsedRequest, ex: Exchange) -> Reply:
        """The injected 429 / 500 / 529 (503 where the provider has no 529) answer."""

    @abstractmethod
    def stream_head(self, parsed: ParsedRequest, ex: Exchange, processing_ms: int) -> StreamHead:
        """Content type and headers of a streamed 200."""

    @abstractmethod
    def renderer(self, parsed: ParsedRequest, ex: Exchange, timing: Timing) -> StreamRenderer:
        """The renderer of one streamed response."""

    @abstractmethod
    def completion(
        self,
        parsed: ParsedRequest,
        ex: Exchange,
        n: int,
        finish: FinishReason,
        processing_ms: int,
        timing: Timing,
    ) -> Reply:
        """The non-streamed 200 answer carrying ``n`` tokens."""


# -- helpers shared by the protocol modules --------------------------------------------------


_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def compact(value: Any) -> bytes:
    """JSON without spaces (``{"a":1}``): what most providers send.

    One shared encoder: ``json.dumps`` with options builds a new one per call.
    """
    return _COMPACT.encode(value).encode()


def json_object(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 ``HttpError``."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise HttpError(400, "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise HttpError(400, "the request body must be a JSON object")
    return data


def positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def bearer(headers: dict[str, str]) -> bool:
    """Whether an ``Authorization: Bearer <token>`` header with a token is present."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


def method_not_allowed(req: Request, allow: str = "POST") -> HttpError:
    return HttpError(
        405,
        f"Method {req.method} is not allowed on {req.path}; use {allow}.",
        code="method_not_allowed",
        headers=(("allow", allow),),
    )

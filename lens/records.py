"""RequestRecord: what the executor measured for one request, and nothing derived.

Times are integer nanoseconds on the run's monotonic clock, relative to the run's start
(``t0``).  A stamp that was never reached is ``None``; derived metrics live in
``lens.metrics.request`` so this value stays a faithful log of what happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

# Where a request sits in its stage: warmup and cooldown requests are sent and measured as
# usual but summarised apart from the measured phase (see lens.metrics.summary).
Phase = Literal["warmup", "measure", "cooldown"]
PHASES: tuple[Phase, ...] = ("warmup", "measure", "cooldown")


class ErrorClass(StrEnum):
    """Why a request did not succeed.  Every class counts in every error rate except the two
    that say where lens itself cut a request off (``cancelled``, ``drained``)."""

    HTTP_3XX = "http_3xx"  # a redirect: lens follows none (the record says where it pointed)
    HTTP_4XX = "http_4xx"
    HTTP_429 = "http_429"
    HTTP_5XX = "http_5xx"
    TIMEOUT = "timeout"
    CONNECT = "connect"  # could not connect: DNS, refused, unreachable, TLS handshake, proxy
    # The connection dropped (EOF or reset) after the request was sent and before any
    # response byte: the server may or may not have processed it.
    CONNECTION_LOST = "connection_lost"
    # The response broke the wire format (HTTP framing, an unsupported coding, a limit
    # exceeded, JSON of the wrong shape): the server answered, but not in its protocol.
    PROTOCOL_ERROR = "protocol_error"
    STREAM_ERROR = "stream_error"  # the server reported an error inside a 200 stream
    CUT_STREAM = "cut_stream"  # the body ended (or the connection dropped) before the terminator
    EMPTY = "empty"  # the stream completed but carried no token
    OVERLOADED = "overloaded"  # 529 / 503 "overloaded", also in-band (Anthropic, Bedrock)
    CANCELLED = "cancelled"  # the run was interrupted (Ctrl-C / SIGTERM) while in flight
    DRAINED = "drained"  # in flight at its stage's cutoff, cancelled by ``drain: cancel``


class TokenSource(StrEnum):
    USAGE = "usage"  # counts reported by the server in the stream
    ESTIMATED = "estimated"  # counts estimated by lens (about 4 characters per token)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    provider: str
    stage: str
    prompt: str
    index: int  # position of the request in its stage x provider schedule
    ok: bool
    error_class: ErrorClass | None
    error_message: str | None
    http_status: int | None
    # Monotonic stamps, ns since run start. ``t_intended`` only for open-loop arrivals.
    t_intended: int | None
    t_dispatch: int
    t_headers: int | None
    t_first_chunk: int | None
    t_first_token: int | None
    t_first_visible: int | None
    t_last_token: int | None
    t_end: int
    # One entry per token-bearing chunk: arrival stamp and the tokens it is taken to carry.
    chunk_times: tuple[int, ...] = ()
    chunk_tokens: tuple[int, ...] = ()
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    token_source: TokenSource | None = None
    reads: int = 0  # network reads that delivered body bytes
    attempt: int = 1  # 2, 3, ... for retries the stage asked for (each its own record)
    phase: Phase = "measure"  # a retry keeps the phase of its first attempt
    request_id: str | None = None
    # Sent a second time, once, because the reused keep-alive connection it first went out
    # on had been closed by the server (no response byte came back: the server never saw
    # it).  Not an error and not a retry; ``stale_lost_ns`` is the time from the first
    # dispatch to the re-send, and ``t_dispatch`` is the re-send's.
    stale_connection: bool = False
    stale_lost_ns: int | None = None
    # Provider facts kept verbatim: retry-after, rate-limit headers, server-side timings
    # (openai-processing-ms, Bedrock metrics.latencyMs), stop reason.
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "ok" if self.ok else "error"

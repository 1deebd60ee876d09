"""One request, timed: dispatch, headers, each read of the body, end.

Every failure of the system under test becomes a ``RequestRecord`` with an error class.
This is the run's error boundary for one request: whatever an adapter (``build_request``,
``response_facts``, ``classify_http_error``), a decoder (``feed``, ``finish``) or the
transport raises ends *that* request as a record, with the exception's type and a short
message, and the run goes on.  The only exceptions that leave are ``BaseException``s that
are not ``Exception``s (``trio.Cancelled`` when the whole run is interrupted, Ctrl-C), and
even then the partial measurement is handed to the sink first (nothing measured is lost).

How a failure is classed:

* the transport could not connect (``httpx.ConnectError``/``ConnectTimeout``), or the
  request was never sent (lens could not build it: a key that is not ASCII, a header with
  CR/LF, an unsupported URL scheme): ``connect``;
* the connection dropped after the request went out and before a response head
  (``ReadError``, ``WriteError``, "Server disconnected without sending a response"):
  ``connection_lost``;
* the response broke the wire format (``ProtocolViolation`` from the transport) or the
  decoder could not read it (deep JSON, JSON of the wrong shape, an SSE event over its
  limit, anything it raised): ``protocol_error``, keeping the stamps measured until then;
* a status other than 200: the adapter's class for it (``classify_status`` if the adapter
  cannot read the error body); 3xx is ``http_3xx`` and says where it pointed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable

import httpx
import trio

from lens.errors import describe
from lens.plan.model import PromptSpec
from lens.providers.base import (
    NATURAL_STOP_REASONS,
    ProviderAdapter,
    StreamDecoder,
    StreamOutcome,
    classify_status,
    estimate_tokens,
    header_timings,
    request_id,
)
from lens.records import ErrorClass, RequestRecord, TokenSource
from lens.run.clock import RunClock
from lens.run.http11 import DISPATCH_HOOK, STALE_HOOK, read_muxed
from lens.run.http11_parse import ProtocolViolation
from lens.run.readmux import ReadMux

MAX_ERROR_BODY = 16 * 1024
Error = tuple[ErrorClass, str]


class _Exchange:
    """What one request has measured so far; the record is made from it, however it ends."""

    __slots__ = (
        "dispatched",
        "error",
        "facts",
        "now",
        "outcome",
        "reads",
        "request_id",
        "stale_from",
        "status",
        "t_call",
        "t_dispatch",
        "t_first_chunk",
        "t_headers",
    )

    def __init__(self, now: Callable[[], int]) -> None:
        self.now = now
        # Dispatch is when the request is handed to the socket (metrics.md): lens's
        # transport calls back at that moment (``on_dispatch``), after connect and TLS, so
        # client-side set-up never counts as server latency.  Other transports (test fakes)
        # leave the stamp taken here.
        self.t_call = self.t_dispatch = now()
        self.dispatched = False  # the transport said the request went to the socket
        self.t_headers: int | None = None
        self.t_first_chunk: int | None = None
        self.reads = 0
        self.status: int | None = None
        self.outcome: StreamOutcome | None = None
        self.error: Error | None = None
        self.request_id: str | None = None
        self.facts: dict[str, str] = {}
        # A stale keep-alive connection: the transport re-sends once and calls on_dispatch
        # again; the record keeps the time lost (lens.records.RequestRecord.stale_*).  Not
        # an error, not one of the scenario's retries.
        self.stale_from: int | None = None

    def on_dispatch(self) -> None:
        self.t_dispatch = self.now()
        self.dispatched = True

    def on_stale(self, reason: str) -> None:
        if self.stale_from is None:
            self.stale_from = self.t_dispatch

    def fail(self, error: Error) -> None:
        """The first failure is the request's: a later one is a consequence of it."""
        if self.error is None:
            self.error = error

    def finish(self, decoder: StreamDecoder, t_ns: int, *, eof: bool) -> None:
        """Let the decoder say what the body contained; a decoder that fails here ends the
        request as ``protocol_error`` (the stamps taken by the exchange are kept)."""
        if self.outcome is not None:
            return
        try:
            self.outcome = decoder.finish(t_ns, eof=eof)
        except Exception as exc:
            self.fail((ErrorClass.PROTOCOL_ERROR, describe(exc)))


async def execute_request(
    transport: httpx.AsyncBaseTransport,
    adapter: ProviderAdapter,
    prompt: PromptSpec,
    *,
    clock: RunClock,
    stage: str,
    index: int,
    t_intended: int | None,
    timeout_s: float,
    max_tokens: int | None,
    emit: Callable[[RequestRecord], None],
    reader: ReadMux | None = None,
) -> str | None:
    """Run one request and ``emit`` its record, however it ends.  ``reader``: the unit's
    ReadMux (lens.run.readmux), which reads the body when the transport allows it.

    Returns the reply's text when the prompt asked to keep it (``keep_reply``: a
    conversation's turn) and the decoder kept it; None otherwise."""
    now = clock.now_ns
    x = _Exchange(now)
    request: httpx.Request | None = None
    decoder: StreamDecoder | None = None
    cancelled = True  # until proven otherwise: an outer cancel skips the normal path
    try:
        built = _build(x, adapter, prompt, max_tokens)
        if built is not None:
            request, decoder = built
            await _timed_exchange(x, transport, adapter, request, decoder, timeout_s, reader)
        cancelled = False
    finally:
        t_end = now()
        if cancelled:
            x.error = (ErrorClass.CANCELLED, "run interrupted while the request was in flight")
            if x.status == 200 and decoder is not None:
                x.finish(decoder, t_end, eof=False)
        rec = _record(
            x, prompt, adapter, stage=stage, index=index, t_intended=t_intended, t_end=t_end
        )
        emit(ended_early(rec, prompt.token_limit(max_tokens)))
        if request is not None:
            del request.extensions[DISPATCH_HOOK]
    return x.outcome.text if x.outcome is not None else None


def _build(
    x: _Exchange, adapter: ProviderAdapter, prompt: PromptSpec, max_tokens: int | None
) -> tuple[httpx.Request, StreamDecoder] | None:
    """The request, hooked to ``x``, and its decoder; None if lens could not build them
    (the failure is in ``x``: the request was never sent)."""
    try:
        request = adapter.build_request(prompt, max_tokens)
        decoder = adapter.new_decoder(prompt)
    except Exception as exc:
        x.fail((ErrorClass.CONNECT, f"request not sent (lens could not build it): {describe(exc)}"))
        return None
    request.extensions[DISPATCH_HOOK] = x.on_dispatch
    request.extensions[STALE_HOOK] = x.on_stale
    return request, decoder


async def _timed_exchange(
    x: _Exchange,
    transport: httpx.AsyncBaseTransport,
    adapter: ProviderAdapter,
    request: httpx.Request,
    decoder: StreamDecoder,
    timeout_s: float,
    reader: ReadMux | None,
) -> None:
    """The exchange under the request's deadline; past it, a timeout keeping what arrived."""
    with trio.move_on_after(timeout_s) as deadline:
        await _exchange(x, transport, adapter, request, decoder, x.now, reader)
    if deadline.cancelled_caught:
        x.fail((ErrorClass.TIMEOUT, f"no complete response within {timeout_s:g}s"))
        if x.status == 200:
            x.finish(decoder, x.now(), eof=False)


async def _exchange(
    x: _Exchange,
    transport: httpx.AsyncBaseTransport,
    adapter: ProviderAdapter,
    request: httpx.Request,
    decoder: StreamDecoder,
    now: Callable[[], int],
    reader: ReadMux | None,
) -> None:
    """Send ``request`` and read its response into ``x``; every failure lands in ``x``."""
    response = await _send(x, transport, request)
    if response is None:
        return
    x.t_headers = now()
    status = x.status = response.status_code
    try:
        x.facts = _facts(adapter, response.headers)
        x.request_id = request_id(x.facts)
        if status == 200:
            await _stream(x, response, decoder, now, reader)
        else:
            body = await _error_body(response)
            x.fail(_classify(x, adapter, status, response.headers, body))
    finally:
        await response.aclose()


async def _send(
    x: _Exchange, transport: httpx.AsyncBaseTransport, request: httpx.Request
) -> httpx.Response | None:
    """The response head, or None with the failure in ``x``."""
    try:
        return await transport.handle_async_request(request)
    except ProtocolViolation as exc:
        x.fail((ErrorClass.PROTOCOL_ERROR, describe(exc)))
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ProxyError) as exc:
        x.fail((ErrorClass.CONNECT, describe(exc)))
    except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
        # Refused by lens's own side before a byte was written: the server never saw it.
        x.fail((ErrorClass.CONNECT, f"request not sent: {describe(exc)}"))
    except httpx.HTTPError as exc:
        # Read/write errors, a close before any response byte: the request went out (or
        # was going out) and the connection dropped; the server may have processed it.
        x.fail((ErrorClass.CONNECTION_LOST, describe(exc)))
    except Exception as exc:
        # Not an httpx error: a transport that broke its contract.  Before dispatch nothing
        # was sent; after it, the connection is as good as lost.
        cls = ErrorClass.CONNECTION_LOST if x.dispatched else ErrorClass.CONNECT
        x.fail((cls, describe(exc)))
    return None


def _facts(adapter: ProviderAdapter, headers: httpx.Headers) -> dict[str, str]:
    """The provider facts of the response head; headers an adapter cannot read lose only
    the facts (the response itself may be fine), and the record says why."""
    try:
        return dict(adapter.response_facts(headers))
    except Exception as exc:
        return {"facts_error": describe(exc)}


async def _stream(
    x: _Exchange,
    response: httpx.Response,
    decoder: StreamDecoder,
    now: Callable[[], int],
    reader: ReadMux | None,
) -> None:
    """Read a 200 body, stamping each read before any parsing: the hottest loop of lens.

    Through ``reader`` (the unit's ReadMux) when the transport can: one task reads every
    stream's socket and calls ``_Reads.deliver`` with the stamp it took right after each
    read; this task only waits for the body's end.  Otherwise the body is iterated here.
    Failures are sorted out once, in the ``except`` clauses (a ``try`` costs nothing until
    it raises).
    """
    reads = _Reads(decoder)
    eof = False
    try:
        if reader is None or not await read_muxed(response, reader, reads.deliver):
            await _iterate(response, reads, now)
        eof = True
    except ProtocolViolation as exc:
        x.fail((ErrorClass.PROTOCOL_ERROR, describe(exc)))
    except httpx.HTTPError:
        pass  # the connection dropped mid-body: the decoder calls that a cut stream
    except Exception as exc:
        # The decoder could not read what the server sent (deep JSON, a wrong JSON type,
        # an event over its limit): the server broke its protocol.
        x.fail((ErrorClass.PROTOCOL_ERROR, describe(exc)))
    finally:
        # Also when cancelled mid-read: what was measured stays measured.
        x.t_first_chunk = reads.t_first_chunk
        x.reads = reads.count
    x.finish(decoder, now(), eof=eof)


class _Reads:
    """The body's reads that delivered payload: how many, the first one's stamp."""

    __slots__ = ("count", "feed", "t_first_chunk")

    def __init__(self, decoder: StreamDecoder) -> None:
        self.feed = decoder.feed
        self.count = 0
        self.t_first_chunk: int | None = None

    def deliver(self, payload: bytes, t_ns: int) -> None:
        """One read's payload, stamped when the read returned (called by the ReadMux)."""
        if self.t_first_chunk is None:
            self.t_first_chunk = t_ns
        self.count += 1
        self.feed(payload, t_ns)


async def _iterate(response: httpx.Response, reads: _Reads, now: Callable[[], int]) -> None:
    """The body read in this task, one read per iteration (TLS, a transport of tests)."""
    t_first_chunk: int | None = None
    count = 0
    feed = reads.feed
    body = _reads(response)
    try:
        async for chunk in body:
            if not chunk:
                continue  # not a read that delivered body bytes (httpx's aiter_raw skips them too)
            t = now()  # stamped before any parsing
            if t_first_chunk is None:
                t_first_chunk = t
            count += 1
            feed(chunk, t)
    finally:
        reads.t_first_chunk = t_first_chunk
        reads.count = count
        await _close(body)


def _reads(response: httpx.Response) -> AsyncIterator[bytes]:
    """The transport's own iterator over the body's network reads.

    Not ``response.aiter_raw()``: that wraps it in one more generator (a re-chunker and a
    byte counter lens does not use) per read, and hides the inner generator, which a
    request that stops reading early (a decoder that gave up) could then not close.
    """
    stream = response.stream
    if not isinstance(stream, httpx.AsyncByteStream):
        raise TypeError("lens reads responses of async transports only")
    return stream.__aiter__()


async def _close(body: AsyncIterator[bytes]) -> None:
    """Close a body iterator left unfinished, now rather than at garbage collection."""
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        await aclose()


async def _error_body(response: httpx.Response) -> bytes:
    """Up to ``MAX_ERROR_BODY`` bytes of an error body; what arrived if the read failed."""
    body = b""
    parts = _reads(response)
    try:
        async for part in parts:
            body += part
            if len(body) >= MAX_ERROR_BODY:
                break
    except httpx.HTTPError:
        pass  # the status is the news; a cut error body is still worth quoting
    finally:
        await _close(parts)
    return body


def _classify(
    x: _Exchange, adapter: ProviderAdapter, status: int, headers: httpx.Headers, body: bytes
) -> Error:
    if 300 <= status < 400:
        # lens follows no redirect: the record says where the server pointed.
        location = headers.get("location")
        if location is not None:
            x.facts = {**x.facts, "location": location}
        where = f"redirect to {location}" if location else "redirect with no Location"
        return ErrorClass.HTTP_3XX, f"HTTP {status}: {where} (lens follows no redirects)"
    try:
        return adapter.classify_http_error(status, headers, body)
    except Exception as exc:
        return classify_status(status), f"HTTP {status}: error body unreadable ({describe(exc)})"


def ended_early(rec: RequestRecord, limit: int | None) -> RequestRecord:
    """``rec``, marked ``extra.ended_early`` ("OUTPUT/LIMIT") when the model stopped on its
    own (``stop``, ``end_turn`` ...) before the output limit the request asked for: then its
    TPOT and tokens/s cover a shorter output than planned (lens.metrics.integrity warns)."""
    out, reason = rec.output_tokens, rec.extra.get("stop_reason")
    if not rec.ok or limit is None or out is None or out >= limit:
        return rec
    if reason not in NATURAL_STOP_REASONS:
        return rec
    return dataclasses.replace(rec, extra={**rec.extra, "ended_early": f"{out}/{limit}"})


def _record(
    x: _Exchange,
    prompt: PromptSpec,
    adapter: ProviderAdapter,
    *,
    stage: str,
    index: int,
    t_intended: int | None,
    t_end: int,
) -> RequestRecord:
    error, outcome, facts = x.error, x.outcome, x.facts
    if x.t_dispatch > x.t_call:
        # Client-side set-up before the bytes left (connect, TLS, encoding): kept, not hidden.
        facts = {**facts, "pre_dispatch_ms": f"{(x.t_dispatch - x.t_call) / 1e6:.3f}"}
    if error is None and outcome is not None and outcome.error_class is not None:
        error = (outcome.error_class, outcome.error_message or outcome.error_class.value)
    usage_in = outcome.usage.input_tokens if outcome else None
    source = outcome.token_source if outcome else None
    tokenizer = adapter.spec.tokenizer
    # A streamed response with tokens, or a whole one whose output was counted (stream: false).
    counted = outcome is not None and (outcome.chunk_times or outcome.token_source is not None)
    if usage_in is None and outcome is not None and counted:
        if source is TokenSource.TOKENIZER and tokenizer is not None:
            # Counted like the output: one source for both, never mixed.
            usage_in = sum(tokenizer.count(m.content) for m in prompt.messages)
        else:
            # No usage from the server: estimate the prompt too, and say so.
            usage_in = estimate_tokens(sum(len(m.content) for m in prompt.messages))
            source = TokenSource.ESTIMATED
    return RequestRecord(
        provider=adapter.spec.id,
        stage=stage,
        prompt=prompt.id,
        index=index,
        ok=error is None,
        error_class=error[0] if error else None,
        error_message=error[1] if error else None,
        http_status=x.status,
        t_intended=t_intended,
        t_dispatch=x.t_dispatch,
        t_headers=x.t_headers,
        t_first_chunk=x.t_first_chunk,
        t_first_token=outcome.t_first_token if outcome else None,
        t_first_visible=outcome.t_first_visible if outcome else None,
        t_last_token=outcome.t_last_token if outcome else None,
        t_end=t_end,
        chunk_times=outcome.chunk_times if outcome else (),
        chunk_tokens=outcome.chunk_tokens if outcome else (),
        input_tokens=usage_in,
        output_tokens=outcome.usage.output_tokens if outcome else None,
        cached_input_tokens=outcome.usage.cached_input_tokens if outcome else None,
        cache_write_tokens=outcome.usage.cache_write_tokens if outcome else None,
        reasoning_tokens=outcome.usage.reasoning_tokens if outcome else None,
        token_source=source,
        reads=x.reads,
        request_id=x.request_id,
        extra={**facts, **outcome.extra} if outcome else facts,
        stale_connection=x.stale_from is not None,
        stale_lost_ns=None if x.stale_from is None else x.t_dispatch - x.stale_from,
        inputs=outcome.inputs if outcome else None,
        prefix_group=prompt.prefix_group,
        engine=(outcome.engine if outcome else None) or header_timings(facts),
    )

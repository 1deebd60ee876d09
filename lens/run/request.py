"""One request, timed: dispatch, headers, each read of the body, end.

Every failure of the system under test becomes a ``RequestRecord`` with an error class; the
only exception that leaves is ``trio.Cancelled`` when the whole run is interrupted, and even
then the partial measurement is handed to the sink first (nothing measured is lost).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import httpx
import trio

from lens.plan.model import PromptSpec
from lens.providers.base import ProviderAdapter, StreamOutcome, estimate_tokens
from lens.records import ErrorClass, RequestRecord, TokenSource
from lens.run.clock import RunClock
from lens.run.http11 import DISPATCH_HOOK, STALE_HOOK

MAX_ERROR_BODY = 16 * 1024


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
) -> None:
    request = adapter.build_request(prompt, max_tokens)
    decoder = adapter.new_decoder(prompt)
    now = clock.now_ns
    t_headers: int | None = None
    t_first_chunk: int | None = None
    reads = 0
    status: int | None = None
    outcome: StreamOutcome | None = None
    error: tuple[ErrorClass, str] | None = None
    request_id: str | None = None
    facts: dict[str, str] = {}
    cancelled = True  # until proven otherwise: an outer cancel skips the normal path

    # Dispatch is when the request is handed to the socket (metrics.md): lens's transport
    # calls back at that moment, after connect and TLS, so client-side set-up never counts
    # as server latency.  Other transports (test fakes) leave the stamp taken here.
    t_call = t_dispatch = now()

    def on_dispatch() -> None:
        nonlocal t_dispatch
        t_dispatch = now()

    request.extensions[DISPATCH_HOOK] = on_dispatch

    # A stale keep-alive connection: the transport re-sends once and calls on_dispatch
    # again; the record keeps the time lost (lens.records.RequestRecord.stale_*).
    stale_from: int | None = None

    def on_stale(reason: str) -> None:
        nonlocal stale_from
        if stale_from is None:
            stale_from = t_dispatch

    def emit_marked(rec: RequestRecord) -> None:
        if stale_from is not None:
            lost = rec.t_dispatch - stale_from
            rec = dataclasses.replace(rec, stale_connection=True, stale_lost_ns=lost)
        emit(rec)

    request.extensions[STALE_HOOK] = on_stale
    try:
        with trio.move_on_after(timeout_s) as deadline:
            try:
                response = await transport.handle_async_request(request)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                error = (ErrorClass.CONNECT, f"{type(exc).__name__}: {exc}")
            except httpx.HTTPError as exc:
                error = (ErrorClass.CONNECT, f"{type(exc).__name__}: {exc}")
            else:
                t_headers = now()
                status = response.status_code
                facts = adapter.response_facts(response.headers)
                request_id = (
                    facts.get("x-request-id")
                    or facts.get("request-id")
                    or facts.get("x-amzn-requestid")
                )
                try:
                    if status != 200:
                        body = b""
                        async for part in response.aiter_raw():
                            body += part
                            if len(body) >= MAX_ERROR_BODY:
                                break
                        error = adapter.classify_http_error(status, response.headers, body)
                    else:
                        try:
                            async for chunk in response.aiter_raw():
                                t = now()  # stamped before any parsing
                                if t_first_chunk is None:
                                    t_first_chunk = t
                                reads += 1
                                decoder.feed(chunk, t)
                        except httpx.HTTPError:
                            outcome = decoder.finish(now(), eof=False)
                        else:
                            outcome = decoder.finish(now(), eof=True)
                finally:
                    await response.aclose()
        cancelled = False
        if deadline.cancelled_caught:
            error = (ErrorClass.TIMEOUT, f"no complete response within {timeout_s:g}s")
            if outcome is None and status == 200:
                outcome = decoder.finish(now(), eof=False)
    finally:
        t_end = now()
        if t_dispatch > t_call:
            # Client-side set-up before the bytes left (connect, TLS, encoding): kept, not hidden.
            facts = {**facts, "pre_dispatch_ms": f"{(t_dispatch - t_call) / 1e6:.3f}"}
        if cancelled:
            error = (ErrorClass.CANCELLED, "run interrupted while the request was in flight")
            if status == 200 and outcome is None:
                outcome = decoder.finish(t_end, eof=False)
        emit_marked(
            _record(
                prompt,
                stage=stage,
                index=index,
                adapter=adapter,
                status=status,
                error=error,
                outcome=outcome,
                t_intended=t_intended,
                t_dispatch=t_dispatch,
                t_headers=t_headers,
                t_first_chunk=t_first_chunk,
                t_end=t_end,
                reads=reads,
                request_id=request_id,
                facts=facts,
            )
        )
        del request.extensions[DISPATCH_HOOK]


def _record(
    prompt: PromptSpec,
    *,
    stage: str,
    index: int,
    adapter: ProviderAdapter,
    status: int | None,
    error: tuple[ErrorClass, str] | None,
    outcome: StreamOutcome | None,
    t_intended: int | None,
    t_dispatch: int,
    t_headers: int | None,
    t_first_chunk: int | None,
    t_end: int,
    reads: int,
    request_id: str | None,
    facts: dict[str, str],
) -> RequestRecord:
    if error is None and outcome is not None and outcome.error_class is not None:
        error = (outcome.error_class, outcome.error_message or outcome.error_class.value)
    usage_in = outcome.usage.input_tokens if outcome else None
    source = outcome.token_source if outcome else None
    if usage_in is None and outcome is not None and outcome.chunk_times:
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
        http_status=status,
        t_intended=t_intended,
        t_dispatch=t_dispatch,
        t_headers=t_headers,
        t_first_chunk=t_first_chunk,
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
        reads=reads,
        request_id=request_id,
        extra={**facts, **outcome.extra} if outcome else facts,
    )

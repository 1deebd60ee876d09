"""lens-sim: an OpenAI-compatible streaming Chat Completions server on trio.

One trio task per connection reads requests with ``RequestReader`` and answers them in
order (keep-alive, pipelining).  A streamed answer is planned up front: its chunks are
pre-rendered and given due times on an absolute timeline that starts when the request
body has been read (``token_due_times``).  Headers and the role chunk go out at once;
the server's single ``Pacer`` task writes every later chunk at its due time (see
``pacer.py`` for why one timer task instead of a sleep per token).  Chunks due at the
same instant (itl=0; the finish/usage/[DONE] trailer, which belongs to the last token)
are coalesced into one write, which is what makes the zero-delay throughput high.

Faults (429, 500, cut stream, mid-stream error, hang, empty) come from seeded random
draws or from the ``x-lens-sim-fault`` request header; see ``SimServer._plan``.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal, get_args

import trio

from lens.plan.model import SimSettings
from lens.sim.config import LISTENING_PREFIX, ServerConfig, parse_argv, validate_settings
from lens.sim.http import (
    CHUNK_END,
    HttpError,
    Request,
    RequestReader,
    error_body,
    response_bytes,
)
from lens.sim.openai_chat import (
    DONE_CHUNK,
    MIDSTREAM_ERROR_CHUNK,
    MIDSTREAM_ERROR_MESSAGE,
    ChatRequest,
    ChunkRenderer,
    FinishReason,
    completion_body,
    parse_chat_request,
)
from lens.sim.pacer import Pacer, send_now
from lens.sim.schedule import token_due_times

Fault = Literal["none", "429", "500", "cut", "midstream-error", "hang", "empty"]
FAULTS: tuple[Fault, ...] = get_args(Fault)
_FAULT_BY_NAME: dict[str, Fault] = {f: f for f in FAULTS}

CHAT_PATH = "/v1/chat/completions"
FAULT_HEADER = "x-lens-sim-fault"
TTFT_HEADER = "x-lens-sim-ttft-ms"
ITL_HEADER = "x-lens-sim-itl-ms"
TOKENS_HEADER = "x-lens-sim-tokens"

RATE_LIMIT_MESSAGE = (
    "Rate limit reached for requests (simulated by lens-sim). Please try again in 1s."
)
SERVER_ERROR_MESSAGE = "The server had an error while processing your request (lens-sim)."

_GET_ROUTES = ("/v1/models", "/health")


@dataclass(frozen=True, slots=True)
class ChatPlan:
    """Everything decided about one chat request before the first byte is written."""

    index: int
    fault: Fault
    n: int  # content tokens the response carries (before any cut)
    finish: FinishReason
    cut_after: int  # for "cut" and "midstream-error": content tokens sent before the fault
    due: list[float]  # absolute due times of tokens 0..max(n, 1)-1


def _ms_header(headers: dict[str, str], name: str) -> float | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise HttpError(400, f"{name}: expected milliseconds >= 0, got {raw[:40]!r}")
    return value / 1e3


class SimServer:
    """The request handler; ``handle`` is what ``trio.serve_tcp`` calls per connection."""

    def __init__(self, settings: SimSettings, *, model: str = "lens-sim-1") -> None:
        validate_settings(settings)
        self.settings = settings
        self.model = model
        self.requests = 0  # chat requests seen; the index seeds each request's decisions
        # Unique per server process so ids from two simulators never collide.
        self._id_prefix = os.urandom(6).hex()
        self._models_body = json.dumps(
            {
                "object": "list",
                "data": [{"id": model, "object": "model", "created": 0, "owned_by": "lens-sim"}],
            },
            separators=(",", ":"),
        ).encode()
        self.pacer = Pacer()

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen and serve forever; ``task_status.started`` gets ``http://host:port``."""
        # Bind before opening the nursery so "address in use" surfaces as a plain OSError.
        listeners = await trio.open_tcp_listeners(port, host=host)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.pacer.run)
                await nursery.start(trio.serve_listeners, self.handle, listeners)
                task_status.started(_url(host, listeners[0].socket.getsockname()[1]))
        finally:
            for listener in listeners:  # idempotent; covers a cancel before serving began
                listener.socket.close()

    async def handle(self, stream: trio.SocketStream) -> None:
        """Serve one connection until the peer leaves or a response ends it."""
        reader = RequestReader(stream)
        try:
            while True:
                try:
                    request = await reader.next_request()
                except HttpError as exc:
                    # Framing is broken; we cannot know where the next request starts.
                    await stream.send_all(self._error(exc.status, exc.message, keep_alive=False))
                    return
                if request is None:
                    return
                t0 = trio.current_time()
                if not await self._dispatch(stream, reader, request, t0) or not request.keep_alive:
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return  # the client went away; nothing to report to anyone

    async def _dispatch(
        self, stream: trio.SocketStream, reader: RequestReader, req: Request, t0: float
    ) -> bool:
        """Answer one request; return whether the connection may serve another."""
        keep = req.keep_alive
        if req.path == CHAT_PATH:
            if req.method != "POST":
                await stream.send_all(self._not_allowed(req, "POST"))
                return keep
            try:
                chat = parse_chat_request(req.body, self.model)
                plan = self._plan(req.headers, chat, t0)
            except HttpError as exc:
                await stream.send_all(self._error(exc.status, exc.message, keep_alive=keep))
                return keep
            return await self._chat(stream, reader, req, chat, plan, t0)
        if req.path in _GET_ROUTES:
            if req.method != "GET":
                await stream.send_all(self._not_allowed(req, "GET"))
            elif req.path == "/health":
                await stream.send_all(response_bytes(200, b'{"status":"ok"}', keep_alive=keep))
            else:
                await stream.send_all(response_bytes(200, self._models_body, keep_alive=keep))
            return keep
        await stream.send_all(
            self._error(
                404, f"Unknown request URL: {req.method} {req.path}.", keep, code="unknown_url"
            )
        )
        return keep

    # -- planning -------------------------------------------------------------------------

    def _plan(self, headers: dict[str, str], chat: ChatRequest, t0: float) -> ChatPlan:
        settings = self.settings
        ttft = _ms_header(headers, TTFT_HEADER)
        itl = _ms_header(headers, ITL_HEADER)
        tokens_raw = headers.get(TOKENS_HEADER)
        if ttft is not None or itl is not None or tokens_raw is not None:
            tokens = settings.output_tokens
            if tokens_raw is not None:
                if not tokens_raw.isdigit() or not tokens_raw.isascii():
                    raise HttpError(400, f"{TOKENS_HEADER}: expected an integer >= 0")
                tokens = int(tokens_raw)
            settings = replace(
                settings,
                ttft_s=settings.ttft_s if ttft is None else ttft,
                itl_s=settings.itl_s if itl is None else itl,
                output_tokens=tokens,
            )
        forced_name = headers.get(FAULT_HEADER)
        forced = None if forced_name is None else _FAULT_BY_NAME.get(forced_name)
        if forced_name is not None and forced is None:
            raise HttpError(400, f"{FAULT_HEADER}: expected one of {', '.join(FAULTS)}")

        index = self.requests
        self.requests += 1
        # One generator per request, seeded by (seed, arrival index): a sequential client
        # sees the same faults and jitter on every run, and the draws below always happen
        # in the same order and number, so changing an error rate does not reshuffle jitter.
        rng = random.Random(f"lens-sim:{settings.seed}:{index}")
        u_fault = rng.random()
        u_cut = rng.random()

        wanted = settings.output_tokens
        n = wanted if chat.max_tokens is None else min(wanted, chat.max_tokens)
        finish: FinishReason = "length" if n < wanted else "stop"

        fault: Fault
        if forced is not None:
            fault = forced
        elif u_fault < settings.error_429:
            fault = "429"
        elif u_fault < settings.error_429 + settings.error_500:
            fault = "500"
        elif u_fault < settings.error_429 + settings.error_500 + settings.cut_stream:
            fault = "cut"
        else:
            fault = "none"
        if fault == "empty":
            n, finish = 0, "stop"
        # At least one content token before a cut, and strictly before the last one when
        # there are two or more, so a cut stream is always visibly incomplete.
        cut_after = min(n, 1 + int(u_cut * max(1, n - 1)))
        due = token_due_times(t0, settings, max(n, 1), rng)
        return ChatPlan(index, fault, n, finish, cut_after, due)

    # -- responses ------------------------------------------------------------------------

    def _ids(self, index: int) -> tuple[str, str]:
        suffix = f"{self._id_prefix}{index:010x}"
        return f"chatcmpl-sim{suffix}", f"req_sim{suffix}"

    async def _chat(
        self,
        stream: trio.SocketStream,
        reader: RequestReader,
        req: Request,
        chat: ChatRequest,
        plan: ChatPlan,
        t0: float,
    ) -> bool:
        keep = req.keep_alive
        completion_id, request_id = self._ids(plan.index)
        if plan.fault == "429":
            await stream.send_all(
                self._error(
                    429,
                    RATE_LIMIT_MESSAGE,
                    keep,
                    type_="requests",
                    code="rate_limit_exceeded",
                    headers=(("retry-after", "1"), ("x-request-id", request_id)),
                )
            )
            return keep
        if plan.fault == "500":
            await stream.send_all(
                self._error(
                    500,
                    SERVER_ERROR_MESSAGE,
                    keep,
                    type_="server_error",
                    headers=(("x-request-id", request_id),),
                )
            )
            return keep
        if chat.stream:
            return await self._stream(
                stream, reader, chat, plan, t0, completion_id, request_id, keep
            )
        return await self._complete(stream, reader, chat, plan, t0, completion_id, request_id, keep)

    async def _stream(
        self,
        stream: trio.SocketStream,
        reader: RequestReader,
        chat: ChatRequest,
        plan: ChatPlan,
        t0: float,
        completion_id: str,
        request_id: str,
        keep: bool,
    ) -> bool:
        processing_ms = int((trio.current_time() - t0) * 1e3)
        head = (
            "HTTP/1.1 200 OK\r\n"
            "content-type: text/event-stream; charset=utf-8\r\n"
            "transfer-encoding: chunked\r\n"
            "cache-control: no-cache\r\n"
            "openai-version: 2020-10-01\r\n"
            f"openai-processing-ms: {processing_ms}\r\n"
            f"x-request-id: {request_id}\r\n"
            f"connection: {'keep-alive' if keep else 'close'}\r\n\r\n"
        ).encode()
        if plan.fault == "hang":
            await stream.send_all(head)
            await reader.drain_until_eof()
            return False

        render = ChunkRenderer(completion_id, int(time.time()), chat.model)
        due, n = plan.due, plan.n
        opening = head + render.role
        if due[0] > t0:
            # Headers and role chunk go out now, before the token chunks are rendered.
            await send_now(stream, opening)
            opening = b""
        if plan.fault == "cut":
            k = plan.cut_after
            await self._write_schedule(stream, opening, due[:k], render.tokens(k))
            return False  # the caller closes: no terminating chunk, no [DONE]
        if plan.fault == "midstream-error":
            k = plan.cut_after
            times = [*due[:k], due[min(k, max(n - 1, 0))]]
            payloads = [*render.tokens(k), MIDSTREAM_ERROR_CHUNK + CHUNK_END]
            await self._write_schedule(stream, opening, times, payloads)
            return keep
        trailer = render.finish(plan.finish)
        if chat.include_usage:
            trailer += render.usage(chat.prompt_tokens, n)
        trailer += DONE_CHUNK + CHUNK_END
        # The trailer belongs to the last token's instant (or to the first token's when
        # there is none): generation ended then.
        if n:
            payloads = render.tokens(n)
            payloads[-1] += trailer
            await self._write_schedule(stream, opening, due[:n], payloads)
        else:
            await self._write_schedule(stream, opening, due[:1], [trailer])
        return keep

    async def _write_schedule(
        self, stream: trio.SocketStream, opening: bytes, times: list[float], payloads: list[bytes]
    ) -> None:
        """Write ``opening`` now and ``payloads[k]`` at ``times[k]`` (non-decreasing).

        Payloads due at the same instant are merged into one write; that keeps the timing
        exact, since a client cannot tell two back-to-back writes for one instant from
        one.  Whatever is due already (the opening; everything at ttft=0, itl=0) goes out
        here in one write, the rest is paced by the server's ``Pacer``.
        """
        if times and times[0] == times[-1]:
            # One instant for everything (itl=0): a single write, the throughput path.
            times, payloads = times[:1], [b"".join(payloads)]
        elif len(set(times)) != len(times):
            times, payloads = _merge_equal_times(times, payloads)
        now = trio.current_time()
        ready = bisect.bisect_right(times, now)
        if ready or opening:
            await send_now(stream, b"".join([opening, *payloads[:ready]]))
        await self.pacer.play(stream, times, payloads, start=ready)

    async def _complete(
        self,
        stream: trio.SocketStream,
        reader: RequestReader,
        chat: ChatRequest,
        plan: ChatPlan,
        t0: float,
        completion_id: str,
        request_id: str,
        keep: bool,
    ) -> bool:
        """Non-streamed answer: the whole body once the last token would have been made."""
        if plan.fault == "hang":
            await reader.drain_until_eof()
            return False
        due = plan.due
        if plan.fault == "cut":
            await trio.sleep_until(due[plan.cut_after - 1] if plan.cut_after else due[0])
            return False
        if plan.fault == "midstream-error":
            await trio.sleep_until(due[min(plan.cut_after, max(plan.n - 1, 0))])
            await stream.send_all(
                self._error(
                    500,
                    MIDSTREAM_ERROR_MESSAGE,
                    keep,
                    type_="server_error",
                    headers=(("x-request-id", request_id),),
                )
            )
            return keep
        await trio.sleep_until(due[max(plan.n - 1, 0)])
        body = completion_body(
            completion_id, int(time.time()), chat.model, plan.n, plan.finish, chat.prompt_tokens
        )
        processing_ms = int((trio.current_time() - t0) * 1e3)
        headers = (("x-request-id", request_id), ("openai-processing-ms", str(processing_ms)))
        await stream.send_all(response_bytes(200, body, headers=headers, keep_alive=keep))
        return keep

    # -- errors ---------------------------------------------------------------------------

    @staticmethod
    def _error(
        status: int,
        message: str,
        keep_alive: bool,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> bytes:
        body = error_body(message, type_, code)
        return response_bytes(status, body, headers=headers, keep_alive=keep_alive)

    def _not_allowed(self, req: Request, allow: str) -> bytes:
        return self._error(
            405,
            f"Method {req.method} is not allowed on {req.path}; use {allow}.",
            req.keep_alive,
            code="method_not_allowed",
            headers=(("allow", allow),),
        )


def _merge_equal_times(
    times: list[float], payloads: list[bytes]
) -> tuple[list[float], list[bytes]]:
    """Join consecutive payloads that share a due time (rare: only equal jitter draws)."""
    out_times: list[float] = []
    out_payloads: list[bytes] = []
    for t, payload in zip(times, payloads, strict=True):
        if out_times and out_times[-1] == t:
            out_payloads[-1] += payload
        else:
            out_times.append(t)
            out_payloads.append(payload)
    return out_times, out_payloads


# -- process entry points -------------------------------------------------------------------


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve(
    config: ServerConfig, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve ``config`` forever; ``task_status.started`` gets ``http://host:port``."""
    server = SimServer(config.settings, model=config.model)
    await server.serve(config.host, config.port, task_status=task_status)


async def _exit_on_stdin_eof(cancel_scope: trio.CancelScope) -> None:
    """Cancel the server when stdin closes: the parent's pipe end is gone, so is it."""
    if sys.platform == "win32":  # pragma: no cover - FdStream is Unix-only
        return
    # A duplicate descriptor, so closing the FdStream leaves sys.stdin alone.
    async with trio.lowlevel.FdStream(os.dup(sys.stdin.fileno())) as stdin:
        try:
            while await stdin.receive_some(4096):
                pass
        except (trio.BrokenResourceError, OSError):  # pragma: no cover - stdin unreadable
            pass  # as good as closed: the parent cannot reach us through it either
    cancel_scope.cancel()


def run_server(config: ServerConfig, ready: Callable[[str], None]) -> int:
    """Run until SIGINT/SIGTERM (or stdin EOF when configured); 0 on a clean stop.

    ``ready`` gets the root URL once the socket listens and the signal handlers are in
    place, so a caller that reacts by signalling us cannot race the handlers.
    """

    listening = False

    async def _run() -> None:
        nonlocal listening
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                url: str = await nursery.start(serve, config)
                listening = True
                ready(url)
                if config.exit_on_stdin_eof:
                    nursery.start_soon(_exit_on_stdin_eof, nursery.cancel_scope)
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break

    status = 0
    try:
        trio.run(_run)
    except* KeyboardInterrupt:  # Ctrl-C before the signal receiver was installed
        pass
    except* OSError as group:
        where = "" if listening else f"cannot listen on {config.host}:{config.port}: "
        print(f"lens-sim: {where}{group.exceptions[0]}", file=sys.stderr)
        status = 1
    return status


def _print_ready(url: str) -> None:
    print(f"{LISTENING_PREFIX}{url}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lens.sim [flags]``; ``lens serve-sim`` delegates here."""
    try:
        config = parse_argv(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    return run_server(config, _print_ready)

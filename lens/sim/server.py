"""lens-sim: a streaming LLM API simulator on trio, speaking one provider protocol.

One trio task per connection reads requests with ``RequestReader`` and answers them in
order (keep-alive, pipelining).  Everything a client sees of a provider (routes, auth,
error bodies, headers, the bytes of every event) comes from the configured protocol
module (``protocol_base.py`` describes the seam; ``protocol_registry.py`` lists them by
name); this module is protocol-agnostic: HTTP, planning, faults, jitter and the absolute
schedule.

A streamed answer is planned up front: its chunks are pre-rendered and given due times
on an absolute timeline that starts when the request body has been read
(``token_due_times``).  The head and the protocol's prefix events go out at once; the
server's single ``Pacer`` task writes every later chunk at its due time (see
``pacer.py`` for why one timer task instead of a sleep per token).  Chunks due at the
same instant (itl=0; the suffix, which belongs to the last token) are coalesced into one
write, which is what makes the zero-delay throughput high.

Faults (429, 500, 529, cut stream, mid-stream error, hang, empty) come from seeded random
draws or from the ``x-lens-sim-fault`` request header; see ``SimServer._plan``.  With a
``capacity``, a response waits for a generation slot (``capacity.py``) and its whole
schedule starts when it is admitted.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import random
import re
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal, get_args

import trio

from lens.plan.model import SimSettings
from lens.sim.capacity import GenerationSlots
from lens.sim.config import LISTENING_PREFIX, ServerConfig, parse_argv, validate_settings
from lens.sim.http import HttpError, Request, RequestReader, response_bytes
from lens.sim.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from lens.sim.metrics import SimMetrics
from lens.sim.pacer import Pacer, send_now
from lens.sim.protocol_base import (
    Exchange,
    FinishReason,
    ParsedRequest,
    Reply,
    ReplyFault,
    StreamRenderer,
    Timing,
    method_not_allowed,
)
from lens.sim.protocol_registry import get_protocol
from lens.sim.schedule import token_due_times

Fault = Literal["none", "429", "500", "529", "cut", "midstream-error", "hang", "empty"]
FAULTS: tuple[Fault, ...] = get_args(Fault)
_FAULT_BY_NAME: dict[str, Fault] = {f: f for f in FAULTS}

FAULT_HEADER = "x-lens-sim-fault"
TTFT_HEADER = "x-lens-sim-ttft-ms"
ITL_HEADER = "x-lens-sim-itl-ms"
TOKENS_HEADER = "x-lens-sim-tokens"

# Faults answered with a whole HTTP error instead of a stream.
_REPLY_FAULTS: dict[Fault, ReplyFault] = {"429": "429", "500": "500", "529": "529"}
_GET_ROUTES = ("/v1/models", "/health", "/lens-sim/received", "/metrics")
RECEIVED_KEPT = 256  # request bodies kept for GET /lens-sim/received
_TOKEN_ROUTES = ("/tokenize", "/detokenize")  # llama.cpp's, for tokenizer: server
_ERROR_INDEX_BASE = 1 << 39  # ids of error replies: disjoint from request indexes


@dataclass(frozen=True, slots=True)
class ResponsePlan:
    """Everything decided about one request before the first byte is written."""

    index: int
    fault: Fault
    n: int  # content tokens the response carries (before any cut)
    finish: FinishReason
    cut_after: int  # for "cut" and "midstream-error": content tokens sent before the fault
    due: list[float]  # absolute due times of tokens 0..max(n, 1)-1


# The simulator's tokenizer: a word of up to 5 characters, with the spaces before it, is
# one token; a longer word is split every 5 characters; trailing spaces are one token.
_PIECES = re.compile(r"\s*\S{1,5}|\s+")


class SimTokenizer:
    """llama.cpp's ``/tokenize`` and ``/detokenize`` over a simple deterministic
    tokenizer, so ``tokenizer: server`` is tested offline over real sockets.  Ids are
    given in order of first sight and stay for the server's life."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._pieces: list[str] = []
        # Which server's wire format it speaks (tests switch it): llama.cpp's, vLLM's, or
        # none (the routes answer 404, as a server without them).
        self.format: Literal["llamacpp", "vllm"] | None = "llamacpp"

    def tokenize(self, text: str) -> list[int]:
        ids = []
        for piece in _PIECES.findall(text):
            known = self._ids.get(piece)
            if known is None:
                known = self._ids[piece] = len(self._pieces)
                self._pieces.append(piece)
            ids.append(known)
        return ids

    def detokenize(self, ids: list[int]) -> str:
        return "".join(self._pieces[i] for i in ids)

    def answer(self, path: str, body: bytes, keep_alive: bool) -> bytes:
        if self.format is None:
            error = {"error": {"code": 404, "message": "File Not Found"}}
            return response_bytes(404, json.dumps(error).encode(), keep_alive=keep_alive)
        vllm = self.format == "vllm"
        try:
            doc = json.loads(body)
            reply: dict[str, object]
            if path == "/tokenize":
                ids = self.tokenize(str(doc["prompt" if vllm else "content"]))
                reply = (
                    {"count": len(ids), "max_model_len": 4096, "tokens": ids}
                    if vllm
                    else {"tokens": ids}
                )
            else:
                text = self.detokenize([int(i) for i in doc["tokens"]])
                reply = {"prompt": text} if vllm else {"content": text}
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            error = {"error": {"code": 400, "message": f"bad request: {exc!r}"}}
            return response_bytes(400, json.dumps(error).encode(), keep_alive=keep_alive)
        return response_bytes(200, json.dumps(reply).encode(), keep_alive=keep_alive)


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


def _reply_bytes(reply: Reply, keep_alive: bool) -> bytes:
    return response_bytes(
        reply.status,
        reply.body,
        content_type=reply.content_type,
        headers=reply.headers,
        keep_alive=keep_alive,
    )


class SimServer:
    """The request handler; ``handle`` is what ``trio.serve_tcp`` calls per connection."""

    def __init__(self, settings: SimSettings, *, model: str = "lens-sim-1") -> None:
        validate_settings(settings)
        self.settings = settings
        self.model = model
        self.protocol = get_protocol(settings.protocol)
        self.requests = 0  # requests planned; the index seeds each request's decisions
        self._errors = 0  # error replies, for their ids
        # Unique per server process so ids from two simulators never collide.
        self._id_prefix = os.urandom(11).hex()
        self._models_body = json.dumps(
            {
                "object": "list",
                "data": [{"id": model, "object": "model", "created": 0, "owned_by": "lens-sim"}],
            },
            separators=(",", ":"),
        ).encode()
        self.pacer = Pacer()
        self.slots = GenerationSlots(settings.capacity)
        # The bodies of the last requests, as received: tests read them (in process, or as
        # GET /lens-sim/received) to see what a client sent.
        self.received: deque[bytes] = deque(maxlen=RECEIVED_KEPT)
        # Its live state in llama.cpp's metric names, served at GET /metrics.
        self.metrics = SimMetrics()
        self.tokenizer = SimTokenizer()

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
                    await stream.send_all(self._error(exc, keep_alive=False))
                    return
                if request is None:
                    return
                t0 = trio.current_time()
                if not await self._dispatch(stream, reader, request, t0) or not request.keep_alive:
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return  # the client went away; nothing to report to anyone

    def _error(self, error: HttpError, keep_alive: bool) -> bytes:
        """``error`` in the protocol's format, with an id of its own."""
        index = _ERROR_INDEX_BASE + self._errors
        self._errors += 1
        ex = Exchange(index, f"{self._id_prefix}{index:010x}", int(time.time()))
        return _reply_bytes(self.protocol.error_reply(error, ex), keep_alive)

    async def _dispatch(
        self, stream: trio.SocketStream, reader: RequestReader, req: Request, t0: float
    ) -> bool:
        """Answer one request; return whether the connection may serve another."""
        keep = req.keep_alive
        if req.path in _GET_ROUTES:
            if req.method != "GET":
                await stream.send_all(self._error(method_not_allowed(req, "GET"), keep))
            elif req.path == "/health":
                await stream.send_all(response_bytes(200, b'{"status":"ok"}', keep_alive=keep))
            elif req.path == "/metrics":
                body = self.metrics.render()
                reply = response_bytes(
                    200, body, content_type=METRICS_CONTENT_TYPE, keep_alive=keep
                )
                await stream.send_all(reply)
            elif req.path == "/lens-sim/received":
                # Each body as a string, as received (it need not be JSON).
                listed = [body.decode("utf-8", "replace") for body in self.received]
                await stream.send_all(
                    response_bytes(200, json.dumps(listed).encode(), keep_alive=keep)
                )
            else:
                await stream.send_all(response_bytes(200, self._models_body, keep_alive=keep))
            return keep
        self.received.append(req.body)
        if req.path in _TOKEN_ROUTES and req.method == "POST":
            await stream.send_all(self.tokenizer.answer(req.path, req.body, keep))
            return keep
        try:
            parsed = self.protocol.parse_request(req, self.model)
            plan = self._plan(req.headers, parsed, t0)
        except HttpError as exc:
            await stream.send_all(self._error(exc, keep))
            return keep
        return await self._answer(stream, reader, req, parsed, plan, t0)

    # -- planning -------------------------------------------------------------------------

    def _plan(self, headers: dict[str, str], parsed: ParsedRequest, t0: float) -> ResponsePlan:
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
        if parsed.ignore_eos and parsed.max_tokens is not None:
            wanted = parsed.max_tokens  # vLLM: past end-of-sequence, to the limit
        elif parsed.min_tokens is not None:
            wanted = max(wanted, parsed.min_tokens)
        n = wanted if parsed.max_tokens is None else min(wanted, parsed.max_tokens)
        # Cut by the limit ("length"), else the model's own end ("stop"); ignoring
        # end-of-sequence, only the limit ends it.
        finish: FinishReason = "length" if n < wanted or parsed.ignore_eos else "stop"

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
        return ResponsePlan(index, fault, n, finish, cut_after, due)

    # -- responses ------------------------------------------------------------------------

    async def _answer(
        self,
        stream: trio.SocketStream,
        reader: RequestReader,
        req: Request,
        parsed: ParsedRequest,
        plan: ResponsePlan,
        t0: float,
    ) -> bool:
        keep = req.keep_alive
        ex = Exchange(plan.index, f"{self._id_prefix}{plan.index:010x}", int(time.time()))
        reply_fault = _REPLY_FAULTS.get(plan.fault)
        if reply_fault is not None:
            reply = self.protocol.fault_reply(reply_fault, parsed, ex)
            await stream.send_all(_reply_bytes(reply, keep))
            return keep
        metrics = self.metrics
        metrics.deferred += 1
        waiting = True
        try:
            async with self.slots.held() as admitted:
                metrics.deferred -= 1
                waiting = False
                kv_tokens = parsed.prompt_tokens + plan.n
                metrics.admit(parsed.prompt_tokens, kv_tokens)
                served = 0
                try:
                    # Generation starts when a slot frees up: the wait in the queue delays
                    # every token, the first one included (a rejection above never queues).
                    if admitted > t0:
                        plan = replace(plan, due=[t + (admitted - t0) for t in plan.due])
                    due = plan.due
                    last = due[max(plan.n - 1, 0)]
                    timing = Timing(
                        round((due[0] - t0) * 1e3),
                        round((last - t0) * 1e3),
                        queued_ms=round(max(admitted - t0, 0.0) * 1e3),
                        engine_timings=self.settings.engine_timings,
                    )
                    answer = self._stream if parsed.stream else self._complete
                    again = await answer(stream, reader, parsed, plan, t0, ex, timing, keep)
                    served = _served_tokens(plan)
                    return again
                finally:
                    metrics.release(kv_tokens, served, trio.current_time() - admitted)
        finally:
            if waiting:
                metrics.deferred -= 1

    async def _stream(
        self,
        stream: trio.SocketStream,
        reader: RequestReader,
        parsed: ParsedRequest,
        plan: ResponsePlan,
        t0: float,
        ex: Exchange,
        timing: Timing,
        keep: bool,
    ) -> bool:
        processing_ms = int((trio.current_time() - t0) * 1e3)
        protocol_head = self.protocol.stream_head(parsed, ex, processing_ms)
        head = "".join(
            [
                "HTTP/1.1 200 OK\r\n",
                f"content-type: {protocol_head.content_type}\r\n",
                "transfer-encoding: chunked\r\n",
                *[f"{k}: {v}\r\n" for k, v in protocol_head.headers],
                "connection: keep-alive\r\n\r\n" if keep else "connection: close\r\n\r\n",
            ]
        ).encode("latin-1")
        if plan.fault == "hang":
            await stream.send_all(head)
            await reader.drain_until_eof()
            return False

        render: StreamRenderer = self.protocol.renderer(parsed, ex, timing)
        due, n = plan.due, plan.n
        opening = head + render.prefix
        if due[0] > t0:
            # Head and prefix events go out now, before the token chunks are rendered.
            await send_now(stream, opening)
            opening = b""
        if plan.fault == "cut":
            k = plan.cut_after
            await self._write_schedule(stream, opening, due[:k], render.tokens(k))
            return False  # the caller closes: no terminating chunk, no end event
        if plan.fault == "midstream-error":
            k = plan.cut_after
            times = [*due[:k], due[min(k, max(n - 1, 0))]]
            payloads = [*render.tokens(k), render.midstream_error(k)]
            await self._write_schedule(stream, opening, times, payloads)
            return keep and not render.closes_after_error
        payloads, trailer = render.complete(n, plan.finish)
        # The trailer belongs to the last token's instant (or to the first token's when
        # there is none): generation ended then.
        if n:
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
        parsed: ParsedRequest,
        plan: ResponsePlan,
        t0: float,
        ex: Exchange,
        timing: Timing,
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
            reply = self.protocol.fault_reply("midstream-error", parsed, ex)
            await stream.send_all(_reply_bytes(reply, keep))
            return keep
        await trio.sleep_until(due[max(plan.n - 1, 0)])
        processing_ms = int((trio.current_time() - t0) * 1e3)
        reply = self.protocol.completion(parsed, ex, plan.n, plan.finish, processing_ms, timing)
        await stream.send_all(_reply_bytes(reply, keep))
        return keep


def _served_tokens(plan: ResponsePlan) -> int:
    """Output tokens a response that was written in full carried (until a cut)."""
    if plan.fault in ("cut", "midstream-error"):
        return plan.cut_after
    return 0 if plan.fault == "hang" else plan.n


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

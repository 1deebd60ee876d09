"""A lean HTTP/1.1 transport for httpx on trio: one keep-alive connection, cheap per read.

Why: streaming through httpx's default stack (httpcore + h11) costs 60-200 us of CPU per
HTTP chunk (nested async generators and context managers, one h11 event per chunk, a
BlockingIOError and an extra trio checkpoint per read).  An LLM stream is one tiny chunk
per token, so that overhead *is* the client cost of a load test.  This transport keeps
httpx as the API (``httpx.AsyncClient(transport=LeanHTTP11Transport())``,
``client.send(request, stream=True)``, ``response.aiter_raw()``) and does the wire work
itself: the request goes out in one ``send_all``, and each network read of the body
yields at most one ``bytes`` with all the payload that read completed (see
lens.run.http11_parse for the decoders).

On plain TCP a read is ``trio.lowlevel.wait_readable(fd)`` then ``os.read(fd, n)``: one
park in trio's I/O manager and one syscall, instead of trio's ``receive_some`` which first
tries ``recv`` (on a token stream that usually fails with ``BlockingIOError``), then waits,
then reads again, through two context managers.  TLS goes through ``trio.SSLStream``.

One transport holds one connection and serves one request at a time (lens gives every
in-flight request its own client, see lens.run.pool); a second request while a response
is open is a bug and raises ``RuntimeError``.  Read/write timeouts from the request's
httpx ``timeout`` extension are honoured, but lens bounds requests with trio cancel
scopes, and that path (no timeout) is the fast one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import select
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import certifi
import httpx
import trio

from lens.netconfig import ProxyRules, ProxyURL, explain_tls_error
from lens.run.http11_parse import (
    DEFAULT_MAX_RESPONSE_BYTES,
    MAX_HEAD_BYTES,
    BodyDecoder,
    PartialBody,
    ProtocolViolation,
    ResponseHead,
    body_too_large,
    build_request_head,
    find_head_end,
    parse_response_head,
    response_framing,
)
from lens.run.readmux import ReadMux

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DISPATCH_HOOK",
    "STALE_HOOK",
    "LeanHTTP11Transport",
    "read_muxed",
]

Origin = tuple[bytes, str, int]  # (scheme, host, port)

_DEFAULT_PORTS = {b"http": 80, b"https": 443}
# os.read on a socket descriptor is recv(); Windows descriptors do not work that way.
_RAW_READS = sys.platform != "win32"
# Errors that mean the connection is unusable; mapped to httpx.ReadError / WriteError.
_IO_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)
# A server's ``Keep-Alive: timeout=N`` counts from when it sent the response, which reached
# lens a little later: stop reusing an idle connection this much before N runs out.
_KEEP_ALIVE_MARGIN_S = 0.5


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    # Built once per process: loading the CA bundle takes tens of milliseconds.
    ctx = ssl.create_default_context(cafile=certifi.where())
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class _Connection:
    """One open stream plus what the hot path needs to read it without trio's layers."""

    __slots__ = (
        "absolute_form",
        "fd",
        "idle_limit",
        "idle_until",
        "origin",
        "parked",
        "proxy_auth",
        "received",
        "requests_left",
        "served",
        "sock",
        "stream",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        origin: Origin,
        *,
        absolute_form: bool = False,
        proxy_auth: bytes | None = None,
    ) -> None:
        self.stream = stream
        self.origin = origin
        inner: trio.abc.Stream = stream
        while isinstance(inner, trio.SSLStream):
            inner = inner.transport_stream
        self.sock = inner.socket if isinstance(inner, trio.SocketStream) else None
        # fd >= 0 means "plain TCP: read the descriptor directly"; -1 means go through
        # ``stream.receive_some`` (TLS, test streams), and also marks a closed connection.
        self.fd = (
            self.sock.fileno() if _RAW_READS and self.sock is not None and stream is inner else -1
        )
        # Plain http through an HTTP proxy: requests go out in absolute form, with the
        # proxy's credentials (a CONNECT tunnel needs neither: it is the origin's stream).
        self.absolute_form = absolute_form
        self.proxy_auth = proxy_auth
        # Bytes read through ``receive`` (every read of a response head goes through it):
        # zero after a failed exchange means the server sent nothing back at all.
        self.received = 0
        # Whether the connection sat idle before a request: it served one already (keep-
        # alive), or ``warm`` opened it ahead of time.  Only such a connection can have been
        # closed by the server under our feet, which makes a failure on it "stale".
        self.served = 0
        self.parked = False
        # From the server's ``Keep-Alive: timeout=N, max=M``: how long the connection may
        # sit idle (seconds, margin taken off), the trio time that runs out (set when a
        # response ends), and how many more requests the server will take (None: unknown).
        self.idle_limit: float | None = None
        self.idle_until = math.inf
        self.requests_left: int | None = None

    def close(self) -> None:
        """Close now, synchronously: safe in ``finally`` blocks under cancellation.

        No TLS close_notify: the connection is being abandoned, and waiting for the peer
        is exactly what a cancelled request must not do.
        """
        self.fd = -1
        if self.sock is not None:
            self.sock.close()  # wakes any task parked on it with ClosedResourceError

    def peer_closed(self) -> bool:
        """Whether an idle connection became readable: EOF, a reset or unsolicited bytes.

        All three make it unusable for the next request, and none was caused by us, so
        reconnecting is not a retry: nothing has been sent yet.  A zero-timeout poll()
        answers that with one syscall and, unlike recv(MSG_PEEK), works for TLS too
        (a close_notify makes the socket readable just like a FIN).
        """
        sock = self.sock
        if sock is None:
            return False
        fd = sock.fileno()
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([fd], [], [], 0)[0])  # pragma: no cover - no poll()

    async def receive(self, size: int, timeout: float | None) -> bytes:
        """One read, any path; httpx exceptions.  The body's fast path inlines this."""
        try:
            with trio.fail_after(timeout) if timeout is not None else contextlib.nullcontext():
                while self.fd >= 0:
                    await trio.lowlevel.wait_readable(self.fd)
                    with contextlib.suppress(BlockingIOError):  # spurious readiness
                        data = os.read(self.fd, size)
                        self.received += len(data)
                        return data
                # bytes() of a bytes object is that object: no copy on trio's streams.
                data = bytes(await self.stream.receive_some(size))
                self.received += len(data)
                return data
        except trio.TooSlowError as exc:
            raise httpx.ReadTimeout(f"no data within {timeout}s") from exc
        except _IO_ERRORS as exc:
            raise httpx.ReadError(f"read failed: {exc!r}") from exc


# A request extension: a callable invoked just before the request's bytes are handed to
# the socket (after any connect, proxy tunnel and TLS handshake), so the caller can stamp
# dispatch.  It is called again when a stale connection makes the transport re-send.
DISPATCH_HOOK = "lens.on_dispatch"
# A request extension: a callable taking a short reason, invoked when the request failed on
# a reused keep-alive connection before any response byte came back (the server had closed
# it: the request never reached its application) and is about to be re-sent, once, on a
# fresh connection.  DISPATCH_HOOK follows when the re-sent bytes go out.
STALE_HOOK = "lens.on_stale_retry"


class LeanHTTP11Transport(httpx.AsyncBaseTransport):
    """An httpx transport with one keep-alive HTTP/1.1 connection, built for streaming.

    ``ssl_context`` verifies https origins (default: certifi's CA bundle); ALPN is set to
    ``http/1.1`` on it.  ``connect_timeout`` bounds TCP connect, proxy tunnel and TLS
    handshake; when None the request's httpx ``connect`` timeout applies.  ``read_size``
    is the most one network read asks for.  ``proxy`` says which HTTP proxy each origin
    goes through (lens.netconfig; None: always direct).  ``keep_alive=False`` sends every
    request with ``Connection: close`` on a connection of its own.  A response body
    (decoded, when it came gzip- or deflate-encoded) longer than ``max_response_bytes``
    ends in a ProtocolViolation.

    Errors, and what they mean to the caller:

    - ``httpx.ConnectError`` / ``httpx.ConnectTimeout``: no request reached the server.
      DNS, refused, unreachable, TLS handshake (the message says why: ``TLS to host:443
      failed: certificate verify failed: ...``), a proxy that refuses the connection or
      answers ``CONNECT`` (or a plain-http request) with 407 or any non-2xx, and a TLS alert
      that ends a fresh connection before any response byte (TLS 1.3 reports a missing or
      rejected client certificate only after the handshake).
    - ``httpx.WriteError``, ``httpx.ReadError``, and ``httpx.RemoteProtocolError`` that is
      not a ``ProtocolViolation``: the connection dropped after the request was handed to
      it (reset, EOF before or inside the head, or mid body).  On a *reused* connection
      with no response byte received, the transport has already re-sent once (see
      ``STALE_HOOK``): these then come from a fresh connection.
    - ``ProtocolViolation``: the response broke the wire format.
    - ``httpx.ReadTimeout`` / ``httpx.WriteTimeout``: only with httpx timeouts.

    Through a proxy, dispatch is still stamped when the request's bytes are handed to the
    socket (after the tunnel and TLS), and bytes are stamped when they reach lens: the
    proxy's own forwarding and buffering are part of what is measured, as they are part of
    what a client behind it sees.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout: float | None = None,
        read_size: int = 65536,
        proxy: ProxyRules | None = None,
        keep_alive: bool = True,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        if read_size < 1:
            raise ValueError("read_size must be >= 1")
        if max_response_bytes < 1:
            raise ValueError("max_response_bytes must be >= 1")
        if ssl_context is not None:
            ssl_context.set_alpn_protocols(["http/1.1"])
        self._ssl_context = ssl_context
        self._connect_timeout = connect_timeout
        self._read_size = read_size
        self._proxy = proxy
        self._keep_alive = keep_alive
        self._max_response_bytes = max_response_bytes
        self._conn: _Connection | None = None
        self._active: _ResponseStream | None = None
        self.connects = 0  # connections opened so far: reuse shows as requests > connects
        self.stale_resends = 0  # requests re-sent because a reused connection was stale

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._active is not None:
            raise RuntimeError(
                "LeanHTTP11Transport serves one request at a time: close the previous "
                "response first (use one transport per concurrent request)"
            )
        url = request.url
        origin = _origin(url)
        timeouts: dict[str, Any] = request.extensions.get("timeout") or {}
        body = await request.aread()
        head, request_close = build_request_head(request, len(body))
        if not self._keep_alive and not request_close:
            head = head[:-2] + b"Connection: close\r\n\r\n"
            request_close = True

        conn = self._conn
        if conn is not None and not _reusable(conn, origin):
            self._drop()
            conn = None
        reused = conn is not None and (conn.served > 0 or conn.parked)
        if conn is None:
            conn = self._conn = await self._open(origin, timeouts.get("connect"))
        on_dispatch = request.extensions.get(DISPATCH_HOOK)
        read_timeout: float | None = timeouts.get("read")
        while True:
            wire = _absolute_form(head, request, conn.proxy_auth) if conn.absolute_form else head
            conn.received = 0
            if on_dispatch is not None:
                on_dispatch()  # the connection is ready: the request is handed to the socket now
            try:
                await self._send(conn, wire + body if body else wire, timeouts.get("write"))
                response, leftover = await self._receive_head(conn, read_timeout)
                decoder, keep_alive = response_framing(
                    request.method,
                    response,
                    request_close=request_close,
                    max_body=self._max_response_bytes,
                )
            except BaseException as exc:
                # Whatever went wrong (errors, cancellation), the connection is mid-exchange.
                self._drop()
                if reused and _stale(exc, conn):
                    # The server closed the idle connection as we reused it (a close racing
                    # our peer_closed() poll, or a keep-alive it never meant): it never saw
                    # the request.  Once, on a fresh connection; not a retry of the stage.
                    reused = False
                    self.stale_resends += 1
                    on_stale = request.extensions.get(STALE_HOOK)
                    if on_stale is not None:
                        on_stale(f"{type(exc).__name__}: {exc}")
                    conn = self._conn = await self._open(origin, timeouts.get("connect"))
                    continue
                if not reused and conn.received == 0 and isinstance(exc, httpx.TransportError):
                    why = explain_tls_error(exc)
                    if why is not None:  # a TLS alert right after the handshake
                        message = f"TLS to {_authority(origin)} failed: {why}"
                        raise httpx.ConnectError(message) from exc
                raise
            break
        conn.served += 1
        if conn.absolute_form and response.status == 407:
            self._drop()
            raise httpx.ConnectError(
                f"proxy answered {url.scheme}://{_authority(origin)} with 407 "
                f"{response.reason.decode('latin-1')}"
            )
        if keep_alive:
            _note_keep_alive(conn, response.headers)
        stream = _ResponseStream(self, conn, decoder, leftover, keep_alive, read_timeout)
        self._active = stream
        return httpx.Response(
            response.status,
            headers=response.headers,
            stream=stream,
            extensions={"http_version": response.http_version, "reason_phrase": response.reason},
        )

    async def warm(self, url: httpx.URL) -> None:
        """Open the connection to ``url``'s origin now, ahead of the first request.

        Connecting (and a TLS handshake) before a stage starts keeps that set-up out of the
        stage: dispatch is stamped after it in any case, but hundreds of connects at the
        start of a burst would otherwise compete for the client's CPU with the first
        responses.  A failure is left for the first request to report.
        """
        if self._conn is not None or url.raw_scheme not in _DEFAULT_PORTS:
            return
        with contextlib.suppress(httpx.ConnectError, httpx.ConnectTimeout):
            self._conn = await self._open(_origin(url), None)
            self._conn.parked = True

    async def aclose(self) -> None:
        self._drop()

    # -- internals ---------------------------------------------------------------------

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _release(self, stream: _ResponseStream, conn: _Connection, reusable: bool) -> None:
        """Called by a response stream's ``aclose``: keep its connection or close it."""
        # Only the open response can be closing: no second request starts while it is.
        self._active = None
        if not reusable:
            if self._conn is conn:
                self._conn = None
            conn.close()
        elif conn.idle_limit is not None:
            # The server's idle timer starts about now: when its response ended.
            conn.idle_until = trio.current_time() + conn.idle_limit

    async def _open(self, origin: Origin, request_timeout: float | None) -> _Connection:
        scheme, host, port = origin
        timeout = self._connect_timeout if self._connect_timeout is not None else request_timeout
        proxy = (
            self._proxy.for_origin(scheme.decode("ascii"), host, port)
            if self._proxy is not None
            else None
        )
        target = _authority(origin)
        via = f" through proxy {proxy.address}" if proxy is not None else ""
        step = "connect"
        try:
            with trio.fail_after(timeout) if timeout is not None else contextlib.nullcontext():
                if proxy is None:
                    tcp = await _open_tcp(host, port)
                else:
                    step = "proxy"
                    tcp = await _open_tcp(proxy.host, proxy.port)
                stream: trio.abc.Stream = tcp
                try:
                    if proxy is not None and scheme == b"https":
                        step = "tunnel"
                        await _tunnel(tcp, proxy, target)
                    if scheme == b"https":
                        step = "tls"
                        ctx = self._ssl_context or _default_ssl_context()
                        # https_compatible: a missing close_notify is a plain EOF, as in
                        # browsers; truncation is still caught by chunked / Content-Length
                        # framing.
                        stream = trio.SSLStream(
                            tcp, ctx, server_hostname=host, https_compatible=True
                        )
                        await stream.do_handshake()
                except BaseException:
                    tcp.socket.close()
                    raise
        except trio.TooSlowError as exc:
            raise httpx.ConnectTimeout(
                f"connect to {target}{via} took over {timeout}s ({_STEP_WORDS[step]})"
            ) from exc
        except _ProxyRefusal as exc:
            raise httpx.ConnectError(str(exc)) from exc
        except _IO_ERRORS as exc:
            if step == "tls":
                why = explain_tls_error(exc) or _reason(exc)
                raise httpx.ConnectError(f"TLS to {target}{via} failed: {why}") from exc
            if proxy is not None and step == "proxy":
                raise httpx.ConnectError(
                    f"cannot connect to proxy {proxy.address} (for {target}): {_reason(exc)}"
                ) from exc
            if proxy is not None and step == "tunnel":
                raise httpx.ConnectError(
                    f"proxy {proxy.address} failed during CONNECT {target}: {_reason(exc)}"
                ) from exc
            raise httpx.ConnectError(f"cannot connect to {target}: {_reason(exc)}") from exc
        self.connects += 1
        plain_via_proxy = proxy is not None and scheme == b"http"
        return _Connection(
            stream,
            origin,
            absolute_form=plain_via_proxy,
            proxy_auth=proxy.authorization() if plain_via_proxy and proxy is not None else None,
        )

    @staticmethod
    async def _send(conn: _Connection, data: bytes, timeout: float | None) -> None:
        try:
            if conn.fd >= 0:
                # Plain TCP: a request fits the socket's send buffer, so one non-blocking
                # write hands it to the kernel.  trio's send_all would wrap that write in an
                # async context manager and two checkpoints, one a full trip through the
                # scheduler, on the path of every dispatch; the response head is awaited
                # next, which is this task's schedule point.  What did not fit (a large
                # prompt, a full buffer) goes through trio as before.
                try:
                    sent = os.write(conn.fd, data)
                except BlockingIOError:
                    sent = 0
                if sent == len(data):
                    return
                data = data[sent:]
            with trio.fail_after(timeout) if timeout is not None else contextlib.nullcontext():
                await conn.stream.send_all(data)
        except trio.TooSlowError as exc:
            raise httpx.WriteTimeout(f"request not sent within {timeout}s") from exc
        except _IO_ERRORS as exc:
            raise httpx.WriteError(f"write failed: {exc!r}") from exc

    async def _receive_head(
        self, conn: _Connection, timeout: float | None
    ) -> tuple[ResponseHead, bytes]:
        """Read until a final (non-1xx) response head; also return the bytes after it.

        The head ends at an empty line whether lines end in CRLF or a bare LF (as h11
        reads it); each read is searched once.  101 Switching Protocols is refused: lens
        asked for no upgrade, and the connection no longer speaks HTTP.  When the body
        comes gzip/deflate-encoded, lens delivers it decoded, so the returned head's
        headers lose the Content-Encoding and Content-Length of the encoded body.
        """
        buf = b""
        scanned = 0  # where to resume looking for the empty line
        while True:
            end, body_start = find_head_end(buf, scanned)
            if end < 0:
                if len(buf) > MAX_HEAD_BYTES:
                    raise ProtocolViolation(f"response head larger than {MAX_HEAD_BYTES} bytes")
                scanned = max(0, len(buf) - 2)
                data = await conn.receive(self._read_size, timeout)
                if not data:
                    raise httpx.RemoteProtocolError(
                        "Server disconnected without sending a response."
                        if not buf
                        else "peer closed connection in the middle of the response head"
                    )
                buf += data
                continue
            if end > MAX_HEAD_BYTES:
                raise ProtocolViolation(f"response head larger than {MAX_HEAD_BYTES} bytes")
            head = parse_response_head(buf[:end])
            buf = buf[body_start:]
            scanned = 0
            if head.status < 200:
                if head.status == 101:
                    raise ProtocolViolation(
                        "101 Switching Protocols: the server left HTTP, lens asked for no upgrade"
                    )
                continue  # interim (100 Continue, 103 Early Hints): the real answer follows
            if head.content_encoding is not None:
                head = dataclasses.replace(head, headers=head.decoded_headers())
            return head, buf


class _ResponseStream(httpx.AsyncByteStream):
    """The body of one response; ``aclose`` gives the connection back or closes it."""

    def __init__(
        self,
        transport: LeanHTTP11Transport,
        conn: _Connection,
        decoder: BodyDecoder,
        leftover: bytes,
        keep_alive: bool,
        read_timeout: float | None,
    ) -> None:
        self._transport = transport
        self._conn = conn
        self._decoder = decoder
        self._leftover = leftover
        self._keep_alive = keep_alive
        self._read_timeout = read_timeout
        self._iterated = False
        self._closed = False
        if decoder.done and leftover:
            decoder.trailing = True

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._iterated:
            raise httpx.StreamConsumed()
        self._iterated = True
        decoder = self._decoder
        if decoder.done:
            return
        if self._closed:
            raise httpx.StreamClosed()
        conn = self._conn
        feed = decoder.feed
        size = self._transport._read_size
        timeout = self._read_timeout
        # Body bytes that came with the head were the head's read: decode them first.
        data, self._leftover = self._leftover, b""
        wait_readable = trio.lowlevel.wait_readable
        read = os.read
        limit = self._transport._max_response_bytes
        received = 0  # body bytes delivered (decoded): one add and compare per payload
        while True:
            if data:
                try:
                    payload = feed(data)
                except PartialBody as partial:
                    yield partial.payload  # what arrived before the error is still data
                    raise partial.error from None
                if payload:
                    received += len(payload)
                    if received > limit:
                        raise body_too_large(limit)
                    yield payload
                if decoder.done:
                    return
            fd = conn.fd
            if fd >= 0 and timeout is None:
                # The hot path: one park in trio's I/O manager, one recv.
                try:
                    await wait_readable(fd)
                    data = read(fd, size)
                except BlockingIOError:  # pragma: no cover - spurious readiness
                    continue
                except _IO_ERRORS as exc:
                    raise httpx.ReadError(f"read failed: {exc!r}") from exc
            else:
                data = await conn.receive(size, timeout)
            if not data:
                tail = decoder.eof()  # raises unless the body is close-delimited
                if tail:  # the end of a content-decoded body
                    if received + len(tail) > limit:
                        raise body_too_large(limit)
                    yield tail
                return

    async def read_muxed(self, mux: ReadMux, deliver: Callable[[bytes, int], None]) -> bool:
        """Read the whole body through ``mux``, the fast path of ``__aiter__``; False (and
        nothing read) when this body cannot go there: TLS or a test stream, an httpx read
        timeout, or a body already iterated.

        ``deliver(payload, t_ns)`` is called, in the mux's task, for each read that carried
        payload, with the stamp the mux took right after that read returned (before the
        framing was parsed).  It returns when the body has ended; it raises what
        ``__aiter__`` would (``ProtocolViolation``, ``httpx.ReadError``, a cut body's
        ``RemoteProtocolError``) and whatever ``deliver`` raised.  Cancelled, it detaches
        the socket at once: a request's deadline ends that request only.
        """
        conn = self._conn
        if self._iterated or self._closed or conn.fd < 0 or self._read_timeout is not None:
            return False
        self._iterated = True
        sink = _MuxedBody(mux, conn.fd, self._decoder, deliver, self._transport._max_response_bytes)
        data, self._leftover = self._leftover, b""
        if data:  # body bytes that came with the head: the head's read
            sink.on_read(data, mux.now())
        if not sink.over:
            mux.attach(sink.fd, sink)
            try:
                await sink.ended.wait()
            finally:
                mux.detach(sink.fd)
        if sink.error is not None:
            raise sink.error
        return True

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        decoder = self._decoder
        reusable = self._keep_alive and decoder.done and not decoder.trailing
        self._transport._release(self, self._conn, reusable)


async def read_muxed(
    response: httpx.Response, mux: ReadMux, deliver: Callable[[bytes, int], None]
) -> bool:
    """``response``'s body read through ``mux`` when it comes from this transport and can
    (see ``_ResponseStream.read_muxed``); False, with nothing read, otherwise."""
    stream = response.stream
    if not isinstance(stream, _ResponseStream):
        return False
    return await stream.read_muxed(mux, deliver)


class _MuxedBody:
    """A body read by a ReadMux: ``__aiter__``'s loop body, called back once per read."""

    __slots__ = (
        "_deliver",
        "_feed",
        "_limit",
        "_mux",
        "_received",
        "decoder",
        "ended",
        "error",
        "fd",
        "over",
    )

    def __init__(
        self,
        mux: ReadMux,
        fd: int,
        decoder: BodyDecoder,
        deliver: Callable[[bytes, int], None],
        limit: int,
    ) -> None:
        self._mux = mux
        self.fd = fd
        self.decoder = decoder
        self._feed = decoder.feed
        self._deliver = deliver
        self._limit = limit
        self._received = 0  # body bytes delivered (decoded)
        self.over = decoder.done
        self.error: BaseException | None = None
        self.ended = trio.Event()

    def on_read(self, data: bytes, t_ns: int) -> None:
        try:
            if data:
                payload = self._feed(data)
                if payload:
                    self._received += len(payload)
                    if self._received > self._limit:
                        self._end(body_too_large(self._limit))
                        return
                    self._deliver(payload, t_ns)
                if self.decoder.done:
                    self._end(None)
                return
            tail = self.decoder.eof()  # raises unless the body is close-delimited
            if tail:  # the end of a content-decoded body
                if self._received + len(tail) > self._limit:
                    self._end(body_too_large(self._limit))
                    return
                self._deliver(tail, t_ns)
            self._end(None)
        except PartialBody as partial:
            try:
                self._deliver(partial.payload, t_ns)  # what arrived before the error is data
            except Exception as exc:
                self._end(exc)
            else:
                self._end(partial.error)
        except Exception as exc:
            self._end(exc)

    def on_error(self, exc: OSError) -> None:
        error = httpx.ReadError(f"read failed: {exc!r}")
        error.__cause__ = exc
        self._end(error)

    def _end(self, error: BaseException | None) -> None:
        if self.over:
            return
        self.over = True
        self.error = error
        self._mux.detach(self.fd)
        self.ended.set()


# -- connection set-up and reuse ---------------------------------------------------------------

_STEP_WORDS = {
    "connect": "TCP connect",
    "proxy": "TCP connect to the proxy",
    "tunnel": "waiting for the proxy's answer to CONNECT",
    "tls": "TLS handshake",
}


def _origin(url: httpx.URL) -> Origin:
    scheme = url.raw_scheme
    default_port = _DEFAULT_PORTS.get(scheme)
    if default_port is None:
        raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}")
    return (scheme, url.raw_host.decode("ascii"), url.port or default_port)


def _authority(origin: Origin) -> str:
    _, host, port = origin
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _reusable(conn: _Connection, origin: Origin) -> bool:
    """Whether an idle connection may carry the next request to ``origin``."""
    return (
        conn.origin == origin
        and conn.requests_left != 0
        and trio.current_time() < conn.idle_until
        and not conn.peer_closed()
    )


def _stale(exc: BaseException, conn: _Connection) -> bool:
    """Whether a failed exchange on a reused connection is the server having closed it:
    the write failed, or the read hit EOF or a reset before a single response byte."""
    if conn.received:
        return False
    if isinstance(exc, httpx.WriteError | httpx.ReadError):
        return True
    # A ProtocolViolation is a response that broke the rules: bytes came, not a close.
    return isinstance(exc, httpx.RemoteProtocolError) and not isinstance(exc, ProtocolViolation)


def _note_keep_alive(conn: _Connection, headers: list[tuple[bytes, bytes]]) -> None:
    """Honour ``Keep-Alive: timeout=N, max=M`` (RFC 2068 19.7.1.1; Apache, cpp-httplib).

    ``max`` is read as the requests the server will still take, and also counted down on
    our side, so either reading of it (remaining or total) stops reuse in time.
    """
    if conn.requests_left is not None:
        conn.requests_left -= 1
    for name, value in headers:
        if len(name) != 10 or name.lower() != b"keep-alive":
            continue
        for param in value.split(b","):
            key, _, number = param.partition(b"=")
            key = key.strip().lower()
            number = number.strip().strip(b'"')
            if not number.isdigit():
                continue
            if key == b"timeout":
                idle = int(number)
                conn.idle_limit = max(0.0, idle - min(_KEEP_ALIVE_MARGIN_S, idle / 2))
            elif key == b"max":
                left = int(number)
                conn.requests_left = (
                    left if conn.requests_left is None else min(conn.requests_left, left)
                )


def _absolute_form(head: bytes, request: httpx.Request, auth: bytes | None) -> bytes:
    """The request head for an HTTP proxy: the absolute URL as target (RFC 9112 3.2.2)."""
    url = request.url
    line_end = head.index(b"\r\n")
    parts = [request.method.encode("ascii"), b" ", url.raw_scheme, b"://", url.netloc]
    parts += (url.raw_path, b" HTTP/1.1\r\n")
    if auth is not None:
        parts += (b"Proxy-Authorization: ", auth, b"\r\n")
    parts.append(head[line_end + 2 :])
    return b"".join(parts)


class _ProxyRefusal(Exception):
    """The proxy would not open the tunnel; the message says what it answered."""


async def _tunnel(tcp: trio.SocketStream, proxy: ProxyURL, target: str) -> None:
    """``CONNECT target`` through ``proxy`` on ``tcp``; returns once the tunnel is open."""
    authority = target.encode("ascii")
    lines = [b"CONNECT ", authority, b" HTTP/1.1\r\nHost: ", authority, b"\r\n"]
    auth = proxy.authorization()
    if auth is not None:
        lines += (b"Proxy-Authorization: ", auth, b"\r\n")
    lines.append(b"\r\n")
    await tcp.send_all(b"".join(lines))
    buf = b""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            status_line = buf[: buf.find(b"\r\n")]
            version, _, rest = status_line.partition(b" ")
            code, _, reason = rest.partition(b" ")
            if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
                raise _ProxyRefusal(
                    f"proxy {proxy.address} answered CONNECT {target} with something that is "
                    f"not HTTP: {status_line[:60]!r}"
                )
            status = int(code)
            if 100 <= status < 200:  # interim: the real answer follows
                buf = buf[end + 4 :]
                continue
            if not 200 <= status < 300:
                said = f"{status} {reason.decode('latin-1').strip()}".strip()
                raise _ProxyRefusal(f"proxy {proxy.address} answered CONNECT {target} with {said}")
            if buf[end + 4 :]:
                raise _ProxyRefusal(
                    f"proxy {proxy.address} sent bytes after its answer to CONNECT {target}"
                )
            return
        if len(buf) > MAX_HEAD_BYTES:
            raise _ProxyRefusal(f"proxy {proxy.address} answered CONNECT with an oversized head")
        data = await tcp.receive_some(65536)
        if not data:
            raise _ProxyRefusal(
                f"proxy {proxy.address} closed the connection in answer to CONNECT {target}"
            )
        buf += data


async def _open_tcp(host: str, port: int) -> trio.SocketStream:
    """A TCP stream to ``host``:``port``.

    An IP address is connected directly: one socket, one connect, ~45 us of CPU on this
    machine's idle core.  ``trio.open_tcp_stream`` costs ~140 us even then (the resolver
    call, a nursery and a task per attempt for happy eyeballs), which an open loop pays
    for every connection its pool grows by, inside the requests that open them.  A name
    goes through trio: resolution, and happy eyeballs across its addresses.
    """
    family = _ip_family(host)
    if family is None:
        return await trio.open_tcp_stream(host, port)
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    try:
        await sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


@functools.lru_cache(maxsize=64)
def _ip_family(host: str) -> int | None:
    """AF_INET or AF_INET6 for an IP address (without a zone: those go through trio);
    None for a name."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        return family
    return None


def _reason(exc: BaseException) -> str:
    """The first non-empty message among ``exc`` and its causes (trio wraps OS errors)."""
    current: BaseException | None = exc
    while current is not None:
        text = str(current)
        if text:
            return text
        current = current.__cause__ or current.__context__
    return type(exc).__name__

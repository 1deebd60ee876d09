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
import os
import select
import ssl
import sys
from collections.abc import AsyncIterator
from typing import Any

import certifi
import httpx
import trio

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

__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "DISPATCH_HOOK", "LeanHTTP11Transport"]

Origin = tuple[bytes, str, int]  # (scheme, host, port)

_DEFAULT_PORTS = {b"http": 80, b"https": 443}
# os.read on a socket descriptor is recv(); Windows descriptors do not work that way.
_RAW_READS = sys.platform != "win32"
# Errors that mean the connection is unusable; mapped to httpx.ReadError / WriteError.
_IO_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    # Built once per process: loading the CA bundle takes tens of milliseconds.
    ctx = ssl.create_default_context(cafile=certifi.where())
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class _Connection:
    """One open stream plus what the hot path needs to read it without trio's layers."""

    __slots__ = ("fd", "origin", "sock", "stream")

    def __init__(self, stream: trio.abc.Stream, origin: Origin) -> None:
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
                        return os.read(self.fd, size)
                # bytes() of a bytes object is that object: no copy on trio's streams.
                return bytes(await self.stream.receive_some(size))
        except trio.TooSlowError as exc:
            raise httpx.ReadTimeout(f"no data within {timeout}s") from exc
        except _IO_ERRORS as exc:
            raise httpx.ReadError(f"read failed: {exc!r}") from exc


# A request extension: a callable invoked just before the request's bytes are handed to
# the socket (after any connect and TLS handshake), so the caller can stamp dispatch.
DISPATCH_HOOK = "lens.on_dispatch"


class LeanHTTP11Transport(httpx.AsyncBaseTransport):
    """An httpx transport with one keep-alive HTTP/1.1 connection, built for streaming.

    ``ssl_context`` verifies https origins (default: certifi's CA bundle); ALPN is set to
    ``http/1.1`` on it.  ``connect_timeout`` bounds TCP connect plus TLS handshake; when
    None the request's httpx ``connect`` timeout applies.  ``read_size`` is the most one
    network read asks for.  A response body (decoded, when it came gzip- or
    deflate-encoded) longer than ``max_response_bytes`` ends in a ProtocolViolation.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout: float | None = None,
        read_size: int = 65536,
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
        self._max_response_bytes = max_response_bytes
        self._conn: _Connection | None = None
        self._active: _ResponseStream | None = None
        self.connects = 0  # connections opened so far: reuse shows as requests > connects

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._active is not None:
            raise RuntimeError(
                "LeanHTTP11Transport serves one request at a time: close the previous "
                "response first (use one transport per concurrent request)"
            )
        url = request.url
        scheme = url.raw_scheme
        default_port = _DEFAULT_PORTS.get(scheme)
        if default_port is None:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}")
        origin: Origin = (scheme, url.raw_host.decode("ascii"), url.port or default_port)
        timeouts: dict[str, Any] = request.extensions.get("timeout") or {}
        body = await request.aread()
        head, request_close = build_request_head(request, len(body))

        conn = self._conn
        if conn is not None and (conn.origin != origin or conn.peer_closed()):
            self._drop()
            conn = None
        if conn is None:
            conn = self._conn = await self._open(origin, timeouts.get("connect"))
        on_dispatch = request.extensions.get(DISPATCH_HOOK)
        if on_dispatch is not None:
            on_dispatch()  # the connection is ready: the request is handed to the socket now
        try:
            await self._send(conn, head + body if body else head, timeouts.get("write"))
            read_timeout: float | None = timeouts.get("read")
            response, leftover = await self._receive_head(conn, read_timeout)
            decoder, keep_alive = response_framing(
                request.method,
                response,
                request_close=request_close,
                max_body=self._max_response_bytes,
            )
        except BaseException:
            # Whatever went wrong (errors, cancellation), the connection is mid-exchange.
            self._drop()
            raise
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
        scheme = url.raw_scheme
        default_port = _DEFAULT_PORTS.get(scheme)
        if self._conn is not None or default_port is None:
            return
        origin: Origin = (scheme, url.raw_host.decode("ascii"), url.port or default_port)
        with contextlib.suppress(httpx.ConnectError, httpx.ConnectTimeout):
            self._conn = await self._open(origin, None)

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

    async def _open(self, origin: Origin, request_timeout: float | None) -> _Connection:
        scheme, host, port = origin
        timeout = self._connect_timeout if self._connect_timeout is not None else request_timeout
        try:
            with trio.fail_after(timeout) if timeout is not None else contextlib.nullcontext():
                tcp = await trio.open_tcp_stream(host, port)
                stream: trio.abc.Stream = tcp
                if scheme == b"https":
                    ctx = self._ssl_context or _default_ssl_context()
                    # https_compatible: a missing close_notify is a plain EOF, as in browsers;
                    # truncation is still caught by chunked / Content-Length framing.
                    stream = trio.SSLStream(tcp, ctx, server_hostname=host, https_compatible=True)
                    try:
                        await stream.do_handshake()
                    except BaseException:
                        tcp.socket.close()
                        raise
        except trio.TooSlowError as exc:
            raise httpx.ConnectTimeout(f"connect to {host}:{port} took over {timeout}s") from exc
        except _IO_ERRORS as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from exc
        self.connects += 1
        return _Connection(stream, origin)

    @staticmethod
    async def _send(conn: _Connection, data: bytes, timeout: float | None) -> None:
        try:
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

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        decoder = self._decoder
        reusable = self._keep_alive and decoder.done and not decoder.trailing
        self._transport._release(self, self._conn, reusable)

"""Loopback servers for the network tests: a scripted HTTP/1.1 origin (plain or TLS) and
a small HTTP proxy (CONNECT tunnels, absolute-form forwarding, Basic auth, a forwarding
delay).  Everything binds 127.0.0.1; nothing leaves the machine."""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import trio

Handler = Callable[["Conn"], Awaitable[None]]


@dataclass
class Origin:
    port: int
    tls: bool = False
    accepts: int = 0
    requests: list[bytes] = field(default_factory=list)

    def url(self, host: str = "127.0.0.1", path: str = "/") -> str:
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{path}"


class RequestReader:
    """Reads whole HTTP/1.1 requests off a server-side stream (head, then a
    Content-Length body), logging each in ``log``; the test servers here and in
    test_http11 share it."""

    def __init__(self, stream: trio.abc.Stream, log: list[bytes]) -> None:
        self.stream = stream
        self.buf = b""
        self._log = log

    async def _receive(self) -> bytes:
        try:
            return bytes(await self.stream.receive_some(65536))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return b""

    async def read_request(self) -> bytes | None:
        """One request (head and Content-Length body); None when the client hung up."""
        while b"\r\n\r\n" not in self.buf:
            data = await self._receive()
            if not data:
                return None
            self.buf += data
        end = self.buf.index(b"\r\n\r\n") + 4
        length = 0
        for line in self.buf[:end].split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(self.buf) < end + length:
            data = await self._receive()
            if not data:
                return None
            self.buf += data
        request, self.buf = self.buf[: end + length], self.buf[end + length :]
        self._log.append(request)
        return request


class Conn(RequestReader):
    """One accepted connection of a scripted origin."""

    def __init__(self, stream: trio.abc.Stream, origin: Origin) -> None:
        super().__init__(stream, origin.requests)
        self.origin = origin

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    def raw_socket(self) -> socket.socket:
        inner = self.stream
        while isinstance(inner, trio.SSLStream):
            inner = inner.transport_stream
        assert isinstance(inner, trio.SocketStream)
        return inner.socket  # type: ignore[return-value]

    def reset(self) -> None:
        """Close with RST instead of FIN."""
        sock = self.raw_socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    def close(self) -> None:
        self.raw_socket().close()


async def start_origin(
    nursery: trio.Nursery, handler: Handler, *, ssl_context: ssl.SSLContext | None = None
) -> Origin:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    origin = Origin(listeners[0].socket.getsockname()[1], tls=ssl_context is not None)
    serving: list[trio.abc.Listener[trio.abc.Stream]] = list(listeners)
    if ssl_context is not None:
        serving = [trio.SSLListener(lst, ssl_context, https_compatible=True) for lst in listeners]

    async def on_connection(stream: trio.abc.Stream) -> None:
        origin.accepts += 1
        try:
            if isinstance(stream, trio.SSLStream):
                await stream.do_handshake()
            await handler(Conn(stream, origin))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            await trio.aclose_forcefully(stream)

    await nursery.start(trio.serve_listeners, on_connection, serving)
    return origin


def sse_response(*events: bytes, headers: bytes = b"") -> bytes:
    body = b"".join(b"data: " + e + b"\n\n" for e in events)
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n%s\r\n%s"
        % (len(body), headers, body)
    )


# -- a small HTTP proxy ---------------------------------------------------------------------


@dataclass
class Proxy:
    port: int
    require_auth: bytes | None = None  # the Proxy-Authorization value to demand
    refuse_connect: bytes | None = None  # a status line to answer every CONNECT with
    delay_s: float = 0.0  # held back before forwarding each piece from the origin
    connects: list[bytes] = field(default_factory=list)  # CONNECT targets
    forwarded: list[bytes] = field(default_factory=list)  # request lines of absolute-form
    auth_seen: list[bytes | None] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def start_proxy(nursery: trio.Nursery, **options: object) -> Proxy:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    proxy = Proxy(listeners[0].socket.getsockname()[1], **options)  # type: ignore[arg-type]

    async def on_connection(client: trio.SocketStream) -> None:
        try:
            await _serve_client(proxy, client)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            await trio.aclose_forcefully(client)

    await nursery.start(trio.serve_listeners, on_connection, listeners)
    return proxy


async def _read_head(stream: trio.abc.Stream, buf: bytes) -> tuple[bytes, bytes] | None:
    while b"\r\n\r\n" not in buf:
        data = await stream.receive_some(65536)
        if not data:
            return None
        buf += data
    end = buf.index(b"\r\n\r\n") + 4
    return buf[:end], buf[end:]


def _header(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


async def _pipe(src: trio.abc.Stream, dst: trio.abc.Stream, delay_s: float) -> None:
    try:
        while data := await src.receive_some(65536):
            if delay_s:
                await trio.sleep(delay_s)
            await dst.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
    finally:
        await trio.aclose_forcefully(dst)


async def _serve_client(proxy: Proxy, client: trio.SocketStream) -> None:
    got = await _read_head(client, b"")
    if got is None:
        return
    head, rest = got
    method, target, _ = head.split(b"\r\n", 1)[0].split(b" ", 2)
    auth = _header(head, b"proxy-authorization")
    proxy.auth_seen.append(auth)
    if proxy.require_auth is not None and auth != proxy.require_auth:
        await client.send_all(
            b"HTTP/1.1 407 Proxy Authentication Required\r\n"
            b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n'
        )
        return
    if method == b"CONNECT":
        proxy.connects.append(target)
        if proxy.refuse_connect is not None:
            await client.send_all(proxy.refuse_connect + b"\r\nContent-Length: 0\r\n\r\n")
            return
        host, _, port = target.rpartition(b":")
        upstream = await trio.open_tcp_stream(host.strip(b"[]").decode(), int(port))
        try:
            await client.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                await upstream.send_all(rest)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_pipe, client, upstream, 0.0)
                nursery.start_soon(_pipe, upstream, client, proxy.delay_s)
        finally:
            await trio.aclose_forcefully(upstream)
        return
    # Absolute form: forward each request in origin form on one upstream connection.
    url = urlsplit(target.decode())
    upstream = await trio.open_tcp_stream(url.hostname or "", url.port or 80)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_pipe, upstream, client, proxy.delay_s)
            while True:
                proxy.forwarded.append(head.split(b"\r\n", 1)[0])
                await upstream.send_all(_origin_form(head) + rest)
                rest = b""  # bodies here are small and arrive with their head
                got = await _read_head(client, b"")
                if got is None:
                    break
                head, rest = got
            await trio.aclose_forcefully(upstream)
    finally:
        await trio.aclose_forcefully(upstream)


def _origin_form(head: bytes) -> bytes:
    line, _, fields = head.partition(b"\r\n")
    method, target, version = line.split(b" ", 2)
    url = urlsplit(target.decode())
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    kept = [f for f in fields.split(b"\r\n") if not f.lower().startswith(b"proxy-authorization")]
    return b" ".join((method, path.encode(), version)) + b"\r\n" + b"\r\n".join(kept)


class ThreadedTlsOrigin:
    """A blocking stdlib-ssl origin in a thread: unlike trio's SSLStream, OpenSSL here
    writes its alerts (certificate required, unknown CA) to the socket before closing, as
    real servers do.  Answers each request with 200 ``ok``; ``close()`` stops it."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._ctx = ctx
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, host: str = "localhost") -> str:
        return f"https://{host}:{self.port}/"

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return  # closed
            with raw:
                raw.settimeout(5)
                tls = self._ctx.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
                try:
                    tls.do_handshake()
                    if tls.recv(65536):
                        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                except (OSError, ssl.SSLError):
                    # The alert is out; closing at once would race the client's request
                    # (its write would meet a reset before it reads the alert).
                    time.sleep(0.2)
                finally:
                    tls.close()

    def close(self) -> None:
        # shutdown() wakes the thread's accept() on Linux; close() alone would not.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(5)

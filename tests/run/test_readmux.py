"""One reader task for every response body (lens.run.readmux): the same bytes and the same
failures as each request reading its own body, stamps taken before any parsing, and a
request's deadline ending that request only.  Real sockets on 127.0.0.1."""

from __future__ import annotations

import itertools
import socket
import struct
import zlib
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import trio

from lens.plan.compile import compile_plan
from lens.plan.model import Message, OpenAISettings, PromptSpec, ProviderSpec
from lens.providers.registry import adapter_for
from lens.records import ErrorClass, RequestRecord
from lens.run import executor
from lens.run.clock import RunClock
from lens.run.executor import StageRunner, _may_use_tls
from lens.run.http11 import LeanHTTP11Transport, read_muxed
from lens.run.readmux import ReadMux
from lens.run.request import execute_request
from lens.scenario import parse_scenario
from tests.run import test_http11 as base
from tests.run.test_http11 import ServerConn, StartRaw, chunked, collect, ok, replies

pytestmark = pytest.mark.skipif(not ReadMux.supported(), reason="select.epoll is Linux only")

start_raw = base.start_raw
CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.fixture
async def mux() -> AsyncIterator[ReadMux]:
    clock = RunClock()
    reader = ReadMux(clock.now_ns)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader.run)
        yield reader
        nursery.cancel_scope.cancel()
    assert reader.attached == 0


def gzip_body(*pieces: bytes) -> bytes:
    c = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    return b"".join(c.compress(p) + c.flush(zlib.Z_SYNC_FLUSH) for p in pieces) + c.flush()


def reset_after(*parts: bytes) -> Callable[[ServerConn], object]:
    async def handler(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.send(*parts, pause=0.005)
        await trio.sleep(0.05)
        conn.reset()

    return handler


# Each case: the server's answer, and the transport's settings.  Together they walk every
# branch of the body loop: payload, a read with none, the end of the framing, the body
# that came whole with the head, EOF (a close-delimited end, a cut), a framing error after
# good payload, the size limit, content decoding, a reset.
CASES: dict[str, tuple[Callable[[], object], dict[str, int]]] = {
    "chunked-paced": (
        lambda: replies((CHUNKED_HEAD, b"3\r\nabc\r\n", b"2\r\nde\r\n", b"0\r\n\r\n")),
        {},
    ),
    "chunked-whole": (lambda: replies(chunked(b"a", b"bb", b"ccc")), {}),
    "length": (lambda: replies(ok(b"hello")), {}),
    "length-paced": (
        lambda: replies((b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nab", b"cd", b"ef")),
        {},
    ),
    "empty": (lambda: replies(ok(b"")), {}),
    "close-delimited": (
        lambda: replies((b"HTTP/1.1 200 OK\r\n\r\nabc", b"def"), close_after=True),
        {},
    ),
    "cut-mid-chunk": (lambda: replies((CHUNKED_HEAD, b"5\r\nab"), close_after=True), {}),
    "framing-error-after-payload": (
        lambda: replies((CHUNKED_HEAD, b"3\r\nabc\r\nzz\r\n")),
        {},
    ),
    "over-the-limit": (
        lambda: replies(chunked(*[b"x" * 1000] * 5), close_after=True),
        {"max_response_bytes": 4096, "read_size": 1000},
    ),
    "gzip": (
        lambda: replies(ok(gzip_body(b"data: a\n\n", b"data: b\n\n"), b"Content-Encoding: gzip")),
        {},
    ),
    "gzip-truncated": (
        lambda: replies(
            ok(gzip_body(b"data: a\n\n", b"data: b\n\n")[:-6], b"Content-Encoding: gzip")
        ),
        {},
    ),
    "reset": (lambda: reset_after(CHUNKED_HEAD, b"3\r\nabc\r\n"), {}),
}


async def read_body(start_raw: StartRaw, case: str, muxed: bool) -> tuple[bytes, str | None, int]:
    """The body's bytes, the failure (type: message) and the deliveries, one way or the other
    (the mux reads as much per read as the transport would)."""
    handler, settings = CASES[case]
    server = await start_raw(handler())  # type: ignore[arg-type]
    parts: list[bytes] = []
    error: str | None = None
    mux = ReadMux(RunClock().now_ns, read_size=settings.get("read_size", 65536))
    async with trio.open_nursery() as nursery, LeanHTTP11Transport(**settings) as transport:  # type: ignore[arg-type]
        nursery.start_soon(mux.run)
        response = await transport.handle_async_request(httpx.Request("GET", server.url))
        try:
            with trio.fail_after(10):
                if not muxed:
                    assert isinstance(response.stream, httpx.AsyncByteStream)
                    await collect(parts, response.stream)
                else:
                    assert await read_muxed(response, mux, lambda p, t: parts.append(p))
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            await response.aclose()
            nursery.cancel_scope.cancel()
    assert mux.attached == 0
    return b"".join(parts), error, len(parts)


@pytest.mark.parametrize("case", list(CASES))
async def test_the_mux_reads_what_the_iterator_reads(start_raw: StartRaw, case: str) -> None:
    iterated = await read_body(start_raw, case, muxed=False)
    muxed = await read_body(start_raw, case, muxed=True)
    assert muxed[:2] == iterated[:2]
    assert muxed[2] >= 1 or not muxed[0]  # nothing delivered without payload
    if case in ("cut-mid-chunk", "reset"):
        assert muxed[0]  # what arrived before is kept
        assert muxed[1] is not None
    if case == "framing-error-after-payload":
        assert muxed[0] == b"abc"
        assert str(muxed[1]).startswith("ProtocolViolation")
    if case == "reset":
        assert str(muxed[1]).startswith("ReadError")


async def test_a_deliver_that_raises_is_the_requests_failure(
    start_raw: StartRaw, mux: ReadMux
) -> None:
    server = await start_raw(replies(chunked(b"a", b"b")))

    def deliver(payload: bytes, t_ns: int) -> None:
        raise ValueError("bad payload")

    async with LeanHTTP11Transport() as transport:
        response = await transport.handle_async_request(httpx.Request("GET", server.url))
        with pytest.raises(ValueError, match="bad payload"):
            await read_muxed(response, mux, deliver)
        await response.aclose()
        # The mux task survived it: the next body on the same mux still reads.
        server2 = await start_raw(replies(ok(b"fine")))
        async with LeanHTTP11Transport() as other:
            again = await other.handle_async_request(httpx.Request("GET", server2.url))
            got: list[bytes] = []
            assert await read_muxed(again, mux, lambda p, t: got.append(p))
            await again.aclose()
    assert got == [b"fine"]


async def test_bodies_the_mux_cannot_read_are_left_untouched(
    start_raw: StartRaw, mux: ReadMux
) -> None:
    server = await start_raw(replies(ok(b"one"), ok(b"two")))
    async with LeanHTTP11Transport() as transport:
        # An httpx read timeout needs the per-read deadline of the iterator.
        request = httpx.Request("GET", server.url, extensions={"timeout": {"read": 5.0}})
        response = await transport.handle_async_request(request)
        assert not await read_muxed(response, mux, lambda p, t: None)
        assert await response.aread() == b"one"
        # A body already iterated is not read a second time.
        response = await transport.handle_async_request(httpx.Request("GET", server.url))
        assert await response.aread() == b"two"
        assert not await read_muxed(response, mux, lambda p, t: None)
    assert not await read_muxed(httpx.Response(200, content=b"x"), mux, lambda p, t: None)


# -- the mux itself ------------------------------------------------------------------------


class Sink:
    """Logs (name, data, stamp, time of decoding); like a body, it lets go at EOF or an error
    (the epoll set is level-triggered: a closed socket stays readable)."""

    def __init__(
        self,
        log: list[tuple[str, bytes, int, int]],
        name: str,
        now: Callable[[], int],
        let_go: Callable[[], None] | None = None,
    ) -> None:
        self.log = log
        self.name = name
        self.now = now
        self.let_go = let_go
        self.errors: list[OSError] = []

    def on_read(self, data: bytes, t_ns: int) -> None:
        self.log.append((self.name, data, t_ns, self.now()))
        if not data and self.let_go is not None:
            self.let_go()

    def on_error(self, exc: OSError) -> None:
        self.errors.append(exc)
        if self.let_go is not None:
            self.let_go()


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    client.setblocking(False)
    return client, server


async def test_one_wake_up_stamps_every_ready_read_before_decoding_any() -> None:
    ticks = itertools.count(1)
    now = ticks.__next__  # each stamp is a later tick than the one before
    reader = ReadMux(now)
    log: list[tuple[str, bytes, int, int]] = []
    pairs = [tcp_pair() for _ in range(3)]
    try:
        for k, (client, server) in enumerate(pairs):
            reader.attach(client.fileno(), Sink(log, f"s{k}", now))
            server.sendall(b"hello %d" % k)
        await trio.sleep(0.05)  # all three readable before the mux first looks
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader.run)
            with trio.fail_after(5):
                while len(log) < 3:
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    finally:
        for client, server in pairs:
            client.close()
            server.close()
    assert sorted(data for _, data, _, _ in log) == [b"hello 0", b"hello 1", b"hello 2"]
    stamps = [t for _, _, t, _ in log]
    decoded_at = [at for _, _, _, at in log]
    assert max(stamps) < min(decoded_at)  # every read stamped before the first was decoded
    assert reader.attached == 0  # run() let go of everything when it ended


async def test_eof_detach_and_reset() -> None:
    clock = RunClock()
    reader = ReadMux(clock.now_ns)
    log: list[tuple[str, bytes, int, int]] = []
    (a, a_peer), (b, b_peer), (c, c_peer) = tcp_pair(), tcp_pair(), tcp_pair()
    sink_c = Sink(log, "c", clock.now_ns, lambda: reader.detach(c.fileno()))
    try:
        reader.attach(a.fileno(), Sink(log, "a", clock.now_ns, lambda: reader.detach(a.fileno())))
        reader.attach(b.fileno(), Sink(log, "b", clock.now_ns))
        reader.attach(c.fileno(), sink_c)
        reader.detach(b.fileno())
        reader.detach(b.fileno())  # twice: a no-op
        assert reader.attached == 2
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader.run)
            b_peer.sendall(b"not for the mux")
            a_peer.close()  # EOF: one empty read
            c_peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c_peer.close()  # RST
            with trio.fail_after(5):
                while not (log and sink_c.errors):
                    await trio.sleep(0.01)
            await trio.sleep(0.05)  # nothing more comes once each sink let go
            nursery.cancel_scope.cancel()
        assert [(name, data) for name, data, _, _ in log] == [("a", b"")]
        assert len(sink_c.errors) == 1
        assert isinstance(sink_c.errors[0], ConnectionResetError)
        assert reader.attached == 0
        assert b.recv(100) == b"not for the mux"  # a detached socket is not read
    finally:
        for s in (a, a_peer, b, b_peer, c, c_peer):
            s.close()


def test_read_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="read_size"):
        ReadMux(lambda: 0, read_size=0)


# -- through execute_request and the executor ----------------------------------------------

PROMPT = PromptSpec(id="q", messages=(Message("user", "hi"),))


def sse_chunked(n: int) -> list[bytes]:
    """An OpenAI stream of ``n`` one-token deltas, one chunk per write."""
    events = [
        b'data: {"choices":[{"index":0,"delta":{"content":"t%d"}}]}\n\n' % k for k in range(n)
    ]
    events.append(b"data: [DONE]\n\n")
    return [b"%x\r\n%s\r\n" % (len(e), e) for e in events] + [b"0\r\n\r\n"]


def spec_for(url: str) -> ProviderSpec:
    return ProviderSpec(
        id="p",
        type="openai-compatible",
        model="m",
        base_url=url + "/v1",
        settings=OpenAISettings(),
    )


async def test_a_deadline_ends_only_its_own_request(start_raw: StartRaw, mux: ReadMux) -> None:
    """Two requests share the mux; the one whose server stalls times out, keeping its first
    token, while the other streams to its end."""

    async def stall_after_one(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.send(CHUNKED_HEAD + sse_chunked(3)[0])
        await trio.sleep(30)

    async def paced(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.send(CHUNKED_HEAD, *sse_chunked(10), pause=0.05)

    stalled = await start_raw(stall_after_one)
    steady = await start_raw(paced)
    clock = RunClock()
    records: dict[str, RequestRecord] = {}

    async def one(name: str, url: str, timeout_s: float) -> None:
        async with LeanHTTP11Transport() as transport:
            await execute_request(
                transport,
                adapter_for(spec_for(url)),
                PROMPT,
                clock=clock,
                stage="s",
                index=0,
                t_intended=None,
                timeout_s=timeout_s,
                max_tokens=None,
                emit=lambda rec: records.__setitem__(name, rec),
                reader=mux,
            )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(one, "stalled", stalled.url, 0.3)
        nursery.start_soon(one, "steady", steady.url, 20.0)
    assert records["stalled"].error_class is ErrorClass.TIMEOUT
    assert len(records["stalled"].chunk_times) == 1  # what arrived stays measured
    assert records["stalled"].t_first_chunk is not None
    assert records["steady"].ok, records["steady"].error_message
    assert len(records["steady"].chunk_times) == 10
    assert records["steady"].reads >= 10
    # The steady stream went on past the other's deadline.
    assert records["steady"].t_end - records["stalled"].t_end > 0.1e9
    assert mux.attached == 0


async def test_records_are_the_same_with_and_without_the_mux(
    start_raw: StartRaw, mux: ReadMux
) -> None:
    def server() -> Callable[[ServerConn], object]:
        async def handler(conn: ServerConn) -> None:
            await conn.read_request()
            usage = b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}}\n\n'
            chunks = sse_chunked(4)
            chunks.insert(-2, b"%x\r\n%s\r\n" % (len(usage), usage))
            await conn.send(CHUNKED_HEAD, *chunks, pause=0.01)

        return handler

    got = []
    for reader in (None, mux):
        srv = await start_raw(server())  # type: ignore[arg-type]
        records: list[RequestRecord] = []
        async with LeanHTTP11Transport() as transport:
            await execute_request(
                transport,
                adapter_for(spec_for(srv.url)),
                PROMPT,
                clock=RunClock(),
                stage="s",
                index=0,
                t_intended=None,
                timeout_s=10.0,
                max_tokens=None,
                emit=records.append,
                reader=reader,
            )
        (rec,) = records
        assert rec.ok, rec.error_message
        assert rec.t_first_chunk is not None
        assert rec.t_headers is not None
        assert rec.t_first_chunk >= rec.t_headers
        got.append((len(rec.chunk_times), rec.chunk_tokens, rec.output_tokens, rec.input_tokens))
    assert got[0] == got[1] == (4, (2, 1, 1, 1), 5, 3)


async def test_the_executor_reads_through_one_mux(
    start_raw: StartRaw, monkeypatch: pytest.MonkeyPatch
) -> None:
    attached: list[int] = []
    muxes: set[int] = set()
    real_attach = ReadMux.attach

    def spy(self: ReadMux, fd: int, sink: object) -> None:
        muxes.add(id(self))
        attached.append(fd)
        real_attach(self, fd, sink)  # type: ignore[arg-type]

    monkeypatch.setattr(ReadMux, "attach", spy)
    contexts: list[object] = []
    monkeypatch.setattr(executor, "build_ssl_context", contexts.append)

    async def handler(conn: ServerConn) -> None:
        while await conn.read_request() is not None:
            await conn.send(CHUNKED_HEAD, *sse_chunked(3), pause=0.01)

    srv = await start_raw(handler)
    text = f"""\
version: 1
name: t
providers:
  p:
    type: openai-compatible
    base_url: {srv.url}/v1
    model: m
    price: {{input: 0, output: 0}}
prompts:
  - id: q
    messages:
      - {{role: user, content: hi}}
load:
  - id: s
    pattern: concurrency
    concurrency: 4
    requests: 8
"""
    plan = compile_plan(parse_scenario(text, env={}), env={})
    records: list[RequestRecord] = []
    runner = StageRunner(plan, plan.providers, records.append)
    await runner.run_all()
    assert len(records) == 8
    assert all(r.ok for r in records), [r.error_message for r in records]
    assert all(len(r.chunk_times) == 3 for r in records)
    assert len(attached) == 8
    assert len(muxes) == 1
    assert contexts == []  # plain http: no CA bundle loaded

    # Where epoll is missing, each request reads its own body, with the same records.
    monkeypatch.setattr(ReadMux, "supported", staticmethod(lambda: False))
    attached.clear()
    records.clear()
    runner = StageRunner(plan, plan.providers, records.append)
    await runner.run_all()
    assert attached == []
    assert len(records) == 8
    assert all(r.ok and len(r.chunk_times) == 3 for r in records)


def test_only_a_plain_http_provider_skips_tls() -> None:
    assert not _may_use_tls(spec_for("http://127.0.0.1:8000"))
    assert not _may_use_tls(spec_for("HTTP://127.0.0.1:8000"))
    assert _may_use_tls(spec_for("https://api.openai.com"))
    no_base = ProviderSpec(id="g", type="gemini", model="m", base_url=None)
    assert _may_use_tls(no_base)

"""The request's error boundary: whatever an adapter, a decoder or the transport raises ends
that request as a record with the right class, and only BaseExceptions escape."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx
import pytest
import trio

from lens.plan.model import Message, OpenAISettings, PromptSpec, ProviderSpec, Secret
from lens.providers.base import StreamOutcome
from lens.providers.openai_chat import OpenAIChatAdapter
from lens.records import ErrorClass, RequestRecord
from lens.run.clock import RunClock
from lens.run.http11 import DISPATCH_HOOK
from lens.run.http11_parse import ProtocolViolation
from lens.run.request import execute_request

PROMPT = PromptSpec("q", (Message("user", "hello"),))
SPEC = ProviderSpec(
    id="p",
    type="openai-compatible",
    model="m",
    base_url="http://127.0.0.1:1/v1",
    settings=OpenAISettings(),
)


def sse(*events: object) -> list[bytes]:
    return [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events]


def delta(text: str) -> dict[str, object]:
    return {"choices": [{"index": 0, "delta": {"content": text}}]}


class Reads(httpx.AsyncByteStream):
    """A body delivered as these reads, then ``then`` raised (if any)."""

    def __init__(self, parts: list[bytes], then: Exception | None = None) -> None:
        self.parts = parts
        self.then = then

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            await trio.lowlevel.checkpoint()
            yield part
        if self.then is not None:
            raise self.then


def answer(
    status: int = 200, parts: list[bytes] | None = None, **kw: object
) -> Callable[[httpx.Request], httpx.Response]:
    headers = kw.pop("headers", {})
    then = kw.pop("then", None)
    assert isinstance(headers, dict)
    assert then is None or isinstance(then, Exception)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers=headers, stream=Reads(parts or [], then))

    return handler


def raising(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


async def run_one(
    transport: httpx.AsyncBaseTransport, adapter: object | None = None, timeout_s: float = 5.0
) -> RequestRecord:
    records: list[RequestRecord] = []
    await execute_request(
        transport,
        adapter or OpenAIChatAdapter(SPEC),  # type: ignore[arg-type]
        PROMPT,
        clock=RunClock(),
        stage="s",
        index=0,
        t_intended=None,
        timeout_s=timeout_s,
        max_tokens=8,
        emit=records.append,
    )
    (rec,) = records
    return rec


async def test_a_plain_stream_is_still_ok() -> None:
    parts = [*sse(delta("a"), delta("b")), b"data: [DONE]\n\n"]
    rec = await run_one(httpx.MockTransport(answer(parts=parts)))
    assert rec.ok, rec.error_message
    assert len(rec.chunk_times) == 2
    assert rec.reads == 3


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (ProtocolViolation("status line 'HTTP/1.1 099 x' is not 100-599"), "protocol_error"),
        (httpx.ConnectError("cannot connect to 127.0.0.1:1: refused"), "connect"),
        (httpx.ConnectTimeout("connect took over 1s"), "connect"),
        (
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            "connection_lost",
        ),
        (httpx.ReadError("read failed: reset"), "connection_lost"),
        (httpx.WriteError("write failed: broken pipe"), "connection_lost"),
        (httpx.LocalProtocolError("illegal character in header b'authorization'"), "connect"),
        (httpx.UnsupportedProtocol("unsupported URL scheme 'ftp'"), "connect"),
        (RuntimeError("a transport bug"), "connect"),  # before dispatch: nothing was sent
    ],
)
async def test_transport_failures_before_the_head(exc: Exception, cls: str) -> None:
    rec = await run_one(httpx.MockTransport(raising(exc)))
    assert rec.error_class == cls
    assert rec.error_message is not None
    assert type(exc).__name__ in rec.error_message
    assert rec.t_headers is None
    assert rec.http_status is None


class _DispatchThenFail(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.extensions[DISPATCH_HOOK]()
        raise KeyError("lost state")


async def test_a_foreign_exception_after_dispatch_is_a_lost_connection() -> None:
    rec = await run_one(_DispatchThenFail())
    assert rec.error_class is ErrorClass.CONNECTION_LOST
    assert rec.error_message == "KeyError: 'lost state'"


async def test_a_request_lens_cannot_build_is_recorded_as_never_sent() -> None:
    spec = ProviderSpec(
        id="p",
        type="openai-compatible",
        model="m",
        base_url="http://127.0.0.1:1/v1",
        api_key=Secret("sk-clé-non-ascii"),
        settings=OpenAISettings(),
    )
    rec = await run_one(httpx.MockTransport(answer()), OpenAIChatAdapter(spec))
    assert rec.error_class is ErrorClass.CONNECT
    assert rec.error_message is not None
    assert rec.error_message.startswith("request not sent (lens could not build it): ")
    assert "UnicodeEncodeError" in rec.error_message
    assert rec.t_headers is None


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"choices": [None]}, "PayloadShapeError: a choice is null, not an object"),
        ({"usage": True, "choices": []}, "PayloadShapeError: usage is a boolean, not an object"),
        (
            {"choices": [{"delta": {"content": 5}}]},
            "PayloadShapeError: choices[].delta.content is a number, not a string",
        ),
        ({"choices": {"0": {}}}, "PayloadShapeError: choices is an object, not an array"),
    ],
)
async def test_json_of_the_wrong_shape_is_a_protocol_error_keeping_what_came_before(
    event: object, message: str
) -> None:
    parts = [*sse(delta("a"), delta("b")), *sse(event), *sse(delta("never read"))]
    rec = await run_one(httpx.MockTransport(answer(parts=parts)))
    assert rec.error_class is ErrorClass.PROTOCOL_ERROR
    assert rec.error_message == message
    assert len(rec.chunk_times) == 2  # the tokens before the bad chunk are kept
    assert rec.t_first_token is not None
    assert rec.t_first_chunk is not None
    assert rec.reads == 3  # the request ended at the read that broke it


async def test_deep_json_in_a_stream_is_unparseable_not_a_crash() -> None:
    deep = b'data: {"error": ' + b"[" * 5000 + b"\n\n"
    rec = await run_one(httpx.MockTransport(answer(parts=[*sse(delta("a")), deep])))
    assert rec.error_class is ErrorClass.STREAM_ERROR
    assert rec.error_message is not None
    assert rec.error_message.startswith("unparseable event")


async def test_a_deep_json_error_body_is_quoted_not_parsed() -> None:
    rec = await run_one(httpx.MockTransport(answer(401, [b"[" * 5000])))
    assert rec.error_class is ErrorClass.HTTP_4XX
    assert rec.error_message == "HTTP 401: " + "[" * 300


class _Broken:
    """An adapter whose parts raise on demand (the rest is openai-compatible)."""

    def __init__(self, **raises: BaseException) -> None:
        self.inner = OpenAIChatAdapter(SPEC)
        self.spec = SPEC
        self.raises = raises

    def _maybe(self, name: str) -> None:
        if name in self.raises:
            raise self.raises[name]

    def build_request(self, prompt: PromptSpec, max_tokens: int | None) -> httpx.Request:
        self._maybe("build_request")
        return self.inner.build_request(prompt, max_tokens)

    def new_decoder(self, prompt: PromptSpec) -> _Decoder:
        self._maybe("new_decoder")
        return _Decoder(self, self.inner.new_decoder(prompt))

    def response_facts(self, headers: httpx.Headers) -> dict[str, str]:
        self._maybe("response_facts")
        return self.inner.response_facts(headers)

    def classify_http_error(
        self, status: int, headers: httpx.Headers, body: bytes
    ) -> tuple[ErrorClass, str]:
        self._maybe("classify_http_error")
        return self.inner.classify_http_error(status, headers, body)


@dataclass
class _Decoder:
    adapter: _Broken
    inner: object
    fed: list[bytes] = field(default_factory=list)

    def feed(self, data: bytes, t_ns: int) -> None:
        self.fed.append(data)
        if len(self.fed) == 2:
            self.adapter._maybe("feed")
        self.inner.feed(data, t_ns)  # type: ignore[attr-defined]

    def finish(self, t_ns: int, *, eof: bool) -> StreamOutcome:
        self.adapter._maybe("finish")
        return self.inner.finish(t_ns, eof=eof)  # type: ignore[attr-defined,no-any-return]


OK_STREAM = [*sse(delta("a"), delta("b"), delta("c")), b"data: [DONE]\n\n"]


async def test_an_exception_in_feed_keeps_the_stamps_so_far() -> None:
    adapter = _Broken(feed=RecursionError("maximum recursion depth exceeded"))
    rec = await run_one(httpx.MockTransport(answer(parts=OK_STREAM)), adapter)
    assert rec.error_class is ErrorClass.PROTOCOL_ERROR
    assert rec.error_message == "RecursionError: maximum recursion depth exceeded"
    assert rec.reads == 2
    assert len(rec.chunk_times) == 1  # the first read's token; the second never decoded


async def test_an_exception_in_finish_is_a_protocol_error_with_the_reads_kept() -> None:
    adapter = _Broken(finish=AttributeError("'bool' object has no attribute 'get'"))
    rec = await run_one(httpx.MockTransport(answer(parts=OK_STREAM)), adapter)
    assert rec.error_class is ErrorClass.PROTOCOL_ERROR
    assert rec.error_message == "AttributeError: 'bool' object has no attribute 'get'"
    assert rec.reads == 4
    assert rec.t_first_chunk is not None


async def test_an_exception_message_is_one_bounded_line() -> None:
    adapter = _Broken(feed=ValueError("x\n" * 1000))
    rec = await run_one(httpx.MockTransport(answer(parts=OK_STREAM)), adapter)
    assert rec.error_message is not None
    assert "\n" not in rec.error_message
    assert len(rec.error_message) < 320


async def test_an_unreadable_error_body_keeps_the_status_class() -> None:
    adapter = _Broken(classify_http_error=TypeError("unhashable type: 'list'"))
    rec = await run_one(httpx.MockTransport(answer(503, [b"{}"])), adapter)
    assert rec.error_class is ErrorClass.OVERLOADED
    assert rec.error_message == (
        "HTTP 503: error body unreadable (TypeError: unhashable type: 'list')"
    )


async def test_unreadable_response_headers_lose_only_the_facts() -> None:
    adapter = _Broken(response_facts=ValueError("bad date"))
    rec = await run_one(httpx.MockTransport(answer(parts=OK_STREAM)), adapter)
    assert rec.ok
    assert rec.extra["facts_error"] == "ValueError: bad date"


async def test_an_adapter_that_cannot_build_the_request() -> None:
    adapter = _Broken(build_request=UnicodeEncodeError("ascii", "é", 0, 1, "no"))
    rec = await run_one(httpx.MockTransport(answer()), adapter)
    assert rec.error_class is ErrorClass.CONNECT
    assert "UnicodeEncodeError" in (rec.error_message or "")


async def test_a_cut_error_body_is_still_classified() -> None:
    handler = answer(500, [b'{"error": {"message": "bo'], then=httpx.ReadError("reset"))
    rec = await run_one(httpx.MockTransport(handler))
    assert rec.error_class is ErrorClass.HTTP_5XX
    assert rec.error_message == 'HTTP 500: {"error": {"message": "bo'


async def test_a_violation_mid_body_is_a_protocol_error_keeping_the_tokens() -> None:
    handler = answer(parts=sse(delta("a")), then=ProtocolViolation("body over 64 MiB"))
    rec = await run_one(httpx.MockTransport(handler))
    assert rec.error_class is ErrorClass.PROTOCOL_ERROR
    assert rec.error_message == "ProtocolViolation: body over 64 MiB"
    assert len(rec.chunk_times) == 1


async def test_a_dropped_connection_mid_body_is_still_a_cut_stream() -> None:
    handler = answer(parts=sse(delta("a")), then=httpx.ReadError("reset"))
    rec = await run_one(httpx.MockTransport(handler))
    assert rec.error_class is ErrorClass.CUT_STREAM


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_says_where_it_pointed(status: int) -> None:
    handler = answer(status, [b"moved"], headers={"location": "https://elsewhere.example/v1"})
    rec = await run_one(httpx.MockTransport(handler))
    assert rec.error_class is ErrorClass.HTTP_3XX
    assert rec.error_message == (
        f"HTTP {status}: redirect to https://elsewhere.example/v1 (lens follows no redirects)"
    )
    assert rec.extra["location"] == "https://elsewhere.example/v1"


async def test_cancellation_still_propagates_and_records_what_was_measured() -> None:
    async def slow_body(request: httpx.Request) -> httpx.Response:
        class Forever(httpx.AsyncByteStream):
            async def __aiter__(self) -> AsyncIterator[bytes]:
                yield sse(delta("a"))[0]
                await trio.sleep_forever()
                yield b""  # pragma: no cover

        return httpx.Response(200, stream=Forever())

    records: list[RequestRecord] = []
    with trio.move_on_after(0.2) as scope:
        await execute_request(
            httpx.MockTransport(slow_body),
            OpenAIChatAdapter(SPEC),
            PROMPT,
            clock=RunClock(),
            stage="s",
            index=0,
            t_intended=None,
            timeout_s=10.0,
            max_tokens=8,
            emit=records.append,
        )
    assert scope.cancelled_caught  # Cancelled went through the boundary
    (rec,) = records
    assert rec.error_class is ErrorClass.CANCELLED
    assert len(rec.chunk_times) == 1


async def test_keyboard_interrupt_is_not_swallowed() -> None:
    adapter = _Broken(feed=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        await run_one(httpx.MockTransport(answer(parts=OK_STREAM)), adapter)


async def test_an_exception_in_new_decoder_is_a_request_not_sent() -> None:
    adapter = _Broken(new_decoder=ValueError("no decoder for this prompt"))
    rec = await run_one(httpx.MockTransport(answer(parts=OK_STREAM)), adapter)
    assert rec.error_class is ErrorClass.CONNECT
    assert rec.error_message == (
        "request not sent (lens could not build it): ValueError: no decoder for this prompt"
    )
    assert rec.http_status is None

"""An httpx transport that plays scripted OpenAI streams on trio's clock (for MockClock tests)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import trio


@dataclass(frozen=True)
class Script:
    status: int = 200
    ttft_s: float = 0.1
    itl_s: float = 0.01
    tokens: int = 3
    cut_after: int | None = None  # raise a protocol error after this many tokens
    hang: bool = False
    connect_error: bool = False
    usage: bool = True


def _chunk(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


class _Body(httpx.AsyncByteStream):
    def __init__(self, script: Script) -> None:
        self.script = script

    async def __aiter__(self) -> AsyncIterator[bytes]:
        s = self.script
        if s.hang:
            await trio.sleep_forever()
        yield _chunk({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
        start = trio.current_time()
        for k in range(s.tokens):
            await trio.sleep_until(start + s.ttft_s + k * s.itl_s)
            if s.cut_after is not None and k >= s.cut_after:
                raise httpx.RemoteProtocolError("peer closed connection")
            yield _chunk({"choices": [{"index": 0, "delta": {"content": f"t{k} "}}]})
        if s.usage:
            usage = {"prompt_tokens": 5, "completion_tokens": s.tokens}
            yield _chunk({"choices": [], "usage": usage})
        yield b"data: [DONE]\n\n"


class FakeOpenAI(httpx.AsyncBaseTransport):
    def __init__(self, script: Script | Callable[[int], Script]) -> None:
        self._script = script
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        n = self.calls
        self.calls += 1
        script = self._script(n) if callable(self._script) else self._script
        if script.connect_error:
            raise httpx.ConnectError("connection refused", request=request)
        if script.status != 200:
            body = json.dumps({"error": {"message": f"status {script.status}"}}).encode()
            return httpx.Response(script.status, stream=httpx.ByteStream(body), request=request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        transport = self

        class Tracked(_Body):
            async def aclose(self) -> None:
                transport.in_flight -= 1

        return httpx.Response(200, stream=Tracked(script), request=request)

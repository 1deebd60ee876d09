"""A tiny, strict HTTP/1.1 client for simulator tests: exact bytes and arrival times.

httpx hides framing (chunk boundaries, the terminating chunk) and coalesces reads, so
tests that assert "every SSE event is one HTTP chunk" or time each chunk use this.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import trio

from lens.sim.openai_chat import VOCAB

CHAT = "/v1/chat/completions"


def chat_body(
    *,
    stream: bool = True,
    include_usage: bool = True,
    content: str = "Say something, please.",
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "test-model",
        "messages": [{"role": "user", "content": content}],
        "stream": stream,
    }
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    body.update(extra)
    return body


def words(n: int) -> list[str]:
    return [VOCAB[k % len(VOCAB)] for k in range(n)]


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str]
    t_sent: float
    t_head: float = 0.0
    body: bytes = b""  # Content-Length responses
    chunks: list[bytes] = field(default_factory=list)  # payload of each HTTP chunk
    chunk_times: list[float] = field(default_factory=list)  # when each chunk was complete
    complete: bool = False  # body fully received (terminating chunk or Content-Length)
    eof: bool = False  # the server closed the connection after (or during) this response

    def json(self) -> Any:
        return json.loads(self.body)

    def events(self) -> list[str]:
        """The ``data:`` payload of every chunk; asserts each chunk is exactly one event."""
        out = []
        for chunk in self.chunks:
            text = chunk.decode()
            assert text.startswith("data: "), text
            assert text.endswith("\n\n"), text
            assert text.count("\n\n") == 1, text
            assert "\n" not in text[:-2], text
            out.append(text[len("data: ") : -2])
        return out

    def payloads(self) -> list[Any]:
        """Events parsed as JSON, with ``[DONE]`` kept as the string."""
        return [e if e == "[DONE]" else json.loads(e) for e in self.events()]

    def content_times(self) -> list[float]:
        """Arrival time of each content-token chunk."""
        return [
            t
            for t, p in zip(self.chunk_times, self.payloads(), strict=True)
            if isinstance(p, dict)
            and p.get("choices")
            and "content" in p["choices"][0]["delta"]
            and p["choices"][0]["delta"].get("role") is None
        ]


class Connection:
    """One keep-alive connection; responses are read in order (pipelining works)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buf = bytearray()
        self.eof = False

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        return cls(await trio.open_tcp_stream(host, port))

    async def aclose(self) -> None:
        await self.stream.aclose()

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @staticmethod
    def render(
        method: str,
        path: str,
        body: dict[str, Any] | bytes | None = None,
        headers: dict[str, str] | None = None,
        version: str = "HTTP/1.1",
    ) -> bytes:
        data = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
        lines = [f"{method} {path} {version}", "host: 127.0.0.1"]
        if body is not None:
            lines += ["content-type: application/json", f"content-length: {len(data)}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + data

    async def send(self, data: bytes) -> float:
        await self.stream.send_all(data)
        return trio.current_time()

    async def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        t_sent = await self.send(self.render(method, path, body, headers))
        return await self.read_response(t_sent)

    async def chat(self, headers: dict[str, str] | None = None, **body: Any) -> Response:
        return await self.request("POST", CHAT, chat_body(**body), headers)

    async def _fill(self) -> bool:
        if self.eof:
            return False
        data = await self.stream.receive_some(65536)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    async def _read_until(self, sep: bytes) -> bytes | None:
        while (i := self.buf.find(sep)) < 0:
            if not await self._fill():
                return None
        out = bytes(self.buf[:i])
        del self.buf[: i + len(sep)]
        return out

    async def _read_exact(self, n: int) -> bytes | None:
        while len(self.buf) < n:
            if not await self._fill():
                return None
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def read_head(self, t_sent: float = 0.0) -> Response:
        head = await self._read_until(b"\r\n\r\n")
        assert head is not None, "connection closed before a response head"
        lines = head.decode("latin-1").split("\r\n")
        version, status, reason = lines[0].split(" ", 2)
        assert version == "HTTP/1.1"
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return Response(int(status), reason, headers, t_sent, t_head=trio.current_time())

    async def read_body(self, resp: Response) -> Response:
        if resp.headers.get("transfer-encoding") == "chunked":
            while True:
                size_line = await self._read_until(b"\r\n")
                if size_line is None:
                    break
                size = int(size_line, 16)
                data = await self._read_exact(size + 2)
                if data is None:
                    break
                assert data.endswith(b"\r\n")
                if size == 0:
                    resp.complete = True
                    break
                resp.chunks.append(data[:-2])
                resp.chunk_times.append(trio.current_time())
        else:
            body = await self._read_exact(int(resp.headers.get("content-length", "0")))
            if body is not None:
                resp.body, resp.complete = body, True
        if resp.headers.get("connection") == "close" or not resp.complete:
            resp.eof = await self.at_eof()
        return resp

    async def read_response(self, t_sent: float = 0.0) -> Response:
        return await self.read_body(await self.read_head(t_sent))

    async def at_eof(self) -> bool:
        """True when the server has closed its side (after any buffered bytes)."""
        if self.buf:
            return False
        return not await self._fill()

"""Is lens-sim fast enough to be a benchmark target?  ``python -m lens.sim.selfcheck``

Two phases against a simulator child process, with a lean raw-socket client:

1. **timing**: ``--streams`` streams started at once, ``--tokens`` tokens each at ``--itl``
   (default 256 x 100 at 10 ms: 25,600 chunks/s).  Token k's lateness is measured two ways:
   against the server's schedule (first bytes of the response + ttft + k*itl: how precisely
   the pacer writes) and against the request (sent + ttft + k*itl: adds the time the
   server took to get to the request, which a burst of 256 requests makes visible).  Also
   reports TTFT and ITL as the client saw them, and the server's CPU from
   ``/proc/<pid>/stat`` as a share of one core, over the whole phase and over the steady
   middle of the streams (without the burst of request handling at the start).
2. **throughput**: ttft=0, itl=0, ``--connections`` keep-alive connections sending
   requests back to back for ``--seconds``; reports tokens/s delivered.

``--protocol`` picks the wire protocol (default ``openai``); every protocol's token
chunks are counted by a byte marker, without parsing.

Exits 0 when the steady-state p99 lateness (against the server's schedule), steady-state
server CPU and throughput are within the limits, else 1.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import selectors
import socket
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from lens.plan.model import SimSettings
from lens.sim.config import parse_duration
from lens.sim.process import SimServerProcess

# The end of every chunked response body: the terminating zero-length chunk.
_END = b"\r\n0\r\n\r\n"


@dataclass(frozen=True, slots=True)
class _Target:
    """What to send to a simulator speaking one protocol, and how to count its tokens."""

    path: str
    headers: str  # extra request header lines, each ending in CRLF
    body: dict[str, Any]
    mark: bytes  # occurs once per content token in the response, nowhere else


_CHAT = {"model": "selfcheck", "messages": [{"role": "user", "content": "hello"}]}
_TARGETS: dict[str, _Target] = {
    "openai": _Target(
        "/v1/chat/completions",
        "",
        {**_CHAT, "stream": True, "stream_options": {"include_usage": True}},
        b'"delta":{"content":',  # not in the role chunk, which has "role" first
    ),
    "azure-openai": _Target(
        "/openai/deployments/selfcheck/chat/completions?api-version=2024-10-21",
        "api-key: selfcheck\r\n",
        {**_CHAT, "stream": True, "stream_options": {"include_usage": True}},
        b'}},"delta":{"content":',  # after filled-in filter results: not the role chunk
    ),
    "openai-responses": _Target(
        "/v1/responses",
        "",
        {"model": "selfcheck", "input": "hello", "stream": True},
        b"event: response.output_text.delta\n",
    ),
    "anthropic": _Target(
        "/v1/messages",
        "x-api-key: selfcheck\r\nanthropic-version: 2023-06-01\r\n",
        {**_CHAT, "max_tokens": 1_000_000, "stream": True},
        b'"type":"text_delta"',
    ),
    "gemini": _Target(
        "/v1beta/models/selfcheck:streamGenerateContent?alt=sse",
        "x-goog-api-key: selfcheck\r\n",
        {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]},
        b'data: {"candidates"',
    ),
    "bedrock": _Target(
        "/model/selfcheck/converse-stream",
        "authorization: selfcheck\r\n",
        {"messages": [{"role": "user", "content": [{"text": "hello"}]}]},
        b"\x11contentBlockDelta",  # the :event-type header value, with its length byte
    ),
}


def _request(host: str, port: int, target: _Target) -> bytes:
    body = json.dumps(target.body).encode()
    head = (
        f"POST {target.path} HTTP/1.1\r\nhost: {host}:{port}\r\n{target.headers}"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (psutil is not a dependency)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Conn:
    """Client side of one connection: counts content tokens and stamps their arrival."""

    __slots__ = ("arrivals", "first", "keep", "mark", "sent", "sock", "tail", "tokens")

    def __init__(self, sock: socket.socket, mark: bytes) -> None:
        self.sock = sock
        self.mark = mark
        # Bytes of the previous read that can start a match.
        self.keep = max(len(mark), len(_END)) - 1
        self.sent = 0.0
        self.first = 0.0  # arrival of the first bytes (headers + role chunk)
        self.tokens = 0
        self.tail = b""
        self.arrivals: list[float] = []

    def feed(self, data: bytes, now: float, stamp: bool) -> bool:
        """Account for one read; true when the response is complete."""
        if not self.first:
            self.first = now
        window = self.tail + data
        # Marks wholly inside the kept tail were counted with the previous read.
        found = window.count(self.mark) - self.tail.count(self.mark)
        self.tokens += found
        if stamp:
            self.arrivals.extend([now] * found)
        if window.endswith(_END):
            self.tail = b""
            return True
        self.tail = window[-self.keep :]
        return False


def _connect(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


@dataclass(frozen=True, slots=True)
class TimingResult:
    streams: int
    tokens: int
    wall_s: float
    server_cpu_s: float
    client_cpu_s: float
    lateness_ms: list[float]
    itl_ms: list[float]
    ttft_ms: list[float]
    headers_ms: list[float]  # request sent -> first bytes: the server's queueing delay
    paced_lateness_ms: list[float]  # lateness against first bytes + ttft + k*itl
    steady_cpu_share: float  # server CPU / wall over the middle of the streams
    steady_paced_lateness_ms: list[float]  # paced lateness of tokens arriving in that window

    @property
    def server_cpu_share(self) -> float:
        return self.server_cpu_s / self.wall_s


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timing_phase(
    host: str,
    port: int,
    pid: int,
    streams: int,
    tokens: int,
    ttft: float,
    itl: float,
    protocol: str = "openai",
) -> TimingResult:
    """Open ``streams`` connections, send all requests, stamp every token's arrival.

    The client is a plain ``selectors`` loop, not trio: at 25,600 chunks/s a trio client
    would spend more CPU than the server under test and measure its own lateness.
    """
    target = _TARGETS[protocol]
    request = _request(host, port, target)
    conns = [_Conn(_connect(host, port), target.mark) for _ in range(streams)]
    selector = selectors.DefaultSelector()
    cpu0, own0, t0 = _cpu_seconds(pid), _own_cpu_seconds(), time.perf_counter()
    for conn in conns:
        conn.sock.sendall(request)
        conn.sent = time.perf_counter()
        conn.sock.setblocking(False)
        selector.register(conn.sock, selectors.EVENT_READ, conn)
    pending = streams
    deadline = t0 + ttft + tokens * itl + 30.0
    # Steady state: from 25% to 85% of the streams' length, well after the requests
    # were handled and before the first streams end.
    marks = [t0 + ttft + f * tokens * itl for f in (0.25, 0.85)]
    samples: list[tuple[float, float]] = []
    while pending:
        if len(samples) < 2 and time.perf_counter() >= marks[len(samples)]:
            samples.append((time.perf_counter(), _cpu_seconds(pid)))
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{pending} streams did not finish in time")
        for key, _ in selector.select(0.01):
            conn = key.data
            data = conn.sock.recv(65536)
            now = time.perf_counter()
            if not data:
                raise RuntimeError("the server closed a connection mid-response")
            if conn.feed(data, now, stamp=True):
                selector.unregister(conn.sock)
                pending -= 1
    wall = time.perf_counter() - t0
    server_cpu, client_cpu = _cpu_seconds(pid) - cpu0, _own_cpu_seconds() - own0
    selector.close()
    steady = server_cpu / wall  # fallback when the streams were too short to sample
    if len(samples) == 2 and samples[1][0] - samples[0][0] > 0.2:
        steady = (samples[1][1] - samples[0][1]) / (samples[1][0] - samples[0][0])
    lateness: list[float] = []
    itls: list[float] = []
    ttfts: list[float] = []
    heads: list[float] = []
    paced: list[float] = []
    steady_paced: list[float] = []
    for conn in conns:
        conn.sock.close()
        if conn.tokens != tokens:
            raise RuntimeError(f"expected {tokens} tokens, got {conn.tokens}")
        arrivals, sent = conn.arrivals, conn.sent
        ttfts.append((arrivals[0] - sent) * 1e3)
        heads.append((conn.first - sent) * 1e3)
        first = conn.first
        paced.extend((t - (first + ttft + k * itl)) * 1e3 for k, t in enumerate(arrivals))
        steady_paced.extend(
            (t - (first + ttft + k * itl)) * 1e3
            for k, t in enumerate(arrivals)
            if marks[0] <= t <= marks[1]
        )
        lateness.extend((t - (sent + ttft + k * itl)) * 1e3 for k, t in enumerate(arrivals))
        itls.extend((b - a) * 1e3 for a, b in itertools.pairwise(arrivals))
    return TimingResult(
        streams,
        tokens,
        wall,
        server_cpu,
        client_cpu,
        lateness,
        itls,
        ttfts,
        heads,
        paced,
        steady,
        steady_paced or paced,  # too short to have a steady window: judge them all
    )


def throughput_phase(
    host: str,
    port: int,
    pid: int,
    connections: int,
    tokens: int,
    seconds: float,
    protocol: str = "openai",
) -> tuple[int, float, float]:
    """Back-to-back requests on keep-alive connections; (tokens, wall s, server CPU s)."""
    target = _TARGETS[protocol]
    request = _request(host, port, target)
    conns = [_Conn(_connect(host, port), target.mark) for _ in range(connections)]
    selector = selectors.DefaultSelector()
    total = 0
    cpu0, t0 = _cpu_seconds(pid), time.perf_counter()
    stop_at = t0 + seconds
    for conn in conns:
        conn.sock.sendall(request)
        conn.sock.setblocking(False)
        selector.register(conn.sock, selectors.EVENT_READ, conn)
    pending = connections
    while pending:
        for key, _ in selector.select(1.0):
            conn = key.data
            data = conn.sock.recv(1 << 20)
            if not data:
                raise RuntimeError("the server closed a connection mid-response")
            if conn.feed(data, 0.0, stamp=False):
                total += conn.tokens
                conn.tokens = 0
                if time.perf_counter() < stop_at:
                    conn.sock.send(request)  # small: fits an empty socket buffer
                else:
                    selector.unregister(conn.sock)
                    pending -= 1
    wall = time.perf_counter() - t0
    server_cpu = _cpu_seconds(pid) - cpu0
    selector.close()
    for conn in conns:
        conn.sock.close()
    return total, wall, server_cpu


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m lens.sim.selfcheck",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--protocol", choices=tuple(_TARGETS), default="openai")
    p.add_argument("--streams", type=int, default=256)
    p.add_argument("--tokens", type=int, default=100)
    p.add_argument("--ttft", type=parse_duration, default=0.05)
    p.add_argument("--itl", type=parse_duration, default=0.01)
    p.add_argument("--connections", type=int, default=16, help="throughput phase connections")
    p.add_argument("--throughput-tokens", type=int, default=64)
    p.add_argument("--seconds", type=float, default=3.0, help="throughput phase duration")
    p.add_argument("--max-p99-late-ms", type=float, default=3.0)
    p.add_argument("--max-server-cpu", type=float, default=0.8, help="share of one core")
    p.add_argument("--min-tokens-per-s", type=float, default=150_000)
    return p


def _dist(values: list[float]) -> str:
    return (
        f"p50 {statistics.median(values):7.2f}  p99 {_percentile(values, 0.99):7.2f}  "
        f"max {max(values):7.2f}"
    )


def _server(settings: SimSettings) -> tuple[SimServerProcess, str, int, int]:
    sim = SimServerProcess(settings).start()
    split = urlsplit(sim.url)
    if split.hostname is None or split.port is None or sim.pid is None:  # pragma: no cover
        sim.stop()
        raise RuntimeError(f"unexpected simulator URL {sim.url!r}")
    return sim, split.hostname, split.port, sim.pid


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    protocol = args.protocol
    sim, host, port, pid = _server(
        SimSettings(ttft_s=args.ttft, itl_s=args.itl, output_tokens=args.tokens, protocol=protocol)
    )
    with sim:
        timing = timing_phase(
            host, port, pid, args.streams, args.tokens, args.ttft, args.itl, protocol
        )
    paced_p99 = _percentile(timing.steady_paced_lateness_ms, 0.99)
    timing_ok = paced_p99 <= args.max_p99_late_ms and timing.steady_cpu_share <= args.max_server_cpu
    print(
        f"timing ({protocol}): {timing.streams} streams x {timing.tokens} tokens, ttft "
        f"{args.ttft * 1e3:g} ms, itl {args.itl * 1e3:g} ms: {timing.wall_s:.2f} s, "
        f"{timing.streams * timing.tokens / timing.wall_s:,.0f} chunks/s"
    )
    print(f"  token lateness vs server schedule ms  {_dist(timing.paced_lateness_ms)}")
    print(f"    ... in the steady state ms          {_dist(timing.steady_paced_lateness_ms)}")
    print(f"  token lateness vs request sent ms     {_dist(timing.lateness_ms)}")
    print(f"  time to headers (queueing) ms         {_dist(timing.headers_ms)}")
    print(f"  TTFT seen by the client ms            {_dist(timing.ttft_ms)}")
    if timing.itl_ms:
        print(f"  ITL seen by the client ms             {_dist(timing.itl_ms)}")
    print(
        f"  server CPU (share of one core)        steady {timing.steady_cpu_share:.0%}, whole "
        f"phase {timing.server_cpu_share:.0%}; client CPU {timing.client_cpu_s / timing.wall_s:.0%}"
    )

    sim, host, port, pid = _server(
        SimSettings(ttft_s=0.0, itl_s=0.0, output_tokens=args.throughput_tokens, protocol=protocol)
    )
    with sim:
        total, wall, cpu = throughput_phase(
            host, port, pid, args.connections, args.throughput_tokens, args.seconds, protocol
        )
    rate = total / wall
    throughput_ok = rate >= args.min_tokens_per_s
    print(
        f"throughput ({protocol}): ttft=0 itl=0, {args.connections} connections, "
        f"{args.throughput_tokens} tokens/response, {wall:.2f} s"
    )
    print(
        f"  {rate:,.0f} tokens/s ({total / args.throughput_tokens / wall:,.0f} responses/s), "
        f"server CPU {cpu / wall:.0%} of one core"
    )
    ok = timing_ok and throughput_ok
    print(
        f"{'PASS' if ok else 'FAIL'}: steady p99 lateness <= {args.max_p99_late_ms:g} ms and "
        f"steady server CPU <= {args.max_server_cpu:.0%}: {'yes' if timing_ok else 'NO'}; "
        f">= {args.min_tokens_per_s:,.0f} tokens/s: {'yes' if throughput_ok else 'NO'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

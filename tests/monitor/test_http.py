"""The endpoints' small HTTP/1.1 server: routing, HEAD, refusals, and a silent client."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from lens.monitor import http
from lens.monitor.http import Response, respond_to, split_listen


def _route(path: str) -> Response:
    if path == "/metrics":
        return Response(200, b"x 1\n", "text/plain; version=0.0.4; charset=utf-8")
    return http.text(404, "not found\n")


def test_requests_are_routed_by_path_without_the_query() -> None:
    resp, head_only = respond_to(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", _route)
    assert (resp.status, resp.body, head_only) == (200, b"x 1\n", False)
    resp, head_only = respond_to(b"HEAD /metrics HTTP/1.1\r\n\r\n", _route)
    assert (resp.status, head_only) == (200, True)
    assert respond_to(b"GET /other HTTP/1.0\r\n\r\n", _route)[0].status == 404


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"POST /metrics HTTP/1.1\r\n\r\n", 405),
        (b"GET /metrics\r\n\r\n", 400),
        (b"GET /metrics SPDY/3\r\n\r\n", 400),
        (None, 431),
    ],
)
def test_what_is_not_a_plain_get_is_refused(head: bytes | None, status: int) -> None:
    assert respond_to(head, _route)[0].status == status


def test_listen_addresses() -> None:
    assert split_listen("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert split_listen("0.0.0.0:0") == ("0.0.0.0", 0)
    assert split_listen("[::1]:9464") == ("::1", 9464)
    for bad in ("9464", "host:", ":80", "host:99999", "host:http"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            split_listen(bad)


async def _exchange(request: bytes) -> bytes:
    listeners = await http.open_listeners("127.0.0.1", 0)
    host, port = http.bound_address(listeners)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(http.serve, listeners, _route)
        stream = await trio.open_tcp_stream(host, port)
        await stream.send_all(request)
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
        await stream.aclose()
        nursery.cancel_scope.cancel()
    return data


async def test_a_get_over_a_socket_has_its_length_and_closes() -> None:
    data = await _exchange(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Type: text/plain; version=0.0.4; charset=utf-8" in head
    assert b"Content-Length: 4" in head
    assert b"Connection: close" in head
    assert body == b"x 1\n"


async def test_a_head_request_gets_no_body() -> None:
    data = await _exchange(b"HEAD /metrics HTTP/1.1\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert data.endswith(b"\r\n\r\n")


@pytest.mark.parametrize("terminated", [True, False])
async def test_an_oversized_head_is_refused(terminated: bool) -> None:
    client, server = trio.testing.memory_stream_pair()
    head = b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000 + (b"\r\n\r\n" if terminated else b"")
    await client.send_all(head)
    await http.handle(server, _route)  # type: ignore[arg-type]
    assert (await client.receive_some()).startswith(b"HTTP/1.1 431 ")


async def test_a_client_that_never_sends_is_dropped_after_the_head_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client, server = trio.testing.memory_stream_pair()
    start = trio.current_time()
    await http.handle(server, _route)  # type: ignore[arg-type]
    assert trio.current_time() - start == pytest.approx(http.HEAD_TIMEOUT_S)
    assert await client.receive_some() == b""  # closed without an answer

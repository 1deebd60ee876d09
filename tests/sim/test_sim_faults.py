"""Injected faults: forced per request by header, or drawn from seeded error rates."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio

from lens.plan.model import SimSettings
from lens.sim.openai_chat import MIDSTREAM_ERROR_MESSAGE
from tests.sim.conftest import LiveSim, StartSim
from tests.sim.rawhttp import Connection, Response, chat_body

SLOW = SimSettings(ttft_s=0.0, itl_s=0.002, output_tokens=8)


def _fault(name: str) -> dict[str, str]:
    return {"x-lens-sim-fault": name}


def _content_count(resp: Response) -> int:
    return len(resp.content_times())


async def test_forced_429(sim: LiveSim) -> None:
    async with await sim.connect() as conn:
        resp = await conn.chat(headers=_fault("429"))
        assert resp.status == 429
        assert resp.headers["retry-after"] == "1"
        assert resp.headers["x-request-id"].startswith("req_")
        error = resp.json()["error"]
        assert error["type"] == "requests"
        assert error["code"] == "rate_limit_exceeded"
        assert error["param"] is None
        assert "Rate limit" in error["message"]
        assert (await conn.chat()).status == 200  # the connection stays usable


async def test_forced_500(sim: LiveSim) -> None:
    async with await sim.connect() as conn:
        resp = await conn.chat(headers=_fault("500"))
        assert resp.status == 500
        assert resp.json()["error"]["type"] == "server_error"
        assert (await conn.chat()).status == 200


async def test_forced_none_ignores_error_rates(start_sim: StartSim) -> None:
    sim = await start_sim(SimSettings(ttft_s=0, itl_s=0, output_tokens=2, error_500=1.0))
    async with await sim.connect() as conn:
        assert (await conn.chat()).status == 500
        assert (await conn.chat(headers=_fault("none"))).status == 200


async def test_cut_stream_ends_without_terminating_chunk(start_sim: StartSim) -> None:
    sim = await start_sim(SLOW)
    async with await sim.connect() as conn:
        resp = await conn.chat(headers=_fault("cut"))
    assert resp.status == 200
    assert not resp.complete
    assert resp.eof
    assert 1 <= _content_count(resp) < 8
    assert "[DONE]" not in resp.events()
    assert len(resp.chunks) == 1 + _content_count(resp)  # role + tokens, nothing else


async def test_cut_stream_without_tokens(start_sim: StartSim) -> None:
    sim = await start_sim(SimSettings(ttft_s=0.005, itl_s=0, output_tokens=0))
    async with await sim.connect() as conn:
        resp = await conn.chat(headers=_fault("cut"))
    assert not resp.complete
    assert resp.eof
    assert len(resp.chunks) == 1  # only the role chunk


async def test_cut_stream_is_a_protocol_error_for_httpx(start_sim: StartSim) -> None:
    sim = await start_sim(SLOW)

    async def read_all(client: httpx.AsyncClient) -> None:
        request = client.build_request(
            "POST", "/chat/completions", json=chat_body(), headers=_fault("cut")
        )
        resp = await client.send(request, stream=True)
        try:
            async for _ in resp.aiter_bytes():
                pass
        finally:
            await resp.aclose()

    async with httpx.AsyncClient(base_url=sim.base_url) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await read_all(client)


async def test_cut_stream_rate_one_cuts_every_stream(start_sim: StartSim) -> None:
    sim = await start_sim(SimSettings(ttft_s=0, itl_s=0.001, output_tokens=2, cut_stream=1.0))
    for _ in range(3):
        async with await sim.connect() as conn:
            resp = await conn.chat()
        assert not resp.complete
        assert _content_count(resp) == 1  # two tokens: always cut after the first


async def test_midstream_error_ends_the_stream_properly(start_sim: StartSim) -> None:
    sim = await start_sim(SLOW)
    async with await sim.connect() as conn:
        resp = await conn.chat(headers=_fault("midstream-error"))
        assert resp.status == 200
        assert resp.complete  # the zero-length chunk arrived
        payloads = resp.payloads()
        assert "[DONE]" not in payloads
        assert payloads[-1] == {
            "error": {
                "message": MIDSTREAM_ERROR_MESSAGE,
                "type": "server_error",
                "param": None,
                "code": None,
            }
        }
        assert 1 <= _content_count(resp) < 8
        assert (await conn.chat()).complete  # keep-alive survives


@pytest.mark.parametrize("tokens", ["1", "6"])
async def test_midstream_error_at_zero_itl(start_sim: StartSim, tokens: str) -> None:
    sim = await start_sim(SimSettings(ttft_s=0.002, itl_s=0.0, output_tokens=8))
    async with await sim.connect() as conn:
        resp = await conn.chat(headers={**_fault("midstream-error"), "x-lens-sim-tokens": tokens})
    assert resp.complete
    assert "error" in resp.payloads()[-1]
    assert 1 <= _content_count(resp) <= int(tokens)


async def test_hang_sends_headers_then_nothing(start_sim: StartSim) -> None:
    sim = await start_sim(SLOW)
    conn = await sim.connect()
    resp = await conn.read_head(
        await conn.send(conn.render("POST", "/v1/chat/completions", chat_body(), _fault("hang")))
    )
    assert resp.status == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    with trio.move_on_after(0.2) as scope:
        await conn.read_body(resp)
    assert scope.cancelled_caught, "a hung stream must not deliver anything"
    assert not resp.chunks
    await conn.send(b"ignored bytes")  # read and discarded while hanging
    await conn.aclose()  # the server notices EOF and drops the connection
    async with await sim.connect() as again:
        assert (await again.chat()).complete


async def test_hang_trips_an_httpx_read_timeout(start_sim: StartSim) -> None:
    sim = await start_sim(SLOW)
    async with httpx.AsyncClient(base_url=sim.base_url, timeout=httpx.Timeout(0.2)) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/chat/completions", json=chat_body(), headers=_fault("hang"))


async def test_empty_stream(sim: LiveSim) -> None:
    async with await sim.connect() as conn:
        resp = await conn.chat(headers=_fault("empty"))
    assert resp.complete
    payloads: list[Any] = resp.payloads()
    assert len(payloads) == 4  # role, finish, usage, [DONE]
    assert payloads[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert payloads[1]["choices"][0]["finish_reason"] == "stop"
    assert payloads[2]["usage"]["completion_tokens"] == 0
    assert payloads[3] == "[DONE]"


async def test_faults_without_streaming(start_sim: StartSim) -> None:
    sim = await start_sim(SLOW)
    async with await sim.connect() as conn:
        resp = await conn.chat(stream=False, headers=_fault("midstream-error"))
        assert resp.status == 500
        assert resp.json()["error"]["message"] == MIDSTREAM_ERROR_MESSAGE
        empty = await conn.chat(stream=False, headers=_fault("empty"))
        assert empty.json()["choices"][0]["message"]["content"] == ""
        assert empty.json()["usage"]["completion_tokens"] == 0
        assert (await conn.chat(stream=False, headers=_fault("429"))).status == 429
        cut = await conn.send(
            conn.render("POST", "/v1/chat/completions", chat_body(stream=False), _fault("cut"))
        )
        assert cut
        assert await conn.at_eof()  # closed without any response
    hung = await sim.connect()
    await hung.send(
        hung.render("POST", "/v1/chat/completions", chat_body(stream=False), _fault("hang"))
    )
    with trio.move_on_after(0.1) as scope:
        await hung.at_eof()
    assert scope.cancelled_caught
    await hung.aclose()


async def _statuses(sim: LiveSim, count: int) -> list[str]:
    out = []
    conn = await sim.connect()
    try:
        for _ in range(count):
            resp = await conn.chat()
            out.append(str(resp.status) if resp.complete else "cut")
            if not resp.complete:  # a cut stream leaves the connection closed
                await conn.aclose()
                conn = await sim.connect()
    finally:
        await conn.aclose()
    return out


async def test_error_rates_are_seeded_and_deterministic(start_sim: StartSim) -> None:
    settings = SimSettings(
        ttft_s=0, itl_s=0, output_tokens=3, error_429=0.2, error_500=0.2, cut_stream=0.2, seed=7
    )
    first = await _statuses(await start_sim(settings), 60)
    second = await _statuses(await start_sim(settings), 60)
    other = await _statuses(await start_sim(SimSettings(**{**_asdict(settings), "seed": 8})), 60)
    assert first == second
    assert first != other
    for outcome in ("200", "429", "500", "cut"):
        assert 3 <= first.count(outcome) <= 30, first


def _asdict(settings: SimSettings) -> dict[str, Any]:
    return {f: getattr(settings, f) for f in settings.__slots__}


async def test_client_leaving_mid_stream_does_not_hurt_the_server(start_sim: StartSim) -> None:
    sim = await start_sim(SimSettings(ttft_s=0, itl_s=0.005, output_tokens=50))
    conn = await sim.connect()
    await conn.send(Connection.render("POST", "/v1/chat/completions", chat_body()))
    resp = await conn.read_head()
    assert resp.status == 200
    await conn.aclose()  # gone while the pacer still has 50 writes scheduled
    await trio.sleep(0.05)
    async with await sim.connect() as again:
        assert (await again.chat(headers={"x-lens-sim-tokens": "3"})).complete

"""Fixtures: a simulator served in-process on a real loopback socket, per test."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
import trio

from lens.plan.model import SimSettings
from lens.sim.server import SimServer
from tests.sim.rawhttp import Connection

# Zero delays unless a test asks otherwise: framing tests should not wait.
FAST = SimSettings(ttft_s=0.0, itl_s=0.0, output_tokens=5)


@dataclass
class LiveSim:
    server: SimServer
    url: str  # http://127.0.0.1:PORT
    host: str
    port: int

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    async def connect(self) -> Connection:
        return await Connection.open(self.host, self.port)


StartSim = Callable[..., Awaitable[LiveSim]]


@pytest.fixture
async def start_sim(nursery: trio.Nursery) -> StartSim:
    """``await start_sim(settings)``: a server on an ephemeral port, stopped after the test."""

    async def start(settings: SimSettings = FAST, *, model: str = "lens-sim-1") -> LiveSim:
        server = SimServer(settings, model=model)
        url: str = await nursery.start(server.serve)
        host, port = url.removeprefix("http://").rsplit(":", 1)
        return LiveSim(server, url, host, int(port))

    return start


@pytest.fixture
async def sim(start_sim: StartSim) -> LiveSim:
    return await start_sim()

"""A simulator served in-process on a real loopback socket, per test, whose ``received``
bodies the tests read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio

from lens.plan.model import SimSettings
from lens.sim.server import SimServer

StartSim = Callable[[SimSettings], Awaitable[tuple[SimServer, str]]]


@pytest.fixture
async def start_sim(nursery: trio.Nursery) -> StartSim:
    """``server, base_url = await start_sim(settings)``; stopped after the test."""

    async def start(settings: SimSettings) -> tuple[SimServer, str]:
        server = SimServer(settings)
        url: str = await nursery.start(server.serve)
        return server, f"{url}/v1"

    return start

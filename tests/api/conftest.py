from __future__ import annotations

import copy
from typing import Any

import pytest

# A scenario small enough to run in well under a second against the simulated server;
# the integrity limits are lenient as in tests/cli (a loaded test machine must not make
# verdicts inconclusive).
TINY: dict[str, Any] = {
    "version": 1,
    "name": "tiny",
    "providers": {
        "sim": {"type": "simulated", "ttft": "20ms", "itl": "2ms", "output_tokens": 8},
    },
    "prompts": [{"id": "q", "messages": [{"role": "user", "content": "hello"}]}],
    "load": [{"id": "b", "pattern": "burst", "requests": 6}],
    "sla": ["error_rate < 1%", "ttft.p50 < 5s"],
    "integrity": {"max_cpu": "100%", "max_loop_lag": "10s"},
}


def scenario(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(TINY)
    doc.update(changes)
    return doc


# Runs until stopped: 2 streams for 60 s (a test that waits for it has failed).
ENDLESS_LOAD = [{"id": "long", "pattern": "concurrency", "concurrency": 2, "duration": "60s"}]


@pytest.fixture
def tiny() -> dict[str, Any]:
    return scenario()


@pytest.fixture
def endless() -> dict[str, Any]:
    return scenario(load=ENDLESS_LOAD, sla=["error_rate < 1%"])

"""Start the built-in simulated servers a plan needs, and hand back live provider specs."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager

from lens.plan.model import Plan, ProviderSpec
from lens.sim.process import SimServerProcess


@contextmanager
def live_providers(plan: Plan) -> Iterator[Mapping[str, ProviderSpec]]:
    """Every provider of ``plan`` with a reachable ``base_url``.

    Each ``simulated`` provider that a stage uses gets its own server process on an
    ephemeral loopback port, so its CPU never competes with the client's event loop and
    every measurement crosses a real socket.  The servers stop when the block exits.
    """
    used = {unit.provider for unit in plan.stages}
    live: dict[str, ProviderSpec] = dict(plan.providers)
    with ExitStack() as stack:
        for pid, spec in plan.providers.items():
            if spec.type != "simulated" or spec.sim is None or pid not in used:
                continue
            server = stack.enter_context(SimServerProcess(spec.sim, model=spec.model))
            live[pid] = dataclasses.replace(spec, base_url=server.base_url)
        yield live

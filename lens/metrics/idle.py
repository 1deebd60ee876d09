"""What an idle-probe stage saw: each probe's latency against the idle time before it.

The idle time is measured, not planned: from the end of the previous probe (its last
attempt) to this one's dispatch, so the client's own delays are not mistaken for the
provider's idleness.  Whether a probe was cold is ``lens.metrics.integrity.cold_flags``'s
verdict (idle longer than ``integrity.cold_after``), passed in rather than recomputed.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from lens.metrics._results_config import RESULTS_VALUE
from lens.metrics.request import NS_PER_MS, NS_PER_S
from lens.records import RequestRecord


@dataclass(frozen=True, slots=True)
class IdleProbe:
    __pydantic_config__ = RESULTS_VALUE

    index: int
    idle_s: Annotated[
        float | None,
        Field(
            description="measured idle time before the probe: previous probe's end to this "
            "dispatch; null for the first"
        ),
    ]
    ttft_ms: float | None
    e2e_ms: float
    ok: bool
    cold: Annotated[
        bool, Field(description="sent after more than integrity.cold_after of idle time")
    ]


@dataclass(frozen=True, slots=True)
class IdleProbes:
    """One idle-probe stage x provider: latency against the idle gap before each probe."""

    __pydantic_config__ = RESULTS_VALUE

    stage: str
    provider: str
    probes: tuple[IdleProbe, ...]


def idle_probes(
    records: Sequence[RequestRecord], colds: Sequence[bool], stages: Collection[str]
) -> tuple[IdleProbes, ...]:
    """The probes of each idle-probe stage x provider (``stages``: their ids), first
    attempts in dispatch order; ``colds`` are the records' cold flags, in the same order."""
    groups: dict[tuple[str, str], list[tuple[RequestRecord, bool]]] = {}
    for rec, cold in zip(records, colds, strict=True):
        if rec.stage in stages:
            groups.setdefault((rec.stage, rec.provider), []).append((rec, cold))
    out = []
    for (stage, provider), pairs in groups.items():
        pairs.sort(key=lambda pair: pair[0].t_dispatch)
        probes = []
        busy_until: int | None = None
        for rec, cold in pairs:
            if rec.attempt == 1:
                probes.append(
                    IdleProbe(
                        index=rec.index,
                        idle_s=None
                        if busy_until is None
                        else (rec.t_dispatch - busy_until) / NS_PER_S,
                        ttft_ms=None
                        if rec.t_first_token is None
                        else (rec.t_first_token - rec.t_dispatch) / NS_PER_MS,
                        e2e_ms=(rec.t_end - rec.t_dispatch) / NS_PER_MS,
                        ok=rec.ok,
                        cold=cold,
                    )
                )
            busy_until = rec.t_end
        out.append(IdleProbes(stage, provider, tuple(probes)))
    return tuple(out)

"""What an idle-probe stage saw: each probe's latency against the idle time before it.

The idle time is measured, not planned: from the end of the previous probe (its last
attempt) to this one's dispatch, so the client's own delays are not mistaken for the
provider's idleness.  Whether a probe was cold is ``lens.metrics.integrity.cold_flags``'s
verdict (idle longer than ``integrity.cold_after``), passed in rather than recomputed.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from lens.metrics.request import NS_PER_MS, NS_PER_S
from lens.records import RequestRecord


@dataclass(frozen=True, slots=True)
class Probe:
    index: int
    idle_s: float | None  # None for the first probe: nothing came before it
    ttft_ms: float | None
    e2e_ms: float
    ok: bool
    cold: bool


@dataclass(frozen=True, slots=True)
class IdleProbes:
    stage: str
    provider: str
    probes: tuple[Probe, ...]


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
                    Probe(
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

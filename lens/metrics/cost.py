"""Cost of each request and of each stage x provider, from token counts and the plan's
resolved prices (``ProviderSpec.price``).

Money is ``decimal.Decimal`` end to end and leaves as decimal strings, so totals never
drift.  A request whose provider has no known price, or whose token counts are unknown,
has no cost (absent), never a cost of 0; failed requests that report usage still cost.

Token-priced providers are billed per request.  GPU-hour providers (``lens.pricing.gpu``)
are billed for the run's wall time, cut into one billed span per stage unit and shared
among the unit's requests by busy time (``bill_run``), so their per-request cost is only
known once the run's windows are: the summaries then add up their records' shares.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import Any, Literal, Protocol

from lens.plan.model import ProviderSpec
from lens.pricing import CostBreakdown, GpuHourRate, ModelPrice, ProviderPrice, request_cost
from lens.pricing.gpu import apportion, money_text, usd_of_units
from lens.records import RequestRecord

_CTX = Context(prec=40)


def record_cost(rec: RequestRecord, spec: ProviderSpec) -> CostBreakdown | None:
    """What one request cost at token prices; None for GPU-hour or unknown prices."""
    if not isinstance(spec.price, ModelPrice):
        return None
    output = rec.output_tokens
    if output is None and rec.inputs is not None:
        output = 0  # an embeddings batch generates nothing: its input is the whole bill
    return _token_cost(
        spec.price,
        spec.type,
        rec.input_tokens,
        rec.cached_input_tokens,
        rec.cache_write_tokens,
        output,
        rec.reasoning_tokens,
    )


# A record's cost (decimal string) and how it was worked out, as results.json carries them.
RecordPrice = tuple[str, dict[str, str | int | None]]


def token_price(rec: RequestRecord, spec: ProviderSpec | None) -> RecordPrice | None:
    """A record's cost from its own tokens (no stage context: no GPU-hour share); None when
    unknown."""
    breakdown = record_cost(rec, spec) if spec is not None else None
    return None if breakdown is None else (str(breakdown.total), breakdown.to_record())


def record_price(
    rec: RequestRecord, spec: ProviderSpec, share: Decimal | None
) -> RecordPrice | None:
    """A record's cost and how it was worked out; None when unknown.  ``share``: its part
    of the GPU-hour bill (``RunBill.record_usd``)."""
    breakdown = record_cost(rec, spec)
    if breakdown is not None:
        return str(breakdown.total), breakdown.to_record()
    if isinstance(spec.price, GpuHourRate) and share is not None:
        detail: dict[str, str | int | None] = {
            "pricing": "gpu-hour",
            **spec.price.to_dict(),
            "share_of": "its stage's billed time, by busy time (dispatch to end)",
        }
        return money_text(share), detail
    return None


# Each record is priced twice (summing per stage, then its results entry), and requests of
# one prompt mostly repeat the same counts: the exact Decimal work is done once per shape.
@functools.lru_cache(maxsize=4096)
def _token_cost(
    price: ModelPrice,
    provider_type: str,
    input_tokens: int | None,
    cached_input_tokens: int | None,
    cache_write_tokens: int | None,
    output_tokens: int | None,
    reasoning_tokens: int | None,
) -> CostBreakdown | None:
    try:
        return request_cost(
            price,
            input_tokens=input_tokens,
            cached_input_tokens=cached_input_tokens,
            cache_write_tokens=cache_write_tokens,
            output_tokens=output_tokens,
            reasoning_tokens=reasoning_tokens,
            provider_type=provider_type,
        )
    except ValueError:
        return None  # inconsistent counts from the server: unknown, not guessed


def busy_ns(rec: RequestRecord) -> int:
    """How long the request held the server: dispatch to end."""
    return max(rec.t_end - rec.t_dispatch, 0)


@dataclass(frozen=True, slots=True)
class StageCost:
    """Cost totals of one stage x provider (or of one phase of it): the sum of its
    records' costs, exactly."""

    kind: Literal["tokens", "gpu-hour"]
    total: Decimal
    priced_requests: int  # requests with a cost
    unpriced_requests: int  # requests without one (no usage reported)
    ok_requests: int  # successful priced requests
    output_tokens: int  # of those
    sla_conforming: int  # successful requests that met every per-request SLA

    def _per(self, n: int, scale: int = 1) -> str | None:
        if not n:
            return None
        return str(_CTX.divide(_CTX.multiply(self.total, Decimal(scale)), Decimal(n)))

    @property
    def mean(self) -> Decimal | None:
        n = self.priced_requests
        return _CTX.divide(self.total, Decimal(n)) if n else None

    def as_dict(self) -> dict[str, str | int | None]:
        return {
            "pricing": self.kind,
            "total_usd": money_text(self.total),
            "per_request_usd": self._per(self.priced_requests),
            "per_1k_successful_usd": self._per(self.ok_requests, 1000),
            "per_1m_output_tokens_usd": self._per(self.output_tokens, 1_000_000),
            "per_sla_conforming_usd": self._per(self.sla_conforming),
            "sla_conforming_requests": self.sla_conforming,
            "priced_requests": self.priced_requests,
            "unpriced_requests": self.unpriced_requests,
            # What the per-request and per-token figures divide by, so stages can be pooled.
            "priced_ok_requests": self.ok_requests,
            "priced_output_tokens": self.output_tokens,
        }


class CostAccumulator:
    """Running cost totals of one stage x provider; mergeable across shards."""

    def __init__(self, price: ProviderPrice | None) -> None:
        self.price = price
        self.total = Decimal(0)
        self.priced = 0
        self.unpriced = 0
        self.ok = 0
        self.output_tokens = 0
        self.busy_ns = 0  # kept in shards (to_dict); the bill shares by each record's own

    @property
    def per_request(self) -> bool:
        return isinstance(self.price, ModelPrice)

    def add(self, rec: RequestRecord, cost: Decimal | None) -> None:
        """``cost``: what the request cost, its token cost or its share of the GPU-hour
        bill (``bill_run``); None when unknown."""
        self.busy_ns += busy_ns(rec)
        if cost is None:
            self.unpriced += 1
            return
        self.priced += 1
        self.total = _CTX.add(self.total, cost)
        if rec.ok:
            self.ok += 1
            self.output_tokens += rec.output_tokens or 0

    def merge(self, other: CostAccumulator) -> None:
        self.total = _CTX.add(self.total, other.total)
        self.priced += other.priced
        self.unpriced += other.unpriced
        self.ok += other.ok
        self.output_tokens += other.output_tokens
        self.busy_ns += other.busy_ns

    def result(self, sla_conforming: int) -> StageCost | None:
        """The cost; None when no price applies or not one request was priced."""
        if self.price is None or self.priced == 0:
            return None
        return StageCost(
            "gpu-hour" if isinstance(self.price, GpuHourRate) else "tokens",
            self.total,
            self.priced,
            self.unpriced,
            self.ok,
            self.output_tokens,
            sla_conforming,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": str(self.total),
            "priced": self.priced,
            "unpriced": self.unpriced,
            "ok": self.ok,
            "output_tokens": self.output_tokens,
            "busy_ns": self.busy_ns,
        }

    def load(self, d: Mapping[str, Any]) -> None:
        self.total = Decimal(str(d["total"]))
        self.priced = int(d["priced"])
        self.unpriced = int(d["unpriced"])
        self.ok = int(d["ok"])
        self.output_tokens = int(d["output_tokens"])
        self.busy_ns = int(d["busy_ns"])


# --- the GPU-hour bill of a run ------------------------------------------------------------


class BilledWindow(Protocol):
    """What the bill needs of an executor's ``StageWindow`` (run clock, ns)."""

    @property
    def stage(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def t_start(self) -> int: ...
    @property
    def t_end(self) -> int: ...
    @property
    def pause_ns(self) -> int: ...


@dataclass(frozen=True, slots=True)
class UnitBill:
    """Where one stage unit's billed time went, and what it cost.

    The billed span runs from the end of the unit before (the run's start for the first)
    to the end of this unit's window: the sweep's pause before it, the set-up before its
    window opened (connections, lens choosing the step), then the window itself.
    """

    stage: str
    provider: str
    billed_from: int  # run clock ns
    t_start: int
    t_end: int
    pause_ns: int
    usd: Decimal | None  # None: the provider is not priced by the GPU-hour
    # The part of ``usd`` no record carries: the unit sent nothing that held the server.
    unattributed_usd: Decimal | None

    @property
    def billed_ns(self) -> int:
        return self.t_end - self.billed_from

    @property
    def setup_ns(self) -> int:
        return max(self.t_start - self.billed_from - self.pause_ns, 0)


@dataclass(frozen=True, slots=True)
class ProviderBill:
    provider: str
    rate: GpuHourRate
    billed_ns: int  # its units' billed spans, added up
    usd: Decimal  # rate x gpus x billed time, rounded once to 10^-12 USD


@dataclass(frozen=True, slots=True)
class RunBill:
    units: tuple[UnitBill, ...]  # one per window, in run order
    providers: tuple[ProviderBill, ...]  # the GPU-hour priced ones
    record_usd: tuple[Decimal | None, ...]  # per record given; None: not GPU-hour priced
    billed_ns: int  # the run's: from its clock's start to the end of its last unit

    @property
    def usd(self) -> Decimal | None:
        """The run's GPU-hour cost; None when no provider is priced by the GPU-hour."""
        if not self.providers:
            return None
        return sum((p.usd for p in self.providers), Decimal(0))


def bill_run(
    providers: Mapping[str, ProviderSpec],
    windows: Sequence[BilledWindow],
    records: Sequence[RequestRecord],
) -> RunBill:
    """The GPU-hour bill of a run: every nanosecond of its clock, from 0 to the end of the
    last unit, is billed once, to the unit it led into (``UnitBill``).

    Exact by construction (integer 10^-12 USD, largest remainder at each level): the record
    shares of a unit add up to its cost (less ``unattributed_usd``), the units of a provider
    to its bill, and a provider's bill is ``rate x gpus x billed time`` rounded once.
    ``windows`` are in run order (units run one after another).
    """
    spans: list[tuple[int, BilledWindow]] = []
    prev_end = 0
    for w in windows:
        spans.append((min(prev_end, w.t_start), w))
        prev_end = max(prev_end, w.t_end)
    unit_units: dict[int, int] = {}  # window position -> its quanta
    provider_bills: list[ProviderBill] = []
    for pid in dict.fromkeys(w.provider for w in windows):
        rate = providers[pid].price if pid in providers else None
        if not isinstance(rate, GpuHourRate):
            continue
        mine = [i for i, (_, w) in enumerate(spans) if w.provider == pid]
        billed = [spans[i][1].t_end - spans[i][0] for i in mine]
        total = rate.units_of(sum(billed))
        unit_units.update(zip(mine, apportion(total, billed), strict=True))
        provider_bills.append(ProviderBill(pid, rate, sum(billed), usd_of_units(total)))
    # A unit's quanta go to its records by busy time; units sharing a key (a step run
    # twice) pool theirs, since a record names its stage, not its window.
    by_key: dict[tuple[str, str], list[int]] = {}
    for i in unit_units:
        w = spans[i][1]
        by_key.setdefault((w.stage, w.provider), []).append(i)
    members: dict[tuple[str, str], list[int]] = {}
    for j, rec in enumerate(records):
        key = (rec.stage, rec.provider)
        if key in by_key:
            members.setdefault(key, []).append(j)
    record_units: dict[int, int] = {}
    unattributed: dict[int, int] = {}
    for key, units in by_key.items():
        pooled = sum(unit_units[i] for i in units)
        rec_ids = members.get(key, [])
        shares = apportion(pooled, [busy_ns(records[j]) for j in rec_ids])
        record_units.update(zip(rec_ids, shares, strict=True))
        left = pooled - sum(shares)
        unattributed.update(
            zip(units, apportion(left, [unit_units[i] for i in units]), strict=True)
        )
    return RunBill(
        units=tuple(
            UnitBill(
                stage=w.stage,
                provider=w.provider,
                billed_from=start,
                t_start=w.t_start,
                t_end=w.t_end,
                pause_ns=w.pause_ns,
                usd=usd_of_units(unit_units[i]) if i in unit_units else None,
                unattributed_usd=usd_of_units(unattributed[i]) if i in unattributed else None,
            )
            for i, (start, w) in enumerate(spans)
        ),
        providers=tuple(provider_bills),
        record_usd=tuple(
            usd_of_units(record_units[j]) if j in record_units else None
            for j in range(len(records))
        ),
        billed_ns=prev_end,
    )

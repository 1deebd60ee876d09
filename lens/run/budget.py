"""Keep a run inside its ``budget``: never start what could overspend it.

What the guard counts, and when (``committed``):

* token prices: before each request (each attempt) it reserves that request's worst-case
  cost (its prompt and whole output limit, see ``lens.metrics.estimate``); when the
  request ends the reservation becomes what it actually cost.  A request whose cost stays
  unknown (no usage reported) keeps its reservation.
* GPU-hour prices: time is money whether or not a request is in flight, so the guard
  follows the run's billed time (``lens.pricing.gpu``: every nanosecond of the run's clock
  belongs to the unit it leads into).  Time up to the end of the last unit is spent; the
  running unit may still be billed until its requests end, and a request admitted at
  ``t`` ends by ``t + timeout`` (its deadline cancels it), so the guard counts every
  admitted request's deadline, plus ``SETTLE_MARGIN_S`` for lens's own work after it
  (recording the request, closing the unit).  A request, a wait (the next arrival, an idle
  gap, a retry's back-off) and a unit (its pause, its connection set-up and its first
  request) start only if the run could then still end within the budget.

Once anything is refused the guard stays refused: requests in flight finish (within what
was counted for them), no new one starts, and later units never begin.  The spend can
therefore not exceed the budget, as long as lens's own work past a deadline takes under
the margin and no request costs more than its worst case (see ``request_bound``).

Pricing functions are injected: the run stage sits upstream of metrics and does not
import it.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from lens.plan.duration import SETTLE_MARGIN_S, setup_bound_s
from lens.plan.model import PromptSpec, ProviderSpec, StagePlan
from lens.pricing import GpuHourRate
from lens.pricing.gpu import usd_of_units
from lens.records import RequestRecord

ReserveFn = Callable[[ProviderSpec, PromptSpec, int | None], Decimal | None]
CostFn = Callable[[RequestRecord, ProviderSpec], Decimal | None]

_NS = 1_000_000_000


def ns(seconds: float) -> int:
    return round(seconds * _NS)


class BudgetGuard:
    def __init__(self, limit_usd: Decimal, reserve: ReserveFn, cost: CostFn) -> None:
        self.limit = limit_usd
        self._reserve = reserve
        self._cost = cost
        self.spent = Decimal(0)  # settled requests, and GPU time up to ``billed_to``
        self.reserved = Decimal(0)  # token-priced requests in flight, at their worst case
        self.exhausted = False
        self.billed_to = 0  # run clock ns: GPU time before it is in ``spent``
        # The price of the time from ``billed_to`` on (the unit running or about to): None
        # when that unit's provider is not priced by the GPU-hour.
        self._rate: GpuHourRate | None = None
        self._busy_until = 0  # the latest deadline of a request admitted in this unit

    def _gpu(self, until_ns: int) -> Decimal:
        """GPU time from ``billed_to`` to ``until_ns``, rounded up to the bill's quantum."""
        if self._rate is None or until_ns <= self.billed_to:
            return Decimal(0)
        return usd_of_units(self._rate.ceil_units_of(until_ns - self.billed_to))

    def committed(self, until_ns: int | None = None) -> Decimal:
        """Spent, held for requests in flight, and the GPU time to the later of
        ``until_ns`` and the last admitted deadline, margin included."""
        until = max(self._busy_until, until_ns or 0)
        gpu = self._gpu(until + ns(SETTLE_MARGIN_S)) if self._rate is not None else Decimal(0)
        return self.spent + self.reserved + gpu

    def _refuse(self) -> None:
        self.exhausted = True

    def enter(self, spec: ProviderSpec) -> None:
        """A unit of ``spec`` is next: the time from the last unit's end is billed at its
        price (its pause and set-up are its own, as in the bill)."""
        self._rate = spec.price if isinstance(spec.price, GpuHourRate) else None
        self._busy_until = 0

    def may_start(self, spec: ProviderSpec, unit: StagePlan, now_ns: int) -> bool:
        """Whether ``unit`` may begin: its pause, its set-up and one request at their
        longest must fit.  A refusal is final."""
        if self.exhausted:
            return False
        self.enter(spec)
        if self._rate is None:
            return True
        lead_s = unit.pause_before_s + setup_bound_s(unit) + unit.timeout_s
        return self.may_wait(now_ns + ns(lead_s))

    def may_wait(self, until_ns: int) -> bool:
        """Whether the run may wait until ``until_ns`` (the next arrival, an idle gap, a
        retry's back-off) and still stop within the budget.  A refusal is final."""
        if self.exhausted:
            return False
        if self._rate is not None and self.committed(until_ns) > self.limit:
            self._refuse()
        return not self.exhausted

    def try_reserve(
        self, spec: ProviderSpec, unit: StagePlan, prompt: PromptSpec, now_ns: int
    ) -> Decimal | None:
        """The amount held for one more request sent at ``now_ns``, or None: starting it
        could overspend.

        Once refused, always refused: a cheaper prompt later would make the stop order
        depend on the prompt mix.
        """
        if self.exhausted:
            return None
        amount = self._reserve(spec, prompt, unit.max_tokens) or Decimal(0)
        until = self._busy_until
        if self._rate is not None:
            until = max(until, now_ns + ns(unit.timeout_s))
        if self.committed(until) + amount > self.limit:
            self._refuse()
            return None
        self.reserved += amount
        self._busy_until = until
        return amount

    def settle(self, held: Decimal, rec: RequestRecord, spec: ProviderSpec) -> None:
        self.reserved -= held
        if isinstance(spec.price, GpuHourRate):
            return  # charged by time (unit_ended), not per request
        actual = self._cost(rec, spec)
        self.spent += held if actual is None else actual

    def release(self, held: Decimal) -> None:
        """A reservation whose request was never sent: it cost nothing."""
        self.reserved -= held

    def unit_ended(self, t_end_ns: int) -> None:
        """The running unit ended at ``t_end_ns`` (run clock): its billed time is spent."""
        self.spent += self._gpu(t_end_ns)
        self.billed_to = max(self.billed_to, t_end_ns)
        self._rate = None
        self._busy_until = 0

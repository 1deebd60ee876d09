"""Keep a run inside its ``budget``: refuse to start a request that could overspend.

Before each request the guard reserves that request's worst-case cost (its prompt and
whole output limit, see ``lens.metrics.estimate``); when the request ends the reservation
becomes what it actually cost.  A request whose cost stays unknown (no usage reported)
keeps its reservation, so the guard errs towards stopping early, never towards
overspending.  GPU-hour providers are charged for elapsed stage time as it passes;
requests already in flight when the budget runs out still finish, and that time is
charged after the fact.

Pricing functions are injected: the run stage sits upstream of metrics and does not
import it.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from lens.plan.model import PromptSpec, ProviderSpec, StagePlan
from lens.pricing import GpuHourRate
from lens.records import RequestRecord

ReserveFn = Callable[[ProviderSpec, PromptSpec, int | None], Decimal | None]
CostFn = Callable[[RequestRecord, ProviderSpec], Decimal | None]


class BudgetGuard:
    def __init__(self, limit_usd: Decimal, reserve: ReserveFn, cost: CostFn) -> None:
        self.limit = limit_usd
        self._reserve = reserve
        self._cost = cost
        self.spent = Decimal(0)  # settled requests and finished GPU time
        self.reserved = Decimal(0)  # requests in flight, at their worst case
        self.exhausted = False

    def committed(self, gpu_running: Decimal = Decimal(0)) -> Decimal:
        return self.spent + self.reserved + gpu_running

    def try_reserve(
        self, spec: ProviderSpec, unit: StagePlan, prompt: PromptSpec, gpu_running: Decimal
    ) -> Decimal | None:
        """The amount held for one more request, or None: starting it could overspend.

        ``gpu_running``: what the current GPU-hour stage has cost so far (0 otherwise).
        Once refused, always refused: a cheaper prompt later would make the stop order
        depend on the prompt mix.
        """
        if self.exhausted:
            return None
        amount = self._reserve(spec, prompt, unit.max_tokens) or Decimal(0)
        if self.committed(gpu_running) + amount > self.limit:
            self.exhausted = True
            return None
        self.reserved += amount
        return amount

    def settle(self, held: Decimal, rec: RequestRecord, spec: ProviderSpec) -> None:
        self.reserved -= held
        if isinstance(spec.price, GpuHourRate):
            return  # charged by time (charge_time), not per request
        actual = self._cost(rec, spec)
        self.spent += held if actual is None else actual

    def release(self, held: Decimal) -> None:
        """A reservation whose request was never sent: it cost nothing."""
        self.reserved -= held

    def charge_time(self, spec: ProviderSpec, wall_ns: int) -> None:
        """A GPU-hour stage ended after ``wall_ns``: add its cost."""
        if isinstance(spec.price, GpuHourRate):
            self.spent += spec.price.cost_of(wall_ns)

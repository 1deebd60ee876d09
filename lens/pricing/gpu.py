"""Self-hosted deployments priced by the GPU-hour.

The model: the deployment is paid for the whole time a stage keeps it, busy or idle, so
a stage x provider costs ``usd_per_gpu_hour x gpus x stage wall hours``.  That cost is
shared among the stage's requests in proportion to their busy time (dispatch to end):
a request that held the server twice as long costs twice as much.  Failed requests take
their share too: the GPUs were paid for while they ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal

_CTX = Context(prec=40)
_NS_PER_HOUR = Decimal(3_600_000_000_000)


@dataclass(frozen=True, slots=True)
class GpuHourRate:
    usd_per_gpu_hour: Decimal
    gpus: int
    source: str

    def cost_of(self, wall_ns: int) -> Decimal:
        """USD for holding the deployment ``wall_ns`` nanoseconds."""
        hourly = _CTX.multiply(self.usd_per_gpu_hour, Decimal(self.gpus))
        return _CTX.divide(_CTX.multiply(hourly, Decimal(wall_ns)), _NS_PER_HOUR)

    def to_dict(self) -> dict[str, str | int]:
        return {
            "usd_per_gpu_hour": str(self.usd_per_gpu_hour),
            "gpus": self.gpus,
            "source": self.source,
        }

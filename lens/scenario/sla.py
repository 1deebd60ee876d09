"""SLA assertion expressions: ``<metric>[.<stat>] <op> <value>[unit]``.

Money is written ``cost.mean < $0.002`` (or ``0.002 USD``); ``cost.total`` is the exact
sum a stage spent.

Parsed once, when the scenario loads, into a frozen ``SlaExpr`` whose threshold is in the
metric's canonical unit (ms for times, a ratio for rates, per-second for throughputs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from lens.metric_catalog import (
    MIN_SAMPLES,
    REQUEST_METRICS,
    REQUEST_STATS,
    STAGE_METRICS,
    TOTAL_METRICS,
    TOTAL_STAT,
)
from lens.suggest import did_you_mean

Op = Literal["<", "<=", ">", ">="]

_EXPR = re.compile(
    r"""^\s*(?P<metric>[a-z_][a-z0-9_]*)(?:\.(?P<stat>[a-z0-9_]+))?\s*
        (?P<op><=|>=|<|>)\s*
        (?P<dollar>\$)?\s*
        (?P<value>[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)\s*
        (?P<unit>ms|s|m|%|/s|/m|tokens/s|USD|usd)?\s*$""",
    re.VERBOSE,
)

# Stage values that mean the same over one window of a stage as over all of it: shares and
# counts of the window's requests.  Rates per second of stage time (rps, throughput,
# goodput) do not: a window is cut by dispatch time, not by completion.
WINDOWED_STAGE_METRICS = frozenset({"error_rate", "success_rate", "requests", "errors"})

_TIME_FACTORS_MS = {None: 1.0, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


class SlaSyntaxError(ValueError):
    """The text is not a valid SLA expression; the message says what was expected."""


@dataclass(frozen=True, slots=True)
class SlaExpr:
    metric: str
    stat: str | None  # None for stage-level metrics such as error_rate
    op: Op
    threshold: float  # canonical unit of the metric (see lens.metric_catalog)
    text: str

    @property
    def label(self) -> str:
        return f"{self.metric}.{self.stat}" if self.stat else self.metric

    @property
    def min_samples(self) -> int:
        return MIN_SAMPLES.get(self.stat or "", 1)

    def holds(self, value: float) -> bool:
        match self.op:
            case "<":
                return value < self.threshold
            case "<=":
                return value <= self.threshold
            case ">":
                return value > self.threshold
            case ">=":
                return value >= self.threshold


def parse_sla(text: str) -> SlaExpr:
    m = _EXPR.match(text)
    if not m:
        raise SlaSyntaxError(
            f"cannot parse SLA {text!r}: expected '<metric>.<stat> <op> <value>[unit]', "
            "e.g. 'ttft.p95 < 800ms' or 'error_rate < 1%'"
        )
    metric, stat, op, unit = m["metric"], m["stat"], m["op"], m["unit"]
    if m["dollar"] is not None:
        if unit is not None:
            raise SlaSyntaxError(f"{text!r}: write the amount as $0.002 or 0.002 USD, not both")
        unit = "USD"
    value = float(m["value"])
    known = sorted([*REQUEST_METRICS, *STAGE_METRICS])
    if metric in REQUEST_METRICS:
        if stat is None:
            raise SlaSyntaxError(
                f"{metric!r} is a per-request metric: name a statistic, one of "
                f"{', '.join(REQUEST_STATS)} (e.g. '{metric}.p95')"
            )
        stats = [*REQUEST_STATS, TOTAL_STAT] if metric in TOTAL_METRICS else list(REQUEST_STATS)
        if stat == TOTAL_STAT and metric not in TOTAL_METRICS:
            raise SlaSyntaxError(
                f"'{TOTAL_STAT}' is only defined for {', '.join(sorted(TOTAL_METRICS))}; "
                f"expected one of {', '.join(stats)}"
            )
        if stat not in stats:
            raise SlaSyntaxError(
                f"unknown statistic {stat!r}{did_you_mean(stat, stats)}; "
                f"expected one of {', '.join(stats)}"
            )
        info = REQUEST_METRICS[metric]
    elif metric in STAGE_METRICS:
        if stat is not None:
            raise SlaSyntaxError(f"{metric!r} is one value per stage and takes no statistic")
        info = STAGE_METRICS[metric]
    else:
        raise SlaSyntaxError(
            f"unknown metric {metric!r}{did_you_mean(metric, known)}; "
            f"expected one of {', '.join(known)}"
        )
    if info.unit == "ms" and stat != "n":
        if unit not in _TIME_FACTORS_MS:
            raise SlaSyntaxError(f"{metric} is a time: use ms, s or m, not {unit!r}")
        threshold = value * _TIME_FACTORS_MS[unit]
    elif info.unit == "ratio":
        if unit == "%":
            threshold = value / 100.0
        elif unit is None:
            threshold = value
        else:
            raise SlaSyntaxError(f"{metric} is a ratio: use % or a plain number, not {unit!r}")
    elif info.unit == "usd" and stat != "n":
        if unit not in (None, "USD", "usd"):
            raise SlaSyntaxError(f"{metric} is an amount of money: write $0.002, not {unit!r}")
        threshold = value
    elif info.unit in ("req/s", "tokens/s", "inputs/s") and stat != "n":
        if unit in (None, "/s", "tokens/s"):
            threshold = value
        elif unit == "/m":
            threshold = value / 60.0
        else:
            raise SlaSyntaxError(f"{metric} is a rate per second: use /s, /m or a plain number")
    else:
        if unit is not None:
            raise SlaSyntaxError(f"{metric}.{stat} is a count and takes no unit")
        threshold = value
    return SlaExpr(metric=metric, stat=stat, op=op, threshold=threshold, text=text.strip())  # type: ignore[arg-type]

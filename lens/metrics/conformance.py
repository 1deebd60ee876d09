"""Whether one request met the SLA: the per-request reading behind goodput and the cost
per SLA-conforming request.

An assertion such as ``ttft.p95 < 800ms`` speaks of a distribution; a single request
conforms to it when its own value holds the same comparison (``ttft < 800ms``), the
reading DistServe and vLLM's goodput use.  The rules:

* a failed request never conforms;
* only per-request metrics take part; stage values (``error_rate``, ``rps``...) and
  sample counts (``<metric>.n``) say nothing about one request;
* ``itl`` and ``icl`` are series within a request: the request's own statistic of its
  gaps is compared (``itl.p95 < 50ms``: the p95 of that stream's gaps, nearest rank);
* a metric the request could not have (``dispatch_lag`` in a closed loop, ``tpot`` of a
  one-token answer) neither passes nor fails it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from lens.metric_catalog import REQUEST_METRICS, SERIES_METRICS
from lens.plan.model import SlaSpec
from lens.scenario.sla import SlaExpr

SERIES = frozenset(SERIES_METRICS)
_QUANTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}


def request_checks(slas: Iterable[SlaSpec], stage: str, provider: str) -> tuple[SlaExpr, ...]:
    """The assertions a request of ``stage`` x ``provider`` is held to, one by one."""
    return tuple(
        spec.expr
        for spec in slas
        if spec.applies_to(stage, provider)
        and spec.expr.metric in REQUEST_METRICS
        and spec.expr.stat not in (None, "n", "total")
    )


def series_stat(values: Sequence[float], stat: str) -> float | None:
    """One statistic of a request's own gaps (nearest-rank percentiles); None if empty."""
    if not values:
        return None
    if stat == "mean":
        return math.fsum(values) / len(values)
    if stat == "min":
        return min(values)
    if stat == "max":
        return max(values)
    ordered = sorted(values)
    rank = max(math.ceil(_QUANTILES[stat] * len(ordered)), 1)
    return ordered[rank - 1]


def request_conforms(
    ok: bool,
    values: Mapping[str, float | None],
    series: Mapping[str, Sequence[float]],
    checks: Sequence[SlaExpr],
) -> bool:
    """``values``: the request's scalar metrics (``request_metrics``, plus ``cost``);
    ``series``: its ``itl``/``icl`` gaps."""
    if not ok:
        return False
    for expr in checks:
        if expr.metric in SERIES:
            assert expr.stat is not None  # request_checks keeps only stats
            value = series_stat(series.get(expr.metric, ()), expr.stat)
        else:
            value = values.get(expr.metric)
        if value is not None and not expr.holds(value):
            return False
    return True

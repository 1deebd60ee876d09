"""Records -> per-request metrics -> sketches -> Summary -> SLA verdicts.

Pure and synchronous: no trio, no httpx.  The executor feeds ``SummaryBuilder`` one
record at a time; the CLI calls ``judge`` and ``exit_code`` on the result.
"""

from lens.metrics.judge import Verdict, exit_code, judge
from lens.metrics.request import icl_values, itl_values, request_metrics
from lens.metrics.sketch import MetricSketch, QuantileSketch
from lens.metrics.summary import (
    MetricStats,
    StageAccumulator,
    Summary,
    SummaryBuilder,
    aggregate,
)

__all__ = [
    "MetricSketch",
    "MetricStats",
    "QuantileSketch",
    "StageAccumulator",
    "Summary",
    "SummaryBuilder",
    "Verdict",
    "aggregate",
    "exit_code",
    "icl_values",
    "itl_values",
    "judge",
    "request_metrics",
]

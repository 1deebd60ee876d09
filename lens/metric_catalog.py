"""The catalogue of metric names and statistics that results and SLA assertions use.

A leaf module: the scenario loader validates SLA expressions against it and the metrics
stage computes exactly these names, so both agree on one list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Unit = Literal["ms", "tokens/s", "ratio", "count", "req/s", "usd"]


@dataclass(frozen=True, slots=True)
class MetricInfo:
    name: str
    unit: Unit
    description: str


# Per-request metrics: summarised per stage x provider with the stats in REQUEST_STATS.
REQUEST_METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("ttft", "ms", "time to first token: first token-bearing delta - dispatch"),
        MetricInfo("ttfot", "ms", "time to first visible (non-reasoning) output token"),
        MetricInfo("ttfb", "ms", "time to response headers - dispatch"),
        MetricInfo("itl", "ms", "inter-token latency; a chunk of k tokens is k gaps of gap/k"),
        MetricInfo("icl", "ms", "inter-chunk latency: raw gap between token-bearing chunks"),
        MetricInfo("tpot", "ms", "(t_last_token - t_first_token) / (output_tokens - 1)"),
        MetricInfo("e2e", "ms", "end-to-end latency: end of response - dispatch"),
        MetricInfo("dispatch_lag", "ms", "dispatch - intended send time (open loop)"),
        MetricInfo("ttft_from_intended", "ms", "first token - intended send time"),
        MetricInfo("e2e_from_intended", "ms", "end of response - intended send time"),
        MetricInfo("output_tokens_per_s", "tokens/s", "(output_tokens - 1) / decode time"),
        MetricInfo("input_tokens", "count", "prompt tokens, cached ones included"),
        MetricInfo("output_tokens", "count", "generated tokens, reasoning included"),
        MetricInfo("cost", "usd", "what the request cost (failed ones too); .total per stage"),
    )
}

# Per stage x provider values: a single number, no statistic.
STAGE_METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("error_rate", "ratio", "errored requests / all started requests"),
        MetricInfo("success_rate", "ratio", "successful requests / all started requests"),
        MetricInfo("rps", "req/s", "completed requests / stage wall time"),
        MetricInfo("throughput", "tokens/s", "output tokens / stage wall time"),
        MetricInfo(
            "goodput",
            "req/s",
            "SLA-conforming successful requests / stage wall time (the rps denominator); "
            "every successful request conforms when no per-request SLA applies",
        ),
        MetricInfo("goodput_ratio", "ratio", "SLA-conforming requests / all started requests"),
        MetricInfo("requests", "count", "requests started"),
        MetricInfo("errors", "count", "requests that ended in an error of any class"),
    )
}

REQUEST_STATS: tuple[str, ...] = ("n", "min", "mean", "p50", "p90", "p95", "p99", "max")
# Statistics only some metrics have: the exact sum of what a stage spent.
TOTAL_STAT = "total"
TOTAL_METRICS = frozenset({"cost"})

# A percentile resting on fewer values than this is not meaningful: p99 of 20 values is
# simply the maximum.  An SLA on it is inconclusive, never a silent pass.
MIN_SAMPLES: dict[str, int] = {"p50": 2, "p90": 10, "p95": 20, "p99": 100}

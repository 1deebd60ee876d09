"""The catalogue of metrics: each one defined once, here.

An entry says what a metric is (name, unit, kind, formula, description), which requests it
counts, what other tools call it, and why it may be missing.  Everything else derives from
it: the scenario loader validates SLA expressions against these names, the metrics stage
computes exactly the per-request ones (``lens.metrics.request`` has one formula per
``SCALAR`` entry, checked at import), the judge explains a metric never measured with its
``unmeasured`` text, the exporters take their metric columns from here, and
``docs/metrics.md`` is generated from it (``tools/gen_metrics_doc.py``).

A leaf module: it imports nothing of lens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Unit = Literal["ms", "tokens/s", "ratio", "count", "req/s", "inputs/s", "usd"]
# scalar: one value (or none) per request; series: several values per request (gaps);
# priced: one value per request, from the provider's price rather than the record's stamps;
# stage: one value per stage x provider, no statistic.
Kind = Literal["scalar", "series", "priced", "stage"]
# Whose values a per-request metric takes: successful requests only (a fast 500 must not
# improve a latency percentile), or every started request (what describes the client).
Counts = Literal["ok", "all"]


@dataclass(frozen=True, slots=True)
class MetricInfo:
    name: str
    unit: Unit
    kind: Kind
    formula: str  # over the stamps of docs/metrics.md ("Timestamps"); n: output tokens
    description: str
    counts: Counts = "ok"
    elsewhere: str = ""  # what other tools call it
    unmeasured: str = ""  # why no request may have had it (the judge's hint)

    @property
    def per_request(self) -> bool:
        """Summarised per stage x provider with the statistics of ``REQUEST_STATS``."""
        return self.kind != "stage"


_OPEN_LOOP_ONLY = "only open-loop stages have an intended send time"
_NO_ENGINE_TIMINGS = (
    "no response carried the engine's own timings (llama.cpp `timings`, TGI `x-*-time` headers)"
)

CATALOGUE: tuple[MetricInfo, ...] = (
    MetricInfo(
        "ttft", "ms", "scalar", "t_first_token − t_dispatch",
        "time to first token: first token-bearing delta - dispatch",
        elsewhere="TTFT (vLLM counts an empty first chunk; lens does not)",
        unmeasured="no response was streamed (stream: false, endpoint: embeddings): no token "
        "was timed",
    ),
    MetricInfo(
        "ttfot", "ms", "scalar", "t_first_visible − t_dispatch",
        "time to first visible (non-reasoning) output token",
        elsewhere="GuideLLM TTFOT, AIPerf TTFO",
        unmeasured="no response carried visible (non-reasoning) output",
    ),
    MetricInfo(
        "ttfb", "ms", "scalar", "t_headers − t_dispatch",
        "time to response headers - dispatch",
        elsewhere="k6 `http_req_waiting`", unmeasured="no response headers were timed",
    ),
    MetricInfo(
        "itl", "ms", "series",
        "each gap t_chunk[k] − t_chunk[k−1], counted as n_k gaps of "
        "(t_chunk[k] − t_chunk[k−1]) / n_k",
        "inter-token latency; a chunk of k tokens is k gaps of gap/k",
        elsewhere="token-normalised ITL",
        unmeasured="it needs at least 2 token-bearing chunks per response",
    ),
    MetricInfo(
        "icl", "ms", "series", "each raw gap t_chunk[k] − t_chunk[k−1]",
        "inter-chunk latency: raw gap between token-bearing chunks",
        elsewhere="vLLM's ITL, AIPerf ICL",
        unmeasured="it needs at least 2 token-bearing chunks per response",
    ),
    MetricInfo(
        "tpot", "ms", "scalar", "(t_last_token − t_first_token) / (n − 1)",
        "(t_last_token - t_first_token) / (output_tokens - 1)",
        elsewhere="vLLM/SGLang TPOT; AIPerf and GuideLLM call this ITL",
        unmeasured="it needs responses of at least 2 output tokens",
    ),
    MetricInfo(
        "e2e", "ms", "scalar", "t_end − t_dispatch",
        "end-to-end latency: end of response - dispatch", elsewhere="E2EL, request latency",
    ),
    MetricInfo(
        "dispatch_lag", "ms", "scalar", "t_dispatch − t_intended",
        "dispatch - intended send time (open loop)", counts="all",
        elsewhere="scheduling delay, client queue time", unmeasured=_OPEN_LOOP_ONLY,
    ),
    MetricInfo(
        "ttft_from_intended", "ms", "scalar", "t_first_token − t_intended",
        "first token - intended send time",
        elsewhere="(coordinated omission corrected)", unmeasured=_OPEN_LOOP_ONLY,
    ),
    MetricInfo(
        "e2e_from_intended", "ms", "scalar", "t_end − t_intended",
        "end of response - intended send time",
        elsewhere="GuideLLM scheduled latency", unmeasured=_OPEN_LOOP_ONLY,
    ),
    MetricInfo(
        "output_tokens_per_s", "tokens/s", "scalar", "(n − 1) / (t_last_token − t_first_token)",
        "(output_tokens - 1) / decode time", elsewhere="TPS per user",
        unmeasured="it needs at least 2 output tokens spread over time",
    ),
    MetricInfo(
        "input_tokens", "count", "scalar", "prompt tokens (usage, else estimated)",
        "prompt tokens, cached ones included",
    ),
    MetricInfo(
        "output_tokens", "count", "scalar", "n (usage, else estimated)",
        "generated tokens, reasoning included",
    ),
    MetricInfo(
        "engine_prefill", "ms", "scalar", "engine.prompt_ms",
        "prefill time the engine reported (llama.cpp timings.prompt_ms): the prompt tokens "
        "not taken from its prompt cache",
        elsewhere="llama.cpp prompt_ms", unmeasured=_NO_ENGINE_TIMINGS,
    ),
    MetricInfo(
        "ttft_overhead", "ms", "scalar", "(t_first_token − t_dispatch) − engine.prompt_ms",
        "TTFT less the engine's prefill: network, queueing before a slot, HTTP and framing",
        unmeasured=_NO_ENGINE_TIMINGS,
    ),
    MetricInfo(
        "engine_tpot", "ms", "scalar", "engine.per_token_ms",
        "decode time per output token the engine reported (llama.cpp "
        "timings.predicted_per_token_ms, TGI x-time-per-token)",
        elsewhere="llama.cpp predicted_per_token_ms", unmeasured=_NO_ENGINE_TIMINGS,
    ),
    MetricInfo(
        "cost", "usd", "priced",
        "input tokens × input price + output tokens × output price (+ cache prices)",
        "what the request cost (failed ones too); .total per stage",
        counts="all",
        unmeasured="no response reported its token usage, so none could be priced",
    ),
    MetricInfo(
        "error_rate", "ratio", "stage",
        "failed requests / started requests (every error class but `cancelled`, `drained` "
        "and `lens_lost`)",
        "errored requests / all started requests",
    ),
    MetricInfo(
        "success_rate", "ratio", "stage", "successful requests / started requests",
        "successful requests / all started requests",
    ),
    MetricInfo(
        "rps", "req/s", "stage", "successful requests / W",
        "completed requests / stage wall time",
    ),
    MetricInfo(
        "throughput", "tokens/s", "stage", "output tokens / W",
        "output tokens / stage wall time",
    ),
    MetricInfo(
        "inputs_per_s", "inputs/s", "stage", "embedding inputs / W",
        "embedding inputs of successful requests / stage wall time (endpoint: embeddings)",
        elsewhere="embeddings throughput",
    ),
    MetricInfo(
        "goodput", "req/s", "stage",
        "SLA-conforming requests / W (every successful request when no per-request SLA "
        "applies: then `rps`)",
        "SLA-conforming successful requests / stage wall time (the rps window)",
        elsewhere="vLLM `--goodput`, AIPerf goodput",
    ),
    MetricInfo(
        "goodput_ratio", "ratio", "stage", "SLA-conforming requests / started requests",
        "SLA-conforming requests / all started requests",
    ),
    MetricInfo(
        "requests", "count", "stage",
        "started requests (every error class but `cancelled`, `drained` and `lens_lost`)",
        "requests started",
    ),
    MetricInfo(
        "errors", "count", "stage", "failed requests",
        "requests that ended in an error of any class",
    ),
)  # fmt: skip

METRICS: dict[str, MetricInfo] = {m.name: m for m in CATALOGUE}
# Per-request metrics: summarised per stage x provider with the stats in REQUEST_STATS.
REQUEST_METRICS: dict[str, MetricInfo] = {m.name: m for m in CATALOGUE if m.per_request}
# Per stage x provider values: a single number, no statistic.
STAGE_METRICS: dict[str, MetricInfo] = {m.name: m for m in CATALOGUE if not m.per_request}
# Computed from a request's record by lens.metrics.request, one value (or None) each.
SCALAR_METRICS: tuple[str, ...] = tuple(m.name for m in CATALOGUE if m.kind == "scalar")
# Several values per request: the gaps between its token-bearing chunks.
SERIES_METRICS: tuple[str, ...] = tuple(m.name for m in CATALOGUE if m.kind == "series")

# The engine's own figures (RequestRecord.engine) and what lens derives from them: columns
# added after the others in exports with a fixed column order.
ENGINE_METRICS: tuple[str, ...] = ("engine_prefill", "ttft_overhead", "engine_tpot")

REQUEST_STATS: tuple[str, ...] = ("n", "min", "mean", "p50", "p90", "p95", "p99", "max")
# Statistics only some metrics have: the exact sum of what a stage spent.
TOTAL_STAT = "total"
TOTAL_METRICS = frozenset(m.name for m in CATALOGUE if m.kind == "priced")

# A percentile resting on fewer values than this is not meaningful: p99 of 20 values is
# simply the maximum.  An SLA on it is inconclusive, never a silent pass.
MIN_SAMPLES: dict[str, int] = {"p50": 2, "p90": 10, "p95": 20, "p99": 100}

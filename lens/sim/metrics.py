"""``GET /metrics`` of the simulated server: its live state in llama.cpp's Prometheus names,
so lens's ``server_metrics:`` scraping is tested offline over real sockets.

llama-server (``--metrics``) exposes ``llamacpp:requests_processing`` and
``llamacpp:requests_deferred`` (gauges: requests generating, requests queued for a slot),
``llamacpp:kv_cache_usage_ratio`` and ``llamacpp:kv_cache_tokens`` (gauges), and the counters
``llamacpp:prompt_tokens_total`` and ``llamacpp:tokens_predicted_total``.  The simulator
keeps them from what it actually does: a request is deferred while it waits for a
generation slot (``capacity:``), processing while it holds one; its prompt tokens (lens's
estimate of them, as in its usage) count when it is admitted, its output tokens when its
response has been written (those actually sent: a cut stream's until the cut).  It adds one
histogram of its own, ``lens_sim:request_duration_seconds`` (admission to last byte), so
histogram deltas have a peer too, and counts the scrapes it answered
(``lens_sim:metrics_scrapes_total``, this one included), so tests see who scraped how often.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The simulator's KV cache, in tokens: what kv_cache_usage_ratio is a share of.
KV_CACHE_TOKENS = 65536
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(slots=True)
class SimMetrics:
    processing: int = 0
    deferred: int = 0
    kv_tokens: int = 0
    prompt_tokens_total: int = 0
    tokens_predicted_total: int = 0
    duration_count: int = 0
    duration_sum: float = 0.0
    duration_buckets: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    scrapes: int = 0

    def admit(self, prompt_tokens: int, kv_tokens: int) -> None:
        self.processing += 1
        self.kv_tokens += kv_tokens
        self.prompt_tokens_total += prompt_tokens

    def release(self, kv_tokens: int, served_tokens: int, duration_s: float) -> None:
        self.processing -= 1
        self.kv_tokens -= kv_tokens
        self.tokens_predicted_total += served_tokens
        self.duration_count += 1
        self.duration_sum += duration_s
        for i, bound in enumerate(DURATION_BUCKETS):
            if duration_s <= bound:
                self.duration_buckets[i] += 1

    def render(self) -> bytes:
        """The text exposition format (version 0.0.4), as llama-server writes it."""
        self.scrapes += 1
        ratio = min(1.0, self.kv_tokens / KV_CACHE_TOKENS)
        lines = [
            *_one(
                "llamacpp:prompt_tokens_total",
                "counter",
                "Number of prompt tokens processed.",
                self.prompt_tokens_total,
            ),
            *_one(
                "llamacpp:tokens_predicted_total",
                "counter",
                "Number of generation tokens processed.",
                self.tokens_predicted_total,
            ),
            *_one(
                "llamacpp:kv_cache_usage_ratio",
                "gauge",
                "KV-cache usage. 1 means 100 percent usage.",
                ratio,
            ),
            *_one("llamacpp:kv_cache_tokens", "gauge", "KV-cache tokens.", self.kv_tokens),
            *_one(
                "llamacpp:requests_processing",
                "gauge",
                "Number of requests processing.",
                self.processing,
            ),
            *_one(
                "llamacpp:requests_deferred", "gauge", "Number of requests deferred.", self.deferred
            ),
            "# HELP lens_sim:request_duration_seconds From admission to the last byte.",
            "# TYPE lens_sim:request_duration_seconds histogram",
            *(
                f'lens_sim:request_duration_seconds_bucket{{le="{bound}"}} {count}'
                for bound, count in zip(DURATION_BUCKETS, self.duration_buckets, strict=True)
            ),
            f'lens_sim:request_duration_seconds_bucket{{le="+Inf"}} {self.duration_count}',
            f"lens_sim:request_duration_seconds_sum {self.duration_sum!r}",
            f"lens_sim:request_duration_seconds_count {self.duration_count}",
            *_one(
                "lens_sim:metrics_scrapes_total",
                "counter",
                "Scrapes of /metrics answered, this one included.",
                self.scrapes,
            ),
        ]
        return ("\n".join(lines) + "\n").encode()


def _one(name: str, kind: str, help_text: str, value: float) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value}"]

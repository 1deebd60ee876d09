"""``server_metrics:`` of a provider: the engine's Prometheus endpoint lens scrapes during
the run (lens.run.servermetrics; docs/server-metrics.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from lens.scenario.model.base import (
    METRIC_NAME_GLOB_PATTERN,
    EnvUrl,
    FieldError,
    FrozenModel,
    PositiveDuration,
)

DEFAULT_EVERY_S = 1.0
DEFAULT_TIMEOUT_S = 2.0


class ServerMetrics(FrozenModel):
    """Scrape the engine's Prometheus endpoint (llama.cpp --metrics, vLLM, TGI, SGLang)
    before, during and after each stage: counter deltas per stage, gauge series over the
    run. A scrape that fails never fails the run; it is reported."""

    url: EnvUrl | None = Field(
        None,
        description="The metrics endpoint, e.g. http://127.0.0.1:8080/metrics. Required, "
        "except on a simulated provider (default: its simulator's own /metrics).",
    )
    every: PositiveDuration = Field(
        DEFAULT_EVERY_S, description="Interval between scrapes while a stage runs, e.g. 1s."
    )
    timeout: PositiveDuration | None = Field(
        None,
        description="A scrape not answered within this counts as failed, e.g. 2s (default: "
        "2s, or every when shorter).",
    )
    names: tuple[Annotated[str, Field(pattern=METRIC_NAME_GLOB_PATTERN)], ...] = Field(
        (),
        description="Metric families to keep: exact names or globs (*, ?, [...]) matched "
        "against the family name, a counter's with or without _total, e.g. "
        "['llamacpp:*', 'vllm:num_requests_running']. Default: every family.",
    )

    @model_validator(mode="after")
    def _timeout_fits(self) -> ServerMetrics:
        # Scrapes of one endpoint never overlap: one still waiting would delay the next.
        if self.timeout is not None and self.timeout > self.every:
            raise FieldError(
                f"timeout ({self.timeout:g}s) must not exceed every ({self.every:g}s): "
                "scrapes never overlap",
                "timeout",
            )
        return self

    @property
    def timeout_s(self) -> float:
        """The timeout given, else 2 s or ``every`` when shorter."""
        return self.timeout if self.timeout is not None else min(DEFAULT_TIMEOUT_S, self.every)


class ServerMetricsSetting(FrozenModel):
    """Mixin of every provider type: the optional ``server_metrics:`` block."""

    server_metrics: ServerMetrics | None = Field(
        None,
        description="The engine's Prometheus endpoint to scrape during the run: {url, every, "
        "names}.",
    )

    @model_validator(mode="after")
    def _url_given(self) -> ServerMetricsSetting:
        # Only lens's own simulator has an address lens knows before the run.
        given = self.server_metrics
        if given is not None and given.url is None and getattr(self, "type", None) != "simulated":
            raise FieldError(
                "server_metrics: missing required field 'url' (the engine's metrics endpoint, "
                "e.g. http://127.0.0.1:8080/metrics)",
                "server_metrics",
            )
        return self

"""Scrape an engine's Prometheus endpoint while the run goes on (a provider's
``server_metrics:``): before each stage, every ``every`` while it runs, and after it.

Each scrape is one GET on a connection of its own (a fresh ``httpx.AsyncClient``, not the
measurement's transports nor their read multiplexer), bounded by the spec's timeout, and
parsed with Prometheus's own text-format parser (``prometheus_client.parser``).  The
scrapes of a stage run in the stage's nursery, so they end with it; their stamps are on the
run clock.  A scrape that fails (refused, timed out, an HTTP error, a body the parser
rejects) is counted and its error kept; it never fails the run.

What is kept (``lens.records``): per stage, how much each counter grew (and each
histogram's or summary's ``_count`` and ``_sum``), increment by increment so that a reset
in the middle is handled (and flagged); per run, every gauge's (and untyped sample's)
series of (t, value).
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from lens.errors import describe
from lens.plan.model import ServerMetricsSpec
from lens.records import (
    CounterDelta,
    CounterKind,
    GaugeSeries,
    Labels,
    ServerMetricsReport,
    StageServerMetrics,
)
from lens.run.clock import RunClock
from lens.urlmask import mask_url

# url, timeout (s) -> the body as text; raises on any failure.
Fetch = Callable[[str, float], Awaitable[str]]
# A metrics page larger than this is not an exposition lens should parse mid-run.
MAX_BODY_BYTES = 16 * 1024 * 1024
SampleKey = tuple[str, Labels]
# The least time a scrape right before a gated stage start (lens run --workers) may take.
MIN_BEFORE_START_S = 0.25


@dataclass(frozen=True, slots=True)
class Exposition:
    """One parsed scrape: counter-like samples (with their kind) and gauge samples."""

    counters: dict[SampleKey, tuple[CounterKind, float]]
    gauges: dict[SampleKey, float]


def wanted(family: str, kind: str, names: tuple[str, ...]) -> bool:
    """Whether a family is kept: every one without ``names``, else those a glob matches,
    a counter's name with or without its ``_total``."""
    if not names:
        return True
    candidates = (family, f"{family}_total") if kind == "counter" else (family,)
    return any(fnmatchcase(c, pattern) for c in candidates for pattern in names)


def parse_exposition(text: str, names: tuple[str, ...] = ()) -> Exposition:
    """The samples lens keeps of a text exposition; raises ``ValueError`` (the parser's) on
    a body that is not one.  Buckets, quantiles, info and state sets are left out (a
    stage's counts and sums say what a latency histogram adds up to), and so are ``_created``
    samples, whatever their type: the creation stamps Python clients write next to each
    counter, as gauges of their own in the 0.0.4 text format."""
    counters: dict[SampleKey, tuple[CounterKind, float]] = {}
    gauges: dict[SampleKey, float] = {}
    # The parser names every counter sample ``<family>_total``, OpenMetrics style, even one
    # the engine exposes without it (llama.cpp's llamacpp:n_tokens_max): keep the name the
    # engine wrote, as its TYPE line gives it.
    bare = {
        parts[2]
        for line in text.splitlines()
        if line.startswith("# TYPE ")
        and len(parts := line.split()) == 4
        and parts[3] == "counter"
        and not parts[2].endswith("_total")
    }
    for family in text_string_to_metric_families(text):
        kind = family.type
        if not wanted(family.name, kind, names):
            continue
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            key = (sample.name, tuple(sorted(sample.labels.items())))
            value = float(sample.value)
            if kind == "counter":
                if family.name in bare and sample.name == f"{family.name}_total":
                    key = (family.name, key[1])
                counters[key] = ("counter", value)
            elif kind in ("histogram", "summary"):
                if sample.name in (f"{family.name}_count", f"{family.name}_sum"):
                    counters[key] = ("histogram" if kind == "histogram" else "summary", value)
            elif kind in ("gauge", "unknown"):
                gauges[key] = value
    return Exposition(counters, gauges)


_SSL: ssl.SSLContext | None = None


def _ssl_context() -> ssl.SSLContext:
    # Built once per process: loading a CA bundle costs tens of ms, far too much per scrape.
    global _SSL  # noqa: PLW0603 - a lazily built constant
    if _SSL is None:
        import certifi  # noqa: PLC0415 - only an https endpoint needs it

        _SSL = ssl.create_default_context(cafile=certifi.where())
    return _SSL


async def http_fetch(url: str, timeout_s: float) -> str:
    """GET ``url`` on a connection of its own; the body, or an exception."""
    verify: ssl.SSLContext | bool = _ssl_context() if url.startswith("https:") else False
    # trust_env=False: no proxy from the environment; an engine's metrics port is local.
    async with httpx.AsyncClient(timeout=timeout_s, trust_env=False, verify=verify) as client:
        response = await client.get(url, headers={"accept": "text/plain"})
        response.raise_for_status()
        if len(response.content) > MAX_BODY_BYTES:
            raise ValueError(f"metrics body larger than {MAX_BODY_BYTES} bytes")
        return response.text


@dataclass(slots=True)
class _Counter:
    kind: CounterKind
    first: float
    last: float
    delta: float = 0.0
    reset: bool = False


@dataclass(slots=True)
class _Stage:
    stage: str
    t_before: int | None = None
    t_after: int | None = None
    scrapes: int = 0
    failed: int = 0
    any_ok: bool = False  # a scrape of the stage succeeded: a sample absent then starts at 0
    counters: dict[SampleKey, _Counter] = field(default_factory=dict)

    def add(self, seen: dict[SampleKey, tuple[CounterKind, float]]) -> None:
        for key, (kind, value) in seen.items():
            c = self.counters.get(key)
            if c is None:
                # New since an earlier scrape of the stage: it was created at 0 meanwhile.
                self.counters[key] = _Counter(kind, value, value, value if self.any_ok else 0.0)
                continue
            if value >= c.last:
                c.delta += value - c.last
            else:
                c.delta += value  # reset: counted again from 0
                c.reset = True
            c.last = value
        self.any_ok = True
        self.scrapes += 1

    def result(self) -> StageServerMetrics:
        return StageServerMetrics(
            stage=self.stage,
            t_before=self.t_before,
            t_after=self.t_after,
            scrapes=self.scrapes,
            failed=self.failed,
            counters=tuple(
                CounterDelta(
                    name=name,
                    labels=labels,
                    kind=c.kind,
                    before=c.first,
                    after=c.last,
                    delta=c.delta,
                    reset=c.reset,
                )
                for (name, labels), c in sorted(self.counters.items())
            ),
        )


class ServerMetricsScraper:
    """One provider's endpoint over the whole run: ``before`` / ``during`` / ``after`` each
    stage, then ``report``."""

    def __init__(
        self,
        provider: str,
        spec: ServerMetricsSpec,
        clock: RunClock,
        fetch: Fetch = http_fetch,
    ) -> None:
        if spec.url is None:
            raise ValueError(f"provider {provider}: server_metrics has no url")
        self.provider = provider
        self.spec = spec
        self.url: str = spec.url
        self.clock = clock
        self.fetch = fetch
        self.scrapes = 0
        self.failed = 0
        self.last_error: str | None = None
        self._gauges: dict[SampleKey, list[tuple[int, float]]] = {}
        self._stages: list[StageServerMetrics] = []
        self._open: _Stage | None = None

    async def scrape(self, deadline: float | None = None) -> int | None:
        """Scrape once for the open stage; the instant the answer was parsed (run clock),
        None if it failed.  A scrape cancelled with its stage is not counted: it neither
        failed nor answered.  ``deadline`` (trio's clock): a stage starts then."""
        got = await self._scrape(deadline)
        if got is None:
            return None
        t, counters = got
        if self._open is not None:
            self._open.add(counters)
        return t

    async def _scrape(
        self, deadline: float | None
    ) -> tuple[int, dict[SampleKey, tuple[CounterKind, float]]] | None:
        """One scrape: its gauges kept, its failure counted (for the open stage too); its
        instant and counters, or None."""
        timeout = self.spec.timeout_s
        if deadline is not None:
            # Until the stage starts, but never less than MIN_BEFORE_START_S: the stage
            # starts that late rather than lose its books (its lateness is reported).
            timeout = min(timeout, max(deadline - trio.current_time(), MIN_BEFORE_START_S))
        error: str | None = None
        try:
            with trio.fail_after(timeout):
                text = await self.fetch(self.url, timeout)
            parsed = parse_exposition(text, self.spec.names)
        except trio.TooSlowError:
            error = f"timed out after {timeout:.3g}s"
        except Exception as exc:
            error = describe(exc)
        self.scrapes += 1
        if error is not None:
            self.failed += 1
            masked = mask_url(self.url)
            self.last_error = error.replace(self.url, masked) if masked != self.url else error
            if self._open is not None:
                self._open.failed += 1
            return None
        t = self.clock.now_ns()
        for key, value in parsed.gauges.items():
            self._gauges.setdefault(key, []).append((t, value))
        return t, parsed.counters

    async def between(self, stage: str, deadline: float | None = None) -> None:
        """One scrape that closes the open stage and opens ``stage`` (it counts in both):
        worker 0 scrapes between two units in the moment before the next one starts."""
        closing = self._open
        got = await self._scrape(deadline)
        if closing is not None and got is not None:
            closing.t_after = got[0]
            closing.add(got[1])
        self.end_stage()
        opened = self._open = _Stage(stage)
        if got is None:
            opened.failed += 1
        else:
            opened.t_before = got[0]
            opened.add(got[1])

    async def before(self, stage: str, deadline: float | None = None) -> None:
        """Open ``stage`` (closing one left open) and scrape once before it starts."""
        self.end_stage()
        self._open = _Stage(stage)
        self._open.t_before = await self.scrape(deadline)

    async def during(self, t_start_ns: int) -> None:
        """Scrape every interval from ``t_start_ns`` (absolute times on the run clock)
        until cancelled; a scrape that overruns its interval skips the ticks it missed (the
        next one due is taken, a tick due right now included)."""
        every_ns = round(self.spec.every_s * 1e9)
        k = 1
        while True:
            await trio.sleep_until(self.clock.at_ns(t_start_ns + k * every_ns))
            await self.scrape()
            elapsed = self.clock.now_ns() - t_start_ns
            k = max(k + 1, -(-elapsed // every_ns))

    async def after(self, deadline: float | None = None) -> None:
        """Scrape once after the stage, and close it."""
        stage = self._open
        try:
            t = await self.scrape(deadline)
            if stage is not None:
                stage.t_after = t
        finally:
            self.end_stage()

    def end_stage(self) -> None:
        """Close the open stage (also when it was cut off before its last scrape)."""
        if self._open is not None:
            self._stages.append(self._open.result())
            self._open = None

    def report(self) -> ServerMetricsReport:
        self.end_stage()
        return ServerMetricsReport(
            provider=self.provider,
            url=mask_url(self.url),
            every_s=self.spec.every_s,
            names=self.spec.names,
            scrapes=self.scrapes,
            failed=self.failed,
            last_error=self.last_error,
            stages=tuple(self._stages),
            gauges=tuple(
                GaugeSeries(name, labels, tuple(points))
                for (name, labels), points in sorted(self._gauges.items())
            ),
        )

"""lens monitor against real sockets: the simulator, a closed port, a 429 storm and a
server that accepts and never answers; /metrics scraped over HTTP and parsed with
Prometheus's own parser."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from lens.monitor.service import restore
from lens.monitor.store import CycleStore
from lens.records import ErrorClass
from tests.monitor.conftest import make_service, planned, samples, scenario_text

pytestmark = pytest.mark.slow
SERIES = {"scenario": "mon", "stage": "probe", "provider": "p"}


async def test_several_cycles_served_as_prometheus_families_with_counters_growing(
    tmp_path: Path,
) -> None:
    with planned(tmp_path / "s.yaml", scenario_text()) as (plan, config, live):
        run = make_service(plan, config, live)
        async with trio.open_nursery() as nursery:
            await nursery.start(run.service.main)
            assert (await run.get("/results/latest"))[0] == 404  # before the first cycle
            await run.until_cycles(2)
            first = await run.metrics()
            await run.until_cycles(3)
            second = await run.metrics()
            status, _, body = await run.get("/healthz")
            results = await run.results()
            windows = await run.get("/results/windows")
            missing = await run.get("/nope")
            run.service.request_stop("test")
    assert (status, body) == (200, b"ok\n")
    assert missing[0] == 404
    assert results["scenario"] == "mon"
    assert windows[0] == 200
    assert b'"1m"' in windows[2]

    ok_1 = samples(first, "lens_monitor_requests_total", status="ok", **SERIES)
    ok_2 = samples(second, "lens_monitor_requests_total", status="ok", **SERIES)
    assert ok_1[0] >= 8
    assert ok_2[0] >= ok_1[0] + 4  # counters grow cycle after cycle
    assert samples(second, "lens_monitor_cycles_total", outcome="pass")[0] >= 3
    for outcome in ("sla_failed", "inconclusive", "deadline", "interrupted", "lens_failed"):
        assert samples(second, "lens_monitor_cycles_total", outcome=outcome) == [0]
    for cls in ErrorClass:
        assert samples(
            second, "lens_monitor_request_errors_total", error_class=cls.value, **SERIES
        ) == [0]
    assert samples(second, "lens_monitor_output_tokens_total", model="lens-sim", **SERIES)[0] > 0
    # Histograms: fixed buckets, cumulative, +Inf equal to _count.
    for name in ("ttft", "e2e", "itl"):
        buckets = samples(second, f"lens_monitor_{name}_seconds_bucket", **SERIES)
        assert buckets == sorted(buckets)
        count = samples(second, f"lens_monitor_{name}_seconds_count", **SERIES)
        inf = samples(second, f"lens_monitor_{name}_seconds_bucket", le="+Inf", **SERIES)
        assert inf == count
        assert count[0] > 0
    assert samples(second, "lens_monitor_ttft_seconds_count", **SERIES)[0] == ok_2[0]
    # The windows: quantiles of the cycles' sketches, and the error ratio.
    for window in ("1m", "1h"):
        p99 = samples(second, "lens_monitor_window_ttft_seconds", window=window, quantile="0.99")
        assert p99
        assert 0.02 <= p99[0] < 2
        assert samples(second, "lens_monitor_window_error_ratio", window=window, **SERIES) == [0]
    assert samples(second, "lens_monitor_window_cycles", window="1m")[0] >= 3
    # The monitor itself, and the last cycle's exporter families.
    assert samples(second, "lens_monitor_healthy") == [1]
    assert samples(second, "lens_monitor_last_success_timestamp_seconds", provider="p")
    assert samples(second, "lens_monitor_cycle_duration_seconds_count")[0] >= 3
    assert samples(second, "lens_sla_verdict", sla="ttft.p50 < 2s") == [1]
    assert samples(second, "lens_ttft_seconds", quantile="0.5", **SERIES)
    # Bounded labels: nothing carries a prompt or a request id.
    labels = {k for fam in second.values() for _, got, _ in fam for k in got}
    assert labels <= {
        "scenario", "stage", "provider", "model", "status", "error_class", "window",
        "quantile", "le", "outcome", "sla", "kind",
    }  # fmt: skip


async def test_an_outage_is_measured_as_connect_errors_and_never_stops_the_monitor(
    tmp_path: Path,
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = (
        f"{{type: openai-compatible, base_url: 'http://127.0.0.1:{port}/v1', model: m, api_key: k}}"
    )
    with planned(tmp_path / "s.yaml", scenario_text(down)) as (plan, config, live):
        run = make_service(plan, config, live)
        async with trio.open_nursery() as nursery:
            await nursery.start(run.service.main)
            await run.until_cycles(3)
            metrics = await run.metrics()
            run.service.request_stop("test")
    series = {"scenario": "mon", "stage": "probe", "provider": "p", "model": "m"}
    assert (
        samples(metrics, "lens_monitor_request_errors_total", error_class="connect", **series)[0]
        >= 12
    )
    assert samples(metrics, "lens_monitor_requests_total", status="ok", **series) == [0]
    assert samples(metrics, "lens_monitor_window_error_ratio", window="1m", **series) == [1]
    assert samples(metrics, "lens_monitor_last_success_timestamp_seconds", provider="p") == []
    assert samples(metrics, "lens_monitor_window_ttft_seconds", window="1m") == []
    assert samples(metrics, "lens_monitor_healthy") == [1]  # the monitor is fine


async def test_a_429_storm_is_counted_by_class(tmp_path: Path) -> None:
    storm = "{type: simulated, ttft: 20ms, itl: 2ms, output_tokens: 8, errors: {rate_429: 100%}}"
    text = scenario_text(storm, sla="  - error_rate < 50%\n")
    with planned(tmp_path / "s.yaml", text) as (plan, config, live):
        run = make_service(plan, config, live)
        async with trio.open_nursery() as nursery:
            await nursery.start(run.service.main)
            await run.until_cycles(2)
            metrics = await run.metrics()
            run.service.request_stop("test")
    assert (
        samples(metrics, "lens_monitor_request_errors_total", error_class="http_429", **SERIES)[0]
        >= 8
    )
    assert samples(metrics, "lens_monitor_cycles_total", outcome="sla_failed")[0] >= 2
    assert samples(metrics, "lens_sla_verdict") == [0]


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A server that accepts (the kernel's backlog does) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield s.getsockname()[1]


async def test_a_hung_provider_cycle_ends_at_its_deadline_as_cancelled_requests(
    tmp_path: Path, silent_server: int
) -> None:
    hung = (
        f"{{type: openai-compatible, base_url: 'http://127.0.0.1:{silent_server}/v1', "
        "model: m, api_key: k}"
    )
    text = scenario_text(hung, monitor="{every: 2s, cycle_deadline: 600ms, jitter: 0%}")
    with planned(tmp_path / "s.yaml", text) as (plan, config, live):
        run = make_service(plan, config, live)
        async with trio.open_nursery() as nursery:
            await nursery.start(run.service.main)
            await run.until_cycles(2)
            metrics = await run.metrics()
            run.service.request_stop("test")
    series = {"scenario": "mon", "stage": "probe", "provider": "p", "model": "m"}
    assert samples(metrics, "lens_monitor_cycles_total", outcome="deadline")[0] >= 2
    # Each cycle ended on time: the deadline plus building its results, not the 30 s timeout.
    durations = samples(metrics, "lens_monitor_cycle_duration_seconds_sum")
    count = samples(metrics, "lens_monitor_cycle_duration_seconds_count")
    assert durations[0] / count[0] < 0.6 + 1.5
    assert samples(metrics, "lens_monitor_requests_total", status="cancelled", **series)[0] >= 4
    assert (
        samples(metrics, "lens_monitor_request_errors_total", error_class="cancelled", **series)[0]
        >= 4
    )
    assert "deadline in" in run.log.getvalue()


async def test_a_restart_with_a_store_keeps_the_windows_and_the_last_results(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "store"
    with planned(tmp_path / "s.yaml", scenario_text()) as (plan, config, live):
        store = CycleStore(folder, max_age_s=3600, max_cycles=100)
        run = make_service(plan, config, live, store)
        async with trio.open_nursery() as nursery:
            await nursery.start(run.service.main)
            await run.until_cycles(2)
            run.service.request_stop("test")
        before = run.service.state
        window_before = before.window_view(before.last_cycle_at or 0)["1h"]
        requests_before = sum(p.requests for p in window_before.values())

        again_store = CycleStore(folder, max_age_s=3600, max_cycles=100)
        again = make_service(plan, config, live, again_store)
        restore(again.service.state, again_store, again.log)
        async with trio.open_nursery() as nursery:
            await nursery.start(again.service.main)
            # At most one new cycle in yet: the windows, last success and latest results.
            metrics = await again.metrics()
            results = await again.results()
            again.service.request_stop("test")
    assert requests_before >= 8
    assert samples(metrics, "lens_monitor_window_requests", window="1h", **SERIES)[0] >= (
        requests_before
    )
    assert samples(metrics, "lens_monitor_last_success_timestamp_seconds", provider="p")
    assert results["scenario"] == "mon"
    # Counters restart from 0 in a new process (documented; Prometheus reads a reset).
    assert samples(metrics, "lens_monitor_cycles_total", outcome="pass")[0] <= 1
    assert "reloaded" in again.log.getvalue()
    assert again.service.state.cycle_number >= 2


async def test_a_dns_failure_is_measured_as_connect_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The name fails in lens's resolver call itself: no query leaves the machine.
    import trio._highlevel_open_tcp_stream as opener  # noqa: PLC0415

    real = trio.socket.getaddrinfo  # what the opener imported under that name

    async def resolve(host: object, *args: object, **kwargs: object) -> object:
        if host in ("no-such-provider.invalid", b"no-such-provider.invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return await real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(opener, "getaddrinfo", resolve)
    nowhere = (
        "{type: openai-compatible, base_url: 'http://no-such-provider.invalid/v1', "
        "model: m, api_key: k}"
    )
    with planned(tmp_path / "s.yaml", scenario_text(nowhere)) as (plan, config, live):
        run = make_service(plan, config, live)
        async with trio.open_nursery() as nursery:
            await nursery.start(run.service.main)
            await run.until_cycles(2)
            metrics = await run.metrics()
            run.service.request_stop("test")
    series = {"scenario": "mon", "stage": "probe", "provider": "p", "model": "m"}
    assert (
        samples(metrics, "lens_monitor_request_errors_total", error_class="connect", **series)[0]
        >= 8
    )
    assert samples(metrics, "lens_monitor_cycles_total", outcome="lens_failed") == [0]


async def test_each_cycle_is_pushed_and_a_failed_push_is_counted_not_fatal(
    tmp_path: Path,
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    textfile = tmp_path / "lens.prom"
    with planned(tmp_path / "s.yaml", scenario_text()) as (plan, config, live):
        from lens.monitor.service import pipeline_cycle  # noqa: PLC0415
        from lens.redact import Redactor  # noqa: PLC0415
        from lens.targets import parse_target  # noqa: PLC0415

        targets = [
            parse_target(f"prometheus={textfile}"),
            parse_target(f"prometheus=http://127.0.0.1:{closed}?job=mon"),
        ]
        run = make_service(plan, config, live)
        run.service.cycle = pipeline_cycle(plan, live, Redactor.for_plan(plan), targets)
        async with trio.open_nursery() as nursery:
            await nursery.start(run.service.main)
            await run.until_cycles(2, timeout_s=60)
            metrics = await run.metrics()
            run.service.request_stop("test")
    assert "lens_sla_verdict" in textfile.read_text()
    assert samples(metrics, "lens_monitor_export_failures_total", kind="prometheus")[0] >= 2
    assert samples(metrics, "lens_monitor_cycles_total", outcome="pass")[0] >= 2
    assert "export failed" in run.log.getvalue()

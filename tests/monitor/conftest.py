"""Shared set-up of the monitor's real-socket tests: a scenario, its plan and live
providers, and a service running on the test's own trio loop."""

from __future__ import annotations

import io
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trio
from prometheus_client.parser import text_string_to_metric_families

from lens import api
from lens.monitor.service import (
    MonitorConfig,
    MonitorService,
    monitored_scenario,
    pipeline_cycle,
    resolve_config,
)
from lens.monitor.state import MonitorState
from lens.monitor.store import CycleStore
from lens.plan.model import Plan, ProviderSpec
from lens.redact import Redactor
from lens.run.simulators import live_providers

LENIENT = "integrity: {max_cpu: 100%, max_loop_lag: 10s}\n"
SIM = "{type: simulated, ttft: 20ms, itl: 2ms, output_tokens: 8}"


def scenario_text(
    provider: str = SIM,
    *,
    monitor: str = "{every: 1s, jitter: 0%, windows: [1m, 1h]}",
    load: str = "  - {id: probe, pattern: concurrency, concurrency: 2, requests: 4}\n",
    sla: str = "  - ttft.p50 < 2s\n",
    timeout: str = "30s",
) -> str:
    return (
        f"version: 1\nname: mon\ndefaults: {{timeout: {timeout}}}\n"
        f"providers:\n  p: {provider}\n"
        "prompts:\n  - {id: q, messages: [{role: user, content: hi}]}\n"
        f"load:\n{load}sla:\n{sla}monitor: {monitor}\n{LENIENT}"
    )


@dataclass
class Running:
    service: MonitorService
    log: io.StringIO

    @property
    def url(self) -> str:
        assert self.service.address is not None
        host, port = self.service.address
        return f"http://{host}:{port}"

    async def until_cycles(self, n: int, timeout_s: float = 30.0) -> None:
        with trio.fail_after(timeout_s):
            while self.service.state.cycle_number < n:
                await trio.sleep(0.02)

    async def get(self, path: str) -> tuple[int, str, bytes]:
        def fetch() -> tuple[int, str, bytes]:
            try:
                with urllib.request.urlopen(self.url + path, timeout=10) as resp:
                    return resp.status, resp.headers["Content-Type"], resp.read()
            except urllib.error.HTTPError as err:
                return err.code, err.headers["Content-Type"], err.read()

        return await trio.to_thread.run_sync(fetch)

    async def metrics(self) -> dict[str, list[tuple[str, dict[str, str], float]]]:
        """Every sample by family name, parsed by Prometheus's own text parser."""
        status, ctype, body = await self.get("/metrics")
        assert status == 200
        assert ctype == "text/plain; version=0.0.4; charset=utf-8"
        out: dict[str, list[tuple[str, dict[str, str], float]]] = {}
        for fam in text_string_to_metric_families(body.decode()):
            out[fam.name] = [(s.name, dict(s.labels), s.value) for s in fam.samples]
        return out

    async def results(self) -> dict[str, object]:
        status, _, body = await self.get("/results/latest")
        assert status == 200
        doc: dict[str, object] = json.loads(body)
        return doc


@contextmanager
def planned(
    path: Path, text: str, **flags: str
) -> Iterator[tuple[Plan, MonitorConfig, dict[str, ProviderSpec]]]:
    path.write_text(text, encoding="utf-8")
    scenario = api.load_scenario(path)
    config = resolve_config(scenario, listen="127.0.0.1:0", **flags)  # type: ignore[arg-type]
    plan = api.compile_plan(monitored_scenario(scenario))
    with live_providers(plan) as live:
        yield plan, config, dict(live)


def make_service(
    plan: Plan,
    config: MonitorConfig,
    live: dict[str, ProviderSpec],
    store: CycleStore | None = None,
) -> Running:
    state = MonitorState(
        plan.name,
        every_s=config.every_s,
        deadline_s=config.deadline_s,
        windows_s=config.windows_s,
        started_at=time.time(),
    )
    log = io.StringIO()
    service = MonitorService(
        config,
        state,
        pipeline_cycle(plan, live, Redactor.for_plan(plan)),
        store=store,
        log=log,
        handle_signals=False,
    )
    return Running(service, log)


def samples(
    metrics: dict[str, list[tuple[str, dict[str, str], float]]], name: str, **labels: str
) -> list[float]:
    """Values of the samples named ``name`` (a family, or ``<family>_bucket`` etc.) whose
    labels include ``labels``."""
    family = name
    for suffix in ("_bucket", "_count", "_sum", "_total"):
        if name.endswith(suffix) and name not in metrics:
            family = name[: -len(suffix)]
            break
    return [
        value
        for sample, got, value in metrics.get(family, [])
        if sample == name and all(got.get(k) == v for k, v in labels.items())
    ]

"""A real ``lens monitor`` on the simulator and a real Prometheus scraping it.

Both are started once per session on free loopback ports, polled until ready (bounded) and
always terminated.  Without the ``prometheus`` binary (Debian package prometheus;
``tools/install-test-servers`` installs it, so CI never skips) the tests needing it skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.deploy.promql import RULES
from tests.export.servers import free_port, stop_process

READY_TIMEOUT_S = 30.0
SCRAPE_INTERVAL_S = 1

# Two simulated providers, both priced: p always answers, q answers half of its probes with
# a 429 (so the error families, the burn-rate alert and the cost of failed requests have
# data).  Cycles every 2 s: several in the test's few seconds, and far enough apart that
# "no cycle for 2 intervals + deadline" (LensMonitorStale) never trips on a loaded machine.
MONITOR_SCENARIO = """\
version: 1
name: mon
defaults: {timeout: 30s}
providers:
  p: {type: simulated, ttft: 20ms, itl: 2ms, output_tokens: 8, price: {input: 1, output: 2}}
  q:
    type: simulated
    ttft: 40ms
    itl: 3ms
    output_tokens: 8
    price: {input: 3, output: 15}
    errors: {rate_429: 50%}
prompts:
  - {id: q, messages: [{role: user, content: hi}]}
load:
  - {id: probe, pattern: concurrency, concurrency: 2, requests: 6}
sla:
  - ttft.p50 < 2s
monitor: {every: 2s, jitter: 0%, windows: [1m, 1h]}
integrity: {max_cpu: 100%, max_loop_lag: 10s}
"""


@dataclass(frozen=True)
class Process:
    url: str
    log: Path


@pytest.fixture(scope="session")
def lens_monitor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """``lens monitor`` as a subprocess, its address read from its stderr line."""
    root = tmp_path_factory.mktemp("monitor")
    scenario = root / "monitor.yaml"
    scenario.write_text(MONITOR_SCENARIO, encoding="utf-8")
    log = root / "stderr.txt"
    lens = Path(sys.executable).parent / "lens"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [str(lens), "monitor", str(scenario), "--listen", "127.0.0.1:0"],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not (match := re.search(r"listening on (http://[\d.]+:\d+)", log.read_text())):
            if proc.poll() is not None:
                pytest.fail(f"lens monitor exited with {proc.returncode}: {log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"lens monitor not listening after {READY_TIMEOUT_S}s")
            time.sleep(0.05)
        yield Process(match.group(1), log)
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def prometheus(
    lens_monitor: Process, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    """Prometheus scraping the monitor every second and evaluating deploy/'s rules every
    second (job ``lens-monitor``, as the ServiceMonitor's Service names it)."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    root = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": f"{SCRAPE_INTERVAL_S}s",
            "scrape_timeout": f"{SCRAPE_INTERVAL_S}s",
            "evaluation_interval": "1s",
        },
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": "lens-monitor",
                "static_configs": [{"targets": [lens_monitor.url.removeprefix("http://")]}],
            }
        ],
    }
    (root / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    args = [
        binary,
        f"--config.file={root / 'prometheus.yml'}",
        f"--storage.tsdb.path={root / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    url = f"http://127.0.0.1:{port}"
    log = root / "log.txt"
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"prometheus exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(url + "/-/ready", timeout=1.0).is_success:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prometheus not ready after {READY_TIMEOUT_S}s: {log.read_text()}")
            time.sleep(0.1)
        yield Process(url, log)
    finally:
        stop_process(proc)

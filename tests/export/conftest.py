"""Real Pushgateway, InfluxDB 1.x and VictoriaMetrics servers on free loopback ports.

Each is started once per session, polled until ready (bounded), and always terminated.
Without its binary (Debian packages prometheus-pushgateway, influxdb, victoria-metrics;
``.ci/run`` installs them) the tests that need it are skipped.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.export.servers import Server, free_port, stop_process

READY_TIMEOUT_S = 30.0


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install {_PACKAGES[name]})")
    return path


_PACKAGES = {
    "prometheus-pushgateway": "prometheus-pushgateway",
    "influxd": "influxdb",
    "victoria-metrics": "victoria-metrics",
}


def _serve(args: list[str], url: str, ready_path: str, log: Path) -> Iterator[Server]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{args[0]} exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(url + ready_path, timeout=1.0).is_success:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{args[0]} not ready after {READY_TIMEOUT_S}s: {log.read_text()[-2000:]}"
                )
            time.sleep(0.1)
        yield Server(url, log)
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    binary = _binary("prometheus-pushgateway")
    port = free_port()
    log = tmp_path_factory.mktemp("pushgateway") / "log.txt"
    args = [binary, f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    yield from _serve(args, f"http://127.0.0.1:{port}", "/-/ready", log)


INFLUXDB_CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{root}/meta"
[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:{http_port}"
  log-enabled = false
[ifql]
  enabled = false
[continuous_queries]
  enabled = false
[logging]
  level = "warn"
"""


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    binary = _binary("influxd")
    root = tmp_path_factory.mktemp("influxdb")
    http_port = free_port()
    config = root / "influxdb.conf"
    config.write_text(INFLUXDB_CONFIG.format(root=root, rpc_port=free_port(), http_port=http_port))
    url = f"http://127.0.0.1:{http_port}"
    yield from _serve([binary, "-config", str(config)], url, "/ping", root / "log.txt")


@pytest.fixture(scope="session")
def victoria_metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    binary = _binary("victoria-metrics")
    root = tmp_path_factory.mktemp("victoria-metrics")
    port = free_port()
    args = [
        binary,
        f"-httpListenAddr=127.0.0.1:{port}",
        f"-storageDataPath={root / 'data'}",
        "-loggerLevel=ERROR",
        "-retentionPeriod=100y",  # hand-made results may be dated in the past
    ]
    yield from _serve(args, f"http://127.0.0.1:{port}", "/health", root / "log.txt")

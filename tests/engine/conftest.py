"""A real inference engine for the tests of this folder: llama.cpp's ``llama-server`` with
Gemma 3 270M (Q4_K_M), as ``make real-engine`` (``tools/real-engine``) builds them into a cache
outside the repository.

``engine`` is session-scoped: one server for every test that asks for it, on a free loopback
port, with 4 slots (``-np 4``), its Prometheus endpoint on (``--metrics``) and the Gemma turn
template; polled until its model is loaded (``/health`` 200), always stopped at the end.
Other tests reuse it through ``Engine.base_url`` (OpenAI-compatible, ``/v1``), ``Engine.model``
and ``Engine.metrics_url``.

Without the build the tests skip, saying so; in CI (``CI=true``), where ``make test`` builds
it first, a missing engine fails them instead: a green run has run them.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.export.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "tools" / "real-engine"
CHAT_TEMPLATE = ROOT / "tools" / "gemma-turns.jinja"
MODEL_FILE = "gemma3-270m-q4_k_m.gguf"
SLOTS = 4
CONTEXT = 4096  # shared by the slots: 1,024 tokens each, ample for these prompts
READY_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class Engine:
    """A running llama-server, for scenarios: ``type: openai-compatible``."""

    base_url: str  # http://127.0.0.1:PORT/v1
    metrics_url: str  # its Prometheus text endpoint
    model: str
    slots: int
    log: Path  # the server's output, quoted when it fails

    @property
    def root_url(self) -> str:
        return self.base_url.removesuffix("/v1")


def engine_cache() -> Path:
    """Where tools/real-engine puts the build (LENS_ENGINE_CACHE, else ~/.cache/...)."""
    configured = os.environ.get("LENS_ENGINE_CACHE")
    return Path(configured) if configured else Path.home() / ".cache/lens/real-engine"


def _missing(reason: str) -> None:
    message = f"the real engine is not built ({reason}): run `make real-engine`"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI builds it in `make test` and must run these tests")
    pytest.skip(message)


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"llama-server exited with {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass  # not listening yet, or loading the model (503)
        if time.monotonic() > deadline:
            pytest.fail(
                f"llama-server not ready after {READY_TIMEOUT_S}s: {log.read_text()[-3000:]}"
            )
        time.sleep(0.2)


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    cache = engine_cache()
    server, model = cache / "bin" / "llama-server", cache / MODEL_FILE
    if not server.is_file():
        _missing(f"no {server}")
    if not model.is_file():
        _missing(f"no {model}")
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "log.txt"
    args = [
        str(server),
        "--model", str(model),
        "--alias", "gemma3-270m",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--parallel", str(SLOTS),
        "--ctx-size", str(CONTEXT),
        "--threads", "1",  # the ggml pool spins: 2 threads on 2 shared cores starve lens
        "--metrics",
        "--jinja",
        "--chat-template-file", str(CHAT_TEMPLATE),
        "--no-webui",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, url, log)
        yield Engine(f"{url}/v1", f"{url}/metrics", "gemma3-270m", SLOTS, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

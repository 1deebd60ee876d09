"""Run lens-sim as a child process, so measurements cross a real socket and a real
process boundary: the client's event loop never shares a core's time slice with the
simulator's.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from lens.errors import LensError
from lens.plan.model import SimSettings
from lens.sim.config import (
    DEFAULT_MODEL,
    LISTENING_PREFIX,
    ServerConfig,
    config_to_argv,
    validate_settings,
)

# The directory holding the ``lens`` package, put first on the child's PYTHONPATH so it
# runs the same lens as the parent even from an uninstalled checkout.
_LENS_ROOT = str(Path(__file__).resolve().parents[2])


class SimServerError(LensError):
    """The simulator process could not be started."""


class SimServerProcess:
    """``python -m lens.sim`` on 127.0.0.1, started and stopped from synchronous code.

    >>> with SimServerProcess(SimSettings(ttft_s=0.1)) as sim:   # doctest: +SKIP
    ...     client.post(f"{sim.base_url}/chat/completions", ...)
    """

    def __init__(
        self,
        settings: SimSettings,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        model: str = DEFAULT_MODEL,
        startup_timeout_s: float = 10.0,
        stop_grace_s: float = 3.0,
    ) -> None:
        validate_settings(settings)  # fail in the parent, with a traceback that helps
        self.config = ServerConfig(
            settings=settings, host=host, port=port, model=model, exit_on_stdin_eof=True
        )
        self.startup_timeout_s = startup_timeout_s
        self.stop_grace_s = stop_grace_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._url: str | None = None

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-m", "lens.sim", *config_to_argv(self.config)]

    @property
    def url(self) -> str:
        """Root URL, ``http://127.0.0.1:PORT``."""
        if self._url is None:
            raise RuntimeError("the simulator is not running; call start() first")
        return self._url

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as ``base_url``: ``http://127.0.0.1:PORT/v1``.

        Meaningful for the ``openai`` and ``openai-responses`` protocols; clients of the
        others take the root ``url`` (Anthropic, Azure ``azure_endpoint``, Bedrock
        ``endpoint_url``) or ``url + "/v1beta"`` (Gemini).
        """
        return f"{self.url}/v1"

    @property
    def protocol(self) -> str:
        """The wire protocol the server speaks (``SimSettings.protocol``)."""
        return self.config.settings.protocol

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> Self:
        if self._proc is not None:
            raise RuntimeError("the simulator is already started")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_LENS_ROOT, env.get("PYTHONPATH")) if p)
        # stderr goes to a file, not a pipe: nobody reads it while the server runs, and a
        # full pipe would block the child; on failure the file is what we report.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,  # the child exits when this pipe closes (parent death)
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
        )
        try:
            self._url = self._read_url()
        except BaseException:
            self.stop()
            raise
        return self

    def _read_url(self) -> str:
        line = self._read_first_line()
        if not line.startswith(LISTENING_PREFIX):
            raise self._failure(f"unexpected first line {line!r}")
        return line.removeprefix(LISTENING_PREFIX).strip()

    def _read_first_line(self) -> str:
        proc = self._proc
        assert proc is not None
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + self.startup_timeout_s
        data = b""
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in data:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._failure(f"no listening line after {self.startup_timeout_s:g}s")
                if not selector.select(remaining):
                    continue
                piece = os.read(fd, 4096)
                if not piece:
                    try:
                        status = f"exited with status {proc.wait(timeout=self.stop_grace_s)}"
                    except subprocess.TimeoutExpired:  # pragma: no cover - closed stdout, lives
                        status = "closed its stdout"
                    raise self._failure(f"{status} before listening")
                data += piece
        return data.split(b"\n", 1)[0].decode("utf-8", "replace")

    def _failure(self, what: str) -> SimServerError:
        stderr = ""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._stderr is not None:
            self._stderr.seek(0)
            stderr = self._stderr.read().decode("utf-8", "replace").strip()
        detail = f"\n--- lens-sim stderr ---\n{stderr}" if stderr else " (no stderr output)"
        return SimServerError(f"lens-sim {what}: {' '.join(self.argv)}{detail}")

    def stop(self) -> None:
        """Stop the child: SIGTERM, then SIGKILL after the grace period. Idempotent."""
        proc, self._proc, self._url = self._proc, None, None
        if proc is not None:
            # SIGTERM alone, with stdin still open: a single stop request, which the
            # child's signal receiver turns into exit status 0.  Closing stdin as well would
            # start a second shutdown that can restore the default SIGTERM action first.
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=self.stop_grace_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):  # EPIPE from a dead child's stdin
                        pipe.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> Self:
        """Start the child unless ``start()`` already did; ``__exit__`` stops it."""
        return self if self._proc is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

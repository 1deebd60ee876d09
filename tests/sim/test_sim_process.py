"""Flags, the ``python -m lens.sim`` entry point, and the child-process wrapper."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lens.plan.model import SimProtocol, SimSettings
from lens.sim import selfcheck
from lens.sim.config import (
    ServerConfig,
    config_to_argv,
    parse_argv,
    parse_duration,
    settings_to_argv,
    validate_settings,
)
from lens.sim.process import SimServerError, SimServerProcess
from lens.sim.protocol_registry import PROTOCOL_NAMES, get_protocol
from lens.sim.server import main, run_server
from tests.sim.rawhttp import chat_body

# -- flags ------------------------------------------------------------------------------------

_times = st.floats(min_value=0, max_value=1e4, allow_nan=False, allow_infinity=False)
_rates = st.floats(min_value=0, max_value=1 / 3, allow_nan=False)


@given(
    ttft=_times,
    itl=_times,
    tokens=st.integers(0, 10**6),
    jitter=st.floats(min_value=0, max_value=10),
    e429=_rates,
    e500=_rates,
    cut=_rates,
    seed=st.integers(-(2**63), 2**63),
    port=st.integers(0, 65535),
    stdin=st.booleans(),
    protocol=st.sampled_from(PROTOCOL_NAMES),
    capacity=st.none() | st.integers(1, 10**6),
    engine=st.booleans(),
)
def test_settings_round_trip_through_argv(
    ttft: float,
    itl: float,
    tokens: int,
    jitter: float,
    e429: float,
    e500: float,
    cut: float,
    seed: int,
    port: int,
    stdin: bool,
    protocol: SimProtocol,
    capacity: int | None,
    engine: bool,
) -> None:
    settings = SimSettings(
        ttft, itl, tokens, jitter, e429, e500, cut, seed, protocol, capacity, engine
    )
    config = ServerConfig(settings, "127.0.0.1", port, "m-1", exit_on_stdin_eof=stdin)
    assert parse_argv(config_to_argv(config)) == config


def test_protocol_flag_round_trips_as_a_plain_word() -> None:
    argv = settings_to_argv(SimSettings(protocol="openai-responses"))
    assert argv[argv.index("--protocol") + 1] == "openai-responses"  # not repr's quotes
    assert parse_argv(["--protocol", "anthropic"]).settings.protocol == "anthropic"
    assert parse_argv([]).settings.protocol == "openai"
    assert {get_protocol(name).name for name in PROTOCOL_NAMES} == set(PROTOCOL_NAMES)
    with pytest.raises(ValueError, match="unknown protocol"):
        get_protocol("grpc")


def test_every_settings_field_has_a_flag() -> None:
    argv = settings_to_argv(SimSettings())
    flags = {a for a in argv if a.startswith("--")}
    assert len(flags) == len(dataclasses.fields(SimSettings))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("150ms", 0.15),
        ("0.15", 0.15),
        ("0.15s", 0.15),
        (" 2 s ", 2.0),
        ("2m", 120.0),
        ("50us", 50e-6),
        ("50µs", 50e-6),
        ("0", 0.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "fast", "-1ms", "nan", "inf", "1h"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_human_flags() -> None:
    config = parse_argv(["--ttft", "150ms", "--itl-s", "0.02", "--error-429", "0.1", "--port", "9"])
    assert config.settings.ttft_s == 0.15
    assert config.settings.itl_s == 0.02
    assert config.settings.error_429 == 0.1
    assert config.port == 9
    assert not config.exit_on_stdin_eof


@pytest.mark.parametrize(
    "settings",
    [
        SimSettings(ttft_s=-1),
        SimSettings(itl_s=float("inf")),
        SimSettings(jitter=float("nan")),
        SimSettings(output_tokens=-1),
        SimSettings(error_500=1.5),
        SimSettings(error_429=0.6, cut_stream=0.6),
        SimSettings(protocol="grpc"),  # type: ignore[arg-type]
        SimSettings(capacity=0),
    ],
)
def test_validate_settings_rejects(settings: SimSettings) -> None:
    with pytest.raises(ValueError, match=r"must be"):
        validate_settings(settings)


@pytest.mark.parametrize(
    "argv",
    [
        ["--ttft", "soon"],
        ["--error-429", "2"],
        ["--output-tokens", "-3"],
        ["--jitter", "-1"],
        ["--port", "-1"],
        ["--error-429", "0.7", "--error-500", "0.7"],
        ["--protocol", "grpc"],
    ],
)
def test_main_rejects_bad_flags_with_status_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert "error" in capsys.readouterr().err


def test_main_help_is_status_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--output-tokens" in out
    assert "--protocol" in out


# -- run_server in this process -----------------------------------------------------------------


def test_run_server_stops_cleanly_on_sigterm() -> None:
    seen: list[object] = []

    def probe_then_terminate(url: str) -> None:
        seen.append(httpx.get(f"{url}/health").json())
        os.kill(os.getpid(), signal.SIGTERM)  # handled by the server's signal receiver

    def ready(url: str) -> None:
        # Called on the event loop: a blocking client call here would deadlock.
        seen.append(url)
        threading.Thread(target=probe_then_terminate, args=(url,)).start()

    assert run_server(ServerConfig(), ready) == 0
    assert str(seen[0]).startswith("http://127.0.0.1:")
    assert seen[1] == {"status": "ok"}


def test_run_server_exits_when_stdin_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as fake_stdin:
        monkeypatch.setattr(sys, "stdin", fake_stdin)
        config = ServerConfig(exit_on_stdin_eof=True)
        start = time.monotonic()

        def ready(url: str) -> None:
            os.write(write_end, b"ignored\n")  # read and discarded
            os.close(write_end)

        assert run_server(config, ready) == 0
    assert time.monotonic() - start < 5


def test_run_server_treats_keyboard_interrupt_as_a_clean_stop() -> None:
    def ready(url: str) -> None:
        raise KeyboardInterrupt

    assert run_server(ServerConfig(), ready) == 0


def test_run_server_reports_a_busy_port(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert run_server(ServerConfig(port=port), lambda url: None) == 1
    assert "cannot listen" in capsys.readouterr().err


def test_main_prints_the_listening_line(capsys: pytest.CaptureFixture[str]) -> None:
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        assert main(["--port", "0", "--output-tokens", "3"]) == 0
    finally:
        timer.cancel()
    assert capsys.readouterr().out.startswith("lens-sim listening on http://127.0.0.1:")


# -- SimServerProcess ---------------------------------------------------------------------------


def test_process_serves_streams_and_stops_cleanly() -> None:
    started = time.monotonic()
    sim = SimServerProcess(SimSettings(ttft_s=0.01, itl_s=0.001, output_tokens=4))
    with sim:
        # A bound against a start that polls or hangs, not a speed test: a loaded 2-core
        # machine has taken 1.7 s to start the process (an idle one, ~0.3 s).
        assert time.monotonic() - started < 10.0, "startup hung"
        assert sim.base_url.startswith("http://127.0.0.1:")
        assert sim.base_url.endswith("/v1")
        assert sim.pid is not None
        with httpx.Client(base_url=sim.base_url) as client:
            events = []
            with client.stream("POST", "/chat/completions", json=chat_body()) as resp:
                assert resp.status_code == 200
                events = [line for line in resp.iter_lines() if line.startswith("data: ")]
            assert events[-1] == "data: [DONE]"
            usage = json.loads(events[-2][6:])["usage"]
            assert usage["completion_tokens"] == 4
        proc = sim._proc
        assert proc is not None
    assert proc.returncode == 0  # SIGTERM is a clean exit
    sim.stop()  # idempotent
    with pytest.raises(RuntimeError, match="not running"):
        _ = sim.base_url


def test_process_speaks_the_configured_protocol() -> None:
    with SimServerProcess(
        SimSettings(ttft_s=0.0, itl_s=0.0, output_tokens=3, protocol="anthropic")
    ) as sim:
        assert sim.protocol == "anthropic"
        assert "--protocol" in sim.argv
        assert sim.argv[sim.argv.index("--protocol") + 1] == "anthropic"
        with httpx.Client(base_url=sim.url) as client:
            headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
            body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
            with client.stream(
                "POST", "/v1/messages", json={**body, "stream": True}, headers=headers
            ) as resp:
                assert resp.status_code == 200
                names = [line[7:] for line in resp.iter_lines() if line.startswith("event: ")]
            assert names[0] == "message_start"
            assert names[-1] == "message_stop"
            assert names.count("content_block_delta") == 3
            assert client.post("/v1/chat/completions", json=chat_body()).status_code == 404


def test_process_exits_when_its_stdin_closes() -> None:
    sim = SimServerProcess(SimSettings()).start()
    try:
        proc = sim._proc
        assert proc is not None
        assert proc.stdin is not None
        proc.stdin.close()  # what happens when the parent dies
        assert proc.wait(timeout=5) == 0
    finally:
        sim.stop()


def test_process_start_twice_is_an_error() -> None:
    with SimServerProcess(SimSettings()) as sim:
        with pytest.raises(RuntimeError, match="already started"):
            sim.start()
        assert sim.__enter__() is sim  # entering a started server is harmless


def test_process_rejects_invalid_settings_in_the_parent() -> None:
    with pytest.raises(ValueError, match="error_429"):
        SimServerProcess(SimSettings(error_429=2.0))


def test_process_failure_reports_the_child_stderr() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        sim = SimServerProcess(SimSettings(), port=busy.getsockname()[1])
        with pytest.raises(SimServerError, match="cannot listen") as info:
            sim.start()
    assert "exited with status 1" in str(info.value)
    assert sim.pid is None


def test_process_startup_timeout(tmp_path: Path) -> None:
    # A fake "python" that never prints the listening line.
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho starting >&2\nexec sleep 30\n")
    fake.chmod(0o755)
    sim = SimServerProcess(SimSettings(), startup_timeout_s=0.3)
    sim_argv = sim.argv
    assert sim_argv[:3] == [sys.executable, "-m", "lens.sim"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "executable", str(fake))
        with pytest.raises(SimServerError, match="no listening line") as info:
            sim.start()
    assert "starting" in str(info.value)


def test_process_unexpected_first_line(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho hello\nexec sleep 30\n")
    fake.chmod(0o755)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "executable", str(fake))
        with pytest.raises(SimServerError, match="unexpected first line 'hello'"):
            SimServerProcess(SimSettings(), startup_timeout_s=2).start()


def test_process_kill_after_grace(tmp_path: Path) -> None:
    # A child that ignores SIGTERM and stdin EOF must still be stopped.
    fake = tmp_path / "python"
    fake.write_text(
        "#!/bin/sh\ntrap '' TERM\necho 'lens-sim listening on http://127.0.0.1:1'\n"
        "while true; do sleep 0.05; done\n"
    )
    fake.chmod(0o755)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "executable", str(fake))
        sim = SimServerProcess(SimSettings(), stop_grace_s=0.2).start()
    proc = sim._proc
    assert proc is not None
    sim.stop()
    assert proc.returncode == -signal.SIGKILL


def test_module_entry_point_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "lens.sim", "--help"], capture_output=True, text=True, check=True
    )
    assert "--ttft" in out.stdout


# -- the self-check script (tiny load, loose limits: a smoke test, not a benchmark) ----------


@pytest.mark.parametrize("protocol", ["openai", "gemini"])
def test_selfcheck_smoke(capsys: pytest.CaptureFixture[str], protocol: str) -> None:
    argv = [
        "--protocol", protocol,
        "--streams", "4", "--tokens", "5", "--ttft", "5ms", "--itl", "5ms",
        "--connections", "2", "--throughput-tokens", "8", "--seconds", "0.2",
        "--max-p99-late-ms", "1000", "--max-server-cpu", "100",
        "--min-tokens-per-s", "1e12",  # impossible: exercises the FAIL verdict
    ]  # fmt: skip
    assert selfcheck.main(argv) == 1
    out = capsys.readouterr().out
    assert "token lateness vs server schedule" in out
    assert f"throughput ({protocol})" in out
    assert "tokens/s" in out
    verdict = out.rstrip().splitlines()[-1]
    assert verdict.startswith("FAIL")
    assert "steady server CPU <= 10000%: yes" in verdict

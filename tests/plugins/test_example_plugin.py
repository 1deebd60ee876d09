"""The example plugin (examples/plugin), installed by pip and used from a scenario.

pip installs it (no dependencies: the lens under test is the one it plugs into) into a
directory of its own; lens runs in a subprocess with that directory on PYTHONPATH, so
``importlib.metadata`` finds the plugin's dist-info and its entry points exactly as in a
venv it was installed into, and discovery happens fresh, once, in that process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.plugins.ndjson_server import FIRST_TOKEN_DELAY_S, INPUT_TOKENS, TOKENS, ndjson_server
from tests.timing import EARLY_S, LOADED_LATE_S

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
LENS = Path(sys.executable).parent / "lens"
REQUESTS = 4


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(site),
            str(REPO / "examples" / "plugin"),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert (site / "lens_example_plugin").is_dir()
    return site


def lens(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [str(LENS), *args],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def scenario(port: int, *, temperature: str = "0.2", export: str = "out/summary.txt") -> str:
    return f"""\
version: 1
name: plugin-demo
defaults:
  max_tokens: 16
providers:
  local:
    type: ndjson-tokens
    base_url: http://127.0.0.1:{port}/v1
    model: tiny
    temperature: {temperature}
prompts:
  - id: hi
    messages:
      - {{role: user, content: "Say hello"}}
load:
  - id: steady
    pattern: burst
    requests: {REQUESTS}
export:
  - summary-line={export}
"""


def test_validate_checks_the_plugins_fields_with_positions(
    plugin_site: Path, tmp_path: Path
) -> None:
    (tmp_path / "ok.yaml").write_text(scenario(9), encoding="utf-8")
    (tmp_path / "bad.yaml").write_text(scenario(9, temperature="5"), encoding="utf-8")

    ok = lens(plugin_site, "validate", "ok.yaml", cwd=tmp_path)
    bad = lens(plugin_site, "validate", "bad.yaml", cwd=tmp_path)

    assert ok.returncode == 0, ok.stderr
    assert bad.returncode == 2
    assert bad.stderr == (
        "error: bad.yaml:10:18: providers.local.temperature: must be at most 2, got 5\n"
    )
    assert "Traceback" not in bad.stderr


def test_without_the_plugin_its_type_is_unknown(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text(scenario(9), encoding="utf-8")

    out = lens(tmp_path / "empty-site", "validate", "ok.yaml", cwd=tmp_path)

    assert out.returncode == 2
    assert "ndjson-tokens" in out.stderr + out.stdout
    assert "summary-line" in out.stderr + out.stdout  # nor is the exporter kind


def test_schema_holds_the_plugins_fields_and_kind(plugin_site: Path, tmp_path: Path) -> None:
    out = lens(plugin_site, "schema", cwd=tmp_path)

    assert out.returncode == 0, out.stderr
    schema = json.loads(out.stdout)
    settings = schema["$defs"]["NdjsonTokensSettings"]
    assert settings["properties"]["type"]["const"] == "ndjson-tokens"
    assert settings["properties"]["temperature"]["description"].startswith("Sampling")
    assert {"base_url", "model", "api_key", "path"} <= set(settings["properties"])
    assert "summary-line" in schema["properties"]["export"]["items"]["pattern"]


def test_run_measures_through_the_plugin_and_exports_with_it(
    plugin_site: Path, tmp_path: Path
) -> None:
    with ndjson_server() as server:
        port = server.server_address[1]
        (tmp_path / "s.yaml").write_text(scenario(port), encoding="utf-8")
        out = lens(plugin_site, "run", "s.yaml", "-o", "results.json", "-q", cwd=tmp_path)

    assert out.returncode == 0, out.stderr + out.stdout
    assert len(server.requests) == REQUESTS
    path, headers, body = server.requests[0]
    assert path == "/v1/generate"
    assert headers["accept"] == "application/x-ndjson"
    assert body == {
        "model": "tiny",
        "messages": [{"role": "user", "content": "Say hello"}],
        "max_tokens": 16,
        "temperature": 0.2,
    }
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    (summary,) = results["summaries"]
    assert (summary["provider"], summary["model"]) == ("local", "tiny")
    assert (summary["requests"], summary["ok"]) == (REQUESTS, REQUESTS)
    assert summary["output_tokens"] == REQUESTS * len(TOKENS)  # the server's usage counts
    assert summary["token_sources"] == {"usage": REQUESTS}
    ttft = summary["metrics"]["ttft"]
    assert ttft["n"] == REQUESTS
    assert ttft["unit"] == "ms"
    # Never early (the server's delay is a floor); late by at most a few stalls of a loaded
    # machine: the burst opens its four connections at once, to a server of threads.
    assert (FIRST_TOKEN_DELAY_S - EARLY_S) * 1e3 <= ttft["min"] <= ttft["p50"]
    assert ttft["p50"] <= (FIRST_TOKEN_DELAY_S + 4 * LOADED_LATE_S) * 1e3, ttft
    for record in results["records"]:
        assert (record["input_tokens"], record["chunks"]) == (INPUT_TOKENS, len(TOKENS))
        assert record["chunk_tokens"] == [1] * len(TOKENS)
    line = (tmp_path / "out" / "summary.txt").read_text(encoding="utf-8")
    assert line.startswith(f"plugin-demo steady local requests={REQUESTS} ok={REQUESTS} ")
    assert line.endswith(f"output_tokens={REQUESTS * len(TOKENS)}\n")

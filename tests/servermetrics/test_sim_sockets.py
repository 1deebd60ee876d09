"""server_metrics against lens's simulator over real sockets: the whole pipeline (scenario,
plan, run, results JSON), the simulator's GET /metrics in llama.cpp's names as the peer.

Nothing here asserts timing beyond what a loaded CI machine keeps: which values the
counters moved by (exact: what the simulator served) and that the in-flight gauges rose
during a concurrency stage (capacity 2, four clients: two generating, two queued for
most of the stage)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lens.export.results import Results
from lens.pipeline import run_plan
from lens.plan.compile import compile_plan
from lens.plan.model import SimSettings
from lens.scenario import parse_scenario
from lens.sim.process import SimServerProcess

SIMULATED = """\
version: 1
name: sm
providers:
  sim:
    type: simulated
    ttft: 40ms
    itl: 10ms
    output_tokens: 12
    capacity: 2
    server_metrics: {every: 100ms{names}}
prompts:
  - id: a
    messages: [{role: user, content: "What is the capital of France?"}]
  - id: b
    messages: [{role: user, content: "Write a haiku about latency, please."}]
load:
  - {id: conc, pattern: concurrency, concurrency: 4, requests: 16}
  - {id: wave, pattern: burst, requests: 5}
"""


def run(text: str) -> Results:
    plan = compile_plan(parse_scenario(text, file="sm.yaml"), env={})
    report = run_plan(plan, handle_signals=False)
    assert report.failure is None
    # The document as written and read back: what every consumer of results.json sees.
    return Results.model_validate_json(report.results.to_json())


def counters(stage: Any) -> dict[str, Any]:
    return {c.name: c for c in stage.counters}


def test_counter_deltas_are_what_the_simulator_served_and_gauges_rise() -> None:
    results = run(SIMULATED.replace("{names}", ""))
    assert results.exit_code == 0
    (sm,) = results.server_metrics
    assert (sm.provider, sm.failed_scrapes, sm.last_error) == ("sim", 0, None)
    assert sm.url.startswith("http://127.0.0.1:")
    assert sm.url.endswith("/metrics")
    assert [s.stage for s in sm.stages] == ["conc", "wave"]
    for stage in sm.stages:
        records = [r for r in results.records if r.stage == stage.stage]
        assert records
        assert all(r.status == "ok" for r in records)
        got = counters(stage)
        assert got["llamacpp:tokens_predicted_total"].delta == sum(
            r.output_tokens or 0 for r in records
        )
        assert got["llamacpp:prompt_tokens_total"].delta == sum(
            r.input_tokens or 0 for r in records
        )
        duration = got["lens_sim:request_duration_seconds_count"]
        assert (duration.kind, duration.delta) == ("histogram", len(records))
        assert not any(c.reset for c in stage.counters)
        assert stage.before_ms is not None
        assert stage.after_ms is not None
        # Scraped before the stage's window opened, and after it closed.
        (window,) = [w for w in results.stages if w.stage == stage.stage]
        assert stage.before_ms <= window.start_ms <= window.end_ms <= stage.after_ms
    conc = sm.stages[0]
    assert conc.scrapes >= 3  # before, at least one during, after
    gauges = {g.name: g for g in sm.gauges}
    (window,) = [w for w in results.stages if w.stage == "conc"]

    def during(name: str) -> list[float]:
        points = gauges[name].points
        return [v for t, v in points if window.start_ms < t < window.end_ms]

    assert gauges["llamacpp:requests_processing"].points[0][1] == 0  # idle before the run
    assert max(during("llamacpp:requests_processing")) == 2  # capacity: two generate
    assert max(during("llamacpp:requests_deferred")) == 2  # the other two wait
    assert max(during("llamacpp:kv_cache_usage_ratio")) > 0
    # Every scrape the simulator answered is one lens counted (or one in flight when its
    # stage ended, cut off with it and not counted): nobody else scraped it.
    answered = counters(sm.stages[-1])["lens_sim:metrics_scrapes_total"].after
    assert answered is not None
    assert sm.scrapes <= answered <= sm.scrapes + len(sm.stages)


def test_names_keep_only_the_families_they_match() -> None:
    names = ", names: ['llamacpp:requests_*', 'llamacpp:tokens_predicted']"
    results = run(SIMULATED.replace("{names}", names))
    (sm,) = results.server_metrics
    assert sm.names == ("llamacpp:requests_*", "llamacpp:tokens_predicted")
    assert {g.name for g in sm.gauges} == {
        "llamacpp:requests_processing",
        "llamacpp:requests_deferred",
    }
    for stage in sm.stages:
        assert [c.name for c in stage.counters] == ["llamacpp:tokens_predicted_total"]


HOSTED = """\
version: 1
name: sm
providers:
  local:
    type: openai-compatible
    base_url: {base_url}
    model: lens-sim
    server_metrics: {{url: "{metrics}", every: 100ms}}
prompts:
  - id: a
    messages: [{{role: user, content: hi}}]
load:
  - {{id: conc, pattern: concurrency, concurrency: 2, requests: 6}}
"""


def _free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed again: nothing listens there


@pytest.mark.parametrize("endpoint", ["dead", "garbage", "404"])
def test_a_broken_endpoint_never_fails_the_run(endpoint: str, tmp_path: Path) -> None:
    with SimServerProcess(SimSettings(ttft_s=0.02, itl_s=0.005, output_tokens=4)) as sim:
        metrics = {
            "dead": f"http://127.0.0.1:{_free_port()}/metrics",
            # JSON, not an exposition: the parser refuses it.
            "garbage": f"{sim.url}/health",
            "404": f"{sim.url}/not-metrics",
        }[endpoint]
        results = run(HOSTED.format(base_url=sim.base_url, metrics=metrics))
    assert results.exit_code == 0
    assert [r.status for r in results.records] == ["ok"] * 6
    (sm,) = results.server_metrics
    assert sm.scrapes >= 2
    assert sm.failed_scrapes == sm.scrapes
    assert sm.last_error is not None
    expected = {"dead": "ConnectError", "garbage": "ValueError", "404": "HTTPStatusError"}
    assert sm.last_error.startswith(expected[endpoint])
    assert sm.gauges == ()
    (stage,) = sm.stages
    assert (stage.before_ms, stage.after_ms, stage.counters) == (None, None, ())
    assert results.integrity is not None
    (warning,) = [w for w in results.integrity.warnings if w.startswith("server metrics")]
    assert f"{sm.failed_scrapes} of {sm.scrapes} scrapes" in warning
    doc = json.loads(results.to_json())
    assert doc["server_metrics"][0]["failed_scrapes"] == sm.failed_scrapes


def test_results_leave_the_block_out_when_nothing_is_scraped() -> None:
    text = SIMULATED.replace("    server_metrics: {every: 100ms{names}}\n", "")
    results = run(text.replace("requests: 16", "requests: 4"))
    assert results.server_metrics == ()
    assert "server_metrics" not in json.loads(results.to_json())


def test_an_adaptive_sweep_scrapes_each_step_it_decides_to_run() -> None:
    # Steps of an adaptive sweep are made while it runs: not in the plan's stage list.
    text = SIMULATED.replace("{names}", "").replace(
        "  - {id: conc, pattern: concurrency, concurrency: 4, requests: 16}\n"
        "  - {id: wave, pattern: burst, requests: 5}\n",
        "  - {id: ladder, pattern: sweep, concurrencies: [1, 2, 4], requests: 8,"
        ' stop_when: "error_rate > 50%"}\n',
    )
    results = run(text)
    assert results.exit_code == 0
    (sm,) = results.server_metrics
    steps = [w.stage for w in results.stages]
    assert len(steps) == 3
    assert [s.stage for s in sm.stages] == steps
    for stage in sm.stages:
        served = sum(r.output_tokens or 0 for r in results.records if r.stage == stage.stage)
        assert counters(stage)["llamacpp:tokens_predicted_total"].delta == served

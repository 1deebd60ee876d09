"""InfluxDB export: points read back from a real influxd (1.x) and VictoriaMetrics (1.x and
2.x endpoints); batching, retries and failures against a scripted local server."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from lens.errors import ExportError
from lens.export import influx
from lens.export.facts import run_start_ns
from lens.export.influx import export_influx, points, write_url
from lens.export.sink import RetryPolicy, send
from lens.targets import parse_target
from tests.export._results import ERROR_MESSAGE, SCENARIO_NAME, hand_results, rich_results
from tests.export.lineparse import parse
from tests.export.servers import ScriptedServer, Server, create_database, free_port, influx_query


def test_points_carry_wall_clock_timestamps_and_unique_series_times() -> None:
    results = hand_results()
    parsed = [parse(p) for p in points(results)]
    requests = [p for p in parsed if p.measurement == "lens_request"]
    summaries = [p for p in parsed if p.measurement == "lens_summary"]
    assert len(requests) == 5
    assert len(summaries) == 2
    start = run_start_ns(results)
    assert start == 1_795_780_800_123_456_000  # 2026-11-27T12:00:00.123456Z
    first = requests[0]
    assert first.timestamp == start + 10_000_000  # t_dispatch = 10 ms
    assert first.tags["scenario"] == SCENARIO_NAME
    assert first.fields["ttft_ms"] == 200.0
    assert first.fields["index"] == 0
    assert "error_class" not in first.tags
    failure = requests[2]
    assert failure.tags["error_class"] == "http_5xx"
    assert failure.fields["error_message"] == ERROR_MESSAGE.replace("\n", "\\n")
    assert "ttft_ms" not in failure.fields  # not measured: absent, not 0
    gpt = [p for p in requests if p.tags["provider"] == "gpt"]
    assert gpt[1].timestamp == gpt[0].timestamp + 1  # same ns dispatch: both kept
    assert gpt[0].fields["cost_usd"] == pytest.approx(0.0000042)
    sim = next(p for p in summaries if p.tags["provider"] == "sim")
    assert sim.timestamp == start + 300_000_000  # end of its stage window
    assert sim.fields["requests"] == 3
    assert sim.fields["errors_http_5xx"] == 1
    assert sim.fields["ttft_p50"] == 190.0


def test_summaries_by_phase_sweeps_and_the_harness() -> None:
    results = rich_results(overloaded=True)
    parsed = [parse(p) for p in points(results)]
    summaries = {
        (p.tags["provider"], p.tags["phase"]): p for p in parsed if p.measurement == "lens_summary"
    }
    assert list(summaries) == [("sim", "measure"), ("gpt", "measure"), ("gpt", "warmup")]
    sim = summaries["sim", "measure"]
    assert sim.fields["pacing_rate_error"] == pytest.approx(0.1)
    assert (sim.fields["pacing_lag_p99_ms"], sim.fields["sla_conforming"]) == (8.0, 2)
    assert sim.fields["goodput_ratio"] == pytest.approx(2 / float(sim.fields["requests"]))
    assert sim.fields["goodput"] == pytest.approx(2 / float(sim.fields["duration_s"]))
    gpt = summaries["gpt", "measure"]
    assert gpt.fields["drained"] == 1
    assert not any(k.startswith("pacing_") for k in gpt.fields)  # closed loop: absent
    start = run_start_ns(results)
    assert summaries["gpt", "warmup"].timestamp == start + 5_000_000  # when its warmup ended
    assert gpt.timestamp == start + 300_000_000
    found, cut = [p for p in parsed if p.measurement == "lens_sweep"]
    assert (found.tags["sweep"], found.tags["kind"], found.tags["provider"]) == (
        "search",
        "find_max_rate",
        "gpt",
    )
    assert found.fields["max_rate_per_s"] == 85.0
    assert (found.fields["bracket_passing"], found.fields["bracket_failing"]) == (85.0, 88.75)
    assert (found.fields["distrusted"], found.fields["cut_short"]) == (True, False)
    assert str(found.fields["reason"]).startswith("measurements distorted by the client")
    assert cut.fields["cut_short"] is True
    assert "max_rate_per_s" not in cut.fields  # no answer: absent, not 0
    (harness,) = [p for p in parsed if p.measurement == "lens_harness"]
    assert harness.tags == {"scenario": SCENARIO_NAME}
    assert (harness.fields["status"], harness.fields["overloaded"]) == ("overloaded", True)
    assert harness.fields["loop_lag_p99_ms"] == 40.0
    assert not any(
        p.measurement in ("lens_sweep", "lens_harness") for p in map(parse, points(hand_results()))
    )


def test_write_url_moves_the_token_into_a_header() -> None:
    url, headers = write_url("http://h:8086/api/v2/write?org=o&bucket=b&token=s3cret", {})
    assert url == "http://h:8086/api/v2/write?org=o&bucket=b&precision=ns"
    assert headers["Authorization"] == "Token s3cret"
    url, headers = write_url("http://h:8086/write?db=lens", {"INFLUX_TOKEN": "envtok"})
    assert url == "http://h:8086/write?db=lens"
    assert headers["Authorization"] == "Token envtok"


def test_influxdb_1x_stores_every_point(influxdb: Server) -> None:
    create_database(influxdb, "lens")
    results = hand_results()
    export_influx(results, parse_target(f"influx={influxdb.url}/write?db=lens"))
    rows = influx_query(influxdb, "lens", "SELECT * FROM lens_request GROUP BY *")
    assert len(rows) == 5
    assert {r["scenario"] for r in rows} == {SCENARIO_NAME}
    assert sorted((r["provider"], r["index"]) for r in rows) == [
        ("gpt", 0),
        ("gpt", 1),
        ("sim", 0),
        ("sim", 1),
        ("sim", 2),
    ]
    (failure,) = [r for r in rows if r["status"] == "error"]
    assert failure["error_class"] == "http_5xx"
    assert failure["error_message"] == ERROR_MESSAGE.replace("\n", "\\n")
    assert failure["ttft_ms"] is None
    assert min(int(str(r["time"])) for r in rows) == run_start_ns(results) + 10_000_000
    (summary,) = influx_query(
        influxdb, "lens", "SELECT requests, ttft_p50 FROM lens_summary WHERE provider = 'sim'"
    )
    assert summary["requests"] == 3
    assert summary["ttft_p50"] == 190.0


def test_influxdb_1x_stores_phases_sweeps_and_the_harness(influxdb: Server) -> None:
    create_database(influxdb, "rich")
    results = rich_results(overloaded=True)
    export_influx(results, parse_target(f"influx={influxdb.url}/write?db=rich"))
    query = "SELECT requests, drained, pacing_rate_error FROM lens_summary GROUP BY phase, provider"
    rows = influx_query(influxdb, "rich", query)
    by_key = {(r["provider"], r["phase"]): r for r in rows}
    assert set(by_key) == {("sim", "measure"), ("gpt", "measure"), ("gpt", "warmup")}
    assert by_key["gpt", "measure"]["drained"] == 1
    assert by_key["sim", "measure"]["pacing_rate_error"] == pytest.approx(0.1)
    assert by_key["gpt", "measure"]["pacing_rate_error"] is None
    (sweep,) = influx_query(
        influxdb, "rich", "SELECT max_rate_per_s, distrusted FROM lens_sweep WHERE provider = 'gpt'"
    )
    assert (sweep["max_rate_per_s"], sweep["distrusted"]) == (85.0, True)
    (harness,) = influx_query(
        influxdb, "rich", "SELECT overloaded, loop_lag_p99_ms FROM lens_harness"
    )
    assert (harness["overloaded"], harness["loop_lag_p99_ms"]) == (True, 40.0)
    requests = influx_query(
        influxdb, "rich", "SELECT cold FROM lens_request WHERE phase = 'warmup'"
    )
    assert [r["cold"] for r in requests] == [True]


def vm_export(server: Server, match: str, count: int) -> list[dict[str, Any]]:
    """The series matching ``match``, polled (bounded) until ``count`` are searchable:
    VictoriaMetrics makes freshly written rows visible asynchronously."""
    deadline = time.monotonic() + 15
    while True:
        httpx.get(f"{server.url}/internal/force_flush").raise_for_status()
        response = httpx.get(f"{server.url}/api/v1/export", params={"match[]": match})
        response.raise_for_status()
        series = [json.loads(text) for text in response.text.splitlines()]
        if len(series) >= count or time.monotonic() > deadline:
            return series
        time.sleep(0.2)


@pytest.mark.parametrize(
    ("path", "label"),
    # VictoriaMetrics labels 1.x writes with their db; 2.x writes get no db label.
    [("/write?db=one", "one"), ("/api/v2/write?org=o&bucket=two&token=t0k", "")],
)
def test_victoria_metrics_stores_the_points(
    victoria_metrics: Server, path: str, label: str
) -> None:
    results = hand_results(datetime.now(UTC))
    export_influx(results, parse_target(f"influx={victoria_metrics.url}{path}"))
    ttft = f'{{__name__="lens_request_ttft_ms",db="{label}"}}'
    series = vm_export(victoria_metrics, ttft, 2)
    assert len(series) == 2  # sim and gpt (the failed request has no ttft)
    sim = next(s for s in series if s["metric"]["provider"] == "sim")
    assert sim["values"] == [200.0, 190.0]
    assert sim["metric"]["scenario"] == SCENARIO_NAME
    ms = (run_start_ns(results) + 10_000_000) // 1_000_000
    assert sim["timestamps"] == [ms, ms + 10]
    (requests,) = vm_export(
        victoria_metrics, f'{{__name__="lens_summary_requests",db="{label}",provider="gpt"}}', 1
    )
    assert requests["values"] == [2]


def test_lines_are_sent_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(influx, "BATCH_LINES", 2)
    with ScriptedServer([(204, b"")]) as server:
        export_influx(hand_results(), parse_target(f"influx={server.url}/write?db=x"))
    assert [len(s.body.splitlines()) for s in server.seen] == [2, 2, 2, 1]
    assert {s.path for s in server.seen} == {"/write?db=x"}


def test_5xx_is_retried_until_accepted() -> None:
    script = [(503, b"busy"), (500, b'{"error": "oops"}'), (204, b"")]
    with ScriptedServer(script) as server:
        target = parse_target(f"influx={server.url}/api/v2/write?org=o&bucket=b&token=tok")
        export_influx(hand_results(), target)
    assert len(server.seen) == 3
    assert server.seen[0].body == server.seen[2].body
    assert server.seen[2].headers["Authorization"] == "Token tok"
    assert server.seen[2].path == "/api/v2/write?org=o&bucket=b&precision=ns"


def test_backoff_doubles_and_attempts_are_bounded() -> None:
    waits: list[float] = []
    with ScriptedServer([(502, b"bad gateway")]) as server:
        target = parse_target(f"influx={server.url}/write?db=x&p=pw")
        with pytest.raises(ExportError, match=r"HTTP 502: bad gateway \(after 4 attempts\)"):
            send(
                target,
                "POST",
                server.url + "/write?db=x&p=pw",
                content=b"m f=1 1\n",
                headers={},
                retry=RetryPolicy(attempts=4, backoff_s=0.25),
                sleep=waits.append,
            )
    assert waits == [0.25, 0.5, 1.0]
    assert len(server.seen) == 4


def test_4xx_is_not_retried_and_the_server_message_is_kept() -> None:
    body = b'{"error":"partial write: field type conflict s3cret"}'
    with ScriptedServer([(400, body)]) as server:
        target = parse_target(f"influx={server.url}/write?db=x&u=me&p=s3cret")
        with pytest.raises(ExportError) as info:
            export_influx(hand_results(), target)
    assert len(server.seen) == 1
    assert "HTTP 400: " in str(info.value)
    assert "field type conflict ***" in str(info.value)  # a password is never echoed


def test_an_unreachable_influxdb_is_a_clear_error() -> None:
    target = parse_target(f"influx=http://127.0.0.1:{free_port()}/write?db=x")
    with pytest.raises(ExportError, match=r"ConnectError.*\(after 3 attempts\)"):
        export_influx(hand_results(), target)

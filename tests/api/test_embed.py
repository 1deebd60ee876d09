"""lens embedded in other programs: plain asyncio, trio, and blocking callers, against the
simulated server, compared with what ``lens run -o`` writes."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import trio
import yaml

import lens
from lens import exitcodes
from lens.cli import main
from lens.records import RequestRecord


def shape(value: Any) -> Any:
    """The structure of a JSON document: every key; a list of objects as the shape of its
    first (how many there are, and scalar values, are the run's own)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value and isinstance(value[0], dict) else "list"
    return None


def cli_argv(doc: dict[str, Any], tmp_path: Path) -> list[str]:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return ["run", str(path), "-o", str(tmp_path / "cli.json"), "-q"]


def cli_results(doc: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    assert main(cli_argv(doc, tmp_path)) == exitcodes.OK
    loaded: dict[str, Any] = json.loads((tmp_path / "cli.json").read_text())
    return loaded


def same_as_cli(results: lens.Results, cli: dict[str, Any]) -> None:
    mine = json.loads(results.to_json())
    for part in ("plan", "environment"):  # argv and clock readings differ, not their keys
        assert set(mine[part]) == set(cli[part])
        del mine[part], cli[part]
    assert shape(mine) == shape(cli)
    assert len(mine["records"]) == len(cli["records"]) == 6
    assert [(v["sla"], v["outcome"]) for v in mine["verdicts"]] == [
        (v["sla"], v["outcome"]) for v in cli["verdicts"]
    ]
    assert [(s["stage"], s["provider"], s["requests"]) for s in mine["summaries"]] == [
        (s["stage"], s["provider"], s["requests"]) for s in cli["summaries"]
    ]


def test_plain_asyncio_gets_the_cli_results_and_every_record_in_its_loop(
    tiny: dict[str, Any], tmp_path: Path
) -> None:
    seen: list[RequestRecord] = []
    where: set[tuple[int, bool]] = set()

    async def embed() -> lens.Results:
        caller = threading.get_ident()

        def on_record(rec: RequestRecord) -> None:
            asyncio.get_running_loop()  # raises outside the caller's loop
            where.add((threading.get_ident(), threading.get_ident() == caller))
            seen.append(rec)

        return await lens.run_async(tiny, on_record=on_record)

    results = asyncio.run(embed())
    assert results.exit_code == exitcodes.OK
    assert len(where) == 1
    assert next(iter(where))[1]
    assert sorted((r.stage, r.index) for r in seen) == sorted(
        (r.stage, r.index) for r in results.records
    )
    same_as_cli(results, cli_results(tiny, tmp_path))


async def test_trio_gets_the_cli_results_and_every_record_in_its_loop(
    tiny: dict[str, Any], tmp_path: Path
) -> None:
    seen: list[RequestRecord] = []

    def on_record(rec: RequestRecord) -> None:
        trio.lowlevel.current_task()  # raises outside the caller's trio loop
        seen.append(rec)

    # Other tasks of the caller's loop keep running while lens measures.
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await trio.sleep(0.01)
            ticks += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        results = await lens.run_async(tiny, on_record=on_record)
        nursery.cancel_scope.cancel()
    assert ticks > 5
    assert results.exit_code == exitcodes.OK
    assert len(seen) == len(results.records) == 6
    # lens run in its own process: its trio loop cannot run inside this one.
    await trio.run_process([sys.executable, "-m", "lens.cli", *cli_argv(tiny, tmp_path)])
    same_as_cli(results, json.loads((tmp_path / "cli.json").read_text()))


def test_blocking_run_reads_like_the_issue_says(tiny: dict[str, Any]) -> None:
    order: list[int] = []
    results = lens.run(tiny, on_record=lambda rec: order.append(rec.index))
    assert sorted(order) == list(range(6))
    summary = results.summary(stage="b", provider="sim")
    assert (summary.stage, summary.provider, summary.model) == ("b", "sim", "lens-sim")
    p95 = summary.metrics["ttft"].p95
    assert p95 is not None
    assert 20 <= p95 < 5000
    assert results.summary() == summary  # one summary: no need to name it
    first, second = results.verdicts
    assert (first.assertion, first.status, first.value) == ("error_rate < 1%", "pass", 0.0)
    assert second.assertion == "ttft.p50 < 5s"
    assert second.status == "pass"
    assert isinstance(second.reason, str)
    assert len(results.records) == 6
    assert results.exit_code == exitcodes.OK


def test_run_takes_a_plan_a_scenario_a_path_or_yaml_text(
    tiny: dict[str, Any], tmp_path: Path
) -> None:
    text = yaml.safe_dump(scenario_with_one_request(tiny), sort_keys=False)
    path = tmp_path / "one.yaml"
    path.write_text(text)
    scenario = lens.load_scenario(path)
    for target in (lens.compile_plan(scenario), scenario, str(path), path, text):
        assert len(lens.run(target).records) == 1


def scenario_with_one_request(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "load": [{"id": "b", "pattern": "burst", "requests": 1}], "sla": []}


def test_cancel_after_stops_like_sigterm_with_partial_results(endless: dict[str, Any]) -> None:
    started = time.monotonic()
    results = lens.run(endless, cancel_after=0.5)
    assert time.monotonic() - started < 30  # not the stage's 60 s
    assert results.partial
    assert results.interrupted_by == "cancel_after"
    assert results.exit_code == exitcodes.INCONCLUSIVE  # a partial run cannot pass
    assert results.records, "what was measured before the stop is kept"
    cut = [r for r in results.records if r.error_class == "cancelled"]
    assert len(cut) <= 2  # the requests in flight at the stop, at most the concurrency


def test_cancel_after_from_asyncio(endless: dict[str, Any]) -> None:
    results = asyncio.run(lens.run_async(endless, cancel_after=0.3))
    assert results.partial
    assert results.interrupted_by == "cancel_after"


def test_cancel_after_must_be_seconds(tiny: dict[str, Any]) -> None:
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="cancel_after"):
            lens.run(tiny, cancel_after=bad)


def lens_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "lens-run"]


def test_cancelling_the_asyncio_caller_stops_the_run_and_leaves_nothing_running(
    endless: dict[str, Any],
) -> None:
    seen: list[RequestRecord] = []

    async def embed() -> None:
        # Cancel once records flow (a fixed delay is too short while a loaded machine
        # still starts the simulator), as a caller giving up mid-run would.
        first = asyncio.Event()

        def on_record(rec: RequestRecord) -> None:
            seen.append(rec)
            first.set()

        run = asyncio.ensure_future(lens.run_async(endless, on_record=on_record))
        await asyncio.wait_for(first.wait(), timeout=30)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    started = time.monotonic()
    asyncio.run(embed())
    assert time.monotonic() - started < 30  # not the stage's 60 s
    assert not lens_threads()
    assert seen  # records delivered before the cancellation


async def test_cancelling_the_trio_caller_stops_the_run_and_leaves_nothing_running(
    endless: dict[str, Any],
) -> None:
    with trio.move_on_after(0.5) as scope:
        await lens.run_async(endless)
    assert scope.cancelled_caught
    assert not lens_threads()


class Boom(Exception):
    pass


def explode(rec: RequestRecord) -> None:
    raise Boom(rec.stage)


def test_an_on_record_exception_stops_the_run_and_reaches_the_caller(
    endless: dict[str, Any],
) -> None:
    started = time.monotonic()
    with pytest.raises(Boom, match="long"):
        lens.run(endless, on_record=explode)
    with pytest.raises(Boom, match="long"):
        asyncio.run(lens.run_async(endless, on_record=explode))
    assert time.monotonic() - started < 60


async def test_blocking_run_inside_a_trio_loop_says_to_await_run_async(
    tiny: dict[str, Any],
) -> None:
    with pytest.raises(RuntimeError, match="run_async"):
        lens.run(tiny)

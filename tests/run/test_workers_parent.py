"""The parent's bookkeeping of ``lens run --workers N`` (lens.workers), without processes:
messages fed through real pipes, workers stood in for by objects that say whether they
live.  The processes themselves are tested in tests/cli/test_workers.py."""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from multiprocessing import Pipe
from typing import Any

import pytest

from lens.plan.compile import compile_plan
from lens.plan.model import Plan
from lens.records import ErrorClass, RequestRecord, RequestStart
from lens.redact import Redactor
from lens.run import recordwire
from lens.scenario import parse_scenario
from lens.workers import (
    _Stopper,
    _Supervisor,
    _Worker,
    auto_workers,
    resolve_workers,
)

SCENARIO = """\
version: 1
name: w
providers:
  sim: {type: simulated, ttft: 10ms, itl: 2ms, output_tokens: 3}
prompts:
  - id: q
    messages: [{role: user, content: hi}]
load:
%s
"""


def batch(*items: RequestStart | RequestRecord) -> tuple[str, recordwire.Encoded]:
    """A worker's batch message, encoded as the worker encodes it."""
    return ("batch", recordwire.encode(items))


def plan_of(load: str) -> Plan:
    return compile_plan(parse_scenario(SCENARIO % load))


@pytest.mark.parametrize(
    ("load", "cpus", "expected"),
    [
        # 1,000 streams: 4 workers' worth, capped at the cores but one.
        ("  - {id: c, pattern: concurrency, concurrency: 1000, requests: 1000}", 16, 4),
        ("  - {id: c, pattern: concurrency, concurrency: 1000, requests: 1000}", 4, 3),
        ("  - {id: c, pattern: concurrency, concurrency: 251, requests: 251}", 16, 2),
        ("  - {id: c, pattern: concurrency, concurrency: 10, requests: 10}", 16, 1),
        # 1,200 arrivals/s: 3 workers' worth.
        ("  - {id: r, pattern: constant-rate, rate: 1200/s, requests: 2400}", 16, 3),
        # A burst's wave is its streams.
        ("  - {id: b, pattern: burst, requests: 600}", 16, 3),
        # One core: one process, whatever the load.
        ("  - {id: c, pattern: concurrency, concurrency: 1000, requests: 1000}", 1, 1),
        # An idle probe cannot be split.
        ("  - {id: i, pattern: idle-probe, gaps: [1s]}", 16, 1),
    ],
)
def test_auto_picks_one_worker_per_load_share_within_the_cores(
    load: str, cpus: int, expected: int
) -> None:
    assert auto_workers(plan_of(load), cpus=cpus) == expected


def test_resolve_workers_takes_the_flag_over_the_scenario() -> None:
    plan = plan_of("  - {id: c, pattern: concurrency, concurrency: 4, requests: 4}")
    assert resolve_workers(plan, None) == 1
    assert resolve_workers(plan, 3) == 3
    assert resolve_workers(replace(plan, workers=2), None) == 2
    assert resolve_workers(replace(plan, workers=2), 1) == 1


@dataclass
class FakeProcess:
    """Stands in for a worker process: alive until told otherwise."""

    alive: bool = True
    exitcode: int | None = None
    sentinel: Any = None

    def is_alive(self) -> bool:
        return self.alive


def start(stage: str, index: int, t: int) -> RequestStart:
    return RequestStart(stage, "sim", "q", index, 1, "measure", t, t)


def record(stage: str, index: int, t: int, *, ok: bool = True) -> RequestRecord:
    return RequestRecord(
        provider="sim",
        stage=stage,
        prompt="q",
        index=index,
        ok=ok,
        error_class=None if ok else ErrorClass.HTTP_5XX,
        error_message=None,
        http_status=200 if ok else 500,
        t_intended=t,
        t_dispatch=t,
        t_headers=t + 1_000_000,
        t_first_chunk=t + 2_000_000,
        t_first_token=t + 2_000_000,
        t_first_visible=t + 2_000_000,
        t_last_token=t + 5_000_000,
        t_end=t + 6_000_000,
        chunk_times=(t + 2_000_000, t + 5_000_000),
        chunk_tokens=(1, 2),
        output_tokens=3,
    )


def supervisor(plan: Plan, n: int) -> tuple[_Supervisor, list[Any], list[RequestRecord]]:
    seen: list[RequestRecord] = []
    senders = []
    workers = []
    for k in range(n):
        recv, send = Pipe(duplex=False)
        _, control = Pipe(duplex=False)
        # A process's sentinel becomes readable when it ends: here, a pipe nobody writes.
        sentinel, keep = Pipe(duplex=False)
        senders.append(keep)
        process = FakeProcess(sentinel=sentinel)
        workers.append(_Worker(k, process, recv, control))  # type: ignore[arg-type]
        senders.insert(k, send)
    sup = _Supervisor(plan, workers, _Stopper(), io.StringIO(), True, seen.append, None)
    sup.t0 = 0.0
    return sup, senders, seen


def test_the_parent_relays_records_in_arrival_order_and_tracks_requests_in_flight() -> None:
    plan = plan_of("  - {id: r, pattern: constant-rate, rate: 10/s, requests: 4}")
    sup, senders, seen = supervisor(plan, 2)
    senders[0].send(batch(start("r", 0, 0), start("r", 2, 200_000_000)))
    senders[1].send(batch(start("r", 1, 100_000_000), record("r", 1, 100_000_000)))
    senders[0].send(batch(record("r", 0, 0)))
    for _ in range(3):
        sup._poll(1.0)
    assert [(r.stage, r.index) for r in seen] == [("r", 1), ("r", 0)]
    assert list(sup.workers[0].in_flight) == [("r", "sim", 2, 1)]
    assert not sup.workers[1].in_flight
    assert (sup.progress.started, sup.progress.done, sup.progress.output_tokens) == (3, 2, 6)
    assert sup.progress.total == 4
    # The progress line reads the parent's counters.
    sup._show(1.0, (0.0, 0, 0))
    out = sup.progress_out
    assert isinstance(out, io.StringIO)
    assert "done 2/4" in out.getvalue()
    assert "in flight 1" in out.getvalue()


def test_a_dead_worker_s_requests_in_flight_become_lens_lost_records() -> None:
    plan = plan_of("  - {id: r, pattern: constant-rate, rate: 10/s, requests: 6}")
    sup, senders, _ = supervisor(plan, 2)
    # Worker 0 ended arrival 0, had 2 and 4 in flight; worker 1 ended 1, had 3 in flight.
    senders[0].send(batch(start("r", 0, 0), record("r", 0, 0)))
    senders[0].send(batch(start("r", 2, 200_000_000), start("r", 4, 400_000_000)))
    senders[1].send(batch(start("r", 1, 100_000_000), record("r", 1, 100_000_000)))
    senders[1].send(batch(start("r", 3, 300_000_000)))
    for _ in range(4):
        sup._poll(1.0)
    for k, w in enumerate(sup.workers):
        w.process.alive = False  # type: ignore[attr-defined]
        w.process.exitcode = -9 if k == 0 else 1  # type: ignore[misc]
        senders[k].close()
    sup._poll(0.1)
    assert sup.workers[0].died == "was killed by SIGKILL"
    assert sup.workers[1].died == "exited (code 1) without its results"
    report = sup.report(Redactor(), None)
    results = report.results
    assert results.partial
    assert results.exit_code == 3
    lost = sorted(
        (r.index, r.shard, r.error_message or "")
        for r in results.records
        if r.error_class == "lens_lost"
    )
    assert [(i, s) for i, s, _ in lost] == [(2, 0), (3, 1), (4, 0)]
    assert "worker 0 was killed by SIGKILL while the request was in flight" in lost[0][2]
    summary = results.summaries[0]
    # Lost requests are out of the error rate: 2 ok of 2 judged.
    assert (summary.requests, summary.ok, summary.error_counts["lens_lost"]) == (2, 2, 3)
    assert report.outcome.partial
    assert len(report.outcome.records) == 5

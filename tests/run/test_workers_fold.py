"""The parent of ``lens run --workers`` folds every worker's records as they arrive
(lens.workers ``parent_fold``): its summaries, verdicts and pacing equal those the old
path gives (each worker's full results, merged by lens.export.merge) for the same records,
and it holds no more records than results list.  Messages go through real pipes, the
workers stood in for as in tests/run/test_workers_parent.py."""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from multiprocessing import Pipe
from typing import Any

from lens.export.merge import merge_results
from lens.metrics.integrity import cold_flags, cold_start
from lens.pipeline import outcome_results, shard_results
from lens.plan.compile import compile_plan
from lens.plan.model import Plan
from lens.plan.split import Shard, shard_plan
from lens.records import (
    ErrorClass,
    HarnessLimits,
    HarnessReport,
    Phase,
    RequestRecord,
    RequestStart,
    RunOutcome,
    StageWindow,
)
from lens.redact import Redactor
from lens.run import recordwire
from lens.scenario import parse_scenario
from lens.workers import WorkerOutcome, _Stopper, _Supervisor, _Worker, parent_fold

SCENARIO = """\
version: 1
name: w
providers:
  sim: {type: simulated, ttft: 10ms, itl: 2ms, output_tokens: 3}
prompts:
  - id: q
    messages: [{role: user, content: hi}]
load:
  - {id: open, pattern: constant-rate, rate: 20/s, requests: 40, warmup: 4 requests}
  - {id: closed, pattern: concurrency, concurrency: 4, requests: 20}
sla:
  - error_rate < 50%
  - ttft.p50 < 1s
  - e2e.p90 < 20ms
integrity: {cold_after: 100ms}
results: {records: 6}
"""
MS = 1_000_000


@dataclass
class FakeProcess:
    alive: bool = True
    exitcode: int | None = None
    sentinel: Any = None

    def is_alive(self) -> bool:
        return self.alive


def request(stage: str, index: int, t: int, phase: Phase) -> tuple[RequestStart, RequestRecord]:
    """A request dispatched at ``t`` (ms): a 5xx every seventh, TTFT varying with it."""
    ok = index % 7 != 3
    ttft = (4 + index % 5) * MS
    t0 = t * MS
    start = RequestStart(stage, "sim", "q", index, 1, phase, t0, t0)
    rec = RequestRecord(
        provider="sim",
        stage=stage,
        prompt="q",
        index=index,
        ok=ok,
        error_class=None if ok else ErrorClass.HTTP_5XX,
        error_message=None if ok else "HTTP 500",
        http_status=200 if ok else 500,
        t_intended=t0,
        t_dispatch=t0,
        t_headers=t0 + MS,
        t_first_chunk=t0 + ttft if ok else None,
        t_first_token=t0 + ttft if ok else None,
        t_first_visible=t0 + ttft if ok else None,
        t_last_token=t0 + ttft + 4 * MS if ok else None,
        t_end=t0 + ttft + (5 + index % 11) * MS,
        chunk_times=(t0 + ttft, t0 + ttft + 2 * MS, t0 + ttft + 4 * MS) if ok else (),
        chunk_tokens=(1, 1, 1) if ok else (),
        output_tokens=3 if ok else None,
        reads=3 if ok else 0,
        phase=phase,
    )
    return start, rec


def worker_requests(k: int) -> list[tuple[RequestStart, RequestRecord]]:
    """Worker k's share: open-loop arrivals k, k+2, ... every 50 ms (the first 4 warm
    up); then closed-loop requests from 2.5 s, the last index first."""
    out = [request("open", i, i * 50, "warmup" if i < 4 else "measure") for i in range(k, 40, 2)]
    # After a gap longer than cold_after, worker 1 sends first (index 19 at 2.5 s): cold.
    out += [request("closed", i, 2500 + (19 - i) * 20, "measure") for i in range(k, 20, 2)]
    return out


def windows_of(plan: Plan, k: int, reqs: list[tuple[RequestStart, RequestRecord]]) -> Any:
    out = []
    for unit in shard_plan(plan, k, 2).stages:
        mine = [r for _, r in reqs if r.stage == unit.stage]
        measured = [r.t_dispatch for r in mine if r.phase == "measure"]
        out.append(
            StageWindow(
                stage=unit.stage,
                provider="sim",
                t_start=min(r.t_dispatch for r in mine),
                t_end=max(r.t_end for r in mine),
                planned=unit.planned_requests,
                started=len(mine),
                t_measure_start=min(measured),
                late_ns=k * MS,
            )
        )
    return tuple(out)


def events(reqs: list[tuple[RequestStart, RequestRecord]]) -> list[RequestStart | RequestRecord]:
    """Starts and records in the order a worker sends them: by the time they happen."""
    timed: list[tuple[int, int, RequestStart | RequestRecord]] = []
    for start, rec in reqs:
        timed.append((start.t_start, 0, start))
        timed.append((rec.t_end, 1, rec))
    return [item for *_, item in sorted(timed, key=lambda x: (x[0], x[1]))]


# Worker 1's loop lagged: the run is distrusted, naming it.
HARNESS = (
    HarnessReport(30, 1.0, 2.0, 3.0, 0.2, HarnessLimits(25.0, 0.9), span_s=5.0),
    HarnessReport(30, 1.0, 40.0, 60.0, 0.2, HarnessLimits(25.0, 0.9), span_s=5.0),
)


def test_the_parent_folds_as_the_old_merge_path_merges_and_keeps_only_what_results_list() -> None:
    plan = compile_plan(parse_scenario(SCENARIO))
    assert parent_fold(plan) is not None
    shares = [worker_requests(k) for k in range(2)]
    seen: list[RequestRecord] = []
    senders, workers = [], []
    for k in range(2):
        recv, send = Pipe(duplex=False)
        _, control = Pipe(duplex=False)
        sentinel, keep = Pipe(duplex=False)
        senders.append((send, keep))
        workers.append(_Worker(k, FakeProcess(sentinel=sentinel), recv, control))  # type: ignore[arg-type]
    sup = _Supervisor(plan, workers, _Stopper(), io.StringIO(), False, seen.append, None)
    sup.t0 = 0.0
    assert sup.fold is not None
    # Worker 1's batches lag worker 0's: records of 0 arrive before starts of 1 that were
    # dispatched earlier (the cold flags must wait for them).
    streams = [events(s) for s in shares]
    batches = [[streams[k][i : i + 7] for i in range(0, len(streams[k]), 7)] for k in range(2)]
    for step in range(max(len(b) for b in batches) + 2):
        for k, lag in ((0, 0), (1, 2)):
            if 0 <= step - lag < len(batches[k]):
                senders[k][0].send(("batch", recordwire.encode(batches[k][step - lag])))
        sup._poll(1.0)
        sup._poll(0.0)
    for k in range(2):
        windows = windows_of(plan, k, shares[k])
        senders[k][0].send(("outcome", WorkerOutcome(windows, HARNESS[k], None, None)))
    while not all(w.finished for w in sup.workers):
        sup._poll(1.0)
    assert len(seen) == 60  # every record relayed (--records, progress)

    report = sup.report(Redactor(), None)
    new = report.results
    # The parent held no record beyond the sample results list.
    assert all(not w.records for w in sup.workers)
    assert len(report.outcome.records) == 6
    assert report.outcome.measured == 60
    assert (len(new.records), new.records_omitted) == (6, 54)
    assert {r.shard for r in new.records} == {0, 1}
    assert [s.index for s in new.shards] == [0, 1]

    # The old path: every worker's full results, merged.
    whole = replace(plan, results_records=None, results_records_default=False)
    parts = []
    for k in range(2):
        records = tuple(r for r in events(shares[k]) if isinstance(r, RequestRecord))
        outcome = RunOutcome(
            records=records,
            windows=windows_of(plan, k, shares[k]),
            started_at=datetime.now(UTC),
            duration_s=3.0,
            harness=HARNESS[k],
        )
        shard = shard_plan(whole, k, 2)
        parts.append(
            shard_results(
                outcome_results(shard, outcome, Redactor()), whole, Shard(k, 2), None, Redactor()
            )
        )
    old = merge_results(parts)
    assert len(old.records) == 60

    def summaries(results: Any) -> list[dict[str, Any]]:
        return [s.model_dump() for s in results.summaries]

    assert summaries(new) == summaries(old)
    assert [s.model_dump() for s in new.phase_summaries] == [
        s.model_dump() for s in old.phase_summaries
    ]
    assert new.verdicts == old.verdicts
    assert {v.outcome for v in new.verdicts} == {"inconclusive"}
    assert [s.pacing for s in new.summaries] == [s.pacing for s in old.summaries]
    assert any(s.pacing is not None for s in new.summaries)
    # The windows merged alike; the folded path bills them as one run does (the merge
    # leaves billed_s/setup_s to GPU-hour prices).
    billing = {"billed_s", "setup_s"}
    assert [w.model_dump(exclude=billing) for w in new.stages] == [
        w.model_dump(exclude=billing) for w in old.stages
    ]
    assert new.exit_code == old.exit_code
    assert new.integrity is not None
    assert old.integrity is not None
    assert new.integrity.harness == old.integrity.harness
    assert new.integrity.harness is not None
    assert new.integrity.harness.reasons[0].startswith("shard 1: event-loop lag p99 40.0 ms")
    assert new.integrity.streams == old.integrity.streams
    # Cold starts: the merge keeps each worker's own flags (a worker sees only its share
    # of the traffic); the parent's fold flags across all of it, as one process would:
    # equal to the batch functions over every record, in the order the parent got them.
    flags = cold_flags(seen, cold_after_s=0.1)
    assert new.integrity.cold_start == cold_start(seen, flags)
    assert new.integrity.cold_start != old.integrity.cold_start
    cold_of = {(r.stage, r.index): f for r, f in zip(seen, flags, strict=True)}
    assert all(r.cold == cold_of[(r.stage, r.index)] for r in new.records)

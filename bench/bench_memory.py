"""Memory over the length of a run: RSS per 100k requests on the simulator (not a test).

    python -m bench.bench_memory --rate 1000 --minutes 10      # open loop, 600k requests
    python -m bench.bench_memory --requests 200000 --concurrency 64   # closed loop
    python -m bench.bench_memory --rate 1000 --minutes 2 --workers 2  # lens run --workers 2

Every ``--every`` finished requests it prints the process's RSS (VmRSS, this process only:
the simulator runs in its own process) and the bytes per request since the first sample,
then the RSS after the results are built.  With ``--workers N`` the RSS is the parent's
plus every worker's (each also shown), the bytes per request of that sum.
``--results-records`` is results: {records: ...} (default none: what a soak wants).  The
trend per 100k requests is the figure to extrapolate to an hour at 1,000 req/s (3.6M
requests).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

from lens.api import compile_plan, load_scenario
from lens.pipeline import run_plan
from lens.plan.compile import records_kept
from lens.records import RequestRecord
from lens.workers import run_workers

SCENARIO = """\
version: 1
name: bench-memory
defaults: {{timeout: 30s, max_tokens: 4}}
providers:
  sim: {{type: simulated, ttft: 2ms, itl: 1ms, output_tokens: 4}}
prompts:
  - id: p
    messages: [{{role: user, content: "hi"}}]
load:
{load}
integrity: {{max_cpu: 100%, max_loop_lag: 10s}}
"""


def rss_mb(field: str = "VmRSS", pid: int | str = "self") -> float:
    """A process's resident set (``VmHWM``: its peak) in MB; this one's by default."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status (Linux only)")


def workers_rss_mb(field: str = "VmRSS") -> list[float]:
    """The RSS of each ``lens run --workers`` process this one started (lens.workers)."""
    out = []
    for child in multiprocessing.active_children():
        if child.name.startswith("lens-worker") and child.pid is not None:
            with contextlib.suppress(OSError, RuntimeError):  # it just ended
                out.append(rss_mb(field, child.pid))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, help="open loop at this rate (req/s)")
    parser.add_argument("--minutes", type=float, default=10.0, help="with --rate")
    parser.add_argument("--requests", type=int, default=200_000, help="closed loop")
    parser.add_argument("--concurrency", type=int, default=64, help="closed loop")
    parser.add_argument("--every", type=int, default=100_000)
    parser.add_argument("--results-records", default="none", help="all | none | N")
    parser.add_argument("--workers", type=int, default=1, help="lens run --workers N")
    args = parser.parse_args(argv)
    if args.rate:
        load = (
            f"  - {{id: soak, pattern: constant-rate, rate: {args.rate}/s, "
            f"duration: {args.minutes * 60}s}}"
        )
    else:
        load = (
            f"  - {{id: soak, pattern: concurrency, concurrency: {args.concurrency}, "
            f"requests: {args.requests}}}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench-memory.yaml"
        path.write_text(SCENARIO.format(load=load), encoding="utf-8")
        plan = compile_plan(load_scenario(path))
    kept = args.results_records
    plan = dataclasses.replace(
        plan, results_records=records_kept(int(kept) if kept.isdigit() else kept)
    )
    start = time.monotonic()
    baseline = rss_mb()
    first: list[float] = []
    done = 0
    print(f"rss before the run: {baseline:.0f} MB", flush=True)
    print(
        f"{'requests':>10} {'elapsed s':>10} {'rss MB':>8} {'bytes/request':>14}"
        + ("  parent + workers MB" if args.workers > 1 else ""),
        flush=True,
    )

    def sample(_: RequestRecord) -> None:
        nonlocal done
        done += 1
        if done % args.every:
            return
        own = rss_mb()
        workers = workers_rss_mb() if args.workers > 1 else []
        rss = own + sum(workers)
        if not first:
            first.extend((rss, float(done)))
        per = (rss - first[0]) * 2**20 / (done - first[1]) if done > first[1] else float("nan")
        elapsed = time.monotonic() - start
        split = f"  {own:.0f} + {' + '.join(f'{w:.0f}' for w in workers)}" if workers else ""
        print(f"{done:>10} {elapsed:>10.0f} {rss:>8.0f} {per:>14.0f}{split}", flush=True)

    if args.workers > 1:
        report = run_workers(plan, args.workers, on_record=sample, handle_signals=False)
    else:
        report = run_plan(plan, on_record=sample, handle_signals=False)
    results = report.results
    print(
        f"after results: {rss_mb():.0f} MB, peak {rss_mb('VmHWM'):.0f} MB "
        f"({report.outcome.measured} requests, "
        f"{len(results.records)} listed in results, {len(results.to_json()) / 2**20:.1f} MB "
        "of JSON)",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

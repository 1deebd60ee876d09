"""Issue 14's worker targets, as ratios to the reference client in one run.

Every figure is taken against ``../shared/bench/mock_openai_server.py`` (its truth log
is the ground truth), with ``lens run --workers N`` as a subprocess reading a generated
scenario, and the reference client (``ref_client.py``) in the same run where it has a
counterpart.  ``make bench-workers`` runs just these sections.

* CPU per token: the CPU time of a client's whole process tree (lens: the parent and its
  workers; read from ``/proc`` every 50 ms) over the **streaming window** the mock logged
  (its first request's arrival - 50 ms to its last chunk + 100 ms), divided by the tokens
  the mock sent in that run.  Both clients are measured alike; start-up (imports, the
  plan split, spawning) and the results written afterwards fall outside, and lens's
  whole-run CPU is printed beside it so that cost is not hidden.
* Timing error: client minus mock, compared as distributions (p99 of each side), as in
  ``bench_reference``; per-request mean ITL for both clients, and lens's per-gap ITL
  against the mock's per-chunk send times.
* The mock shares the 2 cores: its own CPU over the window is printed with each run.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.bench_client import pct
from bench.bench_reference import MODEL, SHARED_BENCH, TOKENS, mock_process
from lens.plan.split import share

Emit = Callable[[str], None]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine() -> str:
    """One line naming the machine the figures came from."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"machine: {os.cpu_count()} cores, {model}, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f} at start"
    )


def raise_fd_limit(want: int = 8192) -> str:
    """1,024 streams need 1,024 sockets in the client and as many in the mock (children
    inherit the limit): raise the soft limit towards the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return f"open files: soft limit {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}"


# --- CPU of a process tree, sampled -----------------------------------------------------


def _tree_cpu_s(root: int) -> float | None:
    """utime + stime of ``root`` and every live descendant, plus what reaped ones left
    in their parents' cutime/cstime; None once ``root`` is gone."""
    total = 0.0
    stack = [root]
    seen = 0
    while stack:
        pid = stack.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            if pid == root:
                return None
            continue
        seen += 1
        # fields[0] is the state (field 3); utime..cstime are fields 14..17.
        total += sum(int(f) for f in fields[11:15]) / CLK_TCK
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                stack.extend(int(c) for c in task.read_text().split())
    return total if seen else None


class CpuSampler:
    """(monotonic time, CPU s) of each watched process tree, every ``period_s``."""

    def __init__(self, period_s: float = 0.05) -> None:
        self.period_s = period_s
        self.samples: dict[str, list[tuple[float, float]]] = {}
        self._roots: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def watch(self, name: str, pid: int) -> None:
        self._roots[name] = pid
        self.samples[name] = []

    def _loop(self) -> None:
        while not self._stop.is_set():
            for name, pid in list(self._roots.items()):
                cpu = _tree_cpu_s(pid)
                if cpu is not None:
                    self.samples[name].append((time.monotonic(), cpu))
            self._stop.wait(self.period_s)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def between(self, name: str, t0: float, t1: float) -> float:
        """CPU seconds from the last sample at or before ``t0`` to the first at or after
        ``t1`` (so the window is covered, never cut short)."""
        s = self.samples[name]
        before = [c for t, c in s if t <= t0]
        after = [c for t, c in s if t >= t1]
        start = before[-1] if before else s[0][1]
        end = after[0] if after else s[-1][1]
        return end - start


# --- the mock's truth -------------------------------------------------------------------


@dataclass(frozen=True)
class Truth:
    served: int
    ok: int
    tokens: int
    t_start: float  # monotonic: first request's first byte
    t_end: float  # monotonic: last chunk handed to the kernel
    ttft_ms: list[float]
    itl_mean_ms: list[float]
    gaps_ms: list[float]
    warm_ttft_ms: list[float]  # all but the first ``streams`` arrivals (set by the caller)

    @property
    def window_s(self) -> float:
        return self.t_end - self.t_start


def read_truth(log: Path, streams: int = 0) -> Truth:
    """The mock's log; ``warm_ttft_ms`` leaves out the first ``streams`` arrivals (the
    opening burst, where each stream also connects) as lens's records with index >=
    ``streams`` do: neither client tags requests for the log, so the two sets match by
    order of arrival, not one by one."""
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    lines.sort(key=lambda r: r["t0"])
    ok = [r for r in lines if r.get("ok")]
    gaps = [
        (b - a) / 1e3 for r in ok for a, b in zip(r["chunk_us"], r["chunk_us"][1:], strict=False)
    ]
    return Truth(
        served=len(lines),
        ok=len(ok),
        tokens=sum(int(r["n_tokens"]) for r in ok),
        t_start=min(r["t0"] for r in lines),
        t_end=max(r["t0"] + (r["chunk_us"][-1] if r["chunk_us"] else 0) / 1e6 for r in lines),
        ttft_ms=[r["ttft_ms"] for r in ok if r.get("ttft_ms") is not None],
        itl_mean_ms=[r["itl_mean_ms"] for r in ok if r.get("itl_mean_ms") is not None],
        gaps_ms=gaps,
        warm_ttft_ms=[r["ttft_ms"] for r in lines[streams:] if r.get("ok") and r.get("ttft_ms")],
    )


# --- one client run against a fresh mock ------------------------------------------------


@dataclass(frozen=True)
class ClientRun:
    truth: Truth
    window_cpu_s: float  # the client's process tree over the streaming window
    total_cpu_s: float  # the client's process tree, start to exit
    mock_cpu_s: float  # the mock over the same window
    out: dict[str, Any]  # lens: results.json; reference: its JSON line

    @property
    def us_per_token(self) -> float:
        return self.window_cpu_s / max(self.truth.tokens, 1) * 1e6

    @property
    def tokens_per_s(self) -> float:
        return self.truth.tokens / self.truth.window_s if self.truth.window_s > 0 else 0.0

    @property
    def client_cores(self) -> float:
        return self.window_cpu_s / self.truth.window_s if self.truth.window_s > 0 else 0.0

    @property
    def mock_cores(self) -> float:
        return self.mock_cpu_s / self.truth.window_s if self.truth.window_s > 0 else 0.0


def _lens_exe() -> list[str]:
    script = Path(sys.executable).with_name("lens")
    if script.exists():
        return [str(script)]
    found = shutil.which("lens")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from lens.cli import main; sys.exit(main())"]


def scenario(url: str, load: str) -> str:
    return f"""\
version: 1
name: bench-workers
defaults:
  timeout: 120s
  max_tokens: {TOKENS}
providers:
  mock:
    type: openai-compatible
    base_url: {url}/v1
    model: {MODEL}
    include_usage: true
    price: {{input: 0, output: 0}}
prompts:
  - id: p
    messages: [{{role: user, content: "Count to one hundred and twenty eight."}}]
load:
  - {load}
"""


def _run_client(
    argv_for: Callable[[str], list[str]],
    ttft_ms: float,
    itl_ms: float,
    tmp: Path,
    name: str,
    streams: int,
) -> tuple[Truth, float, float, float, str]:
    """Runs a client (``argv_for(mock_url)``) against a fresh mock, sampling both trees'
    CPU; returns the truth, client CPU over the window, client CPU overall, mock CPU over
    the window, and the client's stdout."""
    log = tmp / f"{name}.jsonl"
    with mock_process(ttft_ms, itl_ms, log) as (url, mock), CpuSampler() as sampler:
        sampler.watch("mock", mock.pid)
        argv = argv_for(url)
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        sampler.watch("client", proc.pid)
        stdout, stderr = proc.communicate(timeout=600)
        # RUSAGE_CHILDREN: the client and every descendant it waited for (lens's workers).
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode not in (0, 1):  # 1: an SLA failed (none here): figures stand
            raise RuntimeError(f"{name} exited {proc.returncode}: {stderr.strip()[-2000:]}")
    truth = read_truth(log, streams)
    t0, t1 = truth.t_start - 0.05, truth.t_end + 0.1
    total = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    return truth, sampler.between("client", t0, t1), total, sampler.between("mock", t0, t1), stdout


def run_lens(
    load: str, streams: int, workers: int, ttft_ms: float, itl_ms: float, tmp: Path
) -> ClientRun:
    name = f"lens-w{workers}-{time.monotonic_ns()}"
    scen, out = tmp / f"{name}.yaml", tmp / f"{name}.json"

    def argv_for(url: str) -> list[str]:
        scen.write_text(scenario(url, load), encoding="utf-8")
        return [*_lens_exe(), "run", str(scen), "--workers", str(workers), "-q", "-o", str(out)]

    truth, window, total, mock, _ = _run_client(argv_for, ttft_ms, itl_ms, tmp, name, streams)
    return ClientRun(truth, window, total, mock, json.loads(out.read_text(encoding="utf-8")))


def run_reference(
    concurrency: int, requests: int, ttft_ms: float, itl_ms: float, tmp: Path
) -> ClientRun:
    def argv_for(url: str) -> list[str]:
        return [
            sys.executable,
            str(SHARED_BENCH / "ref_client.py"),
            *("--url", url, "--model", MODEL, "--output-tokens", str(TOKENS)),
            *("--concurrency", str(concurrency), "--requests", str(requests)),
        ]

    name = f"ref-{time.monotonic_ns()}"
    truth, window, total, mock, stdout = _run_client(
        argv_for, ttft_ms, itl_ms, tmp, name, concurrency
    )
    return ClientRun(truth, window, total, mock, json.loads(stdout))


# --- lens's figures from its results ----------------------------------------------------


@dataclass(frozen=True)
class LensTimes:
    planned: int
    records: int
    ok: int
    errors: int
    lens_lost: int
    ttft_ms: list[float]
    warm_ttft_ms: list[float]
    itl_mean_ms: list[float]
    gaps_ms: list[float]


def lens_times(results: dict[str, Any], streams: int = 0, workers: int = 1) -> LensTimes:
    """lens's figures; warm TTFTs are those after each stream's first request (a closed
    loop's indices count per worker, each of which runs its share of the streams)."""
    records = [r for r in results["records"] if r["phase"] == "measure"]
    ok = [r for r in records if r["status"] == "ok"]
    gaps = [
        b - a
        for r in ok
        for a, b in zip(r["chunk_offsets"] or (), (r["chunk_offsets"] or ())[1:], strict=False)
    ]
    summary = results["summaries"][0]
    return LensTimes(
        planned=sum(int(w["planned"]) for w in results["stages"]),
        records=len(records),
        ok=len(ok),
        errors=len(records) - len(ok),
        lens_lost=int(summary["error_counts"].get("lens_lost", 0)),
        ttft_ms=[r["ttft"] for r in ok if r["ttft"] is not None],
        warm_ttft_ms=[
            r["ttft"]
            for r in ok
            if r["ttft"] is not None and r["index"] >= share(streams, r.get("shard") or 0, workers)
        ],
        itl_mean_ms=[r["tpot"] for r in ok if r["tpot"] is not None],
        gaps_ms=gaps,
    )


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "-"


def _timed(emit: Emit, title: str, body: Callable[[Emit], None]) -> None:
    emit(f"== {title}")
    t0 = time.monotonic()
    body(emit)
    emit(f"   (section took {time.monotonic() - t0:.0f} s)")


# --- the sections -----------------------------------------------------------------------


def streams_1024(emit: Emit, streams: int = 1024, rounds: int = 2) -> None:
    """1,024 streams at ITL 20 ms: lens with 2 workers (and 1 for comparison) vs the
    reference client. Targets: TTFT p99 error <= 15 ms, ITL p99 error <= 5 ms, 0 lost."""
    requests = streams * rounds
    load = f"{{id: c, pattern: concurrency, concurrency: {streams}, requests: {requests}}}"
    emit(
        f"{streams} streams, {requests} requests, mock TTFT 200 ms, ITL 20 ms, {TOKENS} tokens; "
        "error = client p99 minus mock p99; CPU over the streaming window"
    )
    emit(
        f"{'client':>10} {'ok':>5} {'lost':>4} {'served':>6} {'CPU us/tok':>10} {'(whole)':>8} "
        f"{'TTFT p99 err':>12} {'warm':>9} {'ITL/req p99 err':>15} {'ITL/gap p99 err':>15} "
        f"{'mock cores':>10}"
    )
    emit(
        "  (whole: CPU of the process tree from start to exit; warm: arrivals after each "
        "stream's first, i.e. without the opening burst of connects; ITL/req: per-request "
        "mean ITL; ITL/gap: lens's gaps vs the mock's per-chunk send gaps)"
    )
    rows: dict[str, ClientRun] = {}
    with tempfile.TemporaryDirectory(prefix="lens-bench-w-") as d:
        tmp = Path(d)
        for workers in (2, 1):
            run = run_lens(load, streams, workers, 200.0, 20.0, tmp)
            rows[f"lens w{workers}"] = run
            t, lt = run.truth, lens_times(run.out, streams, workers)
            lost = lt.planned - lt.records + lt.lens_lost
            emit(
                f"{f'lens w{workers}':>10} {lt.ok:>5} {lost:>4} {t.served:>6} "
                f"{run.us_per_token:>10.1f} {run.total_cpu_s / max(t.tokens, 1) * 1e6:>8.1f} "
                f"{pct(lt.ttft_ms, 0.99) - pct(t.ttft_ms, 0.99):>+10.2f}ms "
                f"{pct(lt.warm_ttft_ms, 0.99) - pct(t.warm_ttft_ms, 0.99):>+7.2f}ms "
                f"{pct(lt.itl_mean_ms, 0.99) - pct(t.itl_mean_ms, 0.99):>+13.3f}ms "
                f"{pct(lt.gaps_ms, 0.99) - pct(t.gaps_ms, 0.99):>+13.2f}ms "
                f"{run.mock_cores:>10.2f}"
            )
        ref = run_reference(streams, requests, 200.0, 20.0, tmp)
        rows["ref"] = ref
        t, o = ref.truth, ref.out
        emit(
            f"{'ref':>10} {o['requests_ok']:>5} {requests - o['requests_ok']:>4} {t.served:>6} "
            f"{ref.us_per_token:>10.1f} {ref.total_cpu_s / max(t.tokens, 1) * 1e6:>8.1f} "
            f"{o['ttft_ms']['p99'] - pct(t.ttft_ms, 0.99):>+10.2f}ms {'-':>9} "
            f"{o['itl_ms']['p99'] - pct(t.itl_mean_ms, 0.99):>+13.3f}ms "
            f"{'-':>15} {ref.mock_cores:>10.2f}"
        )
    emit(
        f"{'ratio':>10} lens w2 / ref CPU per token "
        f"{_ratio(rows['lens w2'].us_per_token, ref.us_per_token)}, "
        f"lens w1 / ref {_ratio(rows['lens w1'].us_per_token, ref.us_per_token)}"
        "  (targets for w2: TTFT p99 err <= 15 ms, ITL p99 err <= 5 ms, lost 0)"
    )


def absorption_workers(emit: Emit, streams: int = 128, requests: int = 4000) -> None:
    """Zero-delay absorption on the mock (TTFT 0, ITL 0): tokens/s over the mock's
    streaming window. Target: lens with 2 workers >= 2x the reference client."""
    load = f"{{id: z, pattern: concurrency, concurrency: {streams}, requests: {requests}}}"
    emit(
        f"zero-delay absorption: the mock at TTFT 0 / ITL 0 ({TOKENS} tokens, 16 chunks per "
        f"write), {streams} streams, {requests} requests; tokens/s = mock-sent tokens over "
        "its first-arrival-to-last-chunk window"
    )
    emit(
        f"{'client':>10} {'tokens/s':>10} {'CPU us/tok':>10} {'errors':>6} {'client cores':>12} "
        f"{'mock cores':>10}"
    )
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="lens-bench-w-") as d:
        tmp = Path(d)
        for workers in (1, 2):
            run = run_lens(load, streams, workers, 0.0, 0.0, tmp)
            lt = lens_times(run.out)
            rates[f"lens w{workers}"] = run.tokens_per_s
            emit(
                f"{f'lens w{workers}':>10} {run.tokens_per_s:>10,.0f} {run.us_per_token:>10.1f} "
                f"{lt.errors + lt.planned - lt.records:>6} {run.client_cores:>12.2f} "
                f"{run.mock_cores:>10.2f}"
            )
        ref = run_reference(streams, requests, 0.0, 0.0, tmp)
        rates["ref"] = ref.tokens_per_s
        emit(
            f"{'ref':>10} {ref.tokens_per_s:>10,.0f} {ref.us_per_token:>10.1f} "
            f"{ref.out['requests_failed']:>6} {ref.client_cores:>12.2f} {ref.mock_cores:>10.2f}"
        )
    emit(
        f"{'ratio':>10} lens w1 / ref {_ratio(rates['lens w1'], rates['ref'])}, "
        f"lens w2 / ref {_ratio(rates['lens w2'], rates['ref'])} (target w2 >= 2x); "
        "mock cores near 1.0: the one-process mock is the limit"
    )


def rate_1000(emit: Emit, rate: int = 1000, seconds: int = 5) -> None:
    """1,000 req/s constant rate: achieved vs plan and dispatch lag, 2 workers and 1.
    Targets (2 workers): within 1 % of plan, lag p99 <= 10 ms. The reference client has
    no open-loop mode, so there is no reference figure."""
    load = f"{{id: r, pattern: constant-rate, rate: {rate}/s, duration: {seconds}s}}"
    emit(
        f"constant rate {rate}/s for {seconds} s against the mock (TTFT 50 ms, ITL 10 ms, "
        "16 tokens); pacing as lens reports it (summaries[].pacing)"
    )
    emit(
        f"{'client':>10} {'sent':>5} {'errors':>6} {'planned/s':>9} {'achieved/s':>10} "
        f"{'error':>7} {'lag p50':>9} {'lag p99':>9} {'max':>9} {'lens cores':>10} "
        f"{'CPU ms/req':>10} {'mock cores':>10}"
    )
    with tempfile.TemporaryDirectory(prefix="lens-bench-w-") as d:
        tmp = Path(d)
        for workers in (2, 1):
            run = run_lens(load.replace("}", ", max_tokens: 16}"), 0, workers, 50.0, 10.0, tmp)
            lt = lens_times(run.out)
            p = run.out["summaries"][0]["pacing"]
            ms_per_request = run.window_cpu_s / max(run.truth.served, 1) * 1e3
            emit(
                f"{f'lens w{workers}':>10} {p['sent']:>5} {lt.errors:>6} "
                f"{p['planned_rate_per_s']:>9.1f} {p['achieved_rate_per_s']:>10.1f} "
                f"{p['rate_error'] * 100:>+6.2f}% {p['lag_p50_ms']:>7.2f}ms "
                f"{p['lag_p99_ms']:>7.2f}ms {p['lag_max_ms']:>7.2f}ms {run.client_cores:>10.2f} "
                f"{ms_per_request:>10.3f} {run.mock_cores:>10.2f}"
            )
    emit(f"{'':>10} (targets for w2: within 1 % of plan, lag p99 <= 10 ms; no reference)")


def workers(emit: Emit) -> None:
    if not (SHARED_BENCH / "ref_client.py").exists():
        emit(f"worker sections skipped: {SHARED_BENCH} not found (set LENS_SHARED_BENCH)")
        return
    _timed(emit, "1,024 streams, --workers 2 vs the reference client", streams_1024)
    emit("")
    _timed(emit, "zero-delay absorption, --workers 1/2 vs the reference client", absorption_workers)
    emit("")
    _timed(emit, "1,000 req/s constant rate, --workers 2 and 1", rate_1000)


def main() -> int:
    def emit(line: str) -> None:
        print(line, flush=True)

    emit(machine())
    emit(raise_fd_limit())
    workers(emit)
    return 0


if __name__ == "__main__":
    sys.exit(main())

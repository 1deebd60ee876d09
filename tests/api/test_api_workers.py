"""``lens.run(..., workers=N)``: the plan split across spawned processes from a script
guarded by ``if __name__ == "__main__":``, merged exactly, with ``on_record`` and
``cancel_after`` working as in one process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from lens.run.session import StopSwitch
from lens.workers import _Stopper

SCENARIO = """\
version: 1
name: api-workers
providers:
  sim: {type: simulated, ttft: 10ms, itl: 2ms, output_tokens: 3}
prompts:
  - id: q
    messages: [{role: user, content: hi}]
load:
  - {id: rate, pattern: constant-rate, rate: 40/s, requests: 20}
  - {id: slow, pattern: constant-rate, rate: 2/s, duration: 60s}
"""

SCRIPT = """\
import json, sys
import lens

if __name__ == "__main__":
    seen = []
    limit = float(sys.argv[2])
    results = lens.run(sys.argv[1], workers=2, on_record=seen.append, cancel_after=limit)
    print(json.dumps({
        "records": sorted((r.stage, r.index) for r in results.records),
        "seen": len(seen),
        "shards": sorted({r.shard for r in results.records}),
        "interrupted_by": results.interrupted_by,
        "partial": results.partial,
        "rate_requests": results.summary("rate").requests,
    }))
"""


def test_lens_run_with_two_workers_from_a_guarded_script(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    script = tmp_path / "use_lens.py"
    script.write_text(SCRIPT, encoding="utf-8")
    # The slow stage would run a minute: cancel_after ends the run 3 s after the start.
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(script), str(scenario), "3"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 50
    out = json.loads(done.stdout)
    assert out["interrupted_by"] == "cancel_after"
    assert out["partial"] is True
    rate = [i for stage, i in out["records"] if stage == "rate"]
    assert rate == list(range(20))  # every planned request of the first stage, once
    assert out["rate_requests"] == 20
    assert out["shards"] == [0, 1]  # from both workers
    assert out["seen"] == len(out["records"])  # on_record saw every record, in this process


def test_the_parent_stops_on_the_callers_switch_or_its_time_limit() -> None:
    switch = StopSwitch()
    stopper = _Stopper(switch, cancel_after_s=None)
    assert stopper.reason is None
    switch.stop("cancelled")
    assert stopper.reason == "cancelled"
    assert stopper.at is not None

    timed = _Stopper(None, cancel_after_s=0.0)
    assert timed.reason is None  # not started yet: the limit counts from the shared start
    timed.t0 = time.monotonic()
    assert timed.reason == "cancel_after"

"""``lens run --workers 2``: the engine is scraped once per interval (by worker 0), not once
per worker, and each stage's counter deltas are what the engine served to both workers in
it: worker 0 scrapes after a stage once every worker has ended it (at the next unit's gate,
or a gate past the last unit).  Real worker processes, one simulator, real sockets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

LENS = (sys.executable, "-m", "lens.cli")

SCENARIO = """\
version: 1
name: workers
providers:
  sim:
    type: simulated
    ttft: 20ms
    itl: 5ms
    output_tokens: 6
    server_metrics: {every: 100ms}
prompts:
  - id: a
    messages: [{role: user, content: hi}]
load:
  - {id: conc, pattern: concurrency, concurrency: 4, requests: 24}
  - {id: rate, pattern: constant-rate, rate: 40/s, requests: 20}
"""


def test_workers_scrape_once(tmp_path: Path) -> None:
    path, out = tmp_path / "s.yaml", tmp_path / "r.json"
    path.write_text(SCENARIO, encoding="utf-8")
    done = subprocess.run(
        [*LENS, "run", str(path), "--workers", "2", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text(encoding="utf-8"))
    (sm,) = doc["server_metrics"]
    assert sm["scraped_by"] == "worker 0"
    assert sm["failed_scrapes"] == 0
    records = doc["records"]
    assert {r["shard"] for r in records} == {0, 1}  # both workers sent requests
    assert [s["stage"] for s in sm["stages"]] == ["conc", "rate"]
    for stage in sm["stages"]:
        got = {c["name"]: c for c in stage["counters"]}
        mine = [r for r in records if r["stage"] == stage["stage"]]
        served = sum(r["output_tokens"] for r in mine)
        assert got["llamacpp:tokens_predicted_total"]["delta"] == served
        assert got["lens_sim:request_duration_seconds_count"]["delta"] == len(mine)
        assert stage["after_ms"] is not None
    # The simulator answered the scrapes worker 0 counted, and at most one more per stage
    # (one in flight when the stage ended is cut off with it, uncounted): worker 1, which
    # would have doubled them, sent none.
    last = {c["name"]: c for c in sm["stages"][-1]["counters"]}
    answered = last["lens_sim:metrics_scrapes_total"]["after"]
    assert sm["scrapes"] <= answered <= sm["scrapes"] + len(sm["stages"])

"""The nightly regression gate as shipped: how often it cries wolf, what it catches.

Runs ``scenarios/nightly.yaml`` on its simulated endpoint, with its SLAs, stages, request
counts and regression thresholds, but shorter responses (8 tokens 5 ms apart, instead
of 96 tokens 20 ms apart) so a night takes seconds; TTFT is the shipped 180 ms, or
slower.  Every pair of unchanged nights is compared (false alarms: a "regressed" check;
clean passes: exit 0), and nights with TTFT +15 % and +30 % are compared against each
unchanged one (detection: ``ttft.p50`` / ``ttft.p95`` regressed, and the gate's exit 1).

``python -m bench.bench_gate [UNCHANGED] [PER_LEVEL] [--full]`` (defaults 6 and 3: ~4
minutes; ``--full`` keeps the shipped responses, ~50 s a night).
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

import yaml

import lens
from lens import exitcodes

NIGHTLY = Path(__file__).resolve().parents[1] / "scenarios" / "nightly.yaml"
TTFT_MS = 180.0
LEVELS = (0.15, 0.30)


FULL = "--full" in sys.argv  # the shipped responses (96 tokens 20 ms apart): ~50 s a night


def night(ttft_ms: float, seed: int) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(NIGHTLY.read_text(encoding="utf-8"))
    prod = doc["providers"]["prod"]
    prod.update({"ttft": f"{ttft_ms:g}ms", "seed": seed})
    if not FULL:
        prod.update({"itl": "5ms", "output_tokens": 8})
    return doc


def main(argv: list[str]) -> int:
    numbers = [a for a in argv if not a.startswith("--")]
    unchanged = int(numbers[0]) if numbers else 6
    per_level = int(numbers[1]) if len(numbers) > 1 else 3
    regression = lens.compile_plan(lens.load_scenario(night(TTFT_MS, 0))).regression
    assert regression is not None, "scenarios/nightly.yaml has a regression: block"
    thresholds = {label: t.text for label, t in regression.thresholds}
    base = [lens.run(night(TTFT_MS, 100 + i)) for i in range(unchanged)]
    pairs = list(itertools.combinations(base, 2))
    alarms = clean = checks = 0
    unsure: dict[str, int] = {}
    for a, b in pairs:
        c = lens.compare(a, b, thresholds=thresholds)
        checks += len(c.checks)
        alarms += c.count("regressed")
        clean += c.exit_code == exitcodes.OK
        for check in c.checks:
            if check.outcome == "inconclusive":
                unsure[check.statistic] = unsure.get(check.statistic, 0) + 1
    distrusted = sum(
        r.integrity is not None
        and r.integrity.harness is not None
        and r.integrity.harness.status == "overloaded"
        for r in base
    )
    print(f"nightly gate, unchanged server: {len(pairs)} pairs, {checks} checks")
    # An overloaded client makes every timing check of its night inconclusive, by design.
    print(f"  nights the harness self-check distrusted: {distrusted} of {len(base)}")
    print(f"  false 'regressed' checks: {alarms} of {checks}")
    print(f"  pairs exiting 0 (every check unchanged or improved): {clean} of {len(pairs)}")
    shown = ", ".join(f"{k} {v}" for k, v in sorted(unsure.items(), key=lambda kv: -kv[1]))
    print(f"  inconclusive checks: {shown or 'none'}")
    for level in LEVELS:
        slow = [lens.run(night(TTFT_MS * (1 + level), 200 + i)) for i in range(per_level)]
        hits = {"ttft.p50": 0, "ttft.p95": 0}
        failed = total = 0
        for s, b in itertools.product(slow, base):
            c = lens.compare(b, s, thresholds=thresholds)
            total += 1
            failed += c.exit_code == exitcodes.REGRESSED
            for check in c.checks:
                if check.statistic in hits and check.outcome == "regressed":
                    hits[check.statistic] += 1
        per_stage = total * 2  # steady and loaded
        print(
            f"  TTFT +{level:.0%}: gate fails {failed} of {total}; ttft.p50 regressed in "
            f"{hits['ttft.p50']} of {per_stage} stage checks, ttft.p95 in "
            f"{hits['ttft.p95']} of {per_stage}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

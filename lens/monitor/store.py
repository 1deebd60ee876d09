"""``--store DIR``: each cycle written as it ends, read back on start, kept bounded.

Two files per cycle, named by its end (UTC) and number so they sort by age:
``cycle-20261206T214500Z-000012.json`` (small: outcome, end time, the window sketches of
each stage x provider, the providers that succeeded) and ``...-000012.results.json`` (the
cycle's results, as ``lens run -o`` writes them).  Start-up reads every small file (the
windows) and only the newest results file (``/results/latest``).  Writes are atomic (a
temporary file renamed), so a monitor killed mid-write leaves no half file to trip on.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lens.errors import describe
from lens.export.results import Results, load_results
from lens.monitor.state import CycleWindow

CYCLE_KIND = "lens.monitor_cycle"
CYCLE_VERSION = 1
_PREFIX = "cycle-"
_RESULTS_SUFFIX = ".results.json"


@dataclass(frozen=True, slots=True)
class StoredCycle:
    number: int
    outcome: str
    exit_code: int
    duration_s: float
    window: CycleWindow
    path: Path


@dataclass(frozen=True, slots=True)
class Reloaded:
    cycles: list[StoredCycle]  # oldest first
    results: Results | None  # the newest readable results
    results_text: bytes | None
    warnings: list[str]


class CycleStore:
    def __init__(self, folder: Path, *, max_age_s: float, max_cycles: int) -> None:
        self.folder = folder
        self.max_age_s = max_age_s
        self.max_cycles = max_cycles

    def prepare(self) -> None:
        """Create the folder; an ``OSError`` says it cannot be (the CLI exits 2)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        probe = self.folder / ".lens-monitor-probe"
        probe.write_text("", encoding="utf-8")
        probe.unlink()

    def _stem(self, number: int, ended_at: float) -> str:
        stamp = datetime.fromtimestamp(ended_at, UTC).strftime("%Y%m%dT%H%M%SZ")
        return f"{_PREFIX}{stamp}-{number:06d}"

    def write(
        self,
        *,
        number: int,
        outcome: str,
        exit_code: int,
        duration_s: float,
        window: CycleWindow,
        results_text: bytes | None,
    ) -> None:
        stem = self._stem(number, window.ended_at)
        self.folder.mkdir(parents=True, exist_ok=True)  # removed while running: made again
        doc = {
            "kind": CYCLE_KIND,
            "v": CYCLE_VERSION,
            "cycle": number,
            "outcome": outcome,
            "exit_code": exit_code,
            "duration_s": duration_s,
            "window": window.to_dict(),
        }
        if results_text is not None:
            _write_atomic(self.folder / f"{stem}{_RESULTS_SUFFIX}", results_text)
        _write_atomic(self.folder / f"{stem}.json", json.dumps(doc).encode())

    def prune(self, now: float | None = None) -> int:
        """Drop the cycles beyond ``max_cycles`` or older than ``max_age_s``; how many."""
        now = time.time() if now is None else now
        stems = self._stems()
        dropped = 0
        for i, (stem, ended_at) in enumerate(stems):
            too_many = len(stems) - i > self.max_cycles
            if too_many or ended_at < now - self.max_age_s:
                for name in (f"{stem}.json", f"{stem}{_RESULTS_SUFFIX}"):
                    (self.folder / name).unlink(missing_ok=True)
                dropped += 1
        return dropped

    def _stems(self) -> list[tuple[str, float]]:
        """Every stored cycle's file stem and end time, oldest first."""
        out: list[tuple[str, float]] = []
        for path in self.folder.glob(f"{_PREFIX}*.json"):
            if path.name.endswith(_RESULTS_SUFFIX):
                continue
            stem = path.name[: -len(".json")]
            try:
                stamp = stem[len(_PREFIX) :].split("-")[0]
                ended = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            except ValueError:
                continue  # not one of ours
            out.append((stem, ended.timestamp()))
        out.sort(key=lambda item: item[0])
        return out

    def reload(self, now: float | None = None) -> Reloaded:
        self.prune(now)
        cycles: list[StoredCycle] = []
        warnings: list[str] = []
        for stem, _ in self._stems():
            path = self.folder / f"{stem}.json"
            try:
                cycles.append(_read_cycle(path))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                warnings.append(f"{path}: skipped, unreadable: {describe(exc)}")
        results: Results | None = None
        text: bytes | None = None
        for cycle in reversed(cycles):
            rpath = cycle.path.with_name(cycle.path.name[: -len(".json")] + _RESULTS_SUFFIX)
            if not rpath.exists():
                continue
            try:
                results = load_results(rpath)
                text = rpath.read_bytes()
            except Exception as exc:  # a foreign or damaged file: older ones may do
                warnings.append(f"{rpath}: skipped, unreadable: {describe(exc)}")
                continue
            break
        return Reloaded(cycles, results, text, warnings)


def _read_cycle(path: Path) -> StoredCycle:
    doc: dict[str, Any] = json.loads(path.read_bytes())
    if doc.get("kind") != CYCLE_KIND or doc.get("v") != CYCLE_VERSION:
        raise ValueError(f"not a lens monitor cycle v{CYCLE_VERSION}")
    return StoredCycle(
        number=int(doc["cycle"]),
        outcome=str(doc["outcome"]),
        exit_code=int(doc["exit_code"]),
        duration_s=float(doc["duration_s"]),
        window=CycleWindow.from_dict(doc["window"]),
        path=path,
    )


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)

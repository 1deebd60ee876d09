"""``make bench``: figures, not pass/fail. Run on an otherwise idle machine."""

from __future__ import annotations

import sys
import time

from bench import bench_client, bench_embed, bench_reference, bench_sketch, bench_workers


def main() -> int:
    def emit(line: str) -> None:
        print(line, flush=True)

    started = time.monotonic()
    emit(bench_workers.machine())
    emit(bench_workers.raise_fd_limit())
    emit("")
    emit("== sketch insert cost (us per value)")
    for label, us in bench_sketch.run():
        emit(f"{label:<48} {us:8.3f}")
    sections = [
        bench_reference.versus_reference,
        bench_workers.workers,
        bench_client.streaming,
        bench_client.absorption,
        bench_client.pacing,
        bench_embed.embedding,
    ]
    for section in sections:
        emit("")
        t0 = time.monotonic()
        section(emit)
        emit(f"   ({section.__module__}.{section.__name__} took {time.monotonic() - t0:.0f} s)")
    emit("")
    emit(f"make bench took {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``make bench``: figures, not pass/fail. Run on an otherwise idle machine."""

from __future__ import annotations

import sys

from bench import bench_client, bench_embed, bench_reference, bench_sketch


def main() -> int:
    def emit(line: str) -> None:
        print(line, flush=True)

    emit("== sketch insert cost (us per value)")
    for label, us in bench_sketch.run():
        emit(f"{label:<48} {us:8.3f}")
    sections = [
        bench_reference.versus_reference,
        bench_client.streaming,
        bench_client.absorption,
        bench_client.pacing,
        bench_embed.embedding,
    ]
    for section in sections:
        emit("")
        section(emit)
    return 0


if __name__ == "__main__":
    sys.exit(main())

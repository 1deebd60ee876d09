"""Exporter kind ``summary-line``: ``summary-line=out/summary.txt`` writes one line per
judged stage x provider, e.g.::

    quickstart steady sim requests=40 ok=40 ttft_p50=0.151s output_tokens=2560
"""

from __future__ import annotations

from pathlib import Path

from lens.plugins import ExportError, ExportTarget, Results


def export_summary_line(results: Results, target: ExportTarget) -> None:
    if not results.summaries:
        raise ExportError("summary-line: the results hold no summary to write")
    lines = []
    for s in results.summaries:
        ttft = s.metrics.get("ttft")
        p50 = "none" if ttft is None or ttft.p50 is None else f"{ttft.p50:.3f}{ttft.unit or ''}"
        lines.append(
            f"{results.scenario} {s.stage} {s.provider} requests={s.requests} ok={s.ok} "
            f"ttft_p50={p50} output_tokens={s.output_tokens}\n"
        )
    path = Path(target.dest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines), encoding="utf-8")

"""Live progress: one rewritten line on a terminal, plain periodic lines in CI logs."""

from __future__ import annotations

from typing import TextIO

import trio

from lens.run.executor import RunProgress


def progress_line(
    p: RunProgress, elapsed_s: float, prev_done: int, dt_s: float, prev_tokens: int = 0
) -> str:
    """Rates are over the last interval (``dt_s``), not the whole run: a whole-run average
    decays through idle stages and pauses and hides what the current stage does."""
    total = f"/{p.total}" if p.total is not None else ""
    rate = (p.done - prev_done) / dt_s if dt_s > 0 else 0.0
    tput = (p.output_tokens - prev_tokens) / dt_s if dt_s > 0 else 0.0
    return (
        f"[{elapsed_s:6.1f}s] {p.unit:<24} done {p.done}{total}  in flight "
        f"{p.started - p.done}  errors {p.errors}  {rate:.1f} req/s  {tput:.0f} tok/s"
    )


async def show_progress(p: RunProgress, out: TextIO, *, tty: bool) -> None:
    """Runs until cancelled. The interval is long enough to cost the run nothing."""
    interval = 0.5 if tty else 5.0
    start = trio.current_time()
    last_t, last_done, last_tokens = start, 0, 0
    try:
        while True:
            await trio.sleep(interval)
            now = trio.current_time()
            line = progress_line(p, now - start, last_done, now - last_t, last_tokens)
            last_t, last_done, last_tokens = now, p.done, p.output_tokens
            if tty:
                out.write("\r\x1b[2K" + line)
            else:
                out.write(line + "\n")
            out.flush()
    finally:
        if tty:
            out.write("\r\x1b[2K")
            out.flush()

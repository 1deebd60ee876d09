from __future__ import annotations

import io

import trio
import trio.testing

from lens.plan.model import (
    ArrivalSchedule,
    Message,
    OpenLoop,
    Plan,
    PromptSpec,
    ProviderSpec,
    StagePlan,
)
from lens.records import ErrorClass, RequestRecord
from lens.run.executor import RunProgress
from lens.run.progress import progress_line, show_progress


def _plan() -> Plan:
    unit = StagePlan(
        stage="s",
        provider="p",
        pattern="burst",
        prompts=("a",),
        timeout_s=1.0,
        max_tokens=None,
        load=OpenLoop(ArrivalSchedule((0.0,) * 10)),
    )
    return Plan(
        name="t",
        description="",
        source="",
        providers={"p": ProviderSpec(id="p", type="openai", model="m", base_url="http://x")},
        prompts={"a": PromptSpec(id="a", messages=(Message("user", "x"),))},
        stages=(unit,),
        slas=(),
    )


def _rec(ok: bool) -> RequestRecord:
    return RequestRecord(
        provider="p", stage="s", prompt="a", index=0, ok=ok,
        error_class=None if ok else ErrorClass.HTTP_5XX, error_message=None, http_status=200,
        t_intended=None, t_dispatch=0, t_headers=None, t_first_chunk=None, t_first_token=None,
        t_first_visible=None, t_last_token=None, t_end=1, output_tokens=10 if ok else None,
    )  # fmt: skip


def test_progress_counts_and_line() -> None:
    p = RunProgress(_plan())
    assert p.total == 10
    p.started, p.unit = 3, "s/p"
    p.record(_rec(True))
    p.record(_rec(False))
    line = progress_line(p, elapsed_s=2.0, prev_done=0, dt_s=1.0)
    assert "done 2/10" in line
    assert "in flight 1" in line
    assert "errors 1" in line
    assert "2.0 req/s" in line
    assert "10 tok/s" in line  # over the last interval (1 s), not the whole 2 s


def test_progress_rates_are_recent_not_whole_run() -> None:
    """An idle interval shows 0 tok/s, not a decaying whole-run average."""
    p = RunProgress(_plan())
    p.record(_rec(True))
    busy = progress_line(p, elapsed_s=1.0, prev_done=0, dt_s=1.0, prev_tokens=0)
    idle = progress_line(p, elapsed_s=6.0, prev_done=1, dt_s=5.0, prev_tokens=10)
    assert "10 tok/s" in busy
    assert " 0 tok/s" in idle
    assert "0.0 req/s" in idle


async def test_plain_lines_every_5s_off_a_tty(autojump_clock: trio.testing.MockClock) -> None:
    out = io.StringIO()
    with trio.move_on_after(11):
        await show_progress(RunProgress(_plan()), out, tty=False)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("[   5.0s]")


async def test_tty_rewrites_one_line_and_clears_it(autojump_clock: trio.testing.MockClock) -> None:
    out = io.StringIO()
    with trio.move_on_after(1.1):
        await show_progress(RunProgress(_plan()), out, tty=True)
    text = out.getvalue()
    assert text.count("\r\x1b[2K[") == 2
    assert text.endswith("\r\x1b[2K")
    assert "\n" not in text

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

# The harness self-check would make verdicts inconclusive when the test machine (or the
# coverage tracer) starves the client; tests of other things judge regardless.  Tests of
# the self-check itself pass integrity="".
LENIENT_INTEGRITY = "integrity: {max_cpu: 100%, max_loop_lag: 10s}"

SIM_SCENARIO = """\
version: 1
name: itest
providers:
  sim:
    type: simulated
    ttft: {ttft}
    itl: {itl}
    output_tokens: {tokens}
    {extra}
prompts:
  - id: q
    messages: [{{role: user, content: "hello"}}]
load:
{load}
sla:
{sla}
{integrity}
"""


@pytest.fixture
def write_scenario(tmp_path: Path) -> Callable[..., Path]:
    def write(
        *,
        ttft: str = "20ms",
        itl: str = "2ms",
        tokens: int = 8,
        extra: str = "",
        load: str = "  - {id: b, pattern: burst, requests: 4}",
        sla: str = "  - error_rate < 1%",
        name: str = "s.yaml",
        integrity: str = LENIENT_INTEGRITY,
    ) -> Path:
        path = tmp_path / name
        path.write_text(
            SIM_SCENARIO.format(
                ttft=ttft,
                itl=itl,
                tokens=tokens,
                extra=extra,
                load=load,
                sla=sla,
                integrity=integrity,
            )
        )
        return path

    return write

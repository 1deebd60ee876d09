"""``results:``: what results.json keeps of a run beyond its summaries."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from lens.scenario.model.base import FrozenModel

RecordsKept = Literal["all", "none"] | Annotated[int, Field(strict=True, ge=0)]


class ResultsOptions(FrozenModel):
    """What results.json keeps of a run beyond its summaries."""

    records: RecordsKept | None = Field(
        None,
        description="Per-request records results.json lists: all, none, or N (an evenly "
        "spaced sample of N, in completion order). Unset: every record up to 10,000 (lens "
        "compare's bootstrap, the HTML report and CSV exports read them), an evenly spaced "
        "sample of 10,000 beyond, with a warning, so a long soak's memory stays flat (a run "
        "holds about 1.2 KB per record kept, and ~4.5 KB more while results are built). "
        "Summaries, verdicts and analyses always cover every request; --records "
        "FILE.jsonl still gets every one; a shard (lens run --shard) keeps all by default, "
        "as lens merge needs them.",
    )

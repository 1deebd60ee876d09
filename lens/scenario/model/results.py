"""``results:``: what results.json keeps of a run beyond its summaries."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from lens.scenario.model.base import FrozenModel

RecordsKept = Literal["all", "none"] | Annotated[int, Field(strict=True, ge=0)]


class ResultsOptions(FrozenModel):
    """What results.json keeps of a run beyond its summaries."""

    records: RecordsKept = Field(
        "all",
        description="Per-request records results.json lists: all (the default: lens compare's "
        "bootstrap, the HTML report and CSV exports read them), none, or N (an evenly spaced "
        "sample of N, in completion order). Summaries, verdicts and analyses always cover "
        "every request; --records FILE.jsonl still gets every one. A long soak (an hour at "
        "1,000 req/s is 3.6M records, ~4.5 KB each while results are built) wants none or N.",
    )

"""``regression:``: the baseline a run is compared with, and how much worse it may get."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from lens.scenario.model.base import FrozenModel, NonEmptyStr
from lens.scenario.thresholds import parse_threshold


class Regression(FrozenModel):
    """Compare each run with a baseline results file (as ``lens compare`` does); a
    statistic that got worse by more than its threshold fails the run."""

    baseline: NonEmptyStr | None = Field(
        None,
        description="The baseline results file: a path (relative to this file), or "
        "'git:REF:PATH' to read a committed file without a checkout (PATH from the "
        "repository's root, as git show takes it). --baseline on the command line "
        "replaces it.",
    )
    thresholds: dict[str, str | float] = Field(
        default_factory=dict,
        description="How much worse each statistic may get: METRIC.STAT: +10% (relative) or "
        "+50ms (absolute; on a ratio such as error_rate, +0.5% is percentage points). "
        "Statistics not named keep lens compare's defaults.",
        json_schema_extra={"propertyNames": {"pattern": r"^[a-z_][a-z0-9_]*(\.[a-z0-9_]+)?$"}},
    )

    @field_validator("thresholds")
    @classmethod
    def _parse(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, amount in value.items():
            parse_threshold(key, amount)  # a ThresholdError (ValueError) names the key
        return value

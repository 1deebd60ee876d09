"""SLA assertions: ``sla:`` entries, written as expressions such as ``ttft.p95 < 500ms``."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator, model_validator

from lens.scenario.model.base import FieldError, FrozenModel, Ident, PositiveDuration
from lens.scenario.sla import WINDOWED_STAGE_METRICS, parse_sla


class SlaAssert(FrozenModel):
    """An SLA assertion, optionally limited to one provider and/or one stage."""

    assert_: str = Field(
        alias="assert",
        description="'<metric>[.<stat>] <op> <value>[unit]', e.g. 'ttft.p95 < 800ms'.",
    )
    provider: Ident | None = Field(None, description="Only judge this provider.")
    stage: Ident | None = Field(None, description="Only judge this stage.")
    window: PositiveDuration | None = Field(
        None,
        description="Judge the assertion in each window of this length of the stage's "
        "measured phase (requests by dispatch time), e.g. 60s.",
    )
    allow: int | None = Field(
        None, ge=0, description="With window: how many windows may fail (default 0)."
    )
    stop_on_fail: bool = Field(
        False,
        description="End the run as soon as this assertion has conclusively failed: "
        "partial results, exit 1.",
    )

    @field_validator("assert_")
    @classmethod
    def _parses(cls, text: str) -> str:
        parse_sla(text)  # SlaSyntaxError is a ValueError: pydantic reports it at 'assert'
        return text

    @model_validator(mode="after")
    def _window_fits(self) -> SlaAssert:
        if self.allow is not None and self.window is None:
            raise FieldError("'allow' counts failed windows: it needs 'window'", "allow")
        if self.window is not None:
            expr = parse_sla(self.assert_)
            if expr.stat is None and expr.metric not in WINDOWED_STAGE_METRICS:
                raise FieldError(
                    f"{expr.metric} is a rate over the whole stage and cannot be judged per "
                    f"window; a window takes per-request statistics or "
                    f"{', '.join(sorted(WINDOWED_STAGE_METRICS))}",
                    "window",
                )
            if expr.stat == "total":
                raise FieldError("a total cannot be judged per window", "window")
        return self


def _sla_entry(value: Any) -> Any:
    # The short form "ttft.p95 < 800ms" is the long form without scope.
    return {"assert": value} if isinstance(value, str) else value


SlaEntry = Annotated[SlaAssert, BeforeValidator(_sla_entry, json_schema_input_type=str | SlaAssert)]

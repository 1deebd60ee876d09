"""SLA assertions: ``sla:`` entries, written as expressions such as ``ttft.p95 < 500ms``."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator

from lens.scenario.model.base import FrozenModel, Ident
from lens.scenario.sla import parse_sla


class SlaAssert(FrozenModel):
    """An SLA assertion, optionally limited to one provider and/or one stage."""

    assert_: str = Field(
        alias="assert",
        description="'<metric>[.<stat>] <op> <value>[unit]', e.g. 'ttft.p95 < 800ms'.",
    )
    provider: Ident | None = Field(None, description="Only judge this provider.")
    stage: Ident | None = Field(None, description="Only judge this stage.")

    @field_validator("assert_")
    @classmethod
    def _parses(cls, text: str) -> str:
        parse_sla(text)  # SlaSyntaxError is a ValueError: pydantic reports it at 'assert'
        return text


def _sla_entry(value: Any) -> Any:
    # The short form "ttft.p95 < 800ms" is the long form without scope.
    return {"assert": value} if isinstance(value, str) else value


SlaEntry = Annotated[SlaAssert, BeforeValidator(_sla_entry, json_schema_input_type=str | SlaAssert)]

"""``limits:``: the byte limits a response must stay within."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, WithJsonSchema

from lens.scenario.model.base import FrozenModel
from lens.scenario.units import parse_size, size_json_schema

Size = Annotated[int, BeforeValidator(parse_size), WithJsonSchema(size_json_schema())]
DEFAULT_MAX_EVENT_BYTES = 1024**2
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024**2


class Limits(FrozenModel):
    """Caps on what one response may make lens hold: a server that sends an endless line or
    body ends that request as a protocol_error instead of eating memory and CPU."""

    max_event_bytes: Size = Field(
        DEFAULT_MAX_EVENT_BYTES,
        description="Largest streamed event (an SSE event or line) lens buffers, e.g. 1MiB "
        "(default 1MiB).",
    )
    max_response_bytes: Size = Field(
        DEFAULT_MAX_RESPONSE_BYTES,
        description="Largest response body lens reads, e.g. 64MiB (default 64MiB).",
    )

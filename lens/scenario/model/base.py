"""Shared pieces of the scenario models: limits and patterns, the unit-parsing field types,
``FieldError`` and ``FrozenModel``, the base of every model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from lens.scenario.env_scope import FROM_ENV
from lens.scenario.units import (
    duration_json_schema,
    parse_duration,
    parse_percent,
    parse_rate,
    parse_span,
    percent_json_schema,
    rate_json_schema,
    span_json_schema,
)

SUPPORTED_VERSIONS: tuple[int, ...] = (1,)
# Schedules are generated lazily (lens.plan.arrivals), so a plan's size does not grow with
# its requests; each finished request still costs memory until the run ends (its record,
# about 1 KB), so a billion is past any machine: a typo, not a plan.
MAX_REQUESTS_PER_STAGE = 1_000_000_000

ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
URL_PATTERN = r"^https?://[^\s/]+\S*$"
# The shape of an AWS region name (us-east-1, us-gov-west-1, us-isob-east-1); whether the
# region exists and offers Bedrock is left to the provider adapter.
REGION_PATTERN = r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d+$"
# A Prometheus metric family name, or a glob of them (server_metrics.names): the name
# characters plus the glob's * ? [ ] and [!...].
METRIC_NAME_GLOB_PATTERN = r"^[A-Za-z_:*?\[\]!][A-Za-z0-9_:*?\[\]!]*$"
# Friendly wording for pattern mismatches, keyed by pattern (see messages.py).
PATTERN_HINTS: dict[str, str] = {
    ID_PATTERN: "expected an id made of letters, digits, '_', '-' and '.' (no spaces, no '#')",
    URL_PATTERN: "expected an http:// or https:// URL such as http://127.0.0.1:8000/v1",
    REGION_PATTERN: "expected an AWS region name such as us-east-1 or eu-west-3",
    METRIC_NAME_GLOB_PATTERN: "expected a metric family name or a glob of them, such as "
    "llamacpp:requests_processing or 'vllm:*' (letters, digits, '_', ':', and * ? [ ])",
}


class FieldError(ValueError):
    """A check of a whole model that one of its keys is to blame for: reported at that key
    (``messages.explain``) rather than at the start of the model's mapping."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


def _positive_duration(value: object) -> float:
    return parse_duration(value, positive=True)


# Seconds.  ``Duration`` may be zero (a simulated delay), ``PositiveDuration`` may not.
Duration = Annotated[
    float, BeforeValidator(parse_duration), WithJsonSchema(duration_json_schema(positive=False))
]
PositiveDuration = Annotated[
    float, BeforeValidator(_positive_duration), WithJsonSchema(duration_json_schema(positive=True))
]
Rate = Annotated[float, BeforeValidator(parse_rate), WithJsonSchema(rate_json_schema())]


def _rate_or_zero(value: object) -> float:
    return parse_rate(value, allow_zero=True)


# Per second, zero allowed: where a ramp starts or ends.
RateOrZero = Annotated[
    float, BeforeValidator(_rate_or_zero), WithJsonSchema(rate_json_schema(allow_zero=True))
]
Percent = Annotated[float, BeforeValidator(parse_percent), WithJsonSchema(percent_json_schema())]


@dataclass(frozen=True, slots=True)
class Span:
    """How long a warmup or cooldown lasts: seconds, or a number of requests."""

    seconds: float | None = None
    requests: int | None = None

    def __str__(self) -> str:
        if self.requests is not None:
            return f"{self.requests} request{'s' if self.requests != 1 else ''}"
        return f"{self.seconds:g}s"


def _span(value: object) -> Span:
    if isinstance(value, Span):
        return value
    seconds, requests = parse_span(value)
    return Span(seconds, requests)


# ``10s`` or ``5 requests``.
PhaseSpan = Annotated[Span, BeforeValidator(_span), WithJsonSchema(span_json_schema())]
DrainPolicy = Literal["wait", "cancel"]
# Strict: YAML already types numbers, so "8" (quoted) or true must not sneak in as an int.
PositiveInt = Annotated[int, Field(strict=True, gt=0)]
Ident = Annotated[str, Field(pattern=ID_PATTERN)]
NonEmptyStr = Annotated[str, Field(min_length=1)]
Url = Annotated[str, Field(pattern=URL_PATTERN)]
EnvUrl = Annotated[str, Field(pattern=URL_PATTERN), FROM_ENV]
Region = Annotated[str, Field(pattern=REGION_PATTERN), FROM_ENV]


class FrozenModel(BaseModel):
    """Base of every scenario model: immutable, and unknown keys are errors (typos)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

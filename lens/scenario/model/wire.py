"""Configuration that reaches the wire: credentials and HTTP headers.

``FROM_ENV`` marks the fields where ``${VAR}`` is expanded (see env_scope.py); elsewhere it
is literal text.  Values that go into HTTP headers are checked here, after expansion.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Discriminator, Field, SecretStr, Tag

from lens.scenario.env_scope import FROM_ENV
from lens.scenario.headers import credential_problem, header_name_problem, unsendable
from lens.scenario.model.base import FrozenModel


def _credential(value: SecretStr) -> SecretStr:
    problem = credential_problem("api_key", value.get_secret_value())
    if problem is not None:
        raise ValueError(problem)
    return value


def _header_name(name: str) -> str:
    problem = header_name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    return name


def _header_text(value: str) -> str:
    why = unsendable(value)
    if why is not None:
        raise ValueError(f"the header value {why}")
    return value


# A credential: its value is never echoed in messages, plans or results.
ApiKey = Annotated[Annotated[SecretStr, AfterValidator(_credential)] | None, FROM_ENV]
HeaderName = Annotated[str, AfterValidator(_header_name)]
HeaderText = Annotated[str, AfterValidator(_header_text)]
EnvNonEmptyStr = Annotated[str, Field(min_length=1), FROM_ENV]
EnvHeaderText = Annotated[HeaderText, Field(min_length=1), FROM_ENV]


class SecretHeader(FrozenModel):
    """A header written as a mapping, to mark its value secret."""

    value: HeaderText = Field(description="The header's value, usually ${VAR}.")
    secret: bool = Field(
        False,
        strict=True,
        description="The value is a secret: masked in plans and replaced by *** wherever lens "
        "records or prints it.",
    )


def _header_kind(value: Any) -> str:
    return "mapping" if isinstance(value, dict | SecretHeader) else "text"


HeaderValue = Annotated[
    Annotated[HeaderText, Tag("text")] | Annotated[SecretHeader, Tag("mapping")],
    Discriminator(_header_kind),
]
Headers = Annotated[dict[HeaderName, HeaderValue], FROM_ENV]

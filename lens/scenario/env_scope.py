"""Where a scenario may read the environment: the fields that opt in with ``FromEnv``.

A scenario file may come from a pull request, so ``${VAR}`` is not expanded everywhere: a
prompt such as ``content: "${AWS_SECRET_ACCESS_KEY}"`` would send the secret to whatever
server the scenario names.  Only configuration fields expand it (credentials, URLs, headers,
model names, regions, export destinations, budget, prices); everywhere else ``${...}`` is
literal text.  A field opts in by carrying the ``FROM_ENV`` marker in its annotation::

    api_key: Annotated[SecretStr | None, FROM_ENV] = Field(...)

and everything at or under that field expands (``headers`` values, a ``tls`` mapping).  The
scopes are read from the model classes, so a new configuration field needs only the marker.
``allow_env_in_prompts: true`` at the top of a scenario also opens ``prompts`` (and the
messages of its prompt files).
"""

from __future__ import annotations

import functools
import types
from collections.abc import Iterator
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

PathT = tuple[str | int, ...]
ANY = "*"  # a pattern segment matching any mapping key or list index
PROMPTS_SWITCH = "allow_env_in_prompts"


class FromEnv:
    """Annotation marker: ``${VAR}`` is expanded in this field and everything under it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "FROM_ENV"


FROM_ENV = FromEnv()


def _marked(metadata: Any) -> bool:
    return any(isinstance(m, FromEnv) for m in metadata)


def _patterns(tp: Any, prefix: tuple[str, ...], depth: int = 0) -> Iterator[tuple[str, ...]]:
    """Paths under ``prefix`` whose values expand, for a value of type ``tp``."""
    if depth > 20:  # scenario models do not recurse; a guard should one ever do
        return
    origin = get_origin(tp)
    if origin is Annotated:
        if _marked(tp.__metadata__):
            yield prefix
        else:
            yield from _patterns(get_args(tp)[0], prefix, depth + 1)
    elif origin in (Union, types.UnionType):
        for member in get_args(tp):
            yield from _patterns(member, prefix, depth + 1)
    elif origin is dict:
        yield from _patterns(get_args(tp)[1], (*prefix, ANY), depth + 1)
    elif origin in (tuple, list):
        for item in get_args(tp):
            if item is not Ellipsis:
                yield from _patterns(item, (*prefix, ANY), depth + 1)
    elif isinstance(tp, type) and issubclass(tp, BaseModel):
        for name, info in tp.model_fields.items():
            here = (*prefix, info.alias or name)
            if _marked(info.metadata):
                yield here
            else:
                yield from _patterns(info.annotation, here, depth + 1)


@functools.cache
def env_fields(model: type[BaseModel]) -> frozenset[tuple[str, ...]]:
    """The path patterns of ``model`` whose values expand ``${VAR}`` (``*``: any key)."""
    return frozenset(_patterns(model, ()))


def _matches(pattern: tuple[str, ...], path: PathT) -> bool:
    if len(path) < len(pattern):
        return False
    return all(p in (ANY, seg) for p, seg in zip(pattern, path, strict=False))


def describe_fields(model: type[BaseModel]) -> list[str]:
    """The opted-in fields for people, e.g. ``providers.*.api_key``, sorted."""
    return sorted(".".join(p).replace(".*", "[*]") for p in env_fields(model))


class EnvScope:
    """Decides, for a raw scenario document, which paths expand ``${VAR}``."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.fields = env_fields(model)

    def prompts_allowed(self, data: Any) -> bool:
        return isinstance(data, dict) and data.get(PROMPTS_SWITCH) is True

    def __call__(self, data: Any, path: PathT) -> bool:
        if any(_matches(pattern, path) for pattern in self.fields):
            return True
        return path[:1] == ("prompts",) and self.prompts_allowed(data)

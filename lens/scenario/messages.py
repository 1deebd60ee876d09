"""pydantic ``ValidationError`` -> human problems with a data path.

pydantic's locations follow the *model* (they include the tag of a tagged union, e.g.
``('providers', 'sim', 'simulated', 'ttft')``) and its messages talk about Python types.  We
walk each location through the model's type annotations in step, which tells us which
segments are union tags (dropped), which model owns the last field (for "did you mean" and
for the field's description), and which values a literal allows.  Positions are left to the
caller, who knows whether the data came from YAML or from a JSONL line.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, Tag
from pydantic_core import ErrorDetails

from lens.scenario.model import PATTERN_HINTS, PROMPT_KINDS, PROVIDER_TYPE_ALIASES, FieldError
from lens.scenario.units import show
from lens.scenario.yaml_nodes import PathT
from lens.suggest import did_you_mean

# Values under these keys are credentials: never echo them.
SENSITIVE_KEYS = frozenset({"api_key", "headers", "export"})  # export: DEST may hold a token
KEY_SEGMENT = "[key]"  # pydantic's location segment for a bad dict key


@dataclass(frozen=True, slots=True)
class Explained:
    path: PathT  # location in the data, union tags removed
    message: str
    at_key: bool = False  # point at the key (unknown field, bad id) rather than the value


def _unwrap(tp: Any) -> Any:
    """Strip ``Annotated`` and ``X | None`` down to the type that shapes the data."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def union_tags(tp: Any) -> dict[str, Any]:
    """Tag -> member for a tagged union (a ``Tag`` or a one-value ``Literal`` field); else {}."""
    if get_origin(tp) not in (Union, types.UnionType):
        return {}
    tags: dict[str, Any] = {}
    for member in get_args(tp):
        inner = _unwrap(member)
        tag = next((m.tag for m in getattr(member, "__metadata__", ()) if isinstance(m, Tag)), None)
        if tag is None and _is_model(inner):
            for info in inner.model_fields.values():
                if get_origin(info.annotation) is Literal and len(get_args(info.annotation)) == 1:
                    tag = str(get_args(info.annotation)[0])
                    break
        if tag is not None:
            tags[tag] = inner
    return tags


def _field(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if (info.alias or name) == key:
            return info
    return None


def _aliases(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


@dataclass(frozen=True, slots=True)
class _Walk:
    path: PathT
    owner: type[BaseModel] | None  # model that the last segment is a field of
    target: Any  # type found at the end of the location
    at_key: bool


def _walk(root: type[BaseModel], loc: tuple[str | int, ...]) -> _Walk:
    tp: Any = root
    path: list[str | int] = []
    owner: type[BaseModel] | None = None
    at_key = False
    for seg in loc:
        tp = _unwrap(tp)
        tags = union_tags(tp)
        if isinstance(seg, str) and seg in tags:
            tp = tags[seg]  # the tag names the member; it is not in the data
            continue
        if seg == KEY_SEGMENT:
            at_key, tp = True, None
            continue
        path.append(seg)
        owner = tp if _is_model(tp) else None
        if owner is not None:
            info = _field(owner, str(seg))
            tp = info.annotation if info is not None else None
        elif get_origin(tp) in (tuple, list):
            tp = get_args(tp)[0]
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        else:
            tp = None
    return _Walk(tuple(path), owner, _unwrap(tp), at_key)


def _quoted(values: list[str] | tuple[str, ...]) -> str:
    return ", ".join(repr(v) for v in values)


def explain(error: ErrorDetails, root: type[BaseModel]) -> Explained | None:
    """One pydantic error as a data path and a sentence saying what was expected.

    ``None`` for an error that only echoes others: pydantic counts a list's length after
    dropping its invalid items, so a list whose items all fail is also "too short".
    """
    walk = _walk(root, tuple(error["loc"]))
    path, kind, ctx = walk.path, error["type"], error.get("ctx") or {}
    value = error.get("input")
    too_short = kind == "too_short" and isinstance(value, list | tuple)
    if too_short and len(value) >= int(ctx.get("min_length", 0)):
        return None
    hidden = any(seg in SENSITIVE_KEYS for seg in path)
    got = "" if hidden else f", got {show(value)}"
    name = str(path[-1]) if path else ""

    if kind == "missing":
        info = _field(walk.owner, name) if walk.owner is not None else None
        hint = f" ({info.description.rstrip('.')})" if info is not None and info.description else ""
        return Explained(path, f"missing required field {name!r}{hint}")
    if kind == "extra_forbidden":
        allowed = _aliases(walk.owner) if walk.owner is not None else []
        suggestion = did_you_mean(name, allowed, PROVIDER_TYPE_ALIASES)
        listing = "" if suggestion or not allowed else f"; allowed here: {', '.join(allowed)}"
        return Explained(path, f"unknown field {name!r}{suggestion}{listing}", at_key=True)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        key = str(ctx.get("discriminator", "type")).strip("'")
        tags = sorted(union_tags(walk.target))
        if kind == "union_tag_not_found":
            return Explained(
                (*path, key), f"missing field {key!r}: expected one of {_quoted(tags)}"
            )
        tag = str(ctx.get("tag", ""))
        return Explained(
            (*path, key),
            f"unknown {key} {tag!r}{did_you_mean(tag, tags, PROVIDER_TYPE_ALIASES)}; "
            f"expected one of {_quoted(tags)}",
        )
    if kind == "prompt_kind":
        return Explained(path, _prompt_kind_message(value))
    if kind in ("value_error", "assertion_error"):
        cause = ctx.get("error")
        if isinstance(cause, FieldError):
            return Explained((*path, cause.key), str(cause), at_key=True)
        return Explained(path, str(ctx.get("error", error["msg"])), walk.at_key)
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        if ctx.get("class_name") == "SlaAssert":
            return Explained(
                path,
                "expected an assertion like 'ttft.p95 < 800ms' or a mapping with 'assert' "
                f"(and optionally 'provider', 'stage'){got}",
            )
        return Explained(path, f"expected a mapping{got}")
    if kind == "literal_error":
        options = [str(a) for a in get_args(walk.target)] if walk.target is not None else []
        suggestion = ""
        if isinstance(value, str):
            suggestion = did_you_mean(value, options, PROVIDER_TYPE_ALIASES)
        return Explained(path, f"expected one of {ctx.get('expected', '')}{got}{suggestion}")
    return Explained(path, _simple_message(kind, ctx, got, value) or error["msg"], walk.at_key)


def _bound(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _simple_message(kind: str, ctx: dict[str, Any], got: str, value: Any) -> str | None:
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number{got}"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number{got}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false{got}"
    if kind == "string_type":
        quote = " (quote it to make it a string)" if isinstance(value, int | float) else ""
        return f"expected a string{got}{quote}"
    if kind in ("tuple_type", "list_type"):
        return f"expected a list{got}"
    if kind == "greater_than":
        return f"must be greater than {_bound(ctx.get('gt'))}{got}"
    if kind == "greater_than_equal":
        return f"must be at least {_bound(ctx.get('ge'))}{got}"
    if kind == "less_than_equal":
        return f"must be at most {_bound(ctx.get('le'))}{got}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s)"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return PATTERN_HINTS.get(pattern, f"must match {pattern}") + got
    return None


def _prompt_kind_message(value: Any) -> str:
    if not isinstance(value, dict):
        return f"expected a mapping like {{id: q1, messages: [...]}}, got {show(value)}"
    present = [k for k in PROMPT_KINDS if k in value]
    if present:
        return (
            f"has both {' and '.join(repr(k) for k in present)}: a prompt takes exactly one of "
            "'messages', 'synthetic', 'file' or 'dataset'"
        )
    return (
        "needs one of 'messages' (inline chat), 'synthetic' (generated text), 'file' (JSONL) "
        "or 'dataset' (sampled from a dataset)"
    )

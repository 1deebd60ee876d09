"""``${VAR}`` / ``${VAR:-default}`` interpolation of scenario strings from the environment.

Kept apart from the YAML walk so the grammar is testable on plain strings.  Errors carry the
character offset of the offending ``$`` inside the string, which the YAML layer turns into a
line and column.  Rules:

* ``${VAR}`` is replaced by the variable's value; unset is an error (empty is fine).
* ``${VAR:-default}`` uses ``default`` when VAR is unset *or empty* (the shell's ``:-``).
  The default runs to the first ``}``: defaults cannot nest.
* ``$$`` is a literal ``$``; a ``$`` followed by anything else is kept as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class EnvProblem:
    message: str
    offset: int  # index of the '$' in the original string
    variable: str = ""


@dataclass(frozen=True, slots=True)
class Interpolated:
    value: str
    variables: tuple[str, ...]  # names referenced, in order (for secret provenance)
    changed: bool  # any ${...} or $$ was processed
    problems: tuple[EnvProblem, ...]


def interpolate(text: str, env: Mapping[str, str]) -> Interpolated:
    if "$" not in text:  # the common case, and it keeps the function cheap
        return Interpolated(text, (), changed=False, problems=())
    out: list[str] = []
    variables: list[str] = []
    problems: list[EnvProblem] = []
    changed = False
    i = 0
    while (j := text.find("$", i)) >= 0:
        out.append(text[i:j])
        following = text[j + 1 : j + 2]
        if following == "$":
            out.append("$")
            changed = True
            i = j + 2
            continue
        if following != "{":
            out.append("$")
            i = j + 1
            continue
        changed = True
        end = text.find("}", j + 2)
        if end < 0:
            problems.append(
                EnvProblem("unterminated '${': expected '}' (write '$$' for a literal '$')", j)
            )
            out.append(text[j:])
            i = len(text)
            break
        name, sep, default = text[j + 2 : end].partition(":-")
        i = end + 1
        if not _NAME.fullmatch(name):
            problems.append(
                EnvProblem(
                    f"invalid variable name {name!r} in '${{...}}': expected letters, digits "
                    "and '_', not starting with a digit (write '$$' for a literal '$')",
                    j,
                )
            )
            out.append(text[j:i])
            continue
        variables.append(name)
        value = env.get(name)
        if sep:
            out.append(value if value else default)
        elif value is None:
            problems.append(
                EnvProblem(
                    f"environment variable {name} is not set (set it, or give a default: "
                    f"'${{{name}:-default}}')",
                    j,
                    variable=name,
                )
            )
            out.append("")
        else:
            out.append(value)
    out.append(text[i:])
    return Interpolated("".join(out), tuple(variables), changed, tuple(problems))

"""What can go into an HTTP header: checked when a scenario loads, not at the first send.

A credential with a stray newline (``KEY=$(cat key.txt)``) or a pasted non-ASCII character
used to fail every request (a ``connect`` error, or a traceback at send); it is an input
error at the value's ``file:line:col`` instead.  The messages name the kind of character and
its place, never the value: it is usually a secret.
"""

from __future__ import annotations

import re

# RFC 9110 §5.6.2: a field name is a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Header values may hold visible ASCII, space and tab (RFC 9110 §5.5; obs-text is not sent).
_BAD_VALUE_CHAR = re.compile(r"[^\t\x20-\x7e]")


def unsendable(value: str) -> str | None:
    """Why ``value`` cannot be sent in an HTTP header, without quoting it; None when it can."""
    m = _BAD_VALUE_CHAR.search(value)
    if m is None:
        return None
    char, at = m.group(), m.start() + 1
    if char in "\r\n":
        kind = "a line break (CR)" if char == "\r" else "a line break (LF)"
        hint = (
            " (a trailing newline from the variable or file it came from?)"
            if value.rstrip("\r\n") == value[: m.start()]
            else ""
        )
        return f"contains {kind} at character {at}{hint}"
    if ord(char) > 0x7E:
        return f"contains a non-ASCII character at character {at} (only ASCII can be sent)"
    return f"contains a control character at character {at}"


def credential_problem(field: str, value: str) -> str | None:
    """The message for a credential that cannot be sent, or None."""
    why = unsendable(value)
    return None if why is None else f"{field} {why}: it could not be sent in an HTTP header"


def header_name_problem(name: str) -> str | None:
    if _TOKEN.fullmatch(name):
        return None
    return (
        f"{name!r} is not an HTTP header name: use letters, digits and !#$%&'*+-.^_`|~ "
        "(no spaces, colons or line breaks)"
    )

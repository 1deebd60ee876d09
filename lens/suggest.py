""" "Did you mean ...?": the one suggestion every error message about an unknown name uses.

A leaf module (it imports nothing of lens), so the scenario loader, the plan compiler, the
SLA parser and the export-target parser all word their hints the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence


def did_you_mean(
    word: str, options: Sequence[str], aliases: Mapping[str, str] | None = None
) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``options``, or ``""`` if none is close.

    ``aliases`` maps a lower-case name people write by habit (``azure``) to the option it
    stands for; it is consulted only when spelling finds nothing, and only suggests an
    option that is offered.
    """
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    if not close and aliases is not None:
        alias = aliases.get(word.lower())
        close = [alias] if alias is not None and alias in options else []
    return f" (did you mean {close[0]!r}?)" if close else ""

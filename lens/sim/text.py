"""The simulator's deterministic output text and prompt-size estimate, shared by protocols.

Token ``k`` of every response is ``VOCAB[k % len(VOCAB)]`` whatever the protocol, so a
client counting deltas, a client reading usage and a test comparing texts all agree.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

# Short ASCII words, each one "token".
_LOREM = (
    "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis "
    "nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat."
)
VOCAB: tuple[str, ...] = tuple(f"{w} " for w in _LOREM.split(" "))
# Each word as a JSON string literal; plain ASCII without escapes, so also valid inside
# any protocol's JSON whatever its separators.
VOCAB_JSON: tuple[bytes, ...] = tuple(json.dumps(w).encode() for w in VOCAB)


_OBFUSCATION_ALPHABET = "eDuFXld9yT3ZIb98CUqmcUpLb3Q7GP0f4VxB7yzvcCNDI5ACpN7rfsrB1VI"


def _obfuscation(k: int, word: str) -> str:
    """Padding that evens out the size of word ``k``'s event, as OpenAI's
    ``obfuscation`` field does (random there, deterministic here)."""
    size = max(1, 18 - len(word))
    start = (7 * k) % len(_OBFUSCATION_ALPHABET)
    return (_OBFUSCATION_ALPHABET * 2)[start : start + size]


# The ``obfuscation`` value sent with word ``k`` (OpenAI Responses, Azure Chat).
OBFUSCATIONS: tuple[str, ...] = tuple(_obfuscation(k, w) for k, w in enumerate(VOCAB))


def completion_text(n: int) -> str:
    """The text of an ``n``-token completion (what the streamed deltas concatenate to)."""
    v = len(VOCAB)
    return "".join(VOCAB[k % v] for k in range(n))


def cycle(n: int, unit: list[bytes]) -> list[bytes]:
    """``n`` items of ``unit`` repeated: the per-token list built at C speed.

    ``unit`` holds one rendered payload per vocabulary word (``len(VOCAB)`` items, or
    fewer when ``n`` is smaller); the result is a fresh list the caller may edit.
    """
    if n <= len(unit):
        return unit[:n]
    return (unit * (n // len(unit) + 1))[:n]


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or a list of parts with ``text``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": "..."}] or [{"text": "..."}]
        return "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def tokens_for(texts: Iterable[str]) -> int:
    """About four characters per token over ``texts``, at least 1."""
    return max(1, math.ceil(sum(len(t) for t in texts) / 4))

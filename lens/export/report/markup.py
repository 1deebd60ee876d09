"""Small HTML builders shared by the report's sections; every cell goes through escape."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape


def cells(row: Sequence[str], text_cols: Sequence[int] = (), tag: str = "td") -> str:
    return "".join(
        f'<{tag} class="text">{escape(c)}</{tag}>'
        if i in text_cols
        else f"<{tag}>{escape(c)}</{tag}>"
        for i, c in enumerate(row)
    )


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    text_cols: Sequence[int],
    row_classes: Sequence[str] | None = None,
    css: str = "",
) -> str:
    opens = (
        [f'<tr class="{escape(c)}">' if c else "<tr>" for c in row_classes] if row_classes else None
    )
    body = "".join(
        (opens[i] if opens else "<tr>") + cells(row, text_cols) + "</tr>"
        for i, row in enumerate(rows)
    )
    opening = f'<table class="{escape(css)}">' if css else "<table>"
    return (
        f'<div class="scroll">{opening}<thead><tr>{cells(headers, text_cols, "th")}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def para(text: str, css: str = "meta") -> str:
    return f'<p class="{css}">{escape(text)}</p>'


def num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def subhead(text: str) -> str:
    return f"<h3>{escape(text)}</h3>"


def in_ms(headers: Sequence[str]) -> list[str]:
    """Headers without their " ms": narrower columns, for a table whose note says that its
    latencies are in ms."""
    return [h.removesuffix(" ms") for h in headers]

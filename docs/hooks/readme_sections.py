"""mkdocs hook: pages that show a section of README.md include it instead of copying it.

A line ``<!-- readme: ## Heading -->`` in a page is replaced by that README section (up to
the next heading of the same or a higher level), its headings shifted so the section's
own level becomes ``##``.  ``<!-- readme: ## Heading | intro -->`` stops at the first
sub-heading.  The README stays the one text of each section; a heading renamed there
fails the docs build (``make docs``, part of ``make test``) instead of leaving a page
silently stale.  Links to README anchors become plain text: the anchor may not exist on
the page the section lands on.  Links to ``docs/PAGE.md`` (right from the README, at the
repository's root) become ``PAGE.md``, the same page on the site.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

_ROOT = Path(__file__).resolve().parents[2]
_MARKER = re.compile(r"^<!-- readme: (#+ .+?)(?: \| (intro))? -->$", re.MULTILINE)
_HEADING = re.compile(r"^(#+) ")
_ANCHOR_LINK = re.compile(r"\[([^\]]+)\]\(#[^)]*\)")
_DOCS_LINK = re.compile(r"\]\(docs/([^)]+)\)")


def readme_section(readme: str, heading: str, *, intro_only: bool = False) -> str:
    lines = readme.splitlines()
    level = len(heading) - len(heading.lstrip("#"))
    fence = False
    start: int | None = None
    body: list[str] = []
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fence = not fence
        match = None if fence else _HEADING.match(line)
        if start is None:
            if line.strip() == heading:
                start = i
            continue
        if match and (intro_only or len(match.group(1)) <= level):
            break
        if match:  # a sub-heading: keep its depth below the section's new level, ##
            depth = len(match.group(1))
            body.append("#" * (depth - level + 2) + line[depth:])
        else:
            body.append(line)
    if start is None:
        raise PluginError(f"README.md has no heading {heading!r} (docs include it)")
    text = _ANCHOR_LINK.sub(r"\1", "\n".join(body).strip("\n"))
    return _DOCS_LINK.sub(r"](\1)", text)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if "<!-- readme:" not in markdown:
        return markdown
    readme = (_ROOT / "README.md").read_text(encoding="utf-8")
    return _MARKER.sub(
        lambda m: readme_section(readme, m.group(1), intro_only=m.group(2) == "intro"),
        markdown,
    )

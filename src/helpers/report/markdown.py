"""Markdown blocks for generated text: paragraphs and lists that Pandoc renders as such.

Every list is preceded by a blank line (Pandoc needs it; without it a list renders as one
paragraph with " - "), which :func:`items_without_blank_line` lets tests check.
"""

from __future__ import annotations

import re
from collections.abc import Sequence


def paragraphs(*parts: str) -> str:
    """Join blocks with a blank line between them (lists then always start a new block)."""
    return "\n\n".join(p.strip("\n") for p in parts if p)


def bullet_list(items: Sequence[str], numbered: bool = False) -> str:
    """A Markdown list, one item per line; :func:`paragraphs` puts the blank line before it."""
    return "\n".join(f"{i}. {t}" if numbered else f"- {t}"
                     for i, t in enumerate(items, start=1))


_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+\.)\s")


def items_without_blank_line(markdown: str) -> list[str]:
    """List items that follow a paragraph line directly (Pandoc then renders the list as part
    of the paragraph, with a literal " - "); the tests check every generated text with it."""
    bad, prev = [], ""
    for line in markdown.splitlines():
        if _LIST_ITEM.match(line) and prev.strip() and not _LIST_ITEM.match(prev) \
                and not prev.startswith("  "):
            bad.append(line)
        prev = line
    return bad

"""Checks for generated Markdown (tests only): do its lists render as lists?

Pandoc, which Quarto uses, starts a list only after a blank line (stricter than CommonMark):
a list item glued to the paragraph above renders as text with a literal " - ".
"""

from __future__ import annotations

import re

_ITEM = re.compile(r"^(?:[-+*]|\d+\.) ")


def lists_render_as_lists(markdown: str) -> bool:
    """Every line written as a list item becomes one ``<li>`` (mistune, a CommonMark
    renderer) and starts after a blank line, another item or an item's continuation."""
    import mistune  # deferred: only tests call this

    lines = markdown.splitlines()
    items = [i for i, line in enumerate(lines) if _ITEM.match(line)]
    clean = all(i == 0 or not lines[i - 1].strip() or _ITEM.match(lines[i - 1])
                or lines[i - 1].startswith("  ") for i in items)
    return clean and mistune.html(markdown).count("<li>") == len(items)

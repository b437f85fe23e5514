"""The report's sentences: Jinja templates under ``report/templates/`` rendered with facts.

A writer changes wording in a ``*.md.j2`` file without touching Python; the facts (numbers
and verdicts, computed and tested in :mod:`helpers.report.facts`, :mod:`~.answers`,
:mod:`~.corrections`, :mod:`~.gpu_memory`, :mod:`~.published` and :mod:`~.narrative`) are
the templates' only input. Templates write Markdown; the analysis notebook displays it in the
labelled cells that ``report/index.qmd`` embeds.

Templates only render facts; every decision is Python's, computed once and tested by value. A
template may print a fact through a format filter (``num``, ``signed``, ``interval``,
``share``, ``pm``, ``join``, ``plural``, ``noun``, ``words``, ``upper_first``, ...), loop over a
list fact with the loop punctuation of ``_macros.md.j2`` (``m.sep``), and branch with ``if`` on
a boolean, an optional value, a list (empty or not), or ``==`` a verdict name that Python
computed ("lower", "measured": choosing the words for each verdict is the writer's job). It may
not compare numbers or counts, compare with data values such as model names, filter, count,
sort or aggregate collections (``selectattr``, ``map``, ``min``, ``length``, slices, ...), do
arithmetic, or build lists with ``set``: those are fields of the facts objects, so that a
partition two templates use (the summary's and the Conclusion's datasets of several models) is
one property. ``tests/report/test_templates_render_only.py`` walks each template's syntax tree
and names any decision it finds.

The filters below are the number formats of :mod:`helpers.report.formats`, so a sentence and a
table print a value the same way.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jinja2
import jinja2.ext

from helpers.settings import PROJECT_ROOT

from . import formats
from .load import display_model

TEMPLATES = PROJECT_ROOT / "report" / "templates"
SUFFIX = ".md.j2"
_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def words(n: Any) -> str:
    """Small counts as words (prose style): 2 -> "two"; 11 and up stay digits."""
    n = int(n)
    return _WORDS[n] if 0 <= n < len(_WORDS) else f"{n:,}"


def plural(n: Any, singular: str, many: str | None = None, spell: bool = True) -> str:
    """``2 seeds`` / ``one seed`` (``spell``: small counts as words); never "seed(s)"."""
    n = int(n)
    noun = singular if n == 1 else (many or singular + "s")
    return f"{words(n) if spell else f'{n:,}'} {noun}"


def plural_span(lo: Any, hi: Any, singular: str, many: str | None = None) -> str:
    """A count that may differ between cells: ``two seeds``, or ``2 to 5 seeds`` as a span."""
    if int(lo) == int(hi):
        return plural(lo, singular, many)
    return f"{lo} to {hi} {many or singular + 's'}"


def noun(n: Any, singular: str, many: str | None = None) -> str:
    """The noun alone, agreeing with ``n``: ``table`` for one, ``tables`` otherwise."""
    return singular if int(n) == 1 else (many or singular + "s")


def sep(loop: Any) -> str:
    """What follows an item of a ``for`` loop in a list: ``, ``, `` and `` before the last,
    nothing after it (``_macros.md.j2``'s ``sep``)."""
    if loop.revindex == 2:
        return " and "
    return "" if loop.last else ", "


def join(items: Iterable[Any], last: str = "and") -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = [str(i) for i in items]
    if len(items) < 2:
        return "".join(items)
    return f"{', '.join(items[:-1])} {last} {items[-1]}"


def pm(score: Any, digits: int = 3) -> str:
    """A :class:`helpers.report.facts.Score` as ``0.477 ± 0.035`` (one run: the mean alone)."""
    return formats.fmt_mean_std(score.mean, score.std, score.n, digits)


def interval(paired: Any, digits: int = 3) -> str:
    """A :class:`helpers.report.stats.Paired` interval as ``[−0.081, +0.022]``."""
    return f"[{formats.signed(paired.low, digits)}, {formats.signed(paired.high, digits)}]"


def pct(share: Any, digits: int = 0) -> str:
    if formats.is_missing(share):
        return formats.MISSING
    return f"{100 * float(share):.{digits}f}%"


def magnitude(value: Any, digits: int = 3) -> str:
    """The size of a difference, no sign (the sentence says which way)."""
    return formats.MISSING if formats.is_missing(value) else f"{abs(value):.{digits}f}"


def upper_first(text: Any) -> str:
    """The first letter in upper case, the rest as it is (``capitalize`` would lower "LoRA")."""
    text = str(text)
    return text[:1].upper() + text[1:]


def tidy(markdown: str) -> str:
    """Trailing spaces off, at most one blank line between blocks, no blank start or end."""
    lines = [line.rstrip() for line in markdown.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


class KeepWordSpace(jinja2.ext.Extension):
    """A line of text that ends in a block tag keeps its line break as a space.

    ``trim_blocks`` drops the newline after every block tag, so that lines holding only a tag
    leave nothing behind; after ``...seeds.{% endif %}`` it would glue the next line's first
    word on ("seeds.With"). A trailing space after such a tag keeps the break.
    """

    _TAGS = re.compile(r"\{%.*?%\}|\{#.*?#\}")

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        lines = source.split("\n")
        for i, line in enumerate(lines):
            if line.rstrip().endswith("%}") and self._TAGS.sub("", line).strip():
                lines[i] = line.rstrip() + " "
        return "\n".join(lines)


@functools.lru_cache(maxsize=4)
def environment(folder: str | None = None) -> jinja2.Environment:
    """The templates' environment: strict (an unknown name is an error, not an empty string),
    lines holding only block tags leave nothing (:class:`KeepWordSpace`), no HTML escaping
    (the output is Markdown)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder or str(TEMPLATES)),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        autoescape=False, keep_trailing_newline=True, extensions=[KeepWordSpace])
    env.filters.update(
        num=formats.fmt, signed=formats.signed, pm=pm, interval=interval, pct=pct,
        share=formats.fmt_share, count=formats.fmt_count, lr=formats.fmt_lr, words=words,
        plural=plural, join=join, magnitude=magnitude, gib=formats.fmt_gib,
        model=display_model, upper_first=upper_first, plural_span=plural_span, noun=noun,
        be=lambda n: noun(n, "is", "are"),
        joined=lambda items, sep="": sep.join(str(i) for i in items))
    env.globals.update(missing=formats.is_missing, separator=sep)
    return env


def template_names(folder: str | Path | None = None) -> list[str]:
    """Every template the report renders (``report/templates/*.md.j2``, not ``_`` partials)."""
    root = Path(folder or TEMPLATES)
    return sorted(p.name[: -len(SUFFIX)] for p in root.glob(f"*{SUFFIX}")
                  if not p.name.startswith("_"))


def render(name: str, facts: Any = None, **context: Any) -> str:
    """``report/templates/<name>.md.j2`` rendered with ``f`` = ``facts`` (and ``context``)."""
    template = environment().get_template(name + SUFFIX)
    return tidy(template.render(f=facts, **context))

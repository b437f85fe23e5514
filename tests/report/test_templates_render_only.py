"""The templates only render facts: every decision (comparing numbers, counting, selecting,
sorting, arithmetic, building lists) is a field of a facts object, computed once in Python and
tested by value. This walks each template's Jinja syntax tree and names the template and line
of anything that decides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from jinja2 import nodes

from helpers.report import prose

ARITHMETIC = (nodes.Add, nodes.Sub, nodes.Mul, nodes.Div, nodes.FloorDiv, nodes.Mod, nodes.Pow,
              nodes.Neg, nodes.Pos, nodes.Concat)
# ``count`` is not here: the prose environment's ``count`` is formats.fmt_count, a number format.
DECIDING_FILTERS = {"selectattr", "rejectattr", "select", "reject", "map", "min", "max", "sum",
                    "unique", "dictsort", "sort", "first", "last", "length", "list", "batch",
                    "slice", "groupby", "reverse"}
DECIDING_TESTS = {"equalto", "eq", "==", "ne", "!=", "lt", "<", "le", "<=", "gt", ">", "ge", ">=",
                  "greaterthan", "lessthan", "divisibleby", "even", "odd", "in", "sameas"}


VERDICT = re.compile(r"[a-z][a-z_]*")


def _is_verdict_name(node: nodes.Expr) -> bool:
    """A verdict name that Python computed ("lower", "measured"): lower-case words. A data
    value written as a string ("roberta-base", "LoRA", "1") is not one."""
    return (isinstance(node, nodes.Const) and isinstance(node.value, str)
            and VERDICT.fullmatch(node.value) is not None)


def decisions(source: str) -> list[tuple[int, str]]:
    """(line, what) for every node of ``source`` that makes a decision of its own."""
    tree = prose.environment().parse(source)
    found = []
    for node in tree.find_all(nodes.Node):
        if isinstance(node, nodes.Compare):
            sides = [node.expr, *(op.expr for op in node.ops)]
            verdict = (len(node.ops) == 1 and node.ops[0].op in ("eq", "ne")
                       and any(_is_verdict_name(s) for s in sides))
            if not verdict:
                found.append((node.lineno, "a comparison (" + ", ".join(
                    op.op for op in node.ops) + ")"))
        elif isinstance(node, ARITHMETIC):
            found.append((node.lineno, f"arithmetic ({type(node).__name__})"))
        elif isinstance(node, nodes.Filter) and node.name in DECIDING_FILTERS:
            found.append((node.lineno, f"the filter {node.name!r}"))
        elif isinstance(node, nodes.Test) and node.name in DECIDING_TESTS:
            found.append((node.lineno, f"the test {node.name!r}"))
        elif isinstance(node, nodes.Slice):
            found.append((node.lineno, "a slice"))
        elif isinstance(node, nodes.Getattr) and node.attr in ("append", "extend", "insert",
                                                                "pop", "update"):
            found.append((node.lineno, f"a call to .{node.attr}"))
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and (
                isinstance(node.arg.value, int) and node.arg.value < 0):
            found.append((node.lineno, "an index from the end"))
        elif isinstance(node, (nodes.Assign, nodes.AssignBlock)) and node.find(
                (nodes.List, nodes.Dict, nodes.Tuple)) is not None and not isinstance(
                getattr(node, "target", None), nodes.Tuple):
            found.append((node.lineno, "a list built with set"))
        elif isinstance(node, nodes.For) and node.test is not None:
            found.append((node.lineno, "a loop filtered by 'if'"))
    return sorted(set(found))


TEMPLATES = sorted(Path(prose.TEMPLATES).glob(f"*{prose.SUFFIX}"))


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_template_only_renders_facts(path: Path):
    found = decisions(path.read_text())
    assert not found, f"{path.name} decides in Jinja:\n" + "\n".join(
        f"  {path.name}:{line}: {what}" for line, what in found)


@pytest.mark.parametrize("source", [
    "{% if n > 8 %}x{% endif %}",
    "{% if lo == hi %}x{% endif %}",
    "{{ xs | length }}",
    "{{ xs | selectattr('single') | list | join }}",
    "{{ xs | map(attribute='low') | min }}",
    "{{ n - 8 }}",
    "{{ xs[:8] | join }}",
    "{% set g = [] %}{% set _ = g.append(1) %}",
    "{% if ad.model != 'roberta-base' %}x{% endif %}",
    "{% for x in xs if x.worse %}{{ x }}{% endfor %}",
    "{{ xs[-1] }}",
    "{{ (100 * x) | round(1) }}",
    "{{ 's' if s.label == 'LoRA' }}",
    "{{ '' if f.epochs == '1' else 's' }}",
])
def test_the_check_catches_a_decision(source: str):
    assert decisions(source)


@pytest.mark.parametrize("source", [
    "{% if f.multi %}{{ f.lo | signed }}{% endif %}",
    "{% if lr.macro_f1 == 'lower' %}a loss{% elif lr.macro_f1 != 'untested' %}x{% endif %}",
    "{% for d in f.beats %}{{ d.dataset }}{{ m.sep(loop) }}{% endfor %}",
    "{% if not f.short %}{{ f.seeds | plural('seed') }}{% endif %}",
])
def test_the_check_lets_facts_through(source: str):
    assert not decisions(source)

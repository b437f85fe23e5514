"""The YAML of grid files and ``--set`` values: PyYAML's safe loader with the surprises of
YAML 1.1 taken out. ``2e-5`` is a float (YAML 1.2), a key given twice is an error, and a
number that YAML 1.1 and 1.2 read differently (``010``: octal 8 or 10; ``1:04``: base 60, 64)
is kept as an :class:`AmbiguousNumber` that :func:`ambiguous` names, never a silent 8 or 64.
"""

from __future__ import annotations

import re
import typing
from typing import Any

import yaml


class DuplicateKeyError(yaml.YAMLError):
    """A mapping names one key twice; PyYAML would keep the last value without a word."""


class Loader(yaml.SafeLoader):
    """SafeLoader that reads ``2e-5`` as a float and refuses duplicate keys.

    PyYAML follows YAML 1.1, where a float needs a dot (``2.0e-5``); ``2e-5`` would silently
    become the string "2e-5". Learning rates are written that way, so accept the YAML 1.2 form.
    A key given twice in one mapping (two ``matrix:`` blocks) would silently keep the last.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<: *anchor`` may repeat keys
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, typing.Hashable) and key in seen:
                raise DuplicateKeyError(
                    f"duplicate key '{key}' at lines {seen[key]} and {line}: YAML would keep "
                    f"only the second. Merge the two (several matrix blocks are a list under "
                    f"one 'matrix:'), or remove one.")
            seen.setdefault(key, line)
        return super().construct_mapping(node, deep=deep)


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


class AmbiguousNumber(str):
    """A plain scalar that YAML 1.1 and YAML 1.2 read as different numbers (``010``: octal 8
    or 10; ``1:04``: base 60, 64, or text): kept as its text until :func:`ambiguous`
    names it, so no grid value is ever what the writer did not mean."""


_AMBIGUOUS = "tag:nlpdl,2024:ambiguous-number"
_LEADING_ZERO = re.compile(r"[-+]?0[0-9_]+")
_SEXAGESIMAL = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
for _first in "-+0123456789":  # before PyYAML's own int/float resolvers, which match first
    Loader.yaml_implicit_resolvers.setdefault(_first, []).insert(0, (_AMBIGUOUS, re.compile(
        f"^(?:{_LEADING_ZERO.pattern}|{_SEXAGESIMAL.pattern})$")))
Loader.add_constructor(_AMBIGUOUS, lambda loader, node: AmbiguousNumber(node.value))


def ambiguous(value: Any, key: str = "") -> str | None:
    """What is wrong with the first :class:`AmbiguousNumber` in ``value`` (its key path, and
    how to write what was meant), or None."""
    if isinstance(value, AmbiguousNumber):
        text = str(value)
        if _SEXAGESIMAL.fullmatch(text):
            meant = "a base-60 number in YAML 1.1 (1:04 is 64)"
            fix = "the number you mean without colons"
        else:
            meant = "a number with a leading zero, octal in YAML 1.1 (010 is 8)"
            fix = ("-" if text.startswith("-") else "") + (text.lstrip("+-").lstrip("0_") or "0")
        return (f"{key + ': ' if key else ''}{text} is {meant}, but not in YAML 1.2: write "
                f"{fix}, or '{text}' in quotes for text.")
    items = value.items() if isinstance(value, dict) else (
        ((f"[{i}]", v) for i, v in enumerate(value)) if isinstance(value, list) else ())
    for k, v in items:
        sub = f"{key}{k}" if str(k).startswith("[") else (f"{key}.{k}" if key else str(k))
        problem = ambiguous(v, sub)
        if problem:
            return problem
    return None


def load(text: str) -> Any:
    """``text`` read as YAML with :class:`Loader` (safe)."""
    return yaml.load(text, Loader=Loader)  # noqa: S506 - Loader is a SafeLoader

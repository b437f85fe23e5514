"""Number formats of the report's tables and sentences, one place for each.

Compact on purpose: ``0.856 ± 0.012`` with non-breaking spaces, ``124.6M``, learning rates as
papers write them (2e-5), a real minus sign, sizes in GiB.
"""

from __future__ import annotations

import math
from typing import Any

from helpers.memory import GIB

#: Shown where a cell has no runs (or a value is not known).
MISSING = "—"
#: Non-breaking spaces keep ``mean ± std`` on one line in Typst and in HTML.
PM = "\u00a0±\u00a0"


def is_missing(value: Any) -> bool:
    """None or NaN: a value a table shows as :data:`MISSING`."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt(value: Any, digits: int = 3) -> str:
    return MISSING if is_missing(value) else f"{value:.{digits}f}"


def fmt_mean_std(mean: float, std: float, n: int, digits: int = 3) -> str:
    """``0.912 ± 0.010``; one seed has no spread, so it shows the mean alone (n says why)."""
    if not n or is_missing(mean):
        return MISSING
    if n < 2 or is_missing(std):
        return fmt(mean, digits)
    return f"{mean:.{digits}f}{PM}{std:.{digits}f}"


def fmt_count(n: Any) -> str:
    """Parameter counts as in the text: 124.6M, 894.7K."""
    if is_missing(n):
        return MISSING
    n = float(n)
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def fmt_share(share: Any) -> str:
    if is_missing(share):
        return MISSING
    pct = 100 * float(share)
    return f"{pct:.0f}%" if pct >= 99.95 else f"{pct:.2f}%"


def fmt_gib(n_bytes: Any, digits: int = 2) -> str:
    return MISSING if is_missing(n_bytes) else f"{float(n_bytes) / GIB:.{digits}f}"


def fmt_value(value: Any) -> str:
    """A hyperparameter value as a person writes it (2e-05, [query, value]); none: —."""
    if is_missing(value):
        return MISSING
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(fmt_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {fmt_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def fmt_lr(value: float) -> str:
    """A learning rate as papers write it: 2e-5, 1e-3, 1.5e-3."""
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def signed(value: float, digits: int = 3) -> str:
    """``+0.012`` / ``−0.034`` (a real minus sign)."""
    if is_missing(value):
        return MISSING
    return f"{value:+.{digits}f}".replace("-", "−")


def bold(text: str) -> str:
    return f"**{text}**" if text and text != MISSING else text

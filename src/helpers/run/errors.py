"""The errors a run raises before or while it loads, each naming the parameter and the fix.

Here, not in the modules that raise them, so that ``config``, ``methods`` and ``models`` can
all raise them without importing one another; :func:`did_you_mean` is the one place that
suggests a name (config fields, grid keys and filters, dataset names).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: object, valid: Iterable[str], cutoff: float = 0.6) -> str:
    """`` Did you mean 'x'?`` for the closest valid name, or "" when none is close."""
    close = difflib.get_close_matches(str(name), list(valid), n=1, cutoff=cutoff)
    return f" Did you mean '{close[0]}'?" if close else ""


class ConfigError(ValueError):
    """A parameter is invalid; the message names it and the allowed values."""


class ModelError(RuntimeError):
    """A model can't be resolved or loaded; the message says how to fix it."""

"""The errors a run raises before or while it loads, each naming the parameter and the fix.

Here, not in the modules that raise them, so that ``config``, ``methods`` and ``models`` can
all raise them without importing one another.
"""


class ConfigError(ValueError):
    """A parameter is invalid; the message names it and the allowed values."""


class ModelError(RuntimeError):
    """A model can't be resolved or loaded; the message says how to fix it."""

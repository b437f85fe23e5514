"""Progress bars that suit where they are shown: widgets in JupyterLab, text elsewhere.

tqdm.auto picks widgets in any IPython kernel, including the one papermill drives, whose bars
then never reach the run's log; without ipywidgets it falls back to text bars that, when
nested, move the cursor with escape codes a notebook or log file shows as debris (``[A``).
So: widgets only for a frontend a person is looking at (and nested bars with them), nested
text bars only on a terminal, and a single text bar, updated sparingly, in logs and in
notebooks papermill executes.
"""

from __future__ import annotations

import sys
from typing import Any


def interactive_frontend() -> bool:
    """True when this code runs in a Jupyter kernel that a frontend (JupyterLab, Notebook,
    VS Code) is driving, False under papermill/nbconvert and outside a kernel.

    A frontend accepts input requests; nbclient (behind papermill and nbconvert) declines them
    (``allow_stdin=False``), and ipykernel records that per execute request.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    kernel = getattr(shell, "kernel", None)
    return bool(getattr(kernel, "_allow_stdin", False))


def _has_widgets() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def bar_class() -> type:
    """The tqdm class to use here: widgets for a person in JupyterLab, plain text otherwise."""
    if interactive_frontend() and _has_widgets():
        from tqdm.notebook import tqdm  # only where widgets show: it needs ipywidgets
    else:
        from tqdm.std import tqdm  # plain text: papermill logs, terminals, files
    return tqdm


def redraws_in_place(file: Any = None) -> bool:
    """Whether a bar written to ``file`` redraws in place: widgets, or a terminal. Only there
    does an inner bar (below an outer one) render cleanly, or a bar belong at all in output
    that is kept (a log file gets every redraw appended)."""
    stream = file if file is not None else sys.stderr
    if interactive_frontend():
        return _has_widgets()
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def progress(iterable: Any = None, *, inner: bool = False, **kwargs: Any) -> Any:
    """tqdm over ``iterable`` with the class of :func:`bar_class`.

    ``inner``: a bar nested in another (e.g. steps within an epoch); it is disabled where
    nesting would leave escape codes (logs, papermill outputs, a kernel without widgets).
    Text bars not on a terminal refresh at most every 5 s (papermill stores every update).
    """
    file = kwargs.get("file")
    cls = bar_class()
    if inner and not redraws_in_place(file):
        kwargs["disable"] = True
    if cls.__module__ == "tqdm.std":
        stream = file if file is not None else sys.stderr
        if not (getattr(stream, "isatty", None) and stream.isatty()):
            kwargs.setdefault("mininterval", 5.0)
    return cls(iterable, **kwargs)

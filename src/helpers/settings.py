"""Where things are: the project root, default folders, the Jupyter kernel, environment names.

One rule for paths: **a relative path is taken from the project root**, never from the current
directory (:func:`project_path`). JupyterLab starts the train notebook in ``notebooks/``,
papermill and ``make`` in the root, a user's shell anywhere; with this rule ``runs``, ``build``
or ``params/cpu.yaml`` name the same folder for all of them. Absolute paths and ``~`` are used
as given. A path typed on the command line follows the shell's convention first
(:func:`cli_path`): relative to the current directory when it exists there.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root (``src/helpers/settings.py`` -> two levels up from ``src``).
PROJECT_ROOT = Path(__file__).resolve().parents[2]

#: Jupyter kernel that papermill runs both notebooks with (``make venv`` registers it).
KERNEL_NAME = "nlpdl-report"

#: Environment variable naming the data folder (see :func:`helpers.run.data.resolve_data_dir`).
DATA_DIR_ENV = "NLPDL_DATA_DIR"

#: Default folders, relative to the project root.
DATA_DIR = "data"
PARAMS_DIR = "params"

TRAIN_NOTEBOOK = PROJECT_ROOT / "notebooks" / "train.ipynb"
ANALYSIS_NOTEBOOK = PROJECT_ROOT / "notebooks" / "analysis.ipynb"
REPORT_DIR = PROJECT_ROOT / "report"


def kernel_options(shutdown: str = "graceful") -> dict:
    """papermill/nbclient options for the kernels the grid and the report start.

    ``config``: jupyter_client (>= 8.9) provisions CurveZMQ keys for a kernelspec that
    declares them (``ipykernel install`` writes ``metadata.supported_encryption: ["curve"]``),
    so the kernel's sockets are encrypted and ipykernel no longer logs "Kernel is running over
    TCP without encryption" into every run's log. Left off where pyzmq has no CurveZMQ.
    ``shutdown_kernel``: "immediate" ends the kernel once the notebook has run instead of
    waiting for its graceful exit (1-3 s after a training run); a run's files are written and
    renamed into place by then.
    """
    # deferred: every module imports settings; only what starts a kernel needs jupyter's stack
    import zmq
    from traitlets.config import Config

    encryption = "auto" if zmq.has("curve") else "disabled"
    return {"config": Config({"KernelManager": {"transport_encryption": encryption}}),
            "shutdown_kernel": shutdown}


def project_path(path: str | os.PathLike | None) -> Path | None:
    """``path`` with ``~`` expanded; relative ones taken from the project root (None stays)."""
    if path is None or str(path) == "":
        return None
    p = Path(path).expanduser()
    return p if p.is_absolute() else PROJECT_ROOT / p


def cli_path(path: str | os.PathLike) -> Path:
    """A command-line path argument: relative to the current directory when it exists there
    (the shell's convention), else the project rule (:func:`project_path`). A relative path
    that is not found in the current directory comes back relative, for project_path."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    here = Path.cwd() / p
    return here if here.exists() and Path.cwd().resolve() != PROJECT_ROOT.resolve() else p


def not_found(what: str, path: str | os.PathLike) -> str:
    """``<what> <path> does not exist``, naming every place :func:`cli_path` looked."""
    p = Path(path).expanduser()
    if p.is_absolute() or Path.cwd().resolve() == PROJECT_ROOT.resolve():
        return f"{what} {project_path(p)} does not exist."
    return (f"{what} {path} does not exist: looked in {Path.cwd() / p} (the current "
            f"directory) and {PROJECT_ROOT / p} (the project root).")

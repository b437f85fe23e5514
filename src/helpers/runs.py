"""The runs store: one folder per finished run, written atomically.

Layout under ``runs_dir`` (default ``runs/``)::

    <run_id>/                 a complete run; appears in one rename, so it is never partial
        config.json           every parameter, resolved, plus "run_id"
        history.csv           tidy: step, epoch, split, metric, value
        metrics.json          best-epoch validation/test metrics, train loss, speed, wall time
        memory.json           parameter counts and peak memory (CUDA allocated/reserved, RSS)
        env.json              package versions, device, torch threads
        train.ipynb           the executed notebook (added by the grid runner)
    .tmp/<run_id>.<pid>.<n>/  a run in progress (or killed); never read as a result
    .failed/<run_id>.json     the last failure of a run: error, traceback, failing cell, log
    .logs/<run_id>.log        the grid runner's log of the last attempt

A folder ``<run_id>/`` is complete by construction; :func:`is_complete` also checks its
``metrics.json`` so that a hand-made folder is not mistaken for a result.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REQUIRED_FILES = ("config.json", "history.csv", "metrics.json", "memory.json", "env.json")
HISTORY_COLUMNS = ("step", "epoch", "split", "metric", "value")
TMP_DIR = ".tmp"
FAILED_DIR = ".failed"
LOGS_DIR = ".logs"

_counter = itertools.count()


def run_path(runs_dir: str | os.PathLike, run_id: str) -> Path:
    return Path(runs_dir) / run_id


def is_complete(path: str | os.PathLike) -> bool:
    path = Path(path)
    return path.is_dir() and all((path / f).is_file() for f in REQUIRED_FILES)


@contextlib.contextmanager
def staging(runs_dir: str | os.PathLike, run_id: str) -> Iterator[Path]:
    """Yield an empty private folder; on success rename it to ``runs_dir/run_id``.

    On an exception the folder is removed and the exception re-raised, so a failed run never
    looks complete. A killed process leaves only ``.tmp/`` debris (see :func:`clean_stale`).
    """
    runs_dir = Path(runs_dir)
    tmp = runs_dir / TMP_DIR / f"{run_id}.{os.getpid()}.{next(_counter)}"
    tmp.mkdir(parents=True)
    try:
        yield tmp
        missing = [f for f in REQUIRED_FILES if not (tmp / f).is_file()]
        if missing:
            raise RuntimeError(f"run {run_id} did not write {missing}; not marking it complete")
        publish(tmp, run_path(runs_dir, run_id))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    clear_failure(runs_dir, run_id)


def publish(tmp: Path, final: Path) -> None:
    """Move ``tmp`` to ``final`` atomically, replacing an older complete run if any."""
    if final.exists():
        trash = final.parent / TMP_DIR / f"{final.name}.old.{os.getpid()}.{next(_counter)}"
        final.rename(trash)
        tmp.rename(final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        tmp.rename(final)


def clean_stale(runs_dir: str | os.PathLike) -> list[Path]:
    """Remove ``.tmp`` folders whose writing process is gone (killed runs)."""
    removed = []
    tmp_root = Path(runs_dir) / TMP_DIR
    if not tmp_root.is_dir():
        return removed
    for d in tmp_root.iterdir():
        parts = d.name.split(".")
        pid = next((int(p) for p in parts[1:] if p.isdigit()), None)
        if pid is not None and pid != os.getpid() and _alive(pid):
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON through a temporary file so a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def complete_runs(runs_dir: str | os.PathLike) -> list[Path]:
    """Every complete run folder under ``runs_dir``, sorted by name."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if not p.name.startswith(".") and is_complete(p))


def failure_path(runs_dir: str | os.PathLike, run_id: str) -> Path:
    return Path(runs_dir) / FAILED_DIR / f"{run_id}.json"


def record_failure(runs_dir: str | os.PathLike, run_id: str, info: dict[str, Any]) -> Path:
    path = failure_path(runs_dir, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"run_id": run_id, **info})
    return path


def read_failure(runs_dir: str | os.PathLike, run_id: str) -> dict[str, Any] | None:
    path = failure_path(runs_dir, run_id)
    return read_json(path) if path.is_file() else None


def clear_failure(runs_dir: str | os.PathLike, run_id: str) -> None:
    failure_path(runs_dir, run_id).unlink(missing_ok=True)


def log_path(runs_dir: str | os.PathLike, run_id: str) -> Path:
    return Path(runs_dir) / LOGS_DIR / f"{run_id}.log"

"""The runs store: one folder per finished run, written atomically.

Layout under ``runs_dir`` (default ``runs/``)::

    <run_id>/                 a complete run; appears in one rename, so it is never partial
        config.json           every parameter, resolved, plus "run_id"
        history.csv           tidy: step, epoch, split, metric, value
        predictions.csv.gz    per example: split, epoch, example, label, prediction, prob_*
                              (helpers.run.predictions)
        metrics.json          best-epoch validation/test metrics, train loss, speed, wall time
        memory.json           parameter counts and peak memory (CUDA allocated/reserved, RSS)
        env.json              package versions, device, torch threads
        train.ipynb           the executed notebook (added by the grid runner)
    .tmp/<run_id>.<pid>.<n>/  a run in progress (or killed); never read as a result
    .failed/<run_id>.json     the last failure of a run: error, traceback, failing cell, log
    .logs/<run_id>.<attempt>.log    the grid runner's log of each attempt (and .ipynb)
    .claims/<run_id>.lock     who is running it now (helpers.grid.claims)
    .corrupt/<run_id>-<time>/ a run folder whose records did not validate, set aside
    .cache/                   tokenized datasets, file digests (helpers.run.provenance)

A folder ``<run_id>/`` is complete when its records parse and validate (:func:`check_records`,
also run before publishing): a truncated file, a hand-made folder or a diverged run is not
a result, and ``grid status`` reports it as corrupt with what is wrong.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import disk, liveness, predictions
from .failures import (  # noqa: F401 - the failure records are part of the store's layout
    CAUSES,
    FAILED_DIR,
    FAILURE_OWNER_ENV,
    FailureRecord,
    clear_failure,
    failed_runs,
    failure_path,
    failures_note,
    read_failure,
    record_failure,
)

REQUIRED_FILES = ("config.json", "history.csv", "metrics.json", "memory.json", "env.json",
                  predictions.FILE)
HISTORY_COLUMNS = ("step", "epoch", "split", "metric", "value")
TMP_DIR = ".tmp"
LOGS_DIR = ".logs"
CORRUPT_DIR = ".corrupt"
CACHE_DIR = ".cache"
#: helpers.run.training's token cache (``CACHE_DIR/tokenized``): clean_stale sweeps it
TOKEN_CACHE_DIR = f"{CACHE_DIR}/tokenized"
#: What a complete run's metrics.json must hold (the analysis and ``grid status`` read them).
METRIC_KEYS = ("accuracy", "macro_f1", "micro_f1", "loss")
#: The metrics that are shares of examples, so in [0, 1] (a loss is only >= 0).
SCORE_KEYS = ("accuracy", "macro_f1", "micro_f1")


class NotWritableError(RuntimeError):
    """The runs folder cannot be written; the message says which folder and why."""

_counter = itertools.count()


def run_path(runs_dir: str | os.PathLike, run_id: str) -> Path:
    return Path(runs_dir) / run_id


def is_complete(path: str | os.PathLike) -> bool:
    """A run folder whose records parse and validate (see :func:`check_records`)."""
    path = Path(path)
    return path.is_dir() and check_records(path) is None


def check_records(path: str | os.PathLike, run_id: str | None = None) -> str | None:
    """What is wrong with the run folder ``path`` (``file: problem``), or None when its
    records parse and validate: every required file, JSON objects naming ``run_id`` (default:
    the folder's name), metrics that can be true (:func:`_check_metrics`), and a tidy
    history.csv holding the best epoch's validation and test scores as metrics.json does, and
    per-example predictions whose scores at the best epoch are metrics.json's."""
    path = Path(path)
    run_id = run_id or path.name
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        return f"missing {', '.join(missing)}"
    docs = {}
    for name in ("config.json", "metrics.json", "memory.json", "env.json"):
        try:
            docs[name] = json.loads((path / name).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            return f"{name}: not readable JSON ({e})"
        if not isinstance(docs[name], dict):
            return f"{name}: expected a JSON object, got {type(docs[name]).__name__}"
    for name in ("config.json", "metrics.json"):
        if docs[name].get("run_id") != run_id:
            return f"{name}: run_id is {docs[name].get('run_id')!r}, expected {run_id!r}"
    problem = (_check_metrics(docs["metrics.json"], docs["config.json"])
               or _check_sizes(docs["metrics.json"], docs["memory.json"]))
    if problem:
        return problem
    rows, problem = _read_history(path / "history.csv")
    return (problem or _check_history_agrees(rows, docs["metrics.json"])
            or predictions.check(path / predictions.FILE, docs["metrics.json"]))


def _check_metrics(m: dict[str, Any], config: dict[str, Any]) -> str | None:
    """Scores in [0, 1], losses finite and >= 0, a best epoch in 1..num_train_epochs."""
    epochs = {("metrics.json", "num_epochs"): m.get("num_epochs"),
              ("config.json", "num_train_epochs"): config.get("num_train_epochs")}
    for (file, key), n in epochs.items():
        if n is not None and not _count(n):
            return f"{file}: {key} is {n!r}, expected an integer >= 1"
    given = [n for n in epochs.values() if n is not None]
    if len(set(given)) > 1:
        return (f"metrics.json: num_epochs is {m['num_epochs']}, but config.json's "
                f"num_train_epochs is {config['num_train_epochs']}")
    best = m.get("best_epoch")
    if not _count(best) or (given and best > given[0]):
        span = f"1..{given[0]}" if given else "an integer >= 1"
        return f"metrics.json: best_epoch is {best!r}, expected {span} (num_train_epochs)"
    for split in ("validation", "test"):
        scores = m.get(split)
        if not isinstance(scores, dict):
            return f"metrics.json: '{split}' is {scores!r}, expected an object of metrics"
        for key in SCORE_KEYS:
            if not _finite_number(scores.get(key)) or not 0 <= scores[key] <= 1:
                return (f"metrics.json: {split}.{key} is {scores.get(key)!r}, expected a "
                        f"number in [0, 1]")
        if not _loss(scores.get("loss")):
            return (f"metrics.json: {split}.loss is {scores.get('loss')!r}, expected a finite "
                    f"number >= 0")
    if not _loss(m.get("train_loss")):
        return (f"metrics.json: train_loss is {m.get('train_loss')!r}, expected a finite "
                f"number >= 0")
    return None


#: metrics.json's numbers that are durations, rates or counts: finite and >= 0 when present.
NONNEGATIVE_METRICS = ("final_train_loss", "wall_time_s", "train_time_s",
                       "train_samples_per_s", "train_tokens_per_s", "num_train_samples")


def _check_sizes(m: dict[str, Any], memory: dict[str, Any]) -> str | None:
    """Sizes, counts and the last training loss can't be negative or non-finite: a byte count
    of memory.json (``*_bytes``: a number >= 0, or null when not measured), the parameter
    counts (integers, trainable <= total) in memory.json and metrics.json, and metrics.json's
    durations, rates and counts."""
    for key, value in memory.items():
        if key.endswith("_bytes") and value is not None and not _size(value):
            return f"memory.json: {key} is {value!r}, expected a finite number >= 0 (or null)"
    for name, doc in (("memory.json", memory), ("metrics.json", m)):
        params = doc.get("parameters")
        if params is None:
            continue
        if not isinstance(params, dict):
            return f"{name}: parameters is {params!r}, expected an object of counts"
        for key in ("total", "trainable"):
            value = params.get(key)
            if value is not None and not (_size(value) and float(value).is_integer()):
                return f"{name}: parameters.{key} is {value!r}, expected an integer >= 0"
        if _size(params.get("total")) and _size(params.get("trainable")) \
                and params["trainable"] > params["total"]:
            return (f"{name}: parameters.trainable ({params['trainable']}) is more than "
                    f"parameters.total ({params['total']})")
    for key in NONNEGATIVE_METRICS:
        if key in m and m[key] is not None and not _size(m[key]):
            return f"metrics.json: {key} is {m[key]!r}, expected a finite number >= 0"
    return None


def _size(value: Any) -> bool:
    return _finite_number(value) and value >= 0


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _loss(value: Any) -> bool:
    return _finite_number(value) and value >= 0


def _finite_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _read_history(path: Path) -> tuple[list[tuple[float, float, str, str, float]], str | None]:
    """history.csv's rows (step, epoch, split, metric, value), or what is wrong with it."""
    rows = []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None or tuple(header) != HISTORY_COLUMNS:
                return rows, (f"history.csv: header is {header}, expected "
                              f"{list(HISTORY_COLUMNS)}")
            for n, row in enumerate(reader, start=2):
                try:
                    ok = len(row) == len(HISTORY_COLUMNS)
                    step, epoch, value = (float(row[i]) for i in (0, 1, 4)) if ok else (0,) * 3
                    ok = ok and all(math.isfinite(v) for v in (step, epoch, value))
                except ValueError:
                    ok = False
                if not ok:
                    return rows, (f"history.csv line {n}: {row} is not "
                                  f"step,epoch,split,metric,value")
                rows.append((step, epoch, row[2], row[3], value))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        return rows, f"history.csv: not readable ({e})"
    return rows, None if rows else "history.csv: no rows"


def _check_history_agrees(rows: list[tuple[float, float, str, str, float]],
                          m: dict[str, Any]) -> str | None:
    """The best epoch's validation and test scores in history.csv are metrics.json's."""
    best = m["best_epoch"]
    logged = {(split, metric): value for _, epoch, split, metric, value in rows
              if epoch == best}
    for split in ("validation", "test"):
        for key in METRIC_KEYS:
            value = logged.get((split, key))
            if value is None:
                return (f"history.csv has no {split} {key} at epoch {best} (metrics.json's "
                        f"best_epoch)")
            if not math.isclose(value, m[split][key], rel_tol=1e-6, abs_tol=1e-9):
                return (f"history.csv: {split} {key} at epoch {best} is {value:.6g}, "
                        f"metrics.json says {m[split][key]:.6g}")
    return None


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
        problem = check_records(tmp, run_id)
        if problem:
            raise RuntimeError(f"run {run_id}: {problem}; not marking it complete")
        publish(tmp, run_path(runs_dir, run_id))
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if disk.is_disk_full(e):  # pandas' or torch's own write: say where and how much
            raise disk.disk_full(e, runs_dir, None,
                                 f"the records of run {run_id} in {tmp}") from e
        raise
    clear_failure(runs_dir, run_id)


def publish(tmp: Path, final: Path) -> None:
    """Move ``tmp`` to ``final`` atomically, replacing an older complete run if any (a
    folder there that does not validate is set aside, not deleted)."""
    problem = check_records(final) if final.exists() else None
    if problem:
        set_aside(final.parent, final.name, problem)
    if final.exists():
        trash = final.parent / TMP_DIR / f"{final.name}.old.{os.getpid()}.{next(_counter)}"
        final.rename(trash)
        tmp.rename(final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        tmp.rename(final)


def clean_stale(runs_dir: str | os.PathLike) -> list[Path]:
    """Remove ``.tmp`` folders whose writing process is gone (killed runs), and the
    temporary files and folders of writes that died or failed (a full disk): ``.failed/.*.
    <pid>.tmp`` and the token cache's ``.<hash>.<pid>.tmp``."""
    removed = []
    tmp_root = Path(runs_dir) / TMP_DIR
    for d in sorted(tmp_root.iterdir()) if tmp_root.is_dir() else []:
        parts = d.name.split(".")
        pid = next((int(p) for p in parts[1:] if p.isdigit()), None)
        if pid is not None and pid != os.getpid() and _alive(pid):
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    for folder in (Path(runs_dir) / FAILED_DIR, Path(runs_dir) / TOKEN_CACHE_DIR):
        for d in sorted(folder.glob(".*.tmp")) if folder.is_dir() else []:
            pid = d.name.split(".")[-2]
            if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
                continue
            if d.is_dir():
                shutil.rmtree(d, ignore_errors=True)
            else:
                d.unlink(missing_ok=True)
            removed.append(d)
    return removed


def _alive(pid: int) -> bool:
    return liveness.pid_alive(pid)  # the one rule (helpers.run.liveness): zombies are gone


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON through a temporary file so a reader never sees half a file (a full disk:
    :class:`helpers.run.disk.DiskFullError`, and no temporary file left)."""
    disk.write_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def complete_runs(runs_dir: str | os.PathLike) -> list[Path]:
    """Every complete run folder under ``runs_dir``, sorted by name."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if not p.name.startswith(".") and is_complete(p))


def new_attempt() -> str:
    """A name for one attempt at a run: sortable by time, unique per process."""
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"


def log_path(runs_dir: str | os.PathLike, run_id: str, attempt: str) -> Path:
    """The log of one attempt; its executed notebook is the same path with ``.ipynb``."""
    return Path(runs_dir) / LOGS_DIR / f"{run_id}.{attempt}.log"


_ATTEMPT = re.compile(r"\d{8}T\d{6}-\d+\.log")


def attempt_logs(runs_dir: str | os.PathLike, run_id: str) -> list[Path]:
    """Every attempt's log of ``run_id``, oldest first."""
    folder = Path(runs_dir) / LOGS_DIR
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.name.startswith(f"{run_id}.")
             and _ATTEMPT.fullmatch(p.name[len(run_id) + 1:])]
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))


def set_aside(runs_dir: str | os.PathLike, run_id: str, problem: str) -> Path:
    """Move a run folder that does not validate to ``.corrupt/<run_id>-<time>/`` (kept for a
    person to look at, never deleted) with a note of what was wrong; return where it went."""
    root = Path(runs_dir) / CORRUPT_DIR
    root.mkdir(parents=True, exist_ok=True)
    dest = root / f"{run_id}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.{next(_counter)}"
    run_path(runs_dir, run_id).rename(dest)
    (dest.parent / f"{dest.name}.txt").write_text(
        f"{run_id}: set aside on {time.strftime('%Y-%m-%d %H:%M:%S')} by pid {os.getpid()} "
        f"and rerun, because {problem}\n", encoding="utf-8")
    return dest


def check_writable(runs_dir: str | os.PathLike) -> Path:
    """Create ``runs_dir`` if needed and prove it writable (a real file, not ``os.access``:
    read-only mounts and ACLs), before any work starts; return it."""
    path = Path(runs_dir)
    # a file where the folder (or one above it) should be: said so, not "File exists"
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise NotWritableError(
            f"runs folder {path}: {blocker} is a file, not a folder; choose another folder "
            f"(--runs-dir, or the runs_dir parameter) or move the file.")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise NotWritableError(
            f"runs folder {path} is not writable ({e.strerror or e}); fix its permissions or "
            f"choose another folder (--runs-dir, or the runs_dir parameter).") from None
    return path

"""The records of one run folder (config.json, history.csv, metrics.json, memory.json,
env.json, predictions.csv.gz) and the check that they can be true: a folder is a result only
when :func:`check_records` finds nothing wrong (helpers.run.store publishes and lists runs by it).
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

from . import disk, predictions

REQUIRED_FILES = ("config.json", "history.csv", "metrics.json", "memory.json", "env.json",
                  predictions.FILE)
HISTORY_COLUMNS = ("step", "epoch", "split", "metric", "value")
#: What a complete run's metrics.json must hold (the analysis and ``grid status`` read them).
METRIC_KEYS = ("accuracy", "macro_f1", "micro_f1", "loss")
#: The metrics that are shares of examples, so in [0, 1] (a loss is only >= 0).
SCORE_KEYS = ("accuracy", "macro_f1", "micro_f1")


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


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON through a temporary file so a reader never sees half a file (a full disk:
    :class:`helpers.run.disk.DiskFullError`, and no temporary file left)."""
    disk.write_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())

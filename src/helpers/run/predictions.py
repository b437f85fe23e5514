"""A run's per-example predictions: ``predictions.csv.gz`` beside ``history.csv``.

One row per split x epoch x example, for validation and test at every evaluated epoch::

    split,epoch,example,label,prediction,prob_0,...,prob_<k-1>

``example`` is the row index in the evaluated split after subsampling (the same examples for
every seed and method of a dataset, so two runs pair by it); ``label`` and ``prediction`` are
class ids as the model's head numbers them; ``prob_<i>`` the softmax probabilities, rounded to
4 decimals. Why keep them: aggregate scores allow no example-level test (a paired bootstrap
over test examples, :mod:`helpers.report.bootstrap`), no per-class F1 and no confusion matrix.

The file is gzip with a fixed header time, so the same predictions give the same bytes.
:func:`check` is part of :func:`helpers.run.records.check_records`: a missing, truncated or
edited file makes the run incomplete or corrupt, and the scores the file implies at the best
epoch must be metrics.json's. Plain Python (csv, gzip): the store's checks import no pandas.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import zlib
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FILE = "predictions.csv.gz"
COLUMNS = ("split", "epoch", "example", "label", "prediction")
SPLITS = ("validation", "test")
PROB_DECIMALS = 4
#: What :func:`check` recomputes and compares with metrics.json (the loss needs the logits).
CHECKED = ("accuracy", "macro_f1", "micro_f1")


def write(path: str | os.PathLike, rows: Sequence[tuple[str, int, Sequence[int], Sequence[int],
                                                       Sequence[int], Any]]) -> None:
    """Write ``(split, epoch, examples, labels, predictions, probs)`` blocks (``probs``: an
    examples x classes array, or None) as one gzip CSV, examples in ascending order."""
    classes = max((len(p[0]) for *_, p in rows if p is not None and len(p)), default=0)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow([*COLUMNS, *(f"prob_{i}" for i in range(classes))])
    for split, epoch, examples, labels, preds, probs in rows:
        order = sorted(range(len(examples)), key=lambda i: examples[i])
        for i in order:
            extra = ([f"{float(v):.{PROB_DECIMALS}f}" for v in probs[i]]
                     if probs is not None else [])
            writer.writerow([split, epoch, int(examples[i]), int(labels[i]), int(preds[i]),
                             *extra])
    with open(path, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0) as gz:
        gz.write(text.getvalue().encode("utf-8"))


def read(path: str | os.PathLike) -> tuple[dict[tuple[str, int], list[tuple[int, int, int]]],
                                           str | None]:
    """``(split, epoch) -> [(example, label, prediction)]``, or what is wrong with the file."""
    out: dict[tuple[str, int], list[tuple[int, int, int]]] = defaultdict(list)
    name = Path(path).name
    try:
        with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None or tuple(header[:len(COLUMNS)]) != COLUMNS:
                return out, f"{name}: header is {header}, expected {list(COLUMNS)} + prob_*"
            width = len(header)
            for n, row in enumerate(reader, start=2):
                try:
                    ok = len(row) == width and row[0] in SPLITS
                    epoch, example, label, pred = (int(v) for v in row[1:5])
                except ValueError:
                    ok = False
                if not ok:
                    return out, f"{name} line {n}: {row} is not {','.join(header)}"
                out[(row[0], epoch)].append((example, label, pred))
    except (OSError, EOFError, UnicodeDecodeError, csv.Error, zlib.error) as e:
        return out, f"{name}: not readable ({type(e).__name__}: {e}; truncated?)"
    return out, None if out else f"{name}: no rows"


def scores(labels: Sequence[int], preds: Sequence[int]) -> dict[str, float]:
    """Accuracy, macro-F1 and micro-F1 as scikit-learn computes them (macro over the classes
    in the labels or the predictions, a class never predicted nor present scoring nothing)."""
    n = len(labels)
    hits = sum(a == b for a, b in zip(labels, preds, strict=True))
    tp: dict[int, int] = defaultdict(int)
    support: dict[int, int] = defaultdict(int)  # true + predicted count per class
    for a, b in zip(labels, preds, strict=True):
        support[a] += 1
        support[b] += 1
        tp[a] += a == b
    f1 = [2 * tp[c] / support[c] for c in support]
    accuracy = hits / n if n else 0.0
    return {"accuracy": accuracy, "macro_f1": sum(f1) / len(f1) if f1 else 0.0,
            "micro_f1": accuracy}


#: check's verdicts by file (path, size, mtime) and metrics: a report lists its runs several
#: times, and a full-size run's file is tens of thousands of rows.
_checked: dict[tuple[str, int, int, str], str | None] = {}


def check(path: str | os.PathLike, metrics: dict[str, Any]) -> str | None:
    """What is wrong with the run's predictions given its metrics.json: every epoch's
    validation and test examples once each (as many as ``num_eval_samples``), and at
    ``best_epoch`` the scores metrics.json reports."""
    try:
        stat = os.stat(path)
    except OSError as e:
        return f"{Path(path).name}: not readable ({e})"
    key = (str(path), stat.st_size, stat.st_mtime_ns, json.dumps(metrics, sort_keys=True,
                                                                 default=str))
    if key not in _checked:
        _checked[key] = _check(path, metrics)
    return _checked[key]


def _check(path: str | os.PathLike, metrics: dict[str, Any]) -> str | None:
    blocks, problem = read(path)
    if problem:
        return problem
    name = Path(path).name
    sizes = metrics.get("num_eval_samples") or {}
    epochs = range(1, int(metrics.get("num_epochs") or metrics["best_epoch"]) + 1)
    for split in SPLITS:
        # as many as metrics.json says it evaluated, else as many as the fullest epoch
        want = sizes.get(split) if isinstance(sizes, dict) else None
        want = want or max(len(blocks.get((split, e), ())) for e in epochs)
        for epoch in epochs:
            rows = blocks.get((split, epoch))
            if not rows:
                return f"{name}: no {split} rows at epoch {epoch}"
            examples = sorted(r[0] for r in rows)
            if examples != list(range(want)):
                return (f"{name}: {split} epoch {epoch} holds examples {examples[:3]}... "
                        f"({len(rows)} rows), expected 0..{want - 1} once each")
        rows = blocks[(split, metrics["best_epoch"])]
        got = scores([r[1] for r in rows], [r[2] for r in rows])
        for key in CHECKED:
            want_value = (metrics.get(split) or {}).get(key)
            if not isinstance(want_value, (int, float)) or not math.isclose(
                    got[key], want_value, rel_tol=1e-6, abs_tol=1e-9):
                return (f"{name}: {split} {key} at epoch {metrics['best_epoch']} is "
                        f"{got[key]:.6g}, metrics.json says {want_value!r}")
    return None

"""Majority-class baselines: what always predicting the most frequent training class scores.

Why: a score means little without the floor it must beat. The original report's adapters on
acl_sup (accuracy 0.5107, macro-F1 0.1126) score exactly what this baseline scores there
(71 of 139 test examples are Background), i.e. they learned nothing. The rows are those a run
evaluates: the same data loader and the same fixed subsample (``helpers.run.batches.subsample``)
for the same ``max_train_samples`` / ``max_eval_samples``; the metrics are scikit-learn's, as
in ``helpers.step.evaluate``.
"""

from __future__ import annotations

import functools
import os
from collections import Counter

SPLITS = ("validation", "test")


@functools.lru_cache(maxsize=64)
def _baseline(dataset: str, max_train_samples: int | None, max_eval_samples: int | None,
              data_dir: str | None) -> dict[str, object]:
    # deferred: sklearn and helpers.run.data (datasets) take seconds to import
    from sklearn.metrics import accuracy_score, f1_score

    from . import data
    from .batches import subsample

    dd = data.load(dataset, data_dir)
    names = data.label_names(dd)
    train = subsample(dd["train"], max_train_samples)
    majority, count = Counter(train["label"]).most_common(1)[0]
    out: dict[str, object] = {"dataset": dataset, "label": names[majority],
                              "train_share": count / len(train),
                              "num_train_samples": len(train),
                              "max_train_samples": max_train_samples,
                              "max_eval_samples": max_eval_samples}
    for split in SPLITS:
        y_true = subsample(dd[split], max_eval_samples)["label"]
        y_pred = [majority] * len(y_true)
        prefix = "" if split == "test" else "val_"
        out[f"{prefix}accuracy"] = float(accuracy_score(y_true, y_pred))
        out[f"{prefix}macro_f1"] = float(f1_score(y_true, y_pred, average="macro",
                                                  zero_division=0))
        out[f"{prefix}micro_f1"] = float(f1_score(y_true, y_pred, average="micro",
                                                  zero_division=0))
        out[f"num_{split}_samples"] = len(y_true)
        counts = Counter(y_true)
        out[f"{split}_counts"] = tuple((names[i], counts.get(i, 0)) for i in range(len(names)))
    return out


def majority_class(dataset: str, max_train_samples: int | None = None,
                   max_eval_samples: int | None = None,
                   data_dir: str | os.PathLike | None = None) -> dict[str, object]:
    """Test (and ``val_``) accuracy, macro-F1, micro-F1 of always predicting the majority class.

    Also ``label`` (that class), ``train_share`` and the number of evaluated rows. Raises
    :class:`helpers.run.data.DataError` (naming the folder to fix) when the data is not there.
    """
    return dict(_baseline(dataset, _int(max_train_samples), _int(max_eval_samples),
                          None if data_dir is None else str(data_dir)))


def for_runs(summary, data_dir: str | os.PathLike | None = None) -> dict[str, dict[str, object]]:
    """The baseline of every dataset in a run summary, on the rows those runs evaluated.

    Uses the caps most runs of the dataset used (max_train_samples / max_eval_samples).
    Raises :class:`helpers.run.data.DataError` when the data folder is missing.
    """
    out = {}
    for dataset, runs in summary.groupby("dataset"):
        caps = runs[["max_train_samples", "max_eval_samples"]].astype(object) \
            .where(runs[["max_train_samples", "max_eval_samples"]].notna(), None)
        train_cap, eval_cap = caps.value_counts(dropna=False).index[0]
        out[str(dataset)] = majority_class(str(dataset), train_cap, eval_cap, data_dir)
    return out


def _int(value: object) -> int | None:
    if value is None:
        return None
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if f != f else int(f)  # NaN (a run without the cap) -> no cap


__all__ = ["for_runs", "majority_class"]

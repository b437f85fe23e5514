"""Per-example results: each run's test predictions at its reported epoch, the bootstrap
intervals of the report's comparisons, per-class F1 and confusion matrices.

The reported epoch is the one metrics.json reports: the best validation macro-F1
(``best_epoch``), never chosen on test. :class:`Examples` wraps those predictions for
:mod:`.stats`, which then pairs two rows of a table by seed *and* test example
(:func:`helpers.report.bootstrap.paired_difference`) instead of by seed alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from helpers.run.methods import METHODS
from helpers.run.records import read_json
from helpers.run.store import RunStore

from . import bootstrap
from .load import HISTORY_ID_COLUMNS, display_model, order_datasets, predictions

#: What the bootstrap scores for each table metric: micro-F1 is accuracy for single-label
#: classification, so its interval is accuracy's.
BOOTSTRAP_METRIC = {"accuracy": "accuracy", "macro_f1": "macro_f1", "micro_f1": "accuracy"}


def reported(preds: pd.DataFrame, summary: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """``preds`` (:func:`helpers.report.load.predictions`) of ``split`` at each run's reported
    epoch (metrics.json's ``best_epoch``: best validation macro-F1), with the run's identity:
    run_id, model, dataset, method, seed, example, label, prediction."""
    best = summary[[*HISTORY_ID_COLUMNS, "best_epoch"]]
    rows = preds[preds["split"] == split].merge(best, on="run_id")
    rows = rows[rows["epoch"] == rows["best_epoch"]]
    return rows[[*HISTORY_ID_COLUMNS, "example", "label", "prediction"]].reset_index(drop=True)


@dataclass
class Examples:
    """The test predictions behind a report's numbers, and the bootstrap intervals of its
    comparisons (memoised: a table and the text ask for the same ones)."""

    frame: pd.DataFrame
    confidence: float = 0.95
    _memo: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, store: RunStore, summary: pd.DataFrame) -> Examples:
        return cls(reported(predictions(store, summary["run_id"]), summary))

    def runs(self, run_ids: Iterable[str]) -> pd.DataFrame:
        return self.frame[self.frame["run_id"].isin(set(run_ids))]

    def difference(self, treatment: Iterable[str], control: Iterable[str] | None,
                   metric: str) -> bootstrap.Interval:
        """``metric`` of the runs ``treatment`` minus that of ``control`` (None: the level),
        paired by seed and test example; NaN when either has no predictions."""
        a, b = tuple(sorted(treatment)), None if control is None else tuple(sorted(control))
        key = (a, b, metric)
        if key not in self._memo:
            self._memo[key] = bootstrap.paired_difference(
                self.runs(a), None if b is None else self.runs(b),
                BOOTSTRAP_METRIC[metric], confidence=self.confidence)
        return self._memo[key]

    @property
    def covers(self) -> str:
        """What the intervals cover, from the fewest seeds of any (model, dataset, method)."""
        if self.frame.empty:
            return ""
        seeds = self.frame.groupby(["model", "dataset", "method"])["seed"].nunique().min()
        return (bootstrap.COVERS_BOTH if seeds >= bootstrap.MIN_SEEDS_TO_RESAMPLE
                else bootstrap.COVERS_EXAMPLES)


# ----------------------------------------------------------------------------- per class
def per_class_f1(frame: pd.DataFrame, label_names: dict[str, Sequence[str]] | None = None
                 ) -> pd.DataFrame:
    """F1 per class of each (model, dataset, method), mean over seeds (sklearn's F1 of each
    run), with the class's share of the test rows: model, dataset, method, class_id, class,
    support, f1, n (seeds)."""
    from sklearn.metrics import f1_score  # deferred: sklearn's import takes a second

    rows = []
    for (model, dataset, method), cell in frame.groupby(["model", "dataset", "method"],
                                                        sort=False):
        names = list((label_names or {}).get(dataset) or [])
        classes = sorted(set(cell["label"]) | set(cell["prediction"]) | set(range(len(names))))
        per_run = [f1_score(g["label"], g["prediction"], labels=classes, average=None,
                            zero_division=0) for _, g in cell.groupby("seed")]
        first = cell[cell["seed"] == cell["seed"].min()]
        for i, c in enumerate(classes):
            rows.append({"model": model, "dataset": dataset, "method": method, "class_id": c,
                         "class": names[c] if c < len(names) else str(c),
                         "support": int((first["label"] == c).sum()),
                         "f1": float(np.mean([f[i] for f in per_run])), "n": len(per_run)})
    return pd.DataFrame(rows, columns=["model", "dataset", "method", "class_id", "class",
                                       "support", "f1", "n"])


def confusion(frame: pd.DataFrame, classes: int) -> np.ndarray:
    """Row-normalised confusion matrix (true class x predicted class) pooled over the runs of
    ``frame``; a class without test rows is a row of NaN."""
    counts = np.zeros((classes, classes))
    np.add.at(counts, (frame["label"].to_numpy(), frame["prediction"].to_numpy()), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return counts / counts.sum(axis=1, keepdims=True)


def label_names(store: RunStore, summary: pd.DataFrame) -> dict[str, list[str]]:
    """Per dataset, its class names as the runs' heads number them (metrics.json's
    ``label_names``); a dataset whose runs do not record them is left out."""
    out: dict[str, list[str]] = {}
    for dataset, runs in summary.groupby("dataset", sort=False):
        names = read_json(store.path(runs["run_id"].iloc[0]) / "metrics.json").get("label_names")
        if names:
            out[dataset] = list(names)
    return out


# ----------------------------------------------------------------------------- the sentence
@dataclass(frozen=True)
class ClassScore:
    name: str
    f1: float
    support: int  # test rows of the class


@dataclass(frozen=True)
class ClassLosses:
    """Where one dataset's macro-F1 is lost: the classes whose F1 is below it."""

    dataset: str
    macro_f1: float  # the mean of the class F1s (each run's macro-F1, averaged)
    best: ClassScore
    weak: tuple[ClassScore, ...]  # below macro_f1, weakest first
    test_rows: int

    @property
    def weak_share(self) -> float:
        return sum(c.support for c in self.weak) / self.test_rows if self.test_rows else 0.0

    @property
    def weak_count(self) -> int:
        return len(self.weak)


@dataclass
class PerClassFacts:
    """The per-class sentence's facts: one model x method (the report's first model, full
    fine-tuning), per dataset."""

    model_label: str
    method: str
    datasets: list[ClassLosses] = field(default_factory=list)


def class_losses(per_class: pd.DataFrame, model: str | None,
                 method: str = "full") -> PerClassFacts:
    """Per dataset, the classes of ``model`` x ``method`` whose mean F1 is below the mean over
    classes (what macro-F1 averages), from :func:`per_class_f1`."""
    out = PerClassFacts(display_model(model) if model else "", method)
    sub = per_class[(per_class["model"] == model) & (per_class["method"] == method)]
    for dataset in order_datasets(sub["dataset"]):
        d = sub[sub["dataset"] == dataset]
        scores = [ClassScore(r["class"], float(r["f1"]), int(r["support"]))
                  for _, r in d.iterrows() if r["support"] > 0]
        if not scores:
            continue
        macro = float(np.mean([c.f1 for c in scores]))
        weak = tuple(sorted((c for c in scores if c.f1 < macro), key=lambda c: c.f1))
        out.datasets.append(ClassLosses(dataset, macro, max(scores, key=lambda c: c.f1), weak,
                                        sum(c.support for c in scores)))
    return out


# ----------------------------------------------------------------------------- what trains
@dataclass(frozen=True)
class Trained:
    """One method of the PEFT comparison: what it trains, and how many weights (the runs'
    recorded parameter counts, median over runs)."""

    method: str
    label: str
    trains: str
    trainable: int
    total: int


@dataclass
class TrainsFacts:
    model_label: str
    methods: list[Trained] = field(default_factory=list)
    #: LoRA's targets reach BERT's pooler.dense (a "dense" target, lora_pooler true).
    lora_on_pooler: bool = False
    #: LoRA runs that keep the pooler frozen (lora_pooler false).
    lora_pooler_frozen: bool = False


def what_trains(summary: pd.DataFrame, configs: pd.DataFrame, model: str | None) -> TrainsFacts:
    """Per method of ``model``'s runs, what it trains (helpers.run.methods) and the trainable
    and total parameter counts its runs recorded (memory.json's ``parameters``)."""
    out = TrainsFacts(display_model(model) if model else "")
    sub = summary[summary["model"] == model]
    for name, method in METHODS.items():
        runs = sub[sub["method"] == name]
        if runs.empty or runs["params_trainable"].isna().all():
            continue
        out.methods.append(Trained(name, method.label, method.trains,
                                   int(runs["params_trainable"].median()),
                                   int(runs["params_total"].median())))
    lora = configs[(configs.get("model") == model) & (configs.get("method") == "lora")] \
        if not configs.empty else configs
    if not lora.empty:
        pooler = lora.get("lora_pooler", pd.Series(True, index=lora.index)).fillna(True)
        dense = lora["lora_target_modules"].map(lambda t: "dense" in list(t))
        out.lora_on_pooler = bool((pooler.astype(bool) & dense).any())
        out.lora_pooler_frozen = bool((~pooler.astype(bool)).any())
    return out

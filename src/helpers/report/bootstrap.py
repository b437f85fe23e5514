"""Intervals that cover the test set's own noise: a paired bootstrap over test examples,
nested in a bootstrap over seeds when there are enough seeds.

Why not the Student-t interval of :mod:`.stats`: it is over seeds only, so with 2 seeds there is
none, and at 5 seeds it leaves out that the test split is itself a sample (with 200 test rows
the standard error of accuracy is about 0.03, more than the seed spread). Following Dror et al.
(2018) and Bouthillier et al. (2021), each bootstrap replicate draws the seeds with replacement
(when there are at least :data:`MIN_SEEDS_TO_RESAMPLE`) and, for all of them at once, the test
examples with replacement; both configurations are scored on the same draw (paired by seed and
by example). The interval is the percentile interval of the replicates.

Hand-written rather than ``scipy.stats.bootstrap``: that one resamples one level, and macro-F1
over multinomial example weights is a few matrix products here (thousands of replicates of a
few thousand rows in well under a second), where scipy would call sklearn once per replicate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Fewest seeds for resampling seeds too; below it the seeds are fixed and averaged, and the
#: interval covers the test examples only (with 2 seeds a seed bootstrap has 3 distinct draws).
MIN_SEEDS_TO_RESAMPLE = 3
#: Replicates per interval, and the generator's seed: a build gives the same intervals twice.
RESAMPLES = 2000
BOOTSTRAP_SEED = 20221
#: What a predictions frame must hold: one row per seed x example at the epoch reported.
PREDICTION_COLUMNS = ("seed", "example", "label", "prediction")
METRICS = ("accuracy", "macro_f1")
COVERS_BOTH = "seeds and test examples"
COVERS_EXAMPLES = "test examples only"


@dataclass(frozen=True)
class Interval:
    """``treatment - control`` (or one configuration's level): the estimate on the data as it
    is, and a percentile interval of the bootstrap replicates."""

    metric: str
    estimate: float
    low: float
    high: float
    n_seeds: int
    n_examples: int
    covers: str
    confidence: float = 0.95

    @property
    def excludes_zero(self) -> bool:
        return not math.isnan(self.low) and (self.low > 0 or self.high < 0)


def _matrices(frame: pd.DataFrame, seeds: list, examples: np.ndarray,
              classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-hot labels and predictions, shaped (seed, example, class)."""
    table = frame.set_index(["seed", "example"]).sort_index()
    if table.index.duplicated().any():
        raise ValueError("predictions frame has more than one row for a seed x example: "
                         "select one epoch per run before bootstrapping")
    index = pd.MultiIndex.from_product([seeds, examples], names=["seed", "example"])
    try:
        rows = table.loc[index]
    except KeyError as e:
        raise ValueError(f"predictions are not paired: a seed x example is missing ({e})") from e
    shape = (len(seeds), len(examples))
    label = rows["label"].to_numpy().reshape(shape)
    pred = rows["prediction"].to_numpy().reshape(shape)
    return (label[..., None] == classes).astype(float), (pred[..., None] == classes).astype(float)


def _scores(weights: np.ndarray, truth: np.ndarray, pred: np.ndarray, metric: str) -> np.ndarray:
    """``metric`` per replicate x seed for example ``weights`` (replicate, example):
    accuracy, or macro-F1 over the classes present in the labels or the predictions of the
    weighted sample (sklearn's ``f1_score(average="macro")`` with its default labels)."""
    total = weights.sum(axis=1, keepdims=True)
    hits = (truth * pred).sum(axis=2)                     # (seed, example)
    if metric == "accuracy":
        return (weights @ hits.T) / total                 # (replicate, seed)
    if metric != "macro_f1":
        raise ValueError(f"metric {metric!r} is not one of {list(METRICS)}")
    # (seed, replicate, class), one BLAS product per seed
    tp = np.matmul(weights, truth * pred).transpose(1, 0, 2)
    support = np.matmul(weights, truth + pred).transpose(1, 0, 2)
    present = support > 0
    f1 = np.divide(2 * tp, support, out=np.zeros_like(tp), where=present)
    return f1.sum(axis=2) / np.maximum(present.sum(axis=2), 1)


def _example_weights(rng: np.random.Generator, resamples: int, n: int) -> np.ndarray:
    """How often each example is drawn in each replicate (n draws with replacement): one
    bincount over all replicates, 5x faster than ``rng.multinomial`` at 2000 x 3000."""
    draws = rng.integers(0, n, size=(resamples, n)) + np.arange(resamples)[:, None] * n
    return np.bincount(draws.ravel(), minlength=resamples * n).reshape(resamples, n).astype(float)


def paired_difference(treatment: pd.DataFrame, control: pd.DataFrame | None,
                      metric: str = "macro_f1", *, confidence: float = 0.95,
                      resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED) -> Interval:
    """``metric(treatment) - metric(control)``, averaged over the seeds both ran, with a
    paired bootstrap interval; ``control=None`` gives ``treatment``'s own level.

    Both frames hold :data:`PREDICTION_COLUMNS` for the same test examples; pair two epochs of
    one run (a selection rule) by giving each its own frame.
    """
    frames = [treatment] if control is None else [treatment, control]
    for frame in frames:
        missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"predictions frame lacks column(s) {missing}; expected "
                             f"{list(PREDICTION_COLUMNS)} (one row per seed x example)")
    seeds = sorted(set.intersection(*(set(f["seed"]) for f in frames)))
    examples = np.array(sorted(set.intersection(*(set(f["example"]) for f in frames))))
    if not seeds or not len(examples):
        return Interval(metric, math.nan, math.nan, math.nan, 0, 0, COVERS_EXAMPLES, confidence)
    classes = np.unique(np.concatenate([f[c].to_numpy() for f in frames
                                        for c in ("label", "prediction")]))
    mats = [_matrices(f, seeds, examples, classes) for f in frames]
    n, s = len(examples), len(seeds)
    rng = np.random.default_rng(seed)

    def diff(weights: np.ndarray) -> np.ndarray:   # (replicate, seed)
        out = _scores(weights, *mats[0], metric)
        return out if control is None else out - _scores(weights, *mats[1], metric)

    estimate = float(diff(np.ones((1, n))).mean())
    weights = _example_weights(rng, resamples, n)
    per_seed = diff(weights)
    if s >= MIN_SEEDS_TO_RESAMPLE:
        draws = rng.integers(0, s, size=(resamples, s))
        replicates = np.take_along_axis(per_seed, draws, axis=1).mean(axis=1)
        covers = COVERS_BOTH
    else:
        replicates, covers = per_seed.mean(axis=1), COVERS_EXAMPLES
    tail = (1 - confidence) / 2
    low, high = np.quantile(replicates, [tail, 1 - tail])
    return Interval(metric, estimate, float(low), float(high), s, n, covers, confidence)

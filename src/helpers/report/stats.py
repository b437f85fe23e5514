"""Statistics of the runs: means over seeds, differences paired by seed with a Student-t
interval, and the report's one ranking rule (:func:`rank`).

One sign convention everywhere in the report: PEFT - full (negative = PEFT worse). With fewer
than :data:`MIN_SEEDS_FOR_INTERVAL` seeds there is no interval and no ranking.

The ranking rule (what a bold value means): the best mean of a column is *supported* only when
its difference to every other row has a 95% interval that excludes zero. Given the runs' test
predictions (``examples``, :class:`helpers.report.examples.Examples`) the interval is the paired
bootstrap over test examples, and over seeds from 3 (:mod:`helpers.report.bootstrap`), which
exists at 2 seeds too; without them, a Student-t interval over seeds (none below 3 seeds).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from helpers.run.catalog import REPORT_MODELS
from helpers.run.methods import METHODS

from .load import (
    HISTORY_ID_COLUMNS,
    SCORES,
    TABLE_METRICS,
    order_datasets,
    peft_model,
)

if TYPE_CHECKING:
    from .examples import Examples

#: Fewest seeds for a t-interval or a ranking: with 2 seeds the interval has one degree of
#: freedom (12.7 x the standard error wide) or, when both differences are equal, zero width.
MIN_SEEDS_FOR_INTERVAL = 3
LOWER_IS_BETTER = frozenset({"train_loss", "loss", "final_train_loss"})


def aggregate(summary: pd.DataFrame, by: Sequence[str],
              metrics: Sequence[str] = TABLE_METRICS) -> pd.DataFrame:
    """Mean, sample std (ddof=1) and n (runs) per group, for each metric."""
    rows = []
    for keys, group in summary.groupby(list(by), sort=False, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        row = dict(zip(by, keys, strict=True))
        row["n"] = int(group["run_id"].nunique())
        for m in metrics:
            values = group[m].dropna().astype(float)
            row[f"{m}_mean"] = values.mean() if len(values) else math.nan
            row[f"{m}_std"] = values.std(ddof=1) if len(values) > 1 else math.nan
        rows.append(row)
    columns = [*by, "n", *(f"{m}_{s}" for m in metrics for s in ("mean", "std"))]
    return pd.DataFrame(rows, columns=columns)


@dataclass(frozen=True)
class Paired:
    """``a - b`` paired by seed: the mean, std and n of the per-seed differences and their
    Student-t interval (NaN with fewer than :data:`MIN_SEEDS_FOR_INTERVAL` pairs or no spread)."""

    n: int
    mean: float
    std: float = math.nan
    low: float = math.nan
    high: float = math.nan
    wins: int = 0  # seeds where a is ahead of b
    #: What the interval covers: seeds (Student-t), or the bootstrap's helpers.report.bootstrap
    #: COVERS_BOTH / COVERS_EXAMPLES.
    covers: str = "seeds"

    @property
    def has_interval(self) -> bool:
        return not math.isnan(self.low)

    @property
    def excludes_zero(self) -> bool:
        return self.has_interval and (self.low > 0 or self.high < 0)


def paired_by_seed(frame: pd.DataFrame, column: str, a: Hashable, b: Hashable, metric: str,
                   confidence: float = 0.95, examples: Examples | None = None) -> Paired:
    """``a - b`` in ``metric`` over the seeds both rows of ``column`` ran (runs of one seed are
    averaged): e.g. two models of one dataset, or a PEFT method and full fine-tuning. With
    ``examples`` the interval is the paired bootstrap (see the module docstring)."""
    per_seed = frame.groupby([column, "seed"])[metric].mean()
    left = per_seed.xs(a, level=column) if a in per_seed.index.get_level_values(0) else None
    right = per_seed.xs(b, level=column) if b in per_seed.index.get_level_values(0) else None
    if left is None or right is None:
        return Paired(0, math.nan)
    diffs = (left - right).dropna()
    n = len(diffs)
    if not n:
        return Paired(0, math.nan)
    std = float(diffs.std(ddof=1)) if n > 1 else math.nan
    if examples is not None and metric in SCORES:
        shared = set(diffs.index)
        runs = [frame.loc[(frame[column] == k) & frame["seed"].isin(shared), "run_id"]
                for k in (a, b)]
        iv = examples.difference(runs[0], runs[1], metric)
        if not math.isnan(iv.estimate):
            return Paired(n, float(diffs.mean()), std, iv.low, iv.high, int((diffs > 0).sum()),
                          iv.covers)
    low, high = t_interval(diffs.tolist(), confidence)
    return Paired(n, float(diffs.mean()), std, low, high, int((diffs > 0).sum()))


@dataclass
class Ranking:
    """Rows of one column ranked by mean (best first) and whether the leader's lead is
    supported: paired by seed against every other row, each interval excludes zero."""

    metric: str
    order: list = field(default_factory=list)
    means: dict = field(default_factory=dict)
    versus: dict = field(default_factory=dict)  # other -> Paired (leader - other)

    @property
    def leader(self) -> Any:
        return self.order[0] if self.order else None

    @property
    def supported(self) -> bool:
        lower = self.metric in LOWER_IS_BETTER
        return len(self.order) > 1 and all(
            p.excludes_zero and ((p.high < 0) if lower else (p.low > 0))
            for p in self.versus.values())


def rank(frame: pd.DataFrame, column: str, metric: str, confidence: float = 0.95,
         examples: Examples | None = None) -> Ranking:
    """The rows of ``column`` in ``frame`` ranked by mean ``metric`` (losses: lowest first),
    with the leader paired (:func:`paired_by_seed`) against each other row."""
    means = frame.groupby(column)[metric].mean().dropna()
    ranked = means.sort_values(ascending=metric in LOWER_IS_BETTER, kind="stable")
    order = list(ranked.index)
    out = Ranking(metric, order, {k: float(v) for k, v in ranked.items()})
    for other in order[1:]:
        out.versus[other] = paired_by_seed(frame, column, order[0], other, metric, confidence,
                                           examples)
    return out


def supported_best(frame: pd.DataFrame, column: str, metric: str,
                   examples: Examples | None = None) -> set[Any]:
    """The row to print in bold for ``metric``: the leader where :func:`rank` supports it."""
    r = rank(frame, column, metric, examples=examples)
    return {r.leader} if r.supported else set()


def per_seed(summary: pd.DataFrame, metrics: Sequence[str] = SCORES) -> pd.DataFrame:
    """One row per run x metric: the points behind every mean (what the seed plot shows)."""
    keep = [*HISTORY_ID_COLUMNS, *metrics]
    long = summary[keep].melt(id_vars=list(HISTORY_ID_COLUMNS), var_name="metric",
                              value_name="value")
    return long.sort_values(["dataset", "model", "method", "metric", "seed"],
                            key=_sort_key).reset_index(drop=True)


def _sort_key(col: pd.Series) -> pd.Series:
    if col.name == "dataset":
        rank = {d: i for i, d in enumerate(order_datasets(col))}
        return col.map(lambda d: f"{rank[d]:02d}{d}")
    if col.name == "model":
        rank = {m: i for i, m in enumerate(REPORT_MODELS)}
        return col.map(lambda m: f"{rank.get(m, len(rank)):02d}{m}")
    if col.name == "method":
        order = list(METHODS)
        return col.map(lambda m: order.index(m) if m in order else len(order))
    return col


def t_interval(values: Sequence[float], confidence: float = 0.95,
               min_n: int = MIN_SEEDS_FOR_INTERVAL) -> tuple[float, float]:
    """Student-t confidence interval of the mean (scipy); NaN below ``min_n`` values.

    Also NaN when the values have no spread: a zero-width interval would claim certainty that
    two or three equal differences (often one test example each) do not give.
    """
    from scipy import stats  # deferred: scipy's import takes a second

    values = [float(v) for v in values if not math.isnan(float(v))]
    n = len(values)
    if n < max(min_n, 2) or max(values) == min(values):
        return math.nan, math.nan
    low, high = stats.t.interval(confidence, n - 1, loc=sum(values) / n, scale=stats.sem(values))
    return float(low), float(high)


def paired_stats(summary: pd.DataFrame, model: str | None = None,
                 metrics: Sequence[str] = ("accuracy", "macro_f1"),
                 confidence: float = 0.95, examples: Examples | None = None) -> pd.DataFrame:
    """PEFT minus full fine-tuning of ``model`` (:func:`paired_by_seed`), one row per dataset
    x PEFT method x metric: what the paired table shows; ``covers`` says what its interval
    covers. Without ``examples`` the interval is NaN with fewer than
    :data:`MIN_SEEDS_FOR_INTERVAL` pairs or no spread.
    """
    model = model or peft_model(summary)
    sub = summary[summary["model"] == model]
    rows = []
    for dataset in order_datasets(sub["dataset"]):
        cell = sub[sub["dataset"] == dataset]
        # the PEFT methods of this build's runs (a method registered but not run has no row)
        for method in (m for m in METHODS if m != "full" and m in set(summary["method"])):
            for m in metrics:
                p = paired_by_seed(cell, "method", method, "full", m, confidence, examples)
                rows.append({"model": model, "dataset": dataset, "method": method, "metric": m,
                             "n": p.n, "mean_difference": p.mean, "std_difference": p.std,
                             "ci_low": p.low, "ci_high": p.high, "confidence": confidence,
                             "covers": p.covers})
    return pd.DataFrame(rows, columns=["model", "dataset", "method", "metric", "n",
                                       "mean_difference", "std_difference", "ci_low",
                                       "ci_high", "confidence", "covers"])

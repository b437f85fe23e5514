"""The facts behind the results sections (Tasks 2 and 3): numbers and verdicts, no wording.

Each builder returns one object per section; ``report/templates/*.md.j2`` turn it into prose
(:mod:`helpers.report.prose`) and the tests check it by value. Rows are ranked by mean test
macro-F1 and a lead counts as *supported* only under the rule of
:func:`helpers.report.stats.rank` (paired by seed, every interval excludes zero).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from helpers.run import sources
from helpers.run.methods import METHODS

from .bootstrap import COVERS_EXAMPLES
from .discussion import FullFtReading, PeftReading
from .load import LABELS, display_model, order_datasets, peft_model
from .stats import MIN_SEEDS_FOR_INTERVAL, Paired, paired_by_seed, paired_stats, rank

if TYPE_CHECKING:
    from .examples import Examples

#: A run whose test accuracy and macro-F1 are the majority-class baseline's (to this
#: tolerance) predicted one class for every example.
FLOOR_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Score:
    """Mean ± std over ``n`` runs of one row (a model or a method) on one dataset."""

    key: str
    label: str
    mean: float
    std: float
    n: int


@dataclass(frozen=True)
class Floor:
    """Always predicting the most frequent training class, on the runs' test rows."""

    label: str
    macro_f1: float
    accuracy: float  # also the majority class's share of the test rows
    n_test: int
    classes: int = 0


@dataclass(frozen=True)
class Versus:
    """The leader against one other row: the gap of the means and the paired difference."""

    other: Score
    gap: float
    paired: Paired
    spread: float  # the larger of the two standard deviations over seeds

    @property
    def within_spread(self) -> bool:
        """The gap is no larger than the spread across seeds."""
        return not math.isnan(self.spread) and self.gap <= self.spread


@dataclass
class Ranked:
    """One dataset's rows ranked by mean (best first), with the leader's comparisons."""

    dataset: str
    floor: Floor | None
    rows: list[Score]
    versus: list[Versus]
    supported: bool
    n_train: str = ""
    n_test: str = ""

    @property
    def title(self) -> str:
        return sources.title(self.dataset)

    @property
    def leader(self) -> Score:
        return self.rows[0]

    @property
    def single(self) -> bool:
        return len(self.rows) == 1

    @property
    def all_above_floor(self) -> bool:
        return self.floor is None or all(r.mean > self.floor.macro_f1 for r in self.rows)

    @property
    def margin(self) -> float:  # the lowest row's mean minus the floor (NaN without one)
        return min(r.mean for r in self.rows) - self.floor.macro_f1 if self.floor else math.nan


class _SeedFacts:
    """What a section's facts say of their metric and seeds (full fine-tuning and PEFT alike)."""

    metric: str
    seeds_min: int
    #: What the paired bootstrap's intervals cover (bootstrap.COVERS_*); "" for Student-t.
    covers: str

    @property
    def metric_label(self) -> str:
        return LABELS[self.metric]

    @property
    def can_interval(self) -> bool:
        return bool(self.covers) or self.seeds_min >= MIN_SEEDS_FOR_INTERVAL

    @property
    def test_noise_only(self) -> bool:
        """The bootstrap intervals resample test examples but not seeds (too few seeds)."""
        return self.covers == COVERS_EXAMPLES


@dataclass
class FullFtFacts(_SeedFacts):
    """Task 2: per dataset, the models ranked by mean test macro-F1."""

    metric: str
    seeds_min: int
    seeds_max: int
    datasets: list[Ranked] = field(default_factory=list)
    confidence: float = 0.95
    covers: str = ""

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(r.label for d in self.datasets for r in d.rows))

    @property
    def supported(self) -> list[Ranked]:
        return [d for d in self.datasets if d.supported]

    @property
    def beats_floor(self) -> list[Ranked]:
        """Datasets with a majority-class floor that every model's mean beats."""
        return [d for d in self.datasets if d.floor and d.all_above_floor]

    @property
    def short_of_floor(self) -> list[Ranked]:
        """Datasets with a floor that some model's mean does not beat."""
        return [d for d in self.datasets if d.floor and not d.all_above_floor]

    @property
    def reading(self) -> FullFtReading:
        """What the discussion interprets (:mod:`helpers.report.discussion`)."""
        return FullFtReading(self)


def score(runs: pd.DataFrame, column: str, key: str, metric: str, label: str) -> Score:
    values = runs.loc[runs[column] == key, metric].dropna().astype(float)
    n = len(values)
    return Score(key, label, float(values.mean()) if n else math.nan,
                 float(values.std(ddof=1)) if n > 1 else math.nan, n)


def floor(baselines: dict[str, dict] | None, dataset: str) -> Floor | None:
    b = (baselines or {}).get(dataset)
    if not b:
        return None
    return Floor(str(b["label"]), float(b["macro_f1"]), float(b["accuracy"]),
                 int(b.get("num_test_samples") or 0), len(b.get("test_counts") or ()))


def at_floor(runs: pd.DataFrame, fl: Floor | None) -> int:
    """Runs whose test accuracy and macro-F1 are the majority-class baseline's."""
    if fl is None or runs.empty:
        return 0
    return int(((runs["accuracy"] - fl.accuracy).abs().lt(FLOOR_TOLERANCE)
                & (runs["macro_f1"] - fl.macro_f1).abs().lt(FLOOR_TOLERANCE)).sum())


def seed_counts(summary: pd.DataFrame) -> tuple[int, int]:
    """Fewest and most seeds of any (model, dataset, method) cell."""
    if summary.empty:
        return 0, 0
    per_cell = summary.groupby(["model", "dataset", "method"])["seed"].nunique()
    return int(per_cell.min()), int(per_cell.max())


def span(values: pd.Series) -> str:
    """``400`` or ``139-200``: the range of a count over runs, for the text."""
    values = pd.to_numeric(values, errors="coerce").dropna()
    if values.empty:
        return ""
    lo, hi = int(values.min()), int(values.max())
    return f"{lo:,}" if lo == hi else f"{lo:,}-{hi:,}"


def ranked(runs: pd.DataFrame, column: str, metric: str, dataset: str,
           baselines: dict[str, dict] | None, label: Any = display_model,
           confidence: float = 0.95, examples: Examples | None = None) -> Ranked:
    """The rows of ``column`` (models, or methods) on one dataset, ranked by :func:`rank`."""
    r = rank(runs, column, metric, confidence, examples)
    rows = [score(runs, column, k, metric, label(k)) for k in r.order]
    versus = [Versus(s, rows[0].mean - s.mean, r.versus[s.key],
                     max(rows[0].std, s.std) if not math.isnan(rows[0].std) else s.std)
              for s in rows[1:]]
    return Ranked(dataset, floor(baselines, dataset), rows, versus, r.supported,
                  span(runs["num_train_samples"]), span(runs["num_test_samples"]))


def full_ft(summary: pd.DataFrame, baselines: dict[str, dict] | None = None,
            metric: str = "macro_f1", confidence: float = 0.95,
            examples: Examples | None = None) -> FullFtFacts:
    """Task 2's facts: per dataset the models' full fine-tuning ranked by mean ``metric``;
    with ``examples`` the model-vs-model intervals are the paired bootstrap."""
    full = summary[summary["method"] == "full"]
    lo, hi = seed_counts(full)
    out = FullFtFacts(metric, lo, hi, confidence=confidence,
                      covers=examples.covers if examples is not None else "")
    for dataset in order_datasets(full["dataset"]):
        runs = full[full["dataset"] == dataset]
        out.datasets.append(ranked(runs, "model", metric, dataset, baselines,
                                   confidence=confidence, examples=examples))
    return out


# ----------------------------------------------------------------------------- task 3
@dataclass(frozen=True)
class PeftRow:
    """One PEFT method on one dataset beside full fine-tuning of the same model."""

    method: str
    score: Score
    vs_full: Paired
    share: float
    at_floor: int

    @property
    def label(self) -> str:
        return method_label(self.method)


def method_label(method: str) -> str:
    """How sentences name a method (the registry's prose name)."""
    return METHODS[method].in_prose if method in METHODS else method


@dataclass
class PeftDataset:
    dataset: str
    full: Score
    rows: list[PeftRow]
    leader: str | None  # the method whose lead the ranking rule supports, if any

    @property
    def best(self) -> PeftRow:
        return max(self.rows, key=lambda r: -math.inf if math.isnan(r.score.mean)
                   else r.score.mean)


@dataclass(frozen=True)
class MethodSummary:
    """One PEFT method over all datasets: its trained share and differences to full FT."""

    method: str
    share: float
    differences: tuple[float, ...]
    worse: tuple[str, ...]  # datasets where its paired interval lies below zero
    better: tuple[str, ...]  # ... above zero
    within: tuple[str, ...] = ()  # ... includes zero

    @property
    def label(self) -> str:
        return method_label(self.method)

    @property
    def trains(self) -> str:
        """The verb agreeing with the prose name: "Houlsby adapters train", "LoRA trains"."""
        return "train" if self.label.endswith("s") else "trains"

    @property
    def low(self) -> float:
        return min(self.differences)

    @property
    def high(self) -> float:
        return max(self.differences)


@dataclass
class PeftFacts(_SeedFacts):
    """Task 3: adapters and LoRA against full fine-tuning of one model, per dataset."""

    model: str | None
    metric: str
    seeds_min: int = 0
    seeds_max: int = 0
    datasets: list[PeftDataset] = field(default_factory=list)
    intervals: int = 0
    excluding_zero: int = 0
    confidence: float = 0.95
    covers: str = ""

    @property
    def model_label(self) -> str:
        return display_model(self.model) if self.model else ""

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(r.label for d in self.datasets for r in d.rows))

    @property
    def by_method(self) -> list[MethodSummary]:
        out = []
        for method in dict.fromkeys(r.method for d in self.datasets for r in d.rows):
            rows = [(d.dataset, r) for d in self.datasets for r in d.rows if r.method == method]
            diffs = tuple(r.vs_full.mean for _, r in rows if not math.isnan(r.vs_full.mean))
            if not diffs:
                continue
            out.append(MethodSummary(
                method, float(pd.Series([r.share for _, r in rows]).median()), diffs,
                tuple(d for d, r in rows if r.vs_full.excludes_zero and r.vs_full.high < 0),
                tuple(d for d, r in rows if r.vs_full.excludes_zero and r.vs_full.low > 0),
                tuple(d for d, r in rows if r.vs_full.has_interval
                      and not r.vs_full.excludes_zero)))
        return out

    @property
    def reading(self) -> PeftReading:
        """What the discussion interprets (:mod:`helpers.report.discussion`)."""
        return PeftReading(self)


def peft(summary: pd.DataFrame, model: str | None = None,
         baselines: dict[str, dict] | None = None, metric: str = "macro_f1",
         confidence: float = 0.95, examples: Examples | None = None) -> PeftFacts:
    """Task 3's facts: PEFT minus full fine-tuning (paired by seed, and with ``examples`` by
    test example: the bootstrap) per dataset and method."""
    model = model or peft_model(summary)
    sub = summary[summary["model"] == model] if model else summary.iloc[0:0]
    lo, hi = seed_counts(sub)
    out = PeftFacts(model, metric, lo, hi, confidence=confidence,
                    covers=examples.covers if examples is not None else "")
    for dataset in order_datasets(sub["dataset"]):
        cell = sub[sub["dataset"] == dataset]
        if not (cell["method"] == "full").any():
            continue
        rows = []
        for method in (m for m in METHODS if m != "full" and (cell["method"] == m).any()):
            runs = cell[cell["method"] == method]
            share = float((runs["params_trainable"] / runs["params_total"]).median())
            rows.append(PeftRow(method, score(cell, "method", method, metric, method),
                                paired_by_seed(cell, "method", method, "full", metric,
                                               confidence, examples),
                                share, at_floor(runs, floor(baselines, dataset))))
        if not rows:
            continue
        r = rank(cell, "method", metric, confidence, examples)
        out.datasets.append(PeftDataset(dataset, score(cell, "method", "full", metric, "full"),
                                        rows, method_label(r.leader) if r.supported else None))
    if model:
        table = paired_stats(summary, model, examples=examples)  # what the paired table shows
        has = table["ci_low"].notna()
        out.intervals = int(has.sum())
        out.excluding_zero = int((has & ((table["ci_low"] > 0) | (table["ci_high"] < 0))).sum())
    return out

"""The original report's testable claims, answered from this build's runs (facts, no wording).

One object per claim of the original's text (``shared/original-report/original-report.txt``),
each with ``testable`` and, where it is not, what is missing; the Conclusion's template
(``report/templates/conclusion.md.j2``) words the answers:

* three epochs are enough (its validation declined "after three epochs"): where the best
  validation epoch falls, and whether the training loss was still falling;
* RoBERTa beats BERT; SciBERT is best on acl_sup and on restaurant_sup;
* the training loss does not track the test metrics;
* RoBERTa with adapters fails on acl_sup (it blamed the model, not its 2e-5 learning rate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from helpers.run.catalog import REPORT_MODELS

from .facts import Floor, at_floor, floor
from .load import display_model, order_datasets, order_models
from .stats import Paired, paired_by_seed, rank

#: A last epoch that lowers the mean training loss by more than this share still converges.
STILL_FALLING = 0.05
ROBERTA, BERT, SCIBERT = REPORT_MODELS


@dataclass
class EpochFacts:
    """Where the best validation epoch falls, and the training loss over the last epoch."""

    runs: int = 0
    epochs: int = 0
    best_counts: list[tuple[int, int]] = field(default_factory=list)  # (epoch, runs)
    loss_drop: float = math.nan  # median relative drop of the epoch's mean loss, last epoch
    still_falling: int = 0  # runs whose last epoch lowered the loss by > STILL_FALLING
    val_gain: float = math.nan  # mean change of validation macro-F1 over the last epoch

    @property
    def testable(self) -> bool:
        return self.runs > 0 and self.epochs > 1

    @property
    def best_last(self) -> int:
        return dict(self.best_counts).get(self.epochs, 0)

    @property
    def mostly_last(self) -> bool:
        return 2 * self.best_last > self.runs


def epochs(summary: pd.DataFrame, history: pd.DataFrame) -> EpochFacts:
    """Best-epoch distribution of runs that trained the most common number of epochs."""
    if summary.empty:
        return EpochFacts()
    n_epochs = int(pd.to_numeric(summary["num_train_epochs"]).mode().iloc[0])
    runs = summary[pd.to_numeric(summary["num_train_epochs"]) == n_epochs]
    counts = runs["best_epoch"].astype(int).value_counts()
    out = EpochFacts(len(runs), n_epochs, [(e, int(counts.get(e, 0)))
                                           for e in range(1, n_epochs + 1)])
    ids = set(runs["run_id"])
    h = history[history["run_id"].isin(ids)]
    loss = h[(h["split"] == "train") & (h["metric"] == "epoch_loss")]
    per_run = loss.pivot_table(index="run_id", columns="epoch", values="value")
    if n_epochs in per_run.columns and n_epochs - 1 in per_run.columns:
        drop = (per_run[n_epochs - 1] - per_run[n_epochs]) / per_run[n_epochs - 1]
        out.loss_drop = float(drop.median())
        out.still_falling = int((drop > STILL_FALLING).sum())
    val = h[(h["split"] == "validation") & (h["metric"] == "macro_f1")]
    per_run = val.pivot_table(index="run_id", columns="epoch", values="value")
    if n_epochs in per_run.columns and n_epochs - 1 in per_run.columns:
        out.val_gain = float((per_run[n_epochs] - per_run[n_epochs - 1]).mean())
    return out


# ----------------------------------------------------------------------------- models
@dataclass(frozen=True)
class PairOnDataset:
    """``a - b`` on one dataset, paired by seed, in macro-F1 and accuracy."""

    dataset: str
    macro_f1: Paired
    accuracy: Paired


@dataclass
class ModelVsModel:
    """One model against another in full fine-tuning, per dataset where both ran."""

    a: str
    b: str
    datasets: list[PairOnDataset] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # labels of the models this build lacks

    @property
    def a_label(self) -> str:
        return display_model(self.a)

    @property
    def b_label(self) -> str:
        return display_model(self.b)

    @property
    def testable(self) -> bool:
        return bool(self.datasets)

    @property
    def ahead(self) -> list[PairOnDataset]:
        return [d for d in self.datasets if d.macro_f1.mean > 0]

    @property
    def supported(self) -> list[PairOnDataset]:
        return [d for d in self.datasets if d.macro_f1.excludes_zero and d.macro_f1.low > 0]

    @property
    def against(self) -> list[PairOnDataset]:
        return [d for d in self.datasets if d.macro_f1.excludes_zero and d.macro_f1.high < 0]

    @property
    def ahead_count(self) -> int:
        """Datasets where ``a`` leads by mean."""
        return len(self.ahead)

    @property
    def dataset_count(self) -> int:
        return len(self.datasets)


def _full(summary: pd.DataFrame) -> pd.DataFrame:
    return summary[summary["method"] == "full"]


def model_vs_model(summary: pd.DataFrame, a: str = ROBERTA, b: str = BERT) -> ModelVsModel:
    full = _full(summary)
    out = ModelVsModel(a, b, missing=[display_model(m) for m in (a, b)
                                      if m not in set(full["model"])])
    for dataset in order_datasets(full["dataset"]):
        runs = full[full["dataset"] == dataset]
        if {a, b} <= set(runs["model"]):
            out.datasets.append(PairOnDataset(
                dataset, paired_by_seed(runs, "model", a, b, "macro_f1"),
                paired_by_seed(runs, "model", a, b, "accuracy")))
    return out


@dataclass(frozen=True)
class Standing:
    """One model's place among the models fine-tuned on a dataset (by mean macro-F1)."""

    dataset: str
    place: int
    of: int
    supported_lead: bool  # first, and the ranking rule supports it
    versus: tuple[tuple[str, Paired], ...]  # (other model's label, this - other)


@dataclass
class StandingFacts:
    model: str
    datasets: list[Standing] = field(default_factory=list)
    ran: bool = False

    @property
    def label(self) -> str:
        return display_model(self.model)

    @property
    def testable(self) -> bool:
        return bool(self.datasets)


def standing(summary: pd.DataFrame, model: str = SCIBERT,
             datasets: tuple[str, ...] = ("acl_sup", "restaurant_sup")) -> StandingFacts:
    """Where ``model`` ranks on ``datasets`` (the original: SciBERT best on both)."""
    full = _full(summary)
    out = StandingFacts(model, ran=model in set(full["model"]))
    for dataset in datasets:
        runs = full[full["dataset"] == dataset]
        if model not in set(runs["model"]) or runs["model"].nunique() < 2:
            continue
        r = rank(runs, "model", "macro_f1")
        versus = tuple((display_model(o), paired_by_seed(runs, "model", model, o, "macro_f1"))
                       for o in order_models(runs["model"]) if o != model)
        out.datasets.append(Standing(dataset, r.order.index(model) + 1, len(r.order),
                                     r.leader == model and r.supported, versus))
    return out


# ----------------------------------------------------------------------------- train loss
@dataclass(frozen=True)
class LossVsTest:
    """One dataset's full fine-tuning runs: does a lower training loss go with a better test
    macro-F1? Spearman's rho over runs, and the two models' means compared."""

    dataset: str
    runs: int
    rho: float
    lowest_loss: str
    best_test: str


@dataclass
class TrainLossFacts:
    datasets: list[LossVsTest] = field(default_factory=list)

    @property
    def testable(self) -> bool:
        return bool(self.datasets)

    @property
    def mismatched(self) -> list[LossVsTest]:
        return [d for d in self.datasets if d.lowest_loss != d.best_test]

    @property
    def dataset_count(self) -> int:
        return len(self.datasets)

    @property
    def matched_count(self) -> int:
        """Datasets where the lowest training loss is the best test score's model."""
        return len(self.datasets) - len(self.mismatched)


def train_loss_vs_test(summary: pd.DataFrame) -> TrainLossFacts:
    """Per dataset with at least two fine-tuned models (the original compared models)."""
    from scipy import stats  # deferred: scipy's import takes a second

    full = _full(summary)
    out = TrainLossFacts()
    for dataset in order_datasets(full["dataset"]):
        runs = full[full["dataset"] == dataset].dropna(subset=["train_loss", "macro_f1"])
        if runs["model"].nunique() < 2:
            continue
        rho = stats.spearmanr(runs["train_loss"], runs["macro_f1"]).statistic \
            if len(runs) > 2 else math.nan
        means = runs.groupby("model")[["train_loss", "macro_f1"]].mean()
        out.datasets.append(LossVsTest(dataset, len(runs), float(rho),
                                       display_model(means["train_loss"].idxmin()),
                                       display_model(means["macro_f1"].idxmax())))
    return out


# ----------------------------------------------------------------------------- adapters
#: The model whose adapters the original says do not converge on acl_sup.
CLAIMED_ADAPTER_MODEL = "roberta-base"


@dataclass
class AdapterFacts:
    """The PEFT model's adapters on acl_sup: did they learn, or predict the majority class?"""

    model: str | None = None
    runs: int = 0
    at_floor: int = 0
    mean: float = math.nan
    floor: Floor | None = None
    vs_full: Paired | None = None
    learning_rates: list[float] = field(default_factory=list)

    @property
    def testable(self) -> bool:
        return self.runs > 0

    @property
    def model_label(self) -> str:
        return display_model(self.model) if self.model else ""

    @property
    def some_learned(self) -> bool:
        """Not every run predicted the majority class only."""
        return self.at_floor < self.runs

    @property
    def stand_in(self) -> bool:
        """The adapters are on another model than the claim's (the original's RoBERTa)."""
        return self.model != CLAIMED_ADAPTER_MODEL


def adapters_on(summary: pd.DataFrame, model: str | None,
                baselines: dict[str, dict] | None, dataset: str = "acl_sup") -> AdapterFacts:
    sub = summary[(summary["model"] == model) & (summary["dataset"] == dataset)]
    runs = sub[sub["method"] == "adapter"]
    fl = floor(baselines, dataset)
    out = AdapterFacts(model, len(runs), floor=fl,
                       learning_rates=sorted(set(pd.to_numeric(runs["learning_rate"]))))
    if runs.empty:
        return out
    out.mean = float(runs["macro_f1"].mean())
    out.at_floor = at_floor(runs, fl)
    if (sub["method"] == "full").any():
        out.vs_full = paired_by_seed(sub, "method", "adapter", "full", "macro_f1")
    return out


@dataclass
class Claims:
    """Every testable claim of the original, answered for one build."""

    epochs: EpochFacts
    roberta_bert: ModelVsModel
    scibert: StandingFacts
    train_loss: TrainLossFacts
    adapters: AdapterFacts


def claims(summary: pd.DataFrame, history: pd.DataFrame,
           baselines: dict[str, dict] | None = None, peft_model: str | None = None) -> Claims:
    return Claims(epochs(summary, history), model_vs_model(summary), standing(summary),
                  train_loss_vs_test(summary), adapters_on(summary, peft_model, baselines))

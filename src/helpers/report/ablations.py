"""What each of the original's errors cost: one change from our pipeline to the original's,
everything else equal, paired by seed, with the bootstrap interval of :mod:`.bootstrap`.

(a) *Model selection* needs no run: every run scored validation and test after each epoch
(``history.csv``), so the epoch each rule keeps can be read off. The original's rule is the
Hugging Face Trainer's with ``load_best_model_at_end=True``, the test split as evaluation set
and no ``metric_for_best_model``: the lowest *test loss* (``report/original_code.csv``; the
Trainer keeps an epoch only when its loss is strictly lower, so ties keep the earlier one).
The oracle keeps the best test macro-F1; ours the best validation macro-F1.

(b)-(d) are runs of the ablation grids (``params/*-ablations.yaml``) that differ from a run of
the main grid in one field: ``input_format`` (the literal ``"<SEP>"`` text), ``num_labels``
(the 6-way head) or an adapter's ``learning_rate`` (the original's 2e-5). :func:`pair_runs`
finds each one's baseline by that rule, so a grid row needs no label to be paired.

Intervals need per-example test predictions (``predictions.csv.gz`` beside ``history.csv``);
a run without them gives the effect on its recorded scores and no interval.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from helpers.run.config import config_family
from helpers.run.store import RunStore

from . import load
from .bootstrap import Interval, paired_difference
from .formats import fmt_lr
from .load import order_datasets

METRICS = ("macro_f1", "accuracy")
#: Selection rules: name -> (split, metric, lower is better).
RULES = {"ours": ("validation", "macro_f1", False), "original": ("test", "loss", True),
         "oracle": ("test", "macro_f1", False)}
NO_PREDICTIONS = "no interval: the runs recorded no per-example predictions"


@dataclass(frozen=True)
class Error:
    """One of the original's errors as an ablation: the field it changes (None: selection)."""

    key: str
    error: str
    field: str | None
    original: str
    ours: str


ERRORS = {
    "selection": Error("selection", "epoch chosen on the test set", None,
                       "lowest test loss", "best validation macro-F1"),
    "oracle": Error("oracle", "epoch chosen on the test set (upper bound)", None,
                    "best test macro-F1", "best validation macro-F1"),
    "input_format": Error("input_format", 'aspect and sentence joined by "<SEP>"',
                          "input_format", 'one text "aspect <SEP> sentence"',
                          "a sentence pair"),
    "num_labels": Error("num_labels", "a 6-way head", "num_labels", "6 outputs",
                        "one per class"),
    "learning_rate": Error("learning_rate", "adapters at the full fine-tuning rate",
                           "learning_rate", "2e-5", "this grid's adapter rate"),
}


# ----------------------------------------------------------------------- (a) selection rules
def selected_epochs(history: pd.DataFrame) -> pd.DataFrame:
    """Per run the epoch each of :data:`RULES` keeps, and the test accuracy and macro-F1 there.

    ``history``: :func:`helpers.report.load.load_runs`'s frame. Columns: run_id, model,
    dataset, method, seed, then ``<rule>_epoch``, ``<rule>_accuracy``, ``<rule>_macro_f1``.
    """
    ids = ["run_id", "model", "dataset", "method", "seed"]
    columns = [*ids, *(f"{r}_{k}" for r in RULES for k in ("epoch", "accuracy", "macro_f1"))]
    evals = history[history["split"].isin(["validation", "test"])]
    if evals.empty:
        return pd.DataFrame(columns=columns)
    wide = evals.pivot_table(index=[*ids, "epoch"], columns=["split", "metric"],
                             values="value", aggfunc="first").sort_index()
    rows = []
    for key, g in wide.groupby(level=ids, sort=False):
        g = g.droplevel(ids)
        row = dict(zip(ids, key, strict=True))
        for rule, (split, metric, lower) in RULES.items():
            col = g[(split, metric)].dropna()
            if col.empty:
                row.update({f"{rule}_epoch": math.nan, f"{rule}_accuracy": math.nan,
                            f"{rule}_macro_f1": math.nan})
                continue
            # idxmin/idxmax return the first extreme: ties keep the earlier epoch
            epoch = col.idxmin() if lower else col.idxmax()
            row[f"{rule}_epoch"] = int(epoch)
            for m in ("accuracy", "macro_f1"):
                row[f"{rule}_{m}"] = float(g.loc[epoch, ("test", m)])
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


@dataclass(frozen=True)
class RuleSummary:
    """One rule against ours over a set of runs: mean, range and how many runs it moved."""

    rule: str
    mean: float
    low: float
    high: float
    changed: int
    runs: int


def rule_summary(epochs: pd.DataFrame, rule: str, metric: str = "macro_f1") -> RuleSummary:
    """``rule`` minus ours in test ``metric`` over the runs of :func:`selected_epochs`."""
    d = (epochs[f"{rule}_{metric}"] - epochs[f"ours_{metric}"]).dropna()
    moved = int((epochs[f"{rule}_epoch"] != epochs["ours_epoch"]).sum())
    if d.empty:
        return RuleSummary(rule, math.nan, math.nan, math.nan, 0, 0)
    return RuleSummary(rule, float(d.mean()), float(d.min()), float(d.max()), moved, len(d))


# ----------------------------------------------------------------------- (b)-(d) pairing
def _family(config: dict) -> dict:
    return {**config_family(config), "seed": config["seed"]}


def pair_runs(main: pd.DataFrame, ablation: pd.DataFrame) -> pd.DataFrame:
    """Each ablation run and the main-grid run it differs from in exactly one field.

    ``main`` and ``ablation``: :func:`helpers.report.load.load_configs` frames. Columns: key
    (the field, a key of :data:`ERRORS`), treatment, control (run ids), model, dataset,
    method, seed, original (the ablation's value), ours (the baseline's). An ablation run
    with no such baseline (its main run not trained yet) is left out.
    """
    columns = ["key", "treatment", "control", "model", "dataset", "method", "seed",
               "original", "ours"]
    if main.empty or ablation.empty:
        return pd.DataFrame(columns=columns)
    bases = [(r["run_id"], _family(r)) for r in _records(main)]
    rows = []
    for r in _records(ablation):
        fam = _family(r)
        for rid, base in bases:
            if rid == r["run_id"] or base["seed"] != fam["seed"]:
                continue
            diff = [k for k in set(fam) | set(base) if fam.get(k) != base.get(k)]
            if len(diff) == 1 and diff[0] in ERRORS:
                key = diff[0]
                rows.append({"key": key, "treatment": r["run_id"], "control": rid,
                             "model": r["model"], "dataset": r["dataset"],
                             "method": r["method"], "seed": int(r["seed"]),
                             "original": _value(key, fam.get(key)),
                             "ours": _value(key, base.get(key))})
                break
    return pd.DataFrame(rows, columns=columns)


def _records(configs: pd.DataFrame) -> list[dict]:
    """config.json rows without the columns other runs added (NaN where a run had no key)."""
    return [{k: v for k, v in row.items() if not _is_nan(v)}
            for row in configs.to_dict("records")]


def _is_nan(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _value(key: str, value) -> str:
    if key == "learning_rate" and value is not None:
        return fmt_lr(float(value))
    if key == "num_labels":
        return "from the data" if value is None else str(int(value))
    return "pair" if value is None else str(value)


# ----------------------------------------------------------------------- predictions
def _at(predictions: pd.DataFrame, picks: pd.DataFrame) -> pd.DataFrame | None:
    """Test predictions at each pick's epoch, ``seed`` set to the pick's unit; None when a
    pick has none (no interval then). ``picks``: run_id, epoch, unit."""
    test = predictions[predictions["split"] == "test"]
    merged = test.merge(picks, on=["run_id", "epoch"])
    if merged.empty or set(merged["run_id"]) != set(picks["run_id"]):
        return None
    return merged.rename(columns={"unit": "seed"})[["seed", "example", "label", "prediction"]]


# ----------------------------------------------------------------------- effects
@dataclass(frozen=True)
class Effect:
    """One row of "What each error cost": the original's choice minus ours on one dataset."""

    key: str
    dataset: str
    original: str
    ours: str
    macro_f1: Interval
    accuracy: Interval
    runs: int        # pairs (runs, for a selection rule) averaged over
    changed: int     # selection: runs where the rule keeps another epoch; else = runs

    @property
    def error(self) -> Error:
        return ERRORS[self.key]

    @property
    def nil(self) -> bool:
        """No effect shown: the macro-F1 interval includes zero (or there is none)."""
        return not self.macro_f1.excludes_zero


def _interval(metric: str, treatment: pd.DataFrame | None, control: pd.DataFrame | None,
              fallback: pd.Series, n_examples: int) -> Interval:
    """The bootstrap interval when both sides have predictions, else the mean difference of
    the recorded scores with no interval."""
    if treatment is not None and control is not None:
        return paired_difference(treatment, control, metric)
    estimate = float(fallback.mean()) if len(fallback) else math.nan
    return Interval(metric, estimate, math.nan, math.nan, len(fallback), n_examples,
                    NO_PREDICTIONS)


def _examples(summary: pd.DataFrame, run_ids: Iterable[str]) -> int:
    n = summary.loc[summary["run_id"].isin(list(run_ids)), "num_test_samples"]
    n = pd.to_numeric(n, errors="coerce").dropna()
    return int(n.max()) if len(n) else 0


def selection_effects(epochs: pd.DataFrame, summary: pd.DataFrame,
                      predictions: pd.DataFrame) -> list[Effect]:
    """(a) per dataset: the original's rule and the oracle against ours, over every run of
    the dataset (each run a unit of the bootstrap: seeds, methods and models alike)."""
    out = []
    for dataset, g in epochs.groupby("dataset", sort=False):
        g = g.dropna(subset=["ours_epoch"])
        n = _examples(summary, g["run_id"])
        for rule in ("original", "oracle"):
            frames = {r: _at(predictions, pd.DataFrame({
                "run_id": g["run_id"], "epoch": g[f"{r}_epoch"], "unit": g["run_id"]}))
                for r in (rule, "ours")}
            cells = {m: _interval(m, frames[rule], frames["ours"],
                                  (g[f"{rule}_{m}"] - g[f"ours_{m}"]).dropna(), n)
                     for m in METRICS}
            key = "selection" if rule == "original" else "oracle"
            moved = int((g[f"{rule}_epoch"] != g["ours_epoch"]).sum())
            out.append(Effect(key, dataset, ERRORS[key].original, ERRORS[key].ours,
                              cells["macro_f1"], cells["accuracy"], len(g), moved))
    return out


def ablation_effects(pairs: pd.DataFrame, summary: pd.DataFrame,
                     predictions: pd.DataFrame) -> list[Effect]:
    """(b)-(d): per error, model, dataset and method, treatment minus baseline at each run's
    best validation epoch, paired by seed. ``summary``: both grids' run summaries."""
    out = []
    best = summary.set_index("run_id")
    for (key, _, dataset, _, original, ours), g in pairs.groupby(
            ["key", "model", "dataset", "method", "original", "ours"], sort=False):
        frames = {}
        for side in ("treatment", "control"):
            picks = pd.DataFrame({"run_id": g[side], "unit": g["seed"],
                                  "epoch": best.loc[g[side], "best_epoch"].to_numpy()})
            frames[side] = _at(predictions, picks)
        cells = {}
        for m in METRICS:
            diff = pd.Series(best.loc[g["treatment"], m].to_numpy()
                             - best.loc[g["control"], m].to_numpy()).dropna()
            cells[m] = _interval(m, frames["treatment"], frames["control"], diff,
                                 _examples(summary, g["treatment"]))
        out.append(Effect(key, dataset, original, ours, cells["macro_f1"], cells["accuracy"],
                          len(g), len(g)))
    return out


ORDER = ("selection", "oracle", "input_format", "num_labels", "learning_rate")


def effects(history: pd.DataFrame, summary: pd.DataFrame, main_configs: pd.DataFrame,
            ablation_summary: pd.DataFrame, ablation_configs: pd.DataFrame,
            store: RunStore) -> list[Effect]:
    """Every row of the table, in :data:`ORDER` then the report's dataset order."""
    pairs = pair_runs(main_configs, ablation_configs)
    both = pd.concat([summary, ablation_summary], ignore_index=True) \
        if len(ablation_summary) else summary
    ids = list(summary["run_id"]) + list(pairs["treatment"])
    predictions = load.predictions(store, ids)
    rows = selection_effects(selected_epochs(history), summary, predictions) \
        + ablation_effects(pairs, both, predictions)
    rank = {d: i for i, d in enumerate(order_datasets(e.dataset for e in rows))}
    return sorted(rows, key=lambda e: (ORDER.index(e.key), rank[e.dataset]))

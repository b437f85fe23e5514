"""The report's results tables: numbers from :mod:`helpers.report.load`, laid out as
:class:`~helpers.report.table.Table` objects (model names as short labels, the Hub ids are in
the appendix)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from helpers.run import sources
from helpers.run.methods import METHODS

from .formats import (
    MISSING,
    fmt,
    fmt_lr,
    fmt_mean_std,
    fmt_share,
    fmt_value,
    is_missing,
    signed,
)
from .load import (
    LABELS,
    METHOD_SHORT,
    NOT_HYPERPARAMETERS,
    SCORES,
    TABLE_METRICS,
    display_model,
    order_datasets,
    order_models,
    peft_model,
)
from .stats import MIN_SEEDS_FOR_INTERVAL, aggregate, paired_stats, supported_best
from .table import Cell, Table

if TYPE_CHECKING:
    from .examples import Examples

#: The row that shows the majority-class baseline in a results table.
BASELINE_LABEL = "*majority class*"
#: The note under a table with baseline rows (the caption is fixed, the rows are not).
FLOOR_NOTE = ("{rows}, in italics: the majority-class floor, always predicting the most "
              "frequent training class, on the same test rows.")
#: config.json fields whose null means "no cap": the hyperparameter table prints "all".
NULL_MEANS_ALL = ("max_train_samples", "max_eval_samples")


def bold_cells(runs: pd.DataFrame, column: str, metrics: Sequence[str] = SCORES,
               examples: Examples | None = None) -> dict[str, set[Any]]:
    """Per test metric, the row of ``column`` printed in bold: the best mean, only where the
    ranking rule of :func:`helpers.report.stats.rank` supports it (train loss is never bold:
    a lower training loss is not a better model)."""
    return {m: supported_best(runs, column, m, examples) if not runs.empty else set()
            for m in metrics if m in SCORES}


def _metric_cells(metrics: Sequence[str]) -> dict[str, Cell]:
    """``mean ± std`` per metric; the majority-class floor's score alone (it has no seeds)."""
    def cell(m: str) -> Cell:
        def text(r: dict[str, Any]) -> str:
            if r["_floor"]:
                return fmt(r[f"{m}_mean"]) if m in SCORES else MISSING
            return fmt_mean_std(r[f"{m}_mean"], r[f"{m}_std"], r["n"])
        return text
    return {LABELS.get(m, m): cell(m) for m in metrics}


def _with_best(stats: pd.DataFrame, metrics: Sequence[str],
               bolded: dict[str, set[Any]]) -> pd.DataFrame:
    """``_best_<metric>``: the rows printed in bold (``bolded``, per metric, by index)."""
    return stats.assign(**{f"_best_{m}": stats.index.isin(list(bolded.get(m, ())))
                           for m in metrics}, _floor=False)


def _floor_row(baseline: dict[str, Any], metrics: Sequence[str],
               **keys: Any) -> dict[str, Any]:
    """The majority-class floor as a row of numbers (in italics on the page)."""
    return {**keys, "n": 0, **{f"{m}_mean": baseline[m] for m in metrics if m in SCORES},
            **{f"_best_{m}": False for m in metrics}, "_floor": True}


def _floor_label(name: Callable[[str], str], column: str) -> Cell:
    return lambda r: "majority class" if r["_floor"] else name(r[column])


def results_table(summary: pd.DataFrame, dataset: str, method: str = "full",
                  models: Sequence[str] | None = None,
                  metrics: Sequence[str] = TABLE_METRICS,
                  baseline: dict[str, Any] | None = None,
                  examples: Examples | None = None) -> Table:
    """Tables 1-2: for one dataset, models x train loss / accuracy / macro-F1 / micro-F1.

    Test metrics at each run's best *validation* epoch; mean ± std over seeds with n; a best
    mean in bold only where the ranking rule supports it (:func:`bold_cells`). ``models``
    defaults to every model run with ``method`` on any dataset, so a model missing here is a
    row of "—". ``baseline`` (a
    :func:`helpers.run.baselines.majority_class` result) adds the majority-class row.
    """
    sub = summary[summary["method"] == method]
    models = list(models) if models is not None else order_models(sub["model"])
    runs = sub[sub["dataset"] == dataset]
    stats = aggregate(runs, ["model"], metrics).set_index("model")
    stats = stats.reindex(models)
    stats["n"] = stats["n"].fillna(0).astype(int)
    stats = _with_best(stats, metrics, bold_cells(runs, "model", metrics, examples))
    data = stats.reset_index().rename(columns={"index": "model"})
    data.insert(0, "dataset", dataset)
    data.insert(2, "method", method)
    if baseline:
        data = pd.concat([data, pd.DataFrame([_floor_row(
            baseline, metrics, dataset=dataset, model="majority class", method="baseline")])],
            ignore_index=True)
    return Table(data=data, italic="_floor",
                 cells={"model": _floor_label(display_model, "model"),
                        **_metric_cells(metrics),
                        "n": lambda r: "" if r["_floor"] else r["n"]},
                 bold={LABELS.get(m, m): f"_best_{m}" for m in metrics},
                 widths={"model": 13, "n": 3, **{LABELS[m]: 14 for m in metrics}})


@dataclass
class DatasetTable:
    """One dataset's Task 2 table, with the cross-reference id and title its caption needs."""

    dataset: str
    table: Table
    #: its caption can say "as in the table above": it has a floor row where the first has
    like_first: bool = True

    @property
    def has_floor(self) -> bool:
        """The last row is the majority-class floor (the build has baselines)."""
        d = self.table.data
        return not d.empty and bool(d["_floor"].iloc[-1])

    @property
    def id(self) -> str:
        """``tbl-ft-restaurant`` (``_sup`` dropped), ``tbl-ft-acl-fs``: what ``@`` cites."""
        return "tbl-ft-" + self.dataset.removesuffix("_sup").replace("_", "-")

    @property
    def title(self) -> str:
        return sources.title(self.dataset)

    @property
    def csv_name(self) -> str:
        return f"task2_{self.dataset}"

    @property
    def html(self) -> str:
        return self.table.html()


def results_tables(summary: pd.DataFrame, datasets: Sequence[str], method: str = "full",
                   models: Sequence[str] | None = None,
                   baselines: dict[str, dict[str, Any]] | None = None,
                   examples: Examples | None = None) -> list[DatasetTable]:
    """Task 2: one :func:`results_table` per dataset of the grid, in the registry's order
    (``report/templates/task2_tables.md.j2`` lays them out, one cross-reference each)."""
    out = [DatasetTable(d, results_table(summary, d, method, models,
                                         baseline=(baselines or {}).get(d), examples=examples))
           for d in order_datasets(datasets)]
    for t in out[1:]:
        t.like_first = t.has_floor == out[0].has_floor
    return out


def peft_table(summary: pd.DataFrame, model: str | None = None,
               datasets: Sequence[str] | None = None,
               metrics: Sequence[str] = TABLE_METRICS,
               baselines: dict[str, dict[str, Any]] | None = None,
               examples: Examples | None = None) -> Table:
    """Table 3: full fine-tuning vs adapter vs LoRA for one model, one row group per dataset.

    Adds the trainable parameters' share of the model; bold as in :func:`results_table`, per
    dataset; ``baselines`` (per dataset) adds each dataset's majority-class row.
    """
    model = model or peft_model(summary)
    sub = summary[summary["model"] == model]
    # the methods of this build's runs (any model), in the registry's order: a method
    # registered for users but not run has no row
    methods = [m for m in METHODS if m in set(summary["method"])]
    if datasets is None:
        datasets = order_datasets(sub.loc[sub["method"] != "full", "dataset"])
    parts = []
    for dataset in datasets:
        cell = sub[sub["dataset"] == dataset]
        stats = aggregate(cell, ["method"], metrics).set_index("method").reindex(methods)
        stats["n"] = stats["n"].fillna(0).astype(int)
        params = cell.groupby("method")[["params_trainable", "params_total"]].median()
        params = params.reindex(methods)
        stats["params_trainable"] = params["params_trainable"]
        stats["params_total"] = params["params_total"]
        stats["trainable_share"] = params["params_trainable"] / params["params_total"]
        stats = _with_best(stats, metrics, bold_cells(cell, "method", metrics, examples))
        data = stats.reset_index().rename(columns={"index": "method"})
        data.insert(0, "dataset", dataset)
        baseline = (baselines or {}).get(dataset)
        if baseline:  # on the page under the dataset's methods, not in the CSV
            data = pd.concat([data, pd.DataFrame([_floor_row(
                baseline, metrics, dataset=dataset, method="baseline")])], ignore_index=True)
        parts.append(data.assign(_shown_only=data["_floor"]))
    data = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if not data.empty:
        data.insert(0, "model", model)
    # the caption cannot know whether the build has baselines: the note says it where it does
    floors = not data.empty and bool(data["_floor"].any())
    return Table(data=data, group="dataset" if not data.empty else None, italic="_floor",
                 cells={"dataset": "dataset",
                        "method": _floor_label(METHOD_SHORT.__getitem__, "method"),
                        **_metric_cells(metrics),
                        "trained": lambda r: "" if r["_floor"] else fmt_share(
                            r["trainable_share"]),
                        "n": lambda r: "" if r["_floor"] else r["n"]},
                 bold={LABELS.get(m, m): f"_best_{m}" for m in metrics},
                 notes=[FLOOR_NOTE.format(rows="Last row of each dataset")] if floors else [],
                 widths={"method": 13, "n": 3, "trained": 7,
                         **{LABELS[m]: 14 for m in metrics}})


def paired_comparison(summary: pd.DataFrame, model: str | None = None,
                      metrics: Sequence[str] = ("accuracy", "macro_f1"),
                      confidence: float = 0.95, examples: Examples | None = None) -> Table:
    """PEFT minus full fine-tuning of one model, paired by seed, with its interval.

    One row per dataset and method; per metric the mean difference, its standard deviation
    over seeds and the interval: with ``examples`` the paired bootstrap (a note under the table
    says what it covers), else a Student-t interval over seeds, which needs at least
    :data:`helpers.report.stats.MIN_SEEDS_FOR_INTERVAL` pairs with some spread (otherwise the
    cell says why there is none).
    """
    data = paired_stats(summary, model, metrics, confidence, examples)
    pct = f"{confidence:.0%}"
    keys = ("mean_difference", "std_difference", "ci_low", "ci_high", "n")

    def by_method(long: pd.DataFrame) -> pd.DataFrame:
        """One row per dataset and method, the metrics side by side (``<metric>/<key>``)."""
        rows = []
        for (dataset, method), g in long.groupby(["dataset", "method"], sort=False):
            row = {"dataset": dataset, "method": method, "n": int(g["n"].max())}
            for r in g.to_dict("records"):
                row.update({f"{r['metric']}/{k}": r[k] for k in keys})
            rows.append(row)
        return pd.DataFrame(rows, columns=["dataset", "method", "n",
                                           *(f"{m}/{k}" for m in metrics for k in keys)])

    def interval(m: str) -> Cell:
        def text(r: dict[str, Any]) -> str | None:
            if is_missing(r[f"{m}/n"]):
                return None
            if not math.isnan(r[f"{m}/ci_low"]):
                return f"[{signed(r[f'{m}/ci_low'])}, {signed(r[f'{m}/ci_high'])}]"
            if r[f"{m}/n"] < MIN_SEEDS_FOR_INTERVAL:
                return f"none (n < {MIN_SEEDS_FOR_INTERVAL})"
            return "none (no spread)"
        return text

    cells: dict[str, Cell] = {"dataset": "dataset",
                              "method": lambda r: METHOD_SHORT.get(r["method"], r["method"])}
    for m in metrics:
        cells[f"{m}/diff"] = lambda r, m=m: signed(r[f"{m}/mean_difference"])
        cells[f"{m}/std"] = lambda r, m=m: fmt(r[f"{m}/std_difference"])
        cells[f"{m}/ci"] = interval(m)
    cells["n"] = "n"
    labels = {f"{m}/{k}": name for m in metrics
              for k, name in (("diff", "PEFT − full"), ("std", "std"), ("ci", f"{pct} CI"))}
    covers = sorted(set(data.loc[data["ci_low"].notna(), "covers"])) if len(data) else []
    notes = [f"{pct} interval over {', and over '.join(covers)} (paired bootstrap)"
             if covers and covers != ["seeds"] else f"{pct} Student-t interval over seeds"]
    return Table(data=data, cells=cells, layout=by_method, group="dataset", labels=labels,
                 notes=notes,
                 spanners={LABELS.get(m, m): [f"{m}/{k}" for k in ("diff", "std", "ci")]
                           for m in metrics},
                 widths={"method": 8, "n": 3, **{f"{m}/diff": 9 for m in metrics},
                         **{f"{m}/std": 6 for m in metrics},
                         **{f"{m}/ci": 16 for m in metrics}})


# ----------------------------------------------------------------------------- appendix
#: The original's appendix settings that are not TrainConfig fields, with what we do instead.
ORIGINAL_ONLY = {
    "eval_strategy": "every epoch, validation and test",
    "load_best_model_at_end": "best validation macro-F1 epoch (never the test set)",
    "report_to": "files in runs/<run_id>/ (no W&B)",
}


def hyperparameter_table(configs: pd.DataFrame,
                         original: dict[str, str] | None = None) -> Table:
    """The values the runs used (config.json) per method, beside the original's appendix.

    One row per parameter; several values (the grid's axes) are listed; a method's own fields
    (helpers.run.methods) show "n/a" for the other methods. A value that departs from the
    original's appendix is bold; ``original`` maps parameter -> the original's value.
    """
    original = original or {}
    methods = [m for m in METHODS if not configs.empty and m in set(configs["method"])]
    params = [c for c in configs.columns if c not in NOT_HYPERPARAMETERS]
    rows = []
    owned = {f for m in METHODS.values() for f in m.fields}
    for p in params:
        if not methods:  # the parameter's row on the page, with no values
            rows.append({"parameter": p, "original": original.get(p), "_shown_only": True})
        for method in methods:
            if p in owned and p not in METHODS[method].fields:
                rows.append({"parameter": p, "method": method, "value": "n/a",
                             "original": original.get(p), "departs": False,
                             "_shown_only": True})
                continue
            values = configs.loc[configs["method"] == method, p].tolist()
            if p == "model":
                values = [display_model(v) for v in values]
            elif p == "learning_rate":  # as papers write it: 2e-5, 1e-3
                values = [fmt_lr(float(v)) for v in values]
            distinct = sorted({"all" if p in NULL_MEANS_ALL and is_missing(v) else fmt_value(v)
                               for v in values}, key=_natural)
            departs = p in original and not _same(original[p], distinct)
            rows += [{"parameter": p, "method": method, "value": v,
                      "original": original.get(p), "departs": departs, "_shown_only": False}
                     for v in distinct]
    for p, ours in ORIGINAL_ONLY.items():
        if p in original:
            rows += [{"parameter": p, "method": m, "value": ours, "original": original[p],
                      "departs": True, "_shown_only": True} for m in methods]
    data = pd.DataFrame(rows, columns=["parameter", "method", "value", "original", "departs",
                                       "_shown_only"])

    def by_parameter(long: pd.DataFrame) -> pd.DataFrame:
        """One row per parameter: each method's values in one cell."""
        wide = []
        for p, g in long.groupby("parameter", sort=False):
            said = g["original"].iloc[0]
            row = {"parameter": p, "original": MISSING if is_missing(said) else said}
            for method, values in g.dropna(subset="method").groupby("method", sort=False):
                row[method] = ", ".join(values["value"])
                row[f"_departs_{method}"] = bool(values["departs"].iloc[0])
            wide.append(row)
        return pd.DataFrame(wide, columns=["parameter", "original", *methods,
                                           *(f"_departs_{m}" for m in methods)])

    return Table(data=data, layout=by_parameter,
                 cells={"parameter": "parameter", "original": "original",
                        **{METHOD_SHORT[m]: m for m in methods}},
                 bold={METHOD_SHORT[m]: f"_departs_{m}" for m in methods},
                 widths={"parameter": 24, "original": 11,
                         **{METHOD_SHORT[m]: 20 for m in methods}})


def _same(original: str, ours: list[str]) -> bool:
    try:
        return len(ours) == 1 and float(original) == float(ours[0])
    except ValueError:
        return len(ours) == 1 and original == ours[0]


def _natural(text: str) -> tuple:
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


# ----------------------------------------------------------------------------- per class
def per_class_table(per_class: pd.DataFrame) -> Table:
    """Test F1 per class (rows: dataset x class, with its test rows) for each model x method
    of the grid (columns), mean over seeds: where a macro-F1 is lost
    (:func:`helpers.report.examples.per_class_f1`)."""
    if per_class.empty:
        return Table(data=per_class, cells={"dataset": "dataset", "class": "class"})
    combos = [(m, meth) for m in order_models(per_class["model"]) for meth in METHODS
              if ((per_class["model"] == m) & (per_class["method"] == meth)).any()]
    names = {c: f"{display_model(c[0]).split('-')[0]} {METHOD_SHORT[c[1]]}" for c in combos}

    def by_class(long: pd.DataFrame) -> pd.DataFrame:
        """One row per dataset and class: each model and method's F1 side by side."""
        rows = []
        for dataset in order_datasets(long["dataset"]):
            d = long[long["dataset"] == dataset]
            for _, g in d.groupby("class_id", sort=True):
                row = {"dataset": dataset, "class": g["class"].iloc[0],
                       "test rows": int(g["support"].max())}
                for c in combos:
                    v = g.loc[(g["model"] == c[0]) & (g["method"] == c[1]), "f1"]
                    row[names[c]] = v.iloc[0] if len(v) else None
                rows.append(row)
        return pd.DataFrame(rows, columns=["dataset", "class", "test rows", *names.values()])

    return Table(data=per_class, layout=by_class, group="dataset",
                 cells={"dataset": "dataset", "class": "class", "test rows": "test rows",
                        **{n: lambda r, n=n: fmt(r[n]) for n in names.values()}},
                 widths={"class": 16, "test rows": 6, **{n: 10 for n in names.values()}})

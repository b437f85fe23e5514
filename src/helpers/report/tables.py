"""The report's results tables: numbers from :mod:`helpers.report.load`, laid out as
:class:`~helpers.report.table.Table` objects (model names as short labels, the Hub ids are in
the appendix)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from helpers.run import sources
from helpers.run.methods import METHODS

from .formats import (
    MISSING,
    bold,
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
from .table import Table

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


def _stat_cells(stats: pd.DataFrame, metrics: Sequence[str],
                bolded: dict[str, set[Any]]) -> pd.DataFrame:
    """Formatted ``mean ± std`` columns; ``bolded`` (per metric) the rows printed in bold."""
    out = pd.DataFrame(index=stats.index)
    for m in metrics:
        cells = [fmt_mean_std(r[f"{m}_mean"], r[f"{m}_std"], r["n"]) for _, r in stats.iterrows()]
        best = bolded.get(m, set())
        out[LABELS.get(m, m)] = [bold(c) if i in best else c
                                 for i, c in zip(stats.index, cells, strict=True)]
    return out


def _baseline_row(baseline: dict[str, Any] | None, metrics: Sequence[str],
                  first: str) -> dict[str, Any] | None:
    if not baseline:
        return None
    row: dict[str, Any] = {first: BASELINE_LABEL}
    for m in metrics:
        row[LABELS.get(m, m)] = MISSING if m not in SCORES else f"*{fmt(baseline[m])}*"
    return row


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
    shown = _stat_cells(stats, metrics, bold_cells(runs, "model", metrics, examples))
    shown.insert(0, "model", [display_model(m) for m in models])
    shown["n"] = stats["n"].to_numpy()
    shown = shown.reset_index(drop=True)
    extra = _baseline_row(baseline, metrics, "model")
    if extra:
        shown = pd.concat([shown, pd.DataFrame([{**extra, "n": ""}])], ignore_index=True)
    data = stats.reset_index().rename(columns={"index": "model"})
    data.insert(0, "dataset", dataset)
    data.insert(2, "method", method)
    if baseline:
        data = pd.concat([data, pd.DataFrame([{
            "dataset": dataset, "model": "majority class", "method": "baseline", "n": 0,
            **{f"{m}_mean": baseline[m] for m in metrics if m in SCORES}}])],
            ignore_index=True)
    return Table(data=data, display=shown,
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
        d = self.table.display
        return not d.empty and d.iloc[-1, 0] == BASELINE_LABEL

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
    data_parts, shown_parts = [], []
    for dataset in datasets:
        cell = sub[sub["dataset"] == dataset]
        stats = aggregate(cell, ["method"], metrics).set_index("method").reindex(methods)
        stats["n"] = stats["n"].fillna(0).astype(int)
        params = cell.groupby("method")[["params_trainable", "params_total"]].median()
        params = params.reindex(methods)
        stats["params_trainable"] = params["params_trainable"]
        stats["params_total"] = params["params_total"]
        stats["trainable_share"] = params["params_trainable"] / params["params_total"]
        shown = _stat_cells(stats, metrics, bold_cells(cell, "method", metrics, examples))
        shown.insert(0, "method", [METHOD_SHORT[m] for m in methods])
        shown.insert(0, "dataset", dataset)
        shown["trained"] = [fmt_share(v) for v in stats["trainable_share"]]
        shown["n"] = stats["n"].to_numpy()
        shown = shown.reset_index(drop=True)
        extra = _baseline_row((baselines or {}).get(dataset), metrics, "method")
        if extra:
            shown = pd.concat([shown, pd.DataFrame([{**extra, "dataset": dataset,
                                                     "trained": "", "n": ""}])],
                              ignore_index=True)
        data = stats.reset_index().rename(columns={"index": "method"})
        data.insert(0, "dataset", dataset)
        data_parts.append(data)
        shown_parts.append(shown)
    data = pd.concat(data_parts, ignore_index=True) if data_parts else pd.DataFrame()
    if not data.empty:
        data.insert(0, "model", model)
    shown = pd.concat(shown_parts, ignore_index=True) if shown_parts else pd.DataFrame()
    # the caption cannot know whether the build has baselines: the note says it where it does
    floors = not shown.empty and (shown["method"] == BASELINE_LABEL).any()
    return Table(data=data, display=shown, group="dataset" if not shown.empty else None,
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

    def interval(r: pd.Series) -> str:
        if not math.isnan(r["ci_low"]):
            return f"[{signed(r['ci_low'])}, {signed(r['ci_high'])}]"
        if r["n"] < MIN_SEEDS_FOR_INTERVAL:
            return f"none (n < {MIN_SEEDS_FOR_INTERVAL})"
        return "none (no spread)"

    rows = []
    for (dataset, method), g in data.groupby(["dataset", "method"], sort=False):
        row = {"dataset": dataset, "method": METHOD_SHORT.get(method, method)}
        for _, r in g.iterrows():
            m = r["metric"]
            row.update({f"{m}/diff": signed(r["mean_difference"]),
                        f"{m}/std": fmt(r["std_difference"]), f"{m}/ci": interval(r)})
        row["n"] = int(g["n"].max())
        rows.append(row)
    columns = ["dataset", "method", *(f"{m}/{k}" for m in metrics for k in ("diff", "std", "ci")),
               "n"]
    shown = pd.DataFrame(rows, columns=columns)
    labels = {f"{m}/{k}": name for m in metrics
              for k, name in (("diff", "PEFT − full"), ("std", "std"), ("ci", f"{pct} CI"))}
    covers = sorted(set(data.loc[data["ci_low"].notna(), "covers"])) if len(data) else []
    notes = [f"{pct} interval over {', and over '.join(covers)} (paired bootstrap)"
             if covers and covers != ["seeds"] else f"{pct} Student-t interval over seeds"]
    return Table(data=data, display=shown, group="dataset", labels=labels, notes=notes,
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
    rows, data_rows = [], []
    owned = {f for m in METHODS.values() for f in m.fields}
    for p in params:
        row = {"parameter": p, "original": original.get(p, MISSING)}
        for method in methods:
            if p in owned and p not in METHODS[method].fields:
                row[method] = "n/a"
                continue
            values = configs.loc[configs["method"] == method, p].tolist()
            if p == "model":
                values = [display_model(v) for v in values]
            elif p == "learning_rate":  # as papers write it: 2e-5, 1e-3
                values = [fmt_lr(float(v)) for v in values]
            distinct = sorted({"all" if p in NULL_MEANS_ALL and is_missing(v) else fmt_value(v)
                               for v in values}, key=_natural)
            text = ", ".join(distinct)
            departs = p in original and not _same(original[p], distinct)
            row[method] = bold(text) if departs else text
            data_rows += [{"parameter": p, "method": method, "value": v,
                           "original": original.get(p), "departs": departs} for v in distinct]
        rows.append(row)
    for p, ours in ORIGINAL_ONLY.items():
        if p in original:
            rows.append({"parameter": p, "original": original[p],
                         **{m: bold(ours) for m in methods}})
    shown = pd.DataFrame(rows, columns=["parameter", "original", *methods])
    shown = shown.rename(columns={m: METHOD_SHORT[m] for m in methods})
    data = pd.DataFrame(data_rows, columns=["parameter", "method", "value", "original",
                                            "departs"])
    return Table(data=data, display=shown,
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
        return Table(data=per_class, display=pd.DataFrame(columns=["dataset", "class"]))
    combos = [(m, meth) for m in order_models(per_class["model"]) for meth in METHODS
              if ((per_class["model"] == m) & (per_class["method"] == meth)).any()]
    names = {c: f"{display_model(c[0]).split('-')[0]} {METHOD_SHORT[c[1]]}" for c in combos}
    rows = []
    for dataset in order_datasets(per_class["dataset"]):
        d = per_class[per_class["dataset"] == dataset]
        for _, g in d.groupby("class_id", sort=True):
            row = {"dataset": dataset, "class": g["class"].iloc[0],
                   "test rows": int(g["support"].max())}
            for c in combos:
                v = g.loc[(g["model"] == c[0]) & (g["method"] == c[1]), "f1"]
                row[names[c]] = fmt(v.iloc[0]) if len(v) else MISSING
            rows.append(row)
    shown = pd.DataFrame(rows, columns=["dataset", "class", "test rows", *names.values()])
    return Table(data=per_class, display=shown, group="dataset",
                 widths={"class": 16, "test rows": 6, **{n: 10 for n in names.values()}})

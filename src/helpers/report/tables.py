"""The report's results tables: numbers from :mod:`helpers.report.load`, laid out as
:class:`~helpers.report.table.Table` objects (model names as short labels, the Hub ids are in
the appendix)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from helpers.run.methods import METHODS

from .formats import MISSING, bold, fmt, fmt_lr, fmt_mean_std, fmt_share, fmt_value, signed
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
from .stats import aggregate, best_rows, paired_stats
from .table import Table

#: The row that shows the majority-class baseline in a results table.
BASELINE_LABEL = "*majority class*"


def _stat_cells(stats: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Formatted ``mean ± std`` columns, the best per column in bold (only among 2+ rows)."""
    out = pd.DataFrame(index=stats.index)
    for m in metrics:
        cells = [fmt_mean_std(r[f"{m}_mean"], r[f"{m}_std"], r["n"]) for _, r in stats.iterrows()]
        ran = stats[f"{m}_mean"].where(stats["n"] > 0)
        best = best_rows(ran, m) if ran.notna().sum() > 1 else set()
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
                  baseline: dict[str, Any] | None = None) -> Table:
    """Tables 1-2: for one dataset, models x train loss / accuracy / macro-F1 / micro-F1.

    Test metrics at each run's best *validation* epoch; mean ± std over seeds with n; the
    best mean per column in bold. ``models`` defaults to every model run with ``method`` on any
    dataset, so a model missing here is a row of "—". ``baseline`` (a
    :func:`helpers.run.baselines.majority_class` result) adds the majority-class row.
    """
    sub = summary[summary["method"] == method]
    models = list(models) if models is not None else order_models(sub["model"])
    stats = aggregate(sub[sub["dataset"] == dataset], ["model"], metrics).set_index("model")
    stats = stats.reindex(models)
    stats["n"] = stats["n"].fillna(0).astype(int)
    shown = _stat_cells(stats, metrics)
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


def peft_table(summary: pd.DataFrame, model: str | None = None,
               datasets: Sequence[str] | None = None,
               metrics: Sequence[str] = TABLE_METRICS,
               baselines: dict[str, dict[str, Any]] | None = None) -> Table:
    """Table 3: full fine-tuning vs adapter vs LoRA for one model, one row group per dataset.

    Adds the trainable parameters' share of the model; the best mean per dataset and column
    is bold; ``baselines`` (per dataset) adds each dataset's majority-class row.
    """
    model = model or peft_model(summary)
    sub = summary[summary["model"] == model]
    if datasets is None:
        datasets = order_datasets(sub.loc[sub["method"] != "full", "dataset"])
    data_parts, shown_parts = [], []
    for dataset in datasets:
        cell = sub[sub["dataset"] == dataset]
        stats = aggregate(cell, ["method"], metrics).set_index("method").reindex(list(METHODS))
        stats["n"] = stats["n"].fillna(0).astype(int)
        params = cell.groupby("method")[["params_trainable", "params_total"]].median()
        params = params.reindex(list(METHODS))
        stats["params_trainable"] = params["params_trainable"]
        stats["params_total"] = params["params_total"]
        stats["trainable_share"] = params["params_trainable"] / params["params_total"]
        shown = _stat_cells(stats, metrics)
        shown.insert(0, "method", [METHOD_SHORT[m] for m in METHODS])
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
    return Table(data=data, display=shown, group="dataset" if not shown.empty else None,
                 widths={"method": 13, "n": 3, "trained": 7,
                         **{LABELS[m]: 14 for m in metrics}})


def paired_comparison(summary: pd.DataFrame, model: str | None = None,
                      metrics: Sequence[str] = ("accuracy", "macro_f1"),
                      confidence: float = 0.95) -> Table:
    """PEFT minus full fine-tuning of one model, paired by seed, with a t-interval.

    The interval needs at least :data:`helpers.report.stats.MIN_SEEDS_FOR_INTERVAL` pairs with
    some spread; otherwise the cell says why there is none.
    """
    data = paired_stats(summary, model, metrics, confidence)
    pct = f"{confidence:.0%}"

    def interval(r: pd.Series) -> str:
        if not math.isnan(r["ci_low"]):
            return f"[{signed(r['ci_low'])}, {signed(r['ci_high'])}]"
        if r["n"] < 3:
            return f"none: n = {int(r['n'])} < 3"
        return "none: no spread"

    shown = pd.DataFrame({
        "dataset": data["dataset"],
        "method": [METHOD_SHORT.get(m, m) for m in data["method"]],
        "metric": [LABELS.get(m, m) for m in data["metric"]],
        "PEFT − full": [signed(v) for v in data["mean_difference"]],
        "std": [fmt(v) for v in data["std_difference"]],
        f"{pct} CI": [interval(r) for _, r in data.iterrows()],
        "n": data["n"],
    })
    return Table(data=data, display=shown, group="dataset",
                 widths={"method": 9, "metric": 10, "PEFT − full": 10, "std": 7,
                         f"{pct} CI": 18, "n": 3})


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
            distinct = sorted({fmt_value(v) for v in values}, key=_natural)
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

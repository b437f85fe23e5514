"""The report's figures (seaborn), drawn from :func:`helpers.report.load.load_runs` frames.

Bands are min-max over seeds: ``errorbar=("pi", 100)`` is seaborn's percentile interval from
the 0th to the 100th percentile, i.e. exactly the smallest and largest seed, around the mean.
With 3-5 seeds a min-max band shows every run; a standard-error band would hide the outliers
that matter on ACL-ARC, whose test set has 5-7 examples in three of its classes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from helpers.run.catalog import lookup
from helpers.run.methods import LABELS as METHOD_LABELS
from helpers.run.methods import METHODS

from .examples import confusion
from .load import (
    LABELS,
    METHOD_SHORT,
    SCORES,
    display_model,
    order_datasets,
    order_models,
    peft_model,
)

#: Figure width in inches: the PDF's text width (A4, 2 cm margins = 6.7 in), so the fonts
#: print at the sizes set in :func:`_theme` (ticks 9 pt, never under 8 pt).
FIG_WIDTH = 6.7
#: The min-max band: seaborn's percentile interval over 100% of the seeds.
MIN_MAX = ("pi", 100)
EPOCH_METRICS = SCORES


def short_label(model: str) -> str:
    """A tick-sized model name from the catalog (RoBERTa, BERT, SciBERT, MiniLM)."""
    info = lookup(model)
    return info.short if info else display_model(model).split("-")[0]


def _theme() -> None:
    sns.set_theme(style="whitegrid", context="paper", rc={
        "font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9, "xtick.labelsize": 9,
        "ytick.labelsize": 9, "legend.fontsize": 9, "legend.title_fontsize": 9,
        "figure.titlesize": 10})


def _curve(ax, data: pd.DataFrame, x: str, hue: str | None, title: str, ylabel: str,
           hue_order: Sequence[str] | None = None) -> None:
    if data.empty:
        ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
    else:
        sns.lineplot(data=data, x=x, y="value", hue=hue, hue_order=hue_order, estimator="mean",
                     errorbar=MIN_MAX, marker="o" if x == "epoch" else None, ax=ax)
    ax.set_title(title)
    ax.set_xlabel("training step" if x == "step" else "epoch")
    ax.set_ylabel(ylabel)
    if x == "epoch":
        ax.xaxis.get_major_locator().set_params(integer=True)


def pick_curve_cell(summary: pd.DataFrame, model: str | None = None,
                    dataset: str | None = None,
                    method: str = "full") -> tuple[str | None, str | None]:
    """Figure 1's model and dataset: those given, else the report's first that has runs;
    (None, None) when no run of ``method`` is there (a grid of PEFT runs only)."""
    have = summary[summary["method"] == method]
    if model is None:
        candidates = have if dataset is None else have[have["dataset"] == dataset]
        model = order_models(candidates["model"])[0] if not candidates.empty else None
    if dataset is None:
        candidates = have[have["model"] == model]
        dataset = order_datasets(candidates["dataset"])[0] if not candidates.empty else None
    return model, dataset


def learning_curves(history: pd.DataFrame, model: str, dataset: str, method: str = "full",
                    splits: Sequence[str] = ("validation", "test")) -> Figure:
    """Figure 1: training loss against step; accuracy, macro-F1, micro-F1 against epoch.

    Mean over seeds with a min-max band; one line per evaluation split.
    """
    _theme()
    runs = history[(history["model"] == model) & (history["dataset"] == dataset)
                   & (history["method"] == method)]
    n = runs["run_id"].nunique()
    fig, axes = plt.subplots(2, 2, figsize=(FIG_WIDTH, 3.9), constrained_layout=True)
    if not n:  # a grid without such runs: say so where the figure would be
        for ax in axes.flat:
            ax.set_axis_off()
        fig.suptitle(f"No {METHOD_LABELS.get(method, method)} runs in this build")
        return fig
    loss = runs[(runs["split"] == "train") & (runs["metric"] == "loss")]
    _curve(axes[0, 0], loss, "step", None, "training loss", "loss")
    for ax, metric in zip(axes.flat[1:], EPOCH_METRICS, strict=True):
        evals = runs[runs["split"].isin(splits) & (runs["metric"] == metric)]
        _curve(ax, evals, "epoch", "split", LABELS[metric], LABELS[metric],
               hue_order=list(splits))
    # one legend for the three split panels, outside them (inside, it covered the bands)
    handles, names = axes[0, 1].get_legend_handles_labels()
    for ax in axes.flat:
        if ax.get_legend():
            ax.get_legend().remove()
    if handles:
        fig.legend(handles, names, loc="outside lower center", ncol=len(names), frameon=False)
    seeds = f"{n} seed" + ("" if n == 1 else "s")
    fig.suptitle(f"{display_model(model)} on {dataset}, {METHOD_LABELS.get(method, method)}: "
                 f"mean and min-max over {seeds}")
    return fig


def peft_curves(history: pd.DataFrame, model: str | None = None,
                datasets: Sequence[str] | None = None, split: str = "test",
                metrics: Sequence[str] = ("accuracy", "macro_f1")) -> Figure:
    """Figure 2: full fine-tuning vs adapter vs LoRA of one model, one row per dataset.

    Columns: training loss against step, then each metric on ``split`` against epoch.
    """
    _theme()
    if model is None:
        model = peft_model(history.drop_duplicates("run_id"))
    runs = history[history["model"] == model]
    if datasets is None:
        datasets = order_datasets(runs.loc[runs["method"] != "full", "dataset"])
    datasets = list(datasets) or ["(none)"]
    methods = [m for m in METHODS if m in set(runs["method"])]
    ncols = 1 + len(metrics)
    fig, axes = plt.subplots(len(datasets), ncols, figsize=(FIG_WIDTH, 1.75 * len(datasets) + 0.6),
                             constrained_layout=True, squeeze=False)
    for row, dataset in zip(axes, datasets, strict=True):
        d = runs[runs["dataset"] == dataset]
        loss = d[(d["split"] == "train") & (d["metric"] == "loss")]
        _curve(row[0], loss, "step", "method", f"{dataset}: train loss", "loss", methods)
        for ax, metric in zip(row[1:], metrics, strict=True):
            evals = d[(d["split"] == split) & (d["metric"] == metric)]
            _curve(ax, evals, "epoch", "method", f"{dataset}: {split} {LABELS[metric]}",
                   LABELS[metric], methods)
        for ax in row:
            if ax.get_legend():
                ax.get_legend().remove()
    handles, names = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, [METHOD_SHORT.get(n, n) for n in names], loc="outside lower center",
                   ncol=len(names), frameon=False)
    name = display_model(model) if model else "no PEFT runs"
    fig.suptitle(f"{name}: full fine-tuning vs PEFT, mean and min-max over seeds")
    fig.get_layout_engine().set(h_pad=0.02)
    return fig


def seed_points(summary: pd.DataFrame, metrics: Sequence[str] = ("accuracy", "macro_f1"),
                datasets: Sequence[str] | None = None) -> Figure:
    """Every run's test score as a point, per dataset and model/method; the dash is the mean.

    Up to three model x method cells per panel stand side by side with two-line labels; more
    (the paper grid has five) are stacked as rows, their labels written out on the left.
    """
    _theme()
    datasets = list(datasets or order_datasets(summary["dataset"])) or ["(none)"]
    per_panel = summary.drop_duplicates(["dataset", "model", "method"]).groupby("dataset").size()
    rows = not per_panel.empty and per_panel.max() > 3
    sep = " " if rows else "\n"
    height = (0.3 * per_panel.max() + 0.7) if rows else 2.1
    fig, axes = plt.subplots(len(metrics), len(datasets),
                             figsize=(FIG_WIDTH, height * len(metrics) + 0.4),
                             constrained_layout=True, squeeze=False, sharey="row" if rows
                             else False)
    data = summary.assign(cell=[f"{short_label(m)}{sep}{METHOD_SHORT.get(meth, meth)}"
                                for m, meth in zip(summary["model"], summary["method"],
                                                   strict=True)])
    for j, dataset in enumerate(datasets):
        d = data[data["dataset"] == dataset]
        order = [f"{short_label(m)}{sep}{METHOD_SHORT.get(meth, meth)}"
                 for m in order_models(d["model"])
                 for meth in METHODS if ((d["model"] == m) & (d["method"] == meth)).any()]
        for i, metric in enumerate(metrics):
            _seed_panel(axes[i, j], d, metric, order, rows)
            axes[i, j].set_title(f"{dataset}: test {LABELS[metric]}")
    fig.suptitle("Per-seed test scores (points) and their mean (dash)")
    return fig


def _seed_panel(ax, d: pd.DataFrame, metric: str, order: list[str], rows: bool) -> None:
    """One dataset x metric of :func:`seed_points`: cells along x, or as rows along y."""
    if d.empty:
        ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
        return
    x, y = (metric, "cell") if rows else ("cell", metric)
    sns.stripplot(data=d, x=x, y=y, order=order, hue="cell", hue_order=order, legend=False,
                  jitter=0.15, size=4, orient="h" if rows else "v", ax=ax)
    sns.pointplot(data=d, x=x, y=y, order=order, estimator="mean", errorbar=None,
                  linestyle="none", markers="|" if rows else "_", markersize=12,
                  color="black", orient="h" if rows else "v", ax=ax)
    ax.set_xlabel(LABELS[metric] if rows else "")
    ax.set_ylabel("" if rows else LABELS[metric])


#: Memory components of one training step, bottom to top (helpers.memory.report_table columns).
MEMORY_COMPONENTS = ("weights", "gradients", "optimizer states", "activations", "other")


def memory_components(df: pd.DataFrame, peak_label: str = "measured") -> Figure:
    """Stacked bars (GiB) per component, full vs adapter vs LoRA, one panel per model.

    ``df`` is :func:`helpers.memory.report_table`; the GPU peak (``peak_label``: measured or
    corrected) is drawn as a dash where the benchmark file has it.
    """
    _theme()
    models = list(dict.fromkeys(df["model"]))
    colors = sns.color_palette("colorblind", len(MEMORY_COMPONENTS))
    fig, axes = plt.subplots(1, len(models), figsize=(FIG_WIDTH, 2.9), sharey=True,
                             squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        sub = df[df["model"] == model].set_index("method")
        ticks = [METHOD_SHORT.get(m, m) for m in sub.index]
        bottom = None
        for comp, color in zip(MEMORY_COMPONENTS, colors, strict=True):
            vals = sub[comp].to_numpy()
            ax.bar(ticks, vals, bottom=bottom, color=color, label=comp)
            bottom = vals if bottom is None else bottom + vals
        if "measured peak" in sub and sub["measured peak"].notna().any():
            ax.scatter(ticks, sub["measured peak"], marker="_", s=300, color="black",
                       zorder=3, label=f"GPU peak ({peak_label})")
        ax.set_title(display_model(model))
        ax.set_xlabel("")
    axes[0][0].set_ylabel("GiB")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0.17, 1, 1))
    return fig


def confusion_matrices(frame: pd.DataFrame, label_names: dict[str, Sequence[str]],
                       model: str, method: str = "full") -> Figure:
    """One row-normalised confusion matrix per dataset (true class down, predicted across),
    pooled over the seeds of ``model`` x ``method``'s reported-epoch test predictions
    (:func:`helpers.report.examples.reported`); two panels a row, so each stays readable on a
    phone. Cells give the share of the true class's test rows (0.00-1.00)."""
    _theme()
    sub = frame[(frame["model"] == model) & (frame["method"] == method)]
    datasets = order_datasets(sub["dataset"]) or ["(none)"]
    cols = min(2, len(datasets))
    nrows = -(-len(datasets) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(FIG_WIDTH, 3.2 * nrows),
                             constrained_layout=True, squeeze=False)
    for ax, dataset in zip(axes.flat, datasets, strict=False):
        d = sub[sub["dataset"] == dataset]
        names = list(label_names.get(dataset) or [])
        k = max([len(names), *(d[["label", "prediction"]].max() + 1).tolist(), 1])
        names = [_tick(n) for n in names] + [str(i) for i in range(len(names), k)]
        m = confusion(d, k) if len(d) else np.full((k, k), np.nan)
        sns.heatmap(m, ax=ax, vmin=0, vmax=1, cmap="Blues", cbar=False, square=True,
                    annot=True, fmt=".2f", annot_kws={"fontsize": 8 if k <= 4 else 7},
                    xticklabels=names, yticklabels=names, linewidths=0.5, linecolor="white")
        ax.set_title(f"{dataset} ({d['seed'].nunique()} seeds)")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.tick_params(axis="x", labelrotation=45)
        ax.tick_params(axis="y", labelrotation=0)
        plt.setp(ax.get_xticklabels(), ha="right", rotation_mode="anchor")
    for ax in list(axes.flat)[len(datasets):]:
        ax.set_axis_off()
    fig.suptitle(f"Test confusion, {short_label(model)} {METHOD_SHORT.get(method, method)} "
                 f"(rows sum to 1)")
    return fig


def _tick(name: str, width: int = 11) -> str:
    """A class name short enough for a tick (CompareOrContrast -> CompareOrC.)."""
    return name if len(name) <= width else name[:width - 1] + "."


def save_figure(fig: Figure, output_dir: str | os.PathLike, name: str) -> list[Path]:
    """Write ``<output_dir>/figures/<name>.png`` and ``.svg``; return both paths."""
    folder = Path(output_dir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png", folder / f"{name}.svg"]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    # no date in the SVG, so re-running on the same runs gives the same file
    fig.savefig(paths[1], bbox_inches="tight", metadata={"Date": None})
    return paths

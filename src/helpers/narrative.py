"""The report's sentences, generated from the runs (Markdown), so the text stays true.

The banner says which grid, models, data sizes and hardware the numbers come from; the facts
name the best model per dataset, the full-vs-PEFT gaps with their paired intervals, whether
scibert wins on acl_sup, and what the original report got wrong, with our measured values.
"""

from __future__ import annotations

import math
import os
from typing import Any

import pandas as pd

from .analysis import (
    LABELS,
    METHOD_LABELS,
    MISSING,
    PROJECT_ROOT,
    REPORT_MODELS,
    _signed,
    aggregate,
    display_model,
    fmt_count,
    fmt_mean_std,
    fmt_value,
    order_datasets,
    order_models,
    paired_comparison,
    peft_model,
    project_path,
)
from .config import METHODS, short_model_name


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
        train = _span(d["num_train_samples"])
        test = _span(d["num_test_samples"])
        sizes.append(f"{dataset} ({train} training / {test} test examples)")
    methods = ", ".join(METHOD_LABELS.get(m, m) for m in METHODS if m in set(summary["method"]))
    seeds = ", ".join(str(s) for s in sorted(summary["seed"].unique()))
    epochs = _span(summary["num_train_epochs"])
    hardware = "; ".join(
        f"{dev.upper() if dev == 'cuda' else dev} ({name})" if name else str(dev)
        for dev, name in summary[["device", "device_name"]].drop_duplicates()
        .itertuples(index=False))
    precision = ", ".join(sorted(set(map(str, summary["precision"].dropna()))))
    lines = [
        f"**Where these numbers come from.** Built from `{grid}` into `{_rel(runs_dir)}`: "
        f"{len(summary)} complete runs of {models}; methods: {methods}; "
        f"datasets: {'; '.join(sizes)}; seeds {seeds}; {epochs} epoch(s) per run; "
        f"hardware: {hardware}; precision: {precision}.",
    ]
    if not is_paper_scale(summary):
        lines.append(
            "These are **small-scale results** (not the paper grid: "
            + ", ".join(_scale_gaps(summary))
            + "). Run `make report GRID=params/full.yaml` on a GPU for the paper-scale results.")
    return "\n\n".join(lines)


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


def facts_full_ft(summary: pd.DataFrame, metric: str = "macro_f1") -> str:
    """Best model per dataset (by mean test macro-F1), the runner-up, and scibert on acl_sup."""
    full = summary[summary["method"] == "full"]
    lines = []
    for dataset in order_datasets(full["dataset"]):
        stats = aggregate(full[full["dataset"] == dataset], ["model"]).set_index("model")
        ranked = stats[f"{metric}_mean"].dropna().sort_values(ascending=False)
        if ranked.empty:
            continue
        best = ranked.index[0]
        text = (f"- **{dataset}**: best {LABELS[metric]} is {display_model(best)} "
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
        lines.append(text + ".")
    if not lines:
        return "_No full fine-tuning runs yet._"
    lines.append(scibert_on_acl(summary, metric))
    return "\n".join(lines)


def scibert_on_acl(summary: pd.DataFrame, metric: str = "macro_f1") -> str:
    """Whether scibert wins on acl_sup (the original report's claim), from the runs."""
    full = summary[(summary["method"] == "full") & (summary["dataset"] == "acl_sup")]
    scibert = [m for m in full["model"].unique() if "scibert" in m]
    if not scibert:
        return ("- scibert was not run on acl_sup in this grid, so whether it wins there "
                "can't be checked from these runs.")
    stats = aggregate(full, ["model"]).set_index("model")
    ranked = stats[f"{metric}_mean"].dropna().sort_values(ascending=False)
    rank = list(ranked.index).index(scibert[0]) + 1
    verdict = "wins" if rank == 1 else f"does not win (rank {rank} of {len(ranked)})"
    return (f"- On acl_sup, scibert {verdict} by mean test {LABELS[metric]} "
            f"({_cell(stats, scibert[0], metric)}).")


def facts_peft(summary: pd.DataFrame, model: str | None = None,
               metric: str = "macro_f1", confidence: float = 0.95) -> str:
    """The FT-PEFT gap per dataset and method, with its paired interval (Markdown)."""
    model = model or peft_model(summary)
    if model is None:
        return "_No adapter or LoRA runs yet._"
    comp = paired_comparison(summary, model, (metric,), confidence).data
    sub = summary[summary["model"] == model]
    lines = [f"PEFT runs are of {display_model(model)}; a gap is full fine-tuning minus PEFT "
             f"in mean test {LABELS[metric]} (positive = full is better)."]
    for dataset in order_datasets(sub["dataset"]):
        stats = aggregate(sub[sub["dataset"] == dataset], ["method"]).set_index("method")
        if "full" not in stats.index:
            continue
        for method in (m for m in METHODS if m != "full" and m in stats.index):
            gap = stats.loc["full", f"{metric}_mean"] - stats.loc[method, f"{metric}_mean"]
            c = comp[(comp["dataset"] == dataset) & (comp["method"] == method)].iloc[0]
            if c["n"] >= 2:
                lo, hi = -c["ci_high"], -c["ci_low"]
                ci = (f"paired over {int(c['n'])} seeds: {confidence:.0%} CI "
                      f"[{_signed(lo)}, {_signed(hi)}]"
                      + (", which includes zero" if lo <= 0 <= hi else ""))
            else:
                ci = f"{int(c['n'])} paired seed(s), too few for an interval"
            lines.append(f"- **{dataset}**, {METHOD_LABELS[method]}: gap {_signed(gap)} "
                         f"(full {_cell(stats, 'full', metric)}, {METHOD_LABELS[method]} "
                         f"{_cell(stats, method, metric)}; {ci}).")
    if len(lines) == 1:
        lines.append(f"- No dataset has both full fine-tuning and PEFT runs of "
                     f"{display_model(model)} yet.")
    return "\n".join(lines)


def encoder_parameters(model: str = "roberta-base") -> int:
    """Parameters of the bare encoder, counted on the meta device (see helpers.memory)."""
    from .memory import encoder_parameter_count

    return encoder_parameter_count(model)


def facts_corrections(summary: pd.DataFrame, original: pd.DataFrame | None = None) -> str:
    """The numbers of the corrections section, computed (parameter count, memory, lr)."""
    n_enc = encoder_parameters("roberta-base")
    lines = [f"- roberta-base has **{fmt_count(n_enc)} encoder parameters** ({n_enc:,}, "
             f"counted from its configuration), not about 3 billion. Full fine-tuning in fp32 "
             f"with AdamW keeps weights, gradients and two moment estimates: 16 bytes per "
             f"parameter = {16 * n_enc / 1e9:.1f} GB before activations, far from 70 GB."]
    rob = summary[(summary["model"].map(short_model_name) == "roberta-base")
                  & (summary["method"] == "full")]
    peak = rob["peak_cuda_allocated_bytes"].dropna()
    if not peak.empty:
        lines.append(f"- Measured: the largest peak CUDA allocation of a roberta-base full "
                     f"fine-tuning run here is {peak.max() / 1e9:.2f} GB "
                     f"(n={len(peak)} runs, {_span(rob['per_device_train_batch_size'])} "
                     f"examples per batch, max_length {_span(rob['max_length'])}).")
    for method in (m for m in METHODS if m != "full"):
        lr = pd.to_numeric(summary.loc[summary["method"] == method, "learning_rate"],
                           errors="coerce").dropna()
        if not lr.empty:
            values = ", ".join(fmt_value(v) for v in sorted(lr.unique()))
            lines.append(f"- {METHOD_LABELS[method]} runs here use learning rate {values}"
                         + (" (the original trained its adapters at 2e-05, the full "
                            "fine-tuning rate)." if method == "adapter" else "."))
    return "\n".join(lines)



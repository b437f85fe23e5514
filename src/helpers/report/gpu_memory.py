"""The memory section's tables: the accounting per model and method beside the GPU benchmark,
and the peaks the runs recorded."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from helpers.memory import GIB, account, find_result, load_results
from helpers.run.catalog import REPORT_MODELS
from helpers.run.config import TrainConfig
from helpers.run.methods import METHODS

from .formats import fmt, fmt_count, fmt_gib
from .load import METHOD_SHORT, display_model
from .markdown import bullet_list, paragraphs
from .table import Table


def accounting_frame(models: Sequence[str] = REPORT_MODELS, methods: Sequence[str] = METHODS,
                 precision: str = "bf16", batch: int = 8, seq: int = 256, num_labels: int = 3,
                 results: str | Path | list | None = None):
    """Per model and method: parameters, trainable share, components, predicted/measured peak.

    Sizes in GiB. Activations come from ``results`` (a CUDA benchmark file) when it has the
    configuration, else they are measured on this CPU with CUDA kernels emulated.
    """
    rows = results if isinstance(results, list) else load_results(results)
    out = []
    for model in models:
        for method in methods:
            match = find_result(rows, model, method, precision, batch, seq)
            acts = match.get("activations_bytes") if match else None
            a = account(model, method, precision, batch, seq, num_labels, acts)
            measured = match.get("measured_peak_bytes") if match else None
            out.append({
                "model": model, "method": method,
                "parameters (M)": a["parameters"] / 1e6,
                "trainable (M)": a["trainable"] / 1e6,
                "trainable share (%)": 100 * a["trainable_share"],
                "weights": a["weights_bytes"] / GIB, "gradients": a["gradients_bytes"] / GIB,
                "optimizer states": a["optimizer_bytes"] / GIB,
                "activations": a["activations_bytes"] / GIB,
                "other": (a["transient_bytes"] + a["workspace_bytes"]) / GIB,
                "predicted peak": a["predicted_peak_bytes"] / GIB,
                "measured peak": measured / GIB if measured else math.nan,
            })
    return pd.DataFrame(out)


def memory_overview(summary: pd.DataFrame) -> Table:
    """Peak memory per model and method as the runs recorded it (largest over datasets), GiB."""
    rows = []
    for (model, method, device), g in summary.groupby(["model", "method", "device"],
                                                      sort=False, dropna=False):
        rows.append({"model": model, "method": method, "device": device,
                     "device_name": ", ".join(sorted(set(map(str, g["device_name"].dropna())))),
                     "peak_cuda_allocated_bytes": g["peak_cuda_allocated_bytes"].max(),
                     "peak_rss_bytes": g["peak_rss_bytes"].max(),
                     "params_trainable": g["params_trainable"].median(), "n": len(g)})
    data = pd.DataFrame(rows, columns=["model", "method", "device", "device_name",
                                       "peak_cuda_allocated_bytes", "peak_rss_bytes",
                                       "params_trainable", "n"])
    if not data.empty:
        rank = {m: i for i, m in enumerate(METHODS)}
        data = data.assign(_m=data["method"].map(rank)).sort_values(["model", "_m"]) \
            .drop(columns="_m").reset_index(drop=True)
    shown = pd.DataFrame({
        "model": [display_model(m) for m in data["model"]],
        "method": [METHOD_SHORT.get(m, m) for m in data["method"]],
        "device": [str(d).upper() if d == "cuda" else str(d) for d in data["device"]],
        "trainable": [fmt_count(v) for v in data["params_trainable"]],
        "peak CUDA allocated (GiB)": [fmt_gib(v) for v in data["peak_cuda_allocated_bytes"]],
        "peak RSS (GiB)": [fmt_gib(v) for v in data["peak_rss_bytes"]],
        "n": data["n"],
    })
    names = sorted({n for n in data["device_name"] if n})
    notes = [f"Devices: {'; '.join(names)}."] if names else []
    return Table(data=data, display=shown, notes=notes,
                 widths={"model": 12, "method": 8, "device": 6, "trainable": 8,
                         "peak CUDA allocated (GiB)": 12, "peak RSS (GiB)": 10, "n": 3})


def memory_table(mem: pd.DataFrame, peak_label: str) -> Table:
    """:func:`accounting_frame` (GiB) laid out for the page: one row group per model.

    ``peak_label`` names the GPU column: "measured" for raw benchmark rows, "corrected" when
    the benchmark file's peaks were corrected (see helpers.memory.results_status).
    """
    shown = pd.DataFrame({
        "model": [display_model(m) for m in mem["model"]],
        "method": [METHOD_SHORT.get(m, m) for m in mem["method"]],
        "trained": [f"{v:.2f}%" if v < 99.95 else "100%" for v in mem["trainable share (%)"]],
        "weights": [f"{v:.2f}" for v in mem["weights"]],
        "grads": [f"{v:.2f}" for v in mem["gradients"]],
        "AdamW": [f"{v:.2f}" for v in mem["optimizer states"]],
        "activ.": [f"{v:.2f}" for v in mem["activations"]],
        "other": [f"{v:.2f}" for v in mem["other"]],
        "predicted peak": [f"{v:.2f}" for v in mem["predicted peak"]],
        f"GPU peak ({peak_label})": [fmt(v, 2) for v in mem["measured peak"]],
    })
    return Table(data=mem, display=shown, group="model",
                 widths={"method": 9, "trained": 8, "weights": 8, "grads": 7, "AdamW": 7,
                         "activ.": 7, "other": 6, "predicted peak": 9,
                         f"GPU peak ({peak_label})": 11})


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

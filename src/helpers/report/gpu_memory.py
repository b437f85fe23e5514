"""The memory section: the accounting per model and method beside the GPU benchmark, the
original's 70 GB and 13.17 GB beside our prediction and measurement at its own settings, the
peaks the runs recorded, and the section's facts (:func:`memory_facts`, worded by
``report/templates/memory_*.md.j2``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from helpers.memory import GIB, account, find_result, load_results, read_results, status_of
from helpers.run.catalog import REPORT_MODELS
from helpers.run.config import TrainConfig
from helpers.run.methods import METHODS
from helpers.settings import PROJECT_ROOT

from . import original as orig
from .formats import fmt, fmt_count, fmt_gib
from .load import METHOD_SHORT, display_model
from .table import Cell, Table

#: The GPU memory benchmark's results (benchmarks/memory.py writes it).
DEFAULT_RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "memory_cuda.json"
#: The report's own training settings (params/full.yaml) for the accounting.
REPORT_SETTINGS = {"precision": "bf16", "seq": 256, "batch": 8}
#: The model of the memory answers that name one (the original's, roberta-base).
REPORT_MEMORY_MODEL = "roberta-base"
#: How the text and captions name a precision setting.
PRECISION_WORDS = {"bf16": "bf16 autocast", "fp16": "fp16 autocast", "fp32": "fp32"}


@dataclass(frozen=True)
class Settings:
    """One setting of the memory accounting, as the text names it: "at the report's settings"
    always says which model, batch, sequence length and precision."""

    model: str
    batch: int
    seq: int
    precision: str

    @property
    def autocast(self) -> bool:
        """Mixed precision: autocast over fp32 master weights."""
        return self.precision != "fp32"

    @property
    def precision_label(self) -> str:
        return PRECISION_WORDS.get(self.precision, self.precision)


def report_settings() -> Settings:
    return Settings(REPORT_MEMORY_MODEL, REPORT_SETTINGS["batch"], REPORT_SETTINGS["seq"],
                    REPORT_SETTINGS["precision"])


def memory_methods() -> list[str]:
    """The registered methods the accounting covers (``Method.memory``), in registry order."""
    return [name for name, m in METHODS.items() if m.memory]


def accounting_frame(models: Sequence[str] = REPORT_MODELS, methods: Sequence[str] | None = None,
                 precision: str = REPORT_SETTINGS["precision"],
                 batch: int = REPORT_SETTINGS["batch"], seq: int = REPORT_SETTINGS["seq"],
                 num_labels: int = 3,
                 results: str | Path | list | None = None):
    """Per model and method: parameters, trainable share, components, predicted/measured peak.

    ``methods`` defaults to :func:`memory_methods`: a registered method the accounting cannot
    cover (one for users only) is left out rather than breaking the build.

    Sizes in GiB. Activations come from ``results`` (a CUDA benchmark file) when it has the
    configuration, else they are measured on this CPU with CUDA kernels emulated.
    """
    rows = results if isinstance(results, list) else load_results(results)
    out = []
    for model in models:
        for method in memory_methods() if methods is None else methods:
            a, measured = _accounting(model, method, rows, precision, seq, batch, num_labels)
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
                "measured peak": measured,
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
    names = sorted({n for n in data["device_name"] if n})
    notes = [f"Devices: {'; '.join(names)}."] if names else []
    return Table(data=data, notes=notes,
                 cells={"model": lambda r: display_model(r["model"]),
                        "method": lambda r: METHOD_SHORT.get(r["method"], r["method"]),
                        "device": lambda r: str(r["device"]).upper() if r["device"] == "cuda"
                        else str(r["device"]),
                        "trainable": lambda r: fmt_count(r["params_trainable"]),
                        "peak CUDA allocated (GiB)":
                            lambda r: fmt_gib(r["peak_cuda_allocated_bytes"]),
                        "peak RSS (GiB)": lambda r: fmt_gib(r["peak_rss_bytes"]), "n": "n"},
                 widths={"model": 12, "method": 8, "device": 6, "trainable": 8,
                         "peak CUDA allocated (GiB)": 12, "peak RSS (GiB)": 10, "n": 3})


def memory_table(mem: pd.DataFrame, peak_label: str) -> Table:
    """:func:`accounting_frame` (GiB) laid out for the page: one row group per model.

    ``peak_label`` names the GPU column: "measured" for raw benchmark rows, "corrected" when
    the benchmark file's peaks were corrected (see helpers.memory.results_status).
    """
    def gib(column: str) -> Cell:
        return lambda r: f"{r[column]:.2f}"

    share = "trainable share (%)"
    return Table(data=mem, group="model",
                 cells={"model": lambda r: display_model(r["model"]),
                        "method": lambda r: METHOD_SHORT.get(r["method"], r["method"]),
                        "trained": lambda r: f"{r[share]:.2f}%" if r[share] < 99.95 else "100%",
                        "weights": gib("weights"), "grads": gib("gradients"),
                        "AdamW": gib("optimizer states"), "activ.": gib("activations"),
                        "other": gib("other"), "predicted peak": gib("predicted peak"),
                        f"GPU peak ({peak_label})": lambda r: fmt(r["measured peak"], 2)},
                 widths={"method": 9, "trained": 8, "weights": 8, "grads": 7, "AdamW": 7,
                         "activ.": 7, "other": 6, "predicted peak": 9,
                         f"GPU peak ({peak_label})": 11})


@dataclass(frozen=True)
class Benchmark:
    """Where the GPU peaks come from: ``benchmarks/results/memory_cuda.json``'s header, and its
    rows (what :func:`accounting_frame` and :func:`settings_peaks` take), from one read."""

    path: str
    status: str  # "measured" (raw peaks), "corrected" or "none" (no file)
    gpu: str | None = None
    torch: str | None = None
    cuda: str | None = None
    date: str | None = None
    steps: int | None = None
    measured: str | None = None  # how the file says it measured
    rows: list[dict[str, Any]] = field(default_factory=list, repr=False, compare=False)

    @property
    def found(self) -> bool:
        return self.status != "none"


def benchmark(path: str | Path | None) -> Benchmark:
    """The benchmark file's GPU, torch and CUDA versions, date (YYYY-MM-DD) and rows."""
    head = read_results(path)
    status, rows = status_of(head), head.get("rows", [])
    if status == "none":
        return Benchmark(str(path), status, rows=rows)
    versions = head.get("versions") or {}
    created = str(head.get("created") or "")
    return Benchmark(str(path), status, head.get("device_name"), versions.get("torch"),
                     versions.get("cuda"), created[:10] or None, head.get("steps"),
                     head.get("measured"), rows)


@dataclass(frozen=True)
class Peak:
    """One method at one setting: our predicted peak and the benchmark's GPU peak (GiB)."""

    predicted: float
    measured: float = math.nan


def _accounting(model: str, method: str, rows: list[dict], precision: str, seq: int,
                batch: int, num_labels: int = 3) -> tuple[dict[str, Any], float]:
    """helpers.memory.account at one setting, with the benchmark row's activations (measured
    once, when the file was written) where it has the setting, and that row's GPU peak."""
    row = find_result(rows, model, method, precision, batch, seq)
    acts = row.get("activations_bytes") if row else None
    a = account(model, method, precision, batch, seq, num_labels=num_labels, activations=acts)
    measured = row.get("measured_peak_bytes") if row else None
    return a, (measured / GIB if measured else math.nan)


def settings_peaks(results: str | Path | list | None) -> dict[str, tuple[dict, float]]:
    """roberta-base full fine-tuning and adapters at the original's settings (fp32, sequence
    512, batch 8, AdamW) and at the report's (bf16 autocast, sequence 256, batch 8): our
    accounting and the benchmark's GPU peak (GiB, NaN where the file lacks the setting)."""
    rows = results if isinstance(results, list) else load_results(results)
    return {f"{where}_{method}": _accounting(REPORT_MEMORY_MODEL, method, rows, **settings)
            for where, settings in (("original", orig.ORIGINAL_MEMORY_SETTINGS),
                                    ("report", REPORT_SETTINGS))
            for method in ("full", "adapter")}


def memory_vs_original(original: pd.DataFrame, peaks: dict[str, tuple[dict, float]]) -> Table:
    """The original's 70 GB sum part by part, and its 13.17 GB for adapters, beside our
    predicted and measured peaks (:func:`settings_peaks`) at its settings and at ours."""
    a, b = peaks["original_full"][0], peaks["report_full"][0]
    numbers = ("predicted_original_settings_gib", "gpu_original_settings_gib",
               "predicted_report_settings_gib", "gpu_report_settings_gib")
    # the parts of the original's sum: on the page only (the CSV has the two peaks)
    rows = [{"_component": "parameters", "original_gb": orig.claim(original, "parameters_total"),
             **dict(zip(numbers, (a["parameters"], math.nan, b["parameters"], math.nan),
                        strict=True)), "_count": True}]
    for name, claim, key in (("weights", "weights_gb", ("weights",)),
                             ("weights + AdamW states", "weights_and_adam_gb",
                              ("weights", "optimizer")),
                             ("gradients", "gradients_gb", ("gradients",)),
                             ("activations", "activations_gb", ("activations",))):
        rows.append({"_component": name, "original_gb": orig.claim(original, claim),
                     **dict(zip(numbers, (sum(a[f"{k}_bytes"] for k in key) / GIB, math.nan,
                                          sum(b[f"{k}_bytes"] for k in key) / GIB, math.nan),
                                strict=True))})
    for method, name in (("full", "peak, full fine-tuning"), ("adapter", "peak, adapters")):
        (p, p_gpu), (q, q_gpu) = peaks[f"original_{method}"], peaks[f"report_{method}"]
        rows.append({"_component": name, "method": method,
                     "original_gb": orig.claim(original, "peak_memory_gb", method),
                     **dict(zip(numbers, (p["predicted_peak_bytes"] / GIB, p_gpu,
                                          q["predicted_peak_bytes"] / GIB, q_gpu), strict=True)),
                     "_shown_only": False})
    data = pd.DataFrame(rows, columns=["method", "original_gb", *numbers, "_component",
                                       "_count", "_shown_only"])
    data["_shown_only"] = data["_shown_only"].ne(False)
    data["_count"] = data["_count"].eq(True)

    def said(r: dict) -> str:
        v = r["original_gb"]
        if r["_count"]:
            return f"{v / 1e9:.1f}B"
        return f"{v:g} GB = {v * 1e9 / GIB:.1f} GiB" \
            + (", settings not stated" if r["method"] == "adapter" else "")

    def predicted(column: str) -> Cell:
        return lambda r: fmt_count(r[column]) if r["_count"] else f"{r[column]:.2f}"

    return Table(data=data,
                 cells={"component": "_component", "original": said,
                        "predicted_o": predicted(numbers[0]),
                        "gpu_o": lambda r: fmt(r[numbers[1]], 2),
                        "predicted_r": predicted(numbers[2]),
                        "gpu_r": lambda r: fmt(r[numbers[3]], 2)},
                 widths={"component": 24, "original": 26, "predicted_o": 10, "gpu_o": 10,
                         "predicted_r": 10, "gpu_r": 10},
                 labels={"original": "original (as printed)", "predicted_o": "predicted",
                         "gpu_o": "GPU peak", "predicted_r": "predicted", "gpu_r": "GPU peak"},
                 spanners={"original's settings (GiB)": ["predicted_o", "gpu_o"],
                           "report's settings (GiB)": ["predicted_r", "gpu_r"]})


@dataclass(frozen=True)
class ModelMemory:
    """One model's row group of the memory table (GiB; shares as fractions)."""

    model: str
    parameters: float
    by_method: dict[str, dict[str, float]]

    @property
    def label(self) -> str:
        return display_model(self.model)

    def get(self, method: str, column: str) -> float:
        return self.by_method.get(method, {}).get(column, math.nan)

    def state(self, method: str) -> float:
        """Gradients plus AdamW states: the memory that exists only for trained weights."""
        return self.get(method, "gradients") + self.get(method, "optimizer states")

    def share(self, method: str) -> float:
        return self.get(method, "trainable share (%)") / 100

    def peak_saving(self, method: str) -> float:
        """How much lower ``method``'s predicted peak is than full fine-tuning's (a share)."""
        return 1 - self.get(method, "predicted peak") / self.get("full", "predicted peak")

    @property
    def complete(self) -> bool:
        return {"full", "adapter", "lora"} <= set(self.by_method)


@dataclass
class MemoryFacts:
    """The memory section's facts: the benchmark, the original's claims and our answers."""

    bench: Benchmark
    claims: orig.MemoryClaims
    parameters: int
    original_full: Peak
    original_adapter: Peak
    report_full: Peak
    report_adapter: Peak
    models: list[ModelMemory] = field(default_factory=list)
    lora_default: tuple[int, int, tuple[str, ...]] = (8, 16, ("query", "value"))
    adapter_default: tuple[str, int] = ("double_seq_bn", 16)
    grid_lora: tuple[int, tuple[str, ...]] | None = None  # this build's LoRA, if different
    settings: Settings = field(default_factory=report_settings)  # of report_full/_adapter

    @property
    def complete_models(self) -> list[ModelMemory]:
        """Models with all three methods in the table: the first one's saving is explained."""
        return [m for m in self.models if m.complete]

    @property
    def other_complete(self) -> list[ModelMemory]:
        """The complete models after the first (they follow its pattern)."""
        return self.complete_models[1:]

    @property
    def other_complete_count(self) -> int:
        return len(self.other_complete)

    @property
    def full_ratio(self) -> float:
        """How many times the original's 70 GB exceeds the peak at its own settings."""
        peak = self.original_full.measured
        peak = self.original_full.predicted if math.isnan(peak) else peak
        return self.claims.full_gib / peak


def memory_facts(original: pd.DataFrame, peaks: dict[str, tuple[dict, float]],
                 mem: pd.DataFrame, bench: Benchmark, configs: pd.DataFrame) -> MemoryFacts:
    """The facts behind the memory section's sentences (``peaks``: :func:`settings_peaks`;
    ``mem``: :func:`accounting_frame`)."""
    a = peaks["original_full"][0]
    d = TrainConfig()

    def peak(key: str) -> Peak:
        acc, gpu = peaks[key]
        return Peak(acc["predicted_peak_bytes"] / GIB, gpu)

    facts = MemoryFacts(
        bench, orig.memory_claims(original), int(a["parameters"]),
        peak("original_full"), peak("original_adapter"), peak("report_full"),
        peak("report_adapter"),
        lora_default=(d.lora_r, d.lora_alpha, tuple(d.lora_target_modules)),
        adapter_default=(d.adapter_config, d.adapter_reduction_factor))
    for model in dict.fromkeys(mem["model"]):
        sub = mem[mem["model"] == model].set_index("method")
        facts.models.append(ModelMemory(model, float(sub["parameters (M)"].iloc[0]),
                                        {m: r.to_dict() for m, r in sub.iterrows()}))
    lora = configs[configs["method"] == "lora"] if not configs.empty else configs
    if len(lora):
        r = lora.iloc[0]
        grid = (int(r["lora_r"]), tuple(r["lora_target_modules"]))
        if grid != (d.lora_r, tuple(d.lora_target_modules)):
            facts.grid_lora = grid
    return facts

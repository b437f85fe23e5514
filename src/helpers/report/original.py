"""The original report's numbers (report/original_report.csv) beside ours.

The file is the project's own copy of the numbers of the original's Tables 1-3, its memory
section and its appendix (columns :data:`ORIGINAL_COLUMNS`). From it:

* :func:`comparison` - Tables 1-3 of the original, value by value, beside our mean ± std, n
  and the difference (ours - original), with the cells our grid lacks said plainly;
* :func:`table3_swaps` - Table 3 values that are another model's Table 1 values (its acl_sup
  fine-tuning row printed scibert's numbers as roberta-base's), found by comparing the tables;
* :func:`memory_claims` - the 70 GB sum, component by component, beside helpers.memory's
  accounting at the original's own settings (fp32, sequence 512, batch 8, AdamW) and ours.
"""

from __future__ import annotations

import csv
import math
import os
from typing import Any

import pandas as pd

from helpers.memory import GIB, account
from helpers.run.config import short_model_name
from helpers.settings import PROJECT_ROOT, project_path

from .formats import MISSING, fmt_mean_std, signed
from .load import LABELS, METHOD_SHORT, AnalysisError, display_model, order_datasets
from .stats import aggregate
from .table import Table

ORIGINAL_COLUMNS = ("table", "model", "dataset", "method", "metric", "value", "unit", "note")
DEFAULT_ORIGINAL_CSV = PROJECT_ROOT / "report" / "original_report.csv"
RESULT_TABLES = ("Table 1", "Table 2", "Table 3")
#: The original's own training settings (appendix and memory section), for the memory answer.
ORIGINAL_MEMORY_SETTINGS = {"precision": "fp32", "seq": 512, "batch": 8}
#: Marks a value of the original that is another model's number (see :func:`table3_swaps`).
SWAP_MARK = "‡"


def load_original(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """report/original_report.csv; ``value`` numeric where it is a number (``text`` keeps it)."""
    path = project_path(path) or DEFAULT_ORIGINAL_CSV
    if not path.is_file():
        raise AnalysisError(f"{path} not found: it holds the original report's numbers "
                            f"(columns {', '.join(ORIGINAL_COLUMNS)}).")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    missing = sorted(set(ORIGINAL_COLUMNS) - set(rows[0])) if rows else []
    if missing:
        raise AnalysisError(f"{path}: columns must be {', '.join(ORIGINAL_COLUMNS)}; "
                            f"missing {missing}.")
    df = pd.DataFrame(rows, columns=list(ORIGINAL_COLUMNS)).fillna("")
    df["text"] = df["value"]
    df["value"] = pd.to_numeric(df["value"].replace("", math.nan), errors="coerce")
    return df


def appendix(original: pd.DataFrame) -> dict[str, str]:
    """The original's appendix: parameter -> value as written."""
    rows = original[original["table"] == "appendix"]
    return dict(zip(rows["metric"], rows["text"], strict=True))


def claim(original: pd.DataFrame, metric: str, method: str = "full") -> float:
    """One number of the original's memory section (e.g. ``peak_memory_gb``)."""
    rows = original[(original["table"] == "memory") & (original["metric"] == metric)
                    & (original["method"] == method)]
    if rows.empty:
        raise AnalysisError(f"report/original_report.csv has no memory row {metric!r} "
                            f"for method {method!r}.")
    return float(rows["value"].iloc[0])


def table3_swaps(original: pd.DataFrame) -> pd.DataFrame:
    """Table 3 full fine-tuning values equal to a *different* model's Table 1-2 value.

    Columns: dataset, metric, printed (Table 3), model (printed as), own (that model's Table
    1-2 value), source_model (whose value it is). Found by comparison, not typed in.
    """
    t3 = original[(original["table"] == "Table 3") & (original["method"] == "full")]
    t12 = original[original["table"].isin(("Table 1", "Table 2"))]
    rows = []
    for _, r in t3.iterrows():
        if r["metric"] == "train_loss":
            continue
        same = t12[(t12["dataset"] == r["dataset"]) & (t12["metric"] == r["metric"])]
        own = same.loc[same["model"] == r["model"], "value"]
        if own.empty or math.isclose(own.iloc[0], r["value"]):
            continue
        other = same[(same["model"] != r["model"]) & same["value"].map(
            lambda v, x=r["value"]: math.isclose(v, x))]
        if not other.empty:
            rows.append({"dataset": r["dataset"], "metric": r["metric"],
                         "printed": r["value"], "model": r["model"], "own": own.iloc[0],
                         "source_model": other["model"].iloc[0]})
    return pd.DataFrame(rows, columns=["dataset", "metric", "printed", "model", "own",
                                       "source_model"])


def _ours(summary: pd.DataFrame, model: str, dataset: str, method: str,
          metric: str) -> tuple[float, float, int]:
    sub = summary[(summary["model"].map(short_model_name) == short_model_name(model))
                  & (summary["dataset"] == dataset) & (summary["method"] == method)]
    stats = aggregate(sub, ["dataset"], (metric,)) if not sub.empty else None
    if stats is None or stats.empty:
        return math.nan, math.nan, 0
    r = stats.iloc[0]
    return r[f"{metric}_mean"], r[f"{metric}_std"], int(r["n"])


def stand_in(summary: pd.DataFrame, model: str, dataset: str, method: str) -> str | None:
    """Our model for an original cell: the same model, else the one model this grid ran there.

    A CPU grid runs MiniLM-L6 instead of the report's models; its values then stand in, and
    the table says which model they come from.
    """
    if (summary["model"].map(short_model_name) == short_model_name(model)).any():
        return model
    ran = summary[(summary["dataset"] == dataset) & (summary["method"] == method)]
    models = sorted(set(ran["model"]))
    return models[0] if len(models) == 1 else None


def comparison(summary: pd.DataFrame, original: pd.DataFrame) -> Table:
    """The original's Tables 1-3, value by value, beside ours: mean ± std, n, ours - original.

    Micro-F1 is left out (it equals accuracy in single-label classification; a note says so).
    Ours is the same model's runs; where this grid lacks that model its one model on that
    dataset and method stands in (named in the "ours from" column); otherwise "not run". The
    original's values that are another model's number carry :data:`SWAP_MARK`.
    """
    swaps = table3_swaps(original)
    swapped = {(r["dataset"], r["metric"]) for _, r in swaps.iterrows()}
    rows, shown = [], []
    res = original[original["table"].isin(RESULT_TABLES) & (original["metric"] != "micro_f1")]
    for _, r in res.iterrows():
        ours_model = stand_in(summary, r["model"], r["dataset"], r["method"])
        mean, std, n = (_ours(summary, ours_model, r["dataset"], r["method"], r["metric"])
                        if ours_model else (math.nan, math.nan, 0))
        diff = mean - r["value"] if n else math.nan
        flag = r["table"] == "Table 3" and r["method"] == "full" and \
            (r["dataset"], r["metric"]) in swapped
        rows.append({"table": r["table"], "model": r["model"], "dataset": r["dataset"],
                     "method": r["method"], "metric": r["metric"], "original": r["value"],
                     "ours_model": ours_model or "", "ours_mean": mean, "ours_std": std,
                     "n": n, "difference": diff, "swapped": flag})
        shown.append({
            "table": f"{r['table']}: {r['dataset']}",
            "run": f"{display_model(r['model'])}, {METHOD_SHORT.get(r['method'], r['method'])}",
            "metric": LABELS.get(r["metric"], r["metric"]),
            "original": f"{r['value']:.4f}" + (f" {SWAP_MARK}" if flag else ""),
            "ours from": (display_model(ours_model) if ours_model else MISSING),
            "ours": fmt_mean_std(mean, std, n) if n else "not run",
            "n": n,
            "ours − original": signed(diff),
        })
    notes = ["Micro-F1 is left out: in single-label classification it equals accuracy, in the "
             "original's tables and in ours."]
    if not swaps.empty:
        swaps = swaps[swaps["metric"] != "micro_f1"]
        parts = [f"{LABELS[s['metric']]} {s['printed']:.4f} is "
                 f"{display_model(s['source_model'])}'s {s['dataset']} value in its Table 1 "
                 f"({display_model(s['model'])}'s own: {s['own']:.4f})"
                 for _, s in swaps.iterrows()]
        notes.append(f"{SWAP_MARK} Printed in the original's Table 3 as "
                     f"{display_model(swaps['model'].iloc[0])}'s, but "
                     + "; ".join(parts) + ".")
    data = pd.DataFrame(rows)
    shown = pd.DataFrame(shown)
    table = Table(data=data, display=shown, group="table", notes=notes,
                  widths={"run": 17, "metric": 10, "original": 9, "ours from": 11,
                          "ours": 14, "n": 3, "ours − original": 10})
    if not uses_stand_ins(table):  # every value is the same model's: the column repeats "run"
        table.display = shown.drop(columns="ours from")
    return table


def uses_stand_ins(table: Table) -> bool:
    """Whether any "ours" value of :func:`comparison` comes from a different model."""
    d = table.data
    return bool(((d["ours_model"] != "") & (d["ours_model"].map(short_model_name)
                                            != d["model"].map(short_model_name))).any())


def mean_abs_difference(table: Table) -> tuple[float, int]:
    """Mean |ours - original| over the compared accuracy / macro-F1 values, and their count.

    The original's values that are another model's number are left out.
    """
    d = table.data
    d = d[d["metric"].isin(("accuracy", "macro_f1")) & (d["n"] > 0) & ~d["swapped"]]
    return (float(d["difference"].abs().mean()) if len(d) else math.nan, len(d))


# ----------------------------------------------------------------------------- memory
def accounting(model: str = "roberta-base", method: str = "full", precision: str = "fp32",
               batch: int = 8, seq: int = 512, **overrides: Any) -> dict[str, Any]:
    """helpers.memory.account (fused AdamW, CUDA kernels emulated) for one setting."""
    return account(model, method, precision, batch, seq, num_labels=3, **overrides)


def memory_claims(original: pd.DataFrame, ours: dict[str, Any] | None = None,
                  at_original: dict[str, Any] | None = None) -> Table:
    """The original's 70 GB sum, part by part, beside our accounting at its settings and ours.

    ``at_original`` / ``ours``: :func:`accounting` results (computed when not given) at the
    original's settings (fp32, sequence 512, batch 8, AdamW) and at the report's (bf16
    autocast, sequence 256, batch 8).
    """
    at_original = at_original or accounting(**ORIGINAL_MEMORY_SETTINGS)
    ours = ours or accounting(precision="bf16", seq=256, batch=8)

    def gb(name: str) -> float:
        return claim(original, name)

    parts = [
        ("parameters", f"{claim(original, 'parameters_total') / 1e9:.1f}B",
         f"{at_original['parameters'] / 1e6:.1f}M", f"{ours['parameters'] / 1e6:.1f}M"),
        ("weights (fp32)", gb("weights_gb"), at_original["weights_bytes"], ours["weights_bytes"]),
        ("weights + AdamW states", gb("weights_and_adam_gb"),
         at_original["weights_bytes"] + at_original["optimizer_bytes"],
         ours["weights_bytes"] + ours["optimizer_bytes"]),
        ("gradients", gb("gradients_gb"), at_original["gradients_bytes"],
         ours["gradients_bytes"]),
        ("activations", gb("activations_gb"), at_original["activations_bytes"],
         ours["activations_bytes"]),
        ("total (peak)", gb("peak_memory_gb"), at_original["predicted_peak_bytes"],
         ours["predicted_peak_bytes"]),
    ]
    shown, data = [], []
    for name, claimed, a, b in parts:
        if isinstance(claimed, str):
            shown.append({"component": name, "original (as printed)": claimed,
                          "ours, original's settings": a, "ours, report's settings": b})
            continue
        shown.append({"component": name,
                      "original (as printed)": f"{claimed:g} GB = {claimed * 1e9 / GIB:.1f} GiB",
                      "ours, original's settings": f"{a / GIB:.2f} GiB",
                      "ours, report's settings": f"{b / GIB:.2f} GiB"})
        data.append({"component": name, "original_gb": claimed,
                     "ours_original_settings_bytes": a, "ours_report_settings_bytes": b})
    notes = ["The original's sum adds the 12 GB of weights twice (once inside the tripled 36 GB, "
             "once more); ours: weights + AdamW states + max(activations, gradients) + "
             "temporaries, because backward frees activations as it writes gradients. "
             "Original's settings: fp32, sequence 512, batch 8, AdamW; report's: bf16 autocast "
             "with fp32 master weights, sequence 256, batch 8."]
    return Table(data=pd.DataFrame(data), display=pd.DataFrame(shown), notes=notes,
                 widths={"component": 22, "original (as printed)": 22,
                         "ours, original's settings": 16, "ours, report's settings": 16})


def best_in_table1(original: pd.DataFrame, dataset: str, metric: str = "accuracy") -> str:
    """The model with the best value of ``metric`` in the original's Table 1-2 on ``dataset``."""
    rows = original[original["table"].isin(("Table 1", "Table 2"))
                    & (original["dataset"] == dataset) & (original["metric"] == metric)]
    return str(rows.loc[rows["value"].idxmax(), "model"]) if not rows.empty else ""


def original_value(original: pd.DataFrame, table: str, model: str, dataset: str, method: str,
                   metric: str) -> float:
    rows = original[(original["table"] == table) & (original["model"] == model)
                    & (original["dataset"] == dataset) & (original["method"] == method)
                    & (original["metric"] == metric)]
    return float(rows["value"].iloc[0]) if not rows.empty else math.nan


def datasets(original: pd.DataFrame) -> list[str]:
    return order_datasets(original.loc[original["table"].isin(RESULT_TABLES), "dataset"])


__all__ = [
    "DEFAULT_ORIGINAL_CSV", "ORIGINAL_COLUMNS", "ORIGINAL_MEMORY_SETTINGS", "SWAP_MARK",
    "accounting", "appendix", "best_in_table1", "claim", "comparison", "datasets",
    "load_original", "mean_abs_difference", "memory_claims", "original_value", "stand_in",
    "table3_swaps", "uses_stand_ins",
]

"""The original report's numbers (report/original_report.csv) beside ours.

The file is the project's own copy of the numbers of the original's Tables 1-3, its memory
section and its appendix (columns :data:`ORIGINAL_COLUMNS`). From it:

* :func:`comparison` - Tables 1-3 of the original, value by value, beside our mean ± std, n
  and the difference (ours - original), with the cells our grid lacks said plainly;
* :func:`table3_swaps` - Table 3 values that are another model's Table 1 values (its acl_sup
  fine-tuning row printed scibert's numbers as roberta-base's), found by comparing the tables;
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import pandas as pd

from helpers.memory import GIB
from helpers.run.config import short_model_name
from helpers.settings import PROJECT_ROOT, project_path

from .formats import MISSING, fmt, is_missing, signed
from .load import (
    LABELS,
    METHOD_SHORT,
    AnalysisError,
    display_model,
    order_datasets,
    read_csv_rows,
)
from .stats import aggregate
from .table import Cell, Table

ORIGINAL_COLUMNS = ("table", "model", "dataset", "method", "metric", "value", "unit", "note")
DEFAULT_ORIGINAL_CSV = PROJECT_ROOT / "report" / "original_report.csv"
RESULT_TABLES = ("Table 1", "Table 2", "Table 3")
#: The original's own training settings (appendix and memory section), for the memory answer.
ORIGINAL_MEMORY_SETTINGS = {"precision": "fp32", "seq": 512, "batch": 8}
#: Marks a value of the original that is another model's number (see :func:`table3_swaps`).
SWAP_MARK = "‡"


def load_original(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """report/original_report.csv; ``value`` numeric where it is a number (``text`` keeps it)."""
    rows = read_csv_rows(project_path(path) or DEFAULT_ORIGINAL_CSV, ORIGINAL_COLUMNS,
                         "the original report's numbers")
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


@dataclass(frozen=True)
class MemoryClaims:
    """The original's memory section: what the corrections and the memory section both answer."""

    parameters: float  # its parameter count of roberta-base
    full_gb: float  # its peak for full fine-tuning (GB, 1e9 bytes)
    adapter_gb: float  # its adapter figure (GB)
    parts: tuple[float, ...]  # its sum: weights, weights + Adam, gradients, activations (GB)

    @property
    def full_gib(self) -> float:
        return self.full_gb * 1e9 / GIB

    @property
    def billions(self) -> float:
        """Its parameter count in billions."""
        return self.parameters / 1e9


def memory_claims(original: pd.DataFrame) -> MemoryClaims:
    return MemoryClaims(claim(original, "parameters_total"), claim(original, "peak_memory_gb"),
                        claim(original, "peak_memory_gb", "adapter"),
                        tuple(claim(original, k) for k in ("weights_gb", "weights_and_adam_gb",
                                                           "gradients_gb", "activations_gb")))


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


#: The comparison's column groups: the original's runs, as (model, method).
COMPARED_RUNS = (("roberta-base", "full"), ("bert-base-uncased", "full"),
                 ("allenai/scibert_scivocab_uncased", "full"), ("roberta-base", "adapter"))
COMPARED_METRICS = ("train_loss", "accuracy", "macro_f1")


def comparison(summary: pd.DataFrame, original: pd.DataFrame) -> Table:
    """The original's Tables 1-3, value by value, beside ours: mean ± std, n, ours - original.

    ``data`` has one row per value of the original (micro-F1 left out: it equals accuracy in
    single-label classification). The page shows it compactly: a row group per dataset, a row
    per metric, and per run of the original (model and method) three columns: the original's
    value, our mean and the difference. Table 3's full fine-tuning rows repeat Table 1's
    RoBERTa-base except where it printed another model's number (:data:`SWAP_MARK`, in the
    notes). Where this grid lacks the model, its one model on that dataset and method stands
    in (:func:`stand_in`; the notes say so).
    """
    swaps = table3_swaps(original)
    swapped = {(r["dataset"], r["metric"]) for _, r in swaps.iterrows()}
    rows = []
    res = original[original["table"].isin(RESULT_TABLES) & (original["metric"] != "micro_f1")]
    for _, r in res.iterrows():
        ours_model = stand_in(summary, r["model"], r["dataset"], r["method"])
        mean, std, n = (_ours(summary, ours_model, r["dataset"], r["method"], r["metric"])
                        if ours_model else (math.nan, math.nan, 0))
        flag = r["table"] == "Table 3" and r["method"] == "full" and \
            (r["dataset"], r["metric"]) in swapped
        rows.append({"table": r["table"], "model": r["model"], "dataset": r["dataset"],
                     "method": r["method"], "metric": r["metric"], "original": r["value"],
                     "ours_model": ours_model or "", "ours_mean": mean, "ours_std": std,
                     "n": n, "difference": mean - r["value"] if n else math.nan,
                     "swapped": flag})
    data = pd.DataFrame(rows)
    one = one_model(data)
    runs = list(COMPARED_RUNS)
    if one:  # one "ours" column per method, before the original's runs of that method
        runs = [r for meth in dict.fromkeys(m for _, m in COMPARED_RUNS)
                for r in ((one, f"ours:{meth}"), *((m, x) for m, x in COMPARED_RUNS
                                                    if x == meth))]
    spanners = {_run_label(m, meth.removeprefix("ours:"))
                + (" (ours)" if meth.startswith("ours:") else ""): _columns(m, meth, one)
                for m, meth in runs}
    names = {"original": "orig.", "ours": "ours", "diff": "diff."}
    return Table(data=data, layout=lambda d: _compact(d, one), group="dataset",
                 cells={"dataset": "dataset", "metric": lambda r: LABELS[r["metric"]],
                        **{c: _compared(c) for cols in spanners.values() for c in cols}},
                 notes=_comparison_notes(data, swaps),
                 widths={"metric": 11, **{c: 7.4 for cols in spanners.values() for c in cols}},
                 labels={c: "mean" if c.startswith("ours:") else names[c.rsplit("/", 1)[1]]
                         for cols in spanners.values() for c in cols},
                 spanners=spanners)


def one_model(data: pd.DataFrame) -> str:
    """The one model of ours beside all the original's runs ("" when there are several): a
    build of one model shows its value once per method, not once per model of the original."""
    models = set(data["ours_model"]) - {""} if not data.empty else set()
    return next(iter(models)) if len(models) == 1 else ""


def _columns(model: str, method: str, one: str = "") -> list[str]:
    """The page's columns of one run of the original: its value, ours, ours - original (with
    :func:`one_model`, ours is a column of its own, ``ours:<method>``, and a run has two)."""
    if method.startswith("ours:"):
        return [f"{method}/ours"]
    key = f"{short_model_name(model)}/{method}"
    return [f"{key}/original", f"{key}/diff"] if one else \
        [f"{key}/original", f"{key}/ours", f"{key}/diff"]


def _run_label(model: str, method: str) -> str:
    return display_model(model) + ("" if method == "full" else f" {METHOD_SHORT[method]}")


def _compact(data: pd.DataFrame, one: str = "") -> pd.DataFrame:
    """One row per dataset x metric; per run of the original (:func:`_columns`) its value,
    ours, ours - original and our n (none where the original has no such value), or with
    :func:`one_model` our value once per method; Table 3's full fine-tuning rows are Table 1's
    runs, so they are not repeated."""
    shown = []
    data = data[~((data["table"] == "Table 3") & (data["method"] == "full"))] \
        if not data.empty else data
    for dataset in order_datasets(data["dataset"]) if not data.empty else []:
        for metric in COMPARED_METRICS:
            row = {"dataset": dataset, "metric": metric}
            for method in dict.fromkeys(m for _, m in COMPARED_RUNS):
                cell = data[(data["dataset"] == dataset) & (data["metric"] == metric)
                            & (data["method"] == method)]
                if one:
                    ran = cell[cell["n"] > 0]
                    row[_columns(one, f"ours:{method}")[0]] = \
                        ran["ours_mean"].iloc[0] if len(ran) else None
                for model in (m for m, x in COMPARED_RUNS if x == method):
                    hit = cell[cell["model"] == model]
                    if len(hit):
                        key = _columns(model, method)[0].rsplit("/", 1)[0]
                        h = hit.iloc[0]
                        row.update({f"{key}/original": h["original"],
                                    f"{key}/ours": h["ours_mean"],
                                    f"{key}/diff": h["difference"], f"{key}/n": h["n"]})
            shown.append(row)
    return pd.DataFrame(shown)


def _compared(column: str) -> Cell:
    """A comparison cell: the original's value (4 decimals, as printed), ours ("not run"
    without runs) or the difference; "—" where the original has no such value."""
    key, part = column.rsplit("/", 1)
    if key.startswith("ours:"):
        return lambda r: "not run" if is_missing(r.get(column)) else fmt(r[column])

    def text(r: dict) -> str:
        if is_missing(r.get(f"{key}/n")):
            return MISSING
        if part == "original":
            return f"{r[column]:.4f}"
        if part == "ours":
            return fmt(r[column]) if r[f"{key}/n"] else "not run"
        return signed(r[column])
    return text


def _comparison_notes(data: pd.DataFrame, swaps: pd.DataFrame) -> list[str]:
    ns = sorted({int(n) for n in data["n"] if n}) if not data.empty else []
    one = one_model(data)
    ours = f"{display_model(one)} (ours) mean" if one else "ours"
    notes = [f"orig.: the original's value as printed; {ours}: our mean test value at each "
             "run's best validation epoch" + (f" over {', '.join(map(str, ns))} seeds"
                                              if ns else "")
             + (", once per method" if one else "")
             + "; diff.: ours − original. Micro-F1 is left out (it equals accuracy in "
             "single-label classification, in the original's tables and in ours)."]
    stand = sorted({display_model(m) for m, o in zip(data["ours_model"], data["model"],
                                                     strict=True)
                    if m and short_model_name(m) != short_model_name(o)}) \
        if not data.empty else []
    if stand:
        notes.append(f"This grid did not run the original's models: every \"ours\" value is "
                     f"{', '.join(stand)}'s on the same dataset and method, a stand-in that "
                     f"shows the distance, not a replication.")
    if not swaps.empty:
        s = swaps[swaps["metric"] != "micro_f1"]
        parts = [f"{LABELS[r['metric']]} {r['printed']:.4f}" for _, r in s.iterrows()]
        notes.append(f"{SWAP_MARK} Not shown: the original's Table 3 repeats its Table 1 "
                     f"{display_model(s['model'].iloc[0])} values for full fine-tuning, "
                     f"except on {s['dataset'].iloc[0]}, where its {' and '.join(parts)} are "
                     f"{display_model(s['source_model'].iloc[0])}'s (see the corrections).")
    return notes


def uses_stand_ins(table: Table) -> bool:
    """Whether any "ours" value of :func:`comparison` comes from a different model."""
    d = table.data
    return bool(((d["ours_model"] != "") & (d["ours_model"].map(short_model_name)
                                            != d["model"].map(short_model_name))).any())


def compared_values(table: Table) -> pd.DataFrame:
    """The accuracy and macro-F1 values of the original with runs of ours, each value once.

    Table 3's full fine-tuning rows are left out: they repeat Table 1's (counting them would
    count those values twice) or are another model's number (:func:`table3_swaps`).
    """
    d = table.data
    if d.empty:
        return d
    return d[d["metric"].isin(("accuracy", "macro_f1")) & (d["n"] > 0) & ~d["swapped"]
             & ~((d["table"] == "Table 3") & (d["method"] == "full"))]


def mean_abs_difference(table: Table) -> tuple[float, int]:
    """Mean |ours - original| over :func:`compared_values`, and their count."""
    d = compared_values(table)
    return (float(d["difference"].abs().mean()) if len(d) else math.nan, len(d))


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
    "appendix", "best_in_table1", "claim", "compared_values", "comparison", "datasets",
    "load_original", "mean_abs_difference", "one_model", "original_value", "stand_in",
    "table3_swaps", "uses_stand_ins",
]

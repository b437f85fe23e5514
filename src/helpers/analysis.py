"""From the runs folder to the report's tables and facts (the analysis notebook calls these).

Everything the report states is computed here from ``runs/<run_id>/`` (see :mod:`helpers.runs`)
so that the text stays true when the data changes:

* :func:`load_runs` - every history row of every complete run, tidy, with the run's identity;
* :func:`run_summary` - one row per run from ``metrics.json`` (+ config, memory, env);
* table builders returning a :class:`Table` (numeric frame for the CSV, formatted frame for
  the report, rendered as Markdown so that HTML and Typst PDF show the same thing);
* the narrative built on these lives in :mod:`helpers.narrative`, synthetic runs for tests in
  :mod:`helpers.synthetic`.

Partial grids are normal (a grid still running, a CPU grid with fewer cells): a missing cell
shows :data:`MISSING` and every aggregate shows its ``n``.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from . import runs
from .catalog import REPORT_MODELS, lookup
from .config import short_model_name
from .methods import LABELS as METHOD_LABELS
from .methods import METHODS
from .settings import PROJECT_ROOT, project_path

#: Shown where a cell has no runs (or a value is not known).
MISSING = "—"
#: Shown for the original report's numbers that our copy of it does not contain.
NOT_PUBLISHED = "not published in our copy"

#: The report's datasets and models, in the report's order (others follow alphabetically).
REPORT_DATASETS = ("restaurant_sup", "acl_sup", "agnews_sup")
SCORES = ("accuracy", "macro_f1", "micro_f1")
TABLE_METRICS = ("train_loss", *SCORES)
LOWER_IS_BETTER = frozenset({"train_loss", "loss", "final_train_loss"})
LABELS = {
    "train_loss": "train loss",
    "accuracy": "accuracy",
    "macro_f1": "macro-F1",
    "micro_f1": "micro-F1",
    "loss": "loss",
    "parameters_total": "parameters",
    "peak_memory_gb": "peak GPU memory (GB)",
    "learning_rate": "learning rate",
}

#: config.json fields that say where or how fast a run went, not what it was.
NOT_HYPERPARAMETERS = ("run_id", "runs_dir", "data_dir", "torch_threads", "save_best_checkpoint",
                       "pad_to_multiple_of", "torch_compile")

ORIGINAL_COLUMNS = ("table", "model", "dataset", "method", "metric", "value", "note")
DEFAULT_ORIGINAL_CSV = PROJECT_ROOT / "report" / "original_report.csv"


class AnalysisError(ValueError):
    """The runs folder or an input file can't be analysed; the message says how to fix it."""


# ----------------------------------------------------------------------------- paths, names
def display_model(name: str) -> str:
    """The catalog's label (helpers.catalog), else the last part of the name."""
    info = lookup(name)
    return info.label if info else short_model_name(name)


def _order(values: Iterable[str], preferred: Sequence[str]) -> list[str]:
    values = list(dict.fromkeys(values))
    rank = {v: i for i, v in enumerate(preferred)}
    return sorted(values, key=lambda v: (rank.get(v, len(rank)), str(v)))


def order_models(models: Iterable[str]) -> list[str]:
    return _order(models, REPORT_MODELS)


def order_datasets(datasets: Iterable[str]) -> list[str]:
    return _order(datasets, REPORT_DATASETS)


# ----------------------------------------------------------------------------- loading
def _run_folders(runs_dir: str | os.PathLike) -> list[Path]:
    root = project_path(runs_dir)
    if root is None or not root.is_dir():
        raise AnalysisError(
            f"runs folder {root} does not exist: run a grid first "
            f"(`make report`, or `python -m helpers grid run params/cpu.yaml`), or pass the "
            f"folder that holds the runs as runs_dir.")
    return runs.complete_runs(root)


def _read(folder: Path, name: str) -> dict[str, Any]:
    try:
        return json.loads((folder / name).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise AnalysisError(f"{folder / name}: can't read it ({e}); delete the run folder "
                            f"{folder.name} and run it again.") from None


def _identity(folder: Path, config: dict[str, Any]) -> dict[str, Any]:
    missing = [k for k in ("model", "dataset", "method", "seed") if k not in config]
    if missing:
        raise AnalysisError(f"{folder / 'config.json'} lacks {missing}: not a run written by "
                            f"helpers.training; delete the folder or run it again.")
    return {"run_id": config.get("run_id", folder.name), "model": config["model"],
            "dataset": config["dataset"], "method": config["method"],
            "seed": int(config["seed"])}


HISTORY_ID_COLUMNS = ("run_id", "model", "dataset", "method", "seed")


def load_runs(runs_dir: str | os.PathLike) -> pd.DataFrame:
    """Every history row of every complete run: one row per run x step x split x metric.

    Columns: run_id, model, dataset, method, seed (from config.json), step, epoch, split,
    metric, value (history.csv). Runs in progress or failed are not read (see helpers.runs).
    """
    frames = []
    for folder in _run_folders(runs_dir):
        ident = _identity(folder, _read(folder, "config.json"))
        hist = pd.read_csv(folder / "history.csv")
        missing = [c for c in runs.HISTORY_COLUMNS if c not in hist.columns]
        if missing:
            raise AnalysisError(f"{folder / 'history.csv'} lacks columns {missing}.")
        for key, value in ident.items():
            hist[key] = value
        frames.append(hist[[*HISTORY_ID_COLUMNS, *runs.HISTORY_COLUMNS]])
    if not frames:
        return pd.DataFrame(columns=[*HISTORY_ID_COLUMNS, *runs.HISTORY_COLUMNS])
    return pd.concat(frames, ignore_index=True)


#: config.json fields copied into the run summary (the rest is in :func:`load_configs`).
SUMMARY_CONFIG_FIELDS = ("learning_rate", "num_train_epochs", "per_device_train_batch_size",
                         "max_length", "max_train_samples", "max_eval_samples")


def run_summary(runs_dir: str | os.PathLike) -> pd.DataFrame:
    """One row per complete run: best-epoch test (and validation) metrics and run facts.

    Columns: run_id, model, dataset, method, seed, best_epoch, accuracy, macro_f1, micro_f1,
    test_loss (test split at the best validation epoch), val_accuracy, val_macro_f1,
    val_micro_f1, val_loss, train_loss, final_train_loss, params_total, params_trainable,
    trainable_share, num_train_samples, num_test_samples, wall_time_s, train_time_s, eval_time_s,
    train_samples_per_s, device, device_name, precision, peak_cuda_allocated_bytes,
    peak_cuda_reserved_bytes, peak_rss_bytes, and :data:`SUMMARY_CONFIG_FIELDS`.
    """
    rows = []
    for folder in _run_folders(runs_dir):
        config = _read(folder, "config.json")
        metrics = _read(folder, "metrics.json")
        memory = _read(folder, "memory.json")
        env = _read(folder, "env.json")
        row = _identity(folder, config)
        test, val = metrics.get("test") or {}, metrics.get("validation") or {}
        params = metrics.get("parameters") or memory.get("parameters") or {}
        evals = metrics.get("num_eval_samples") or {}
        row.update(
            best_epoch=metrics.get("best_epoch"),
            **{m: test.get(m) for m in SCORES}, test_loss=test.get("loss"),
            **{f"val_{m}": val.get(m) for m in (*SCORES, "loss")},
            train_loss=metrics.get("train_loss"),
            final_train_loss=metrics.get("final_train_loss"),
            params_total=params.get("total"), params_trainable=params.get("trainable"),
            num_train_samples=metrics.get("num_train_samples"),
            num_test_samples=evals.get("test") if isinstance(evals, dict) else None,
            wall_time_s=metrics.get("wall_time_s"), train_time_s=metrics.get("train_time_s"),
            eval_time_s=(metrics.get("timings") or {}).get("eval_s"),
            train_samples_per_s=metrics.get("train_samples_per_s"),
            device=memory.get("device") or env.get("device"),
            device_name=memory.get("device_name") or env.get("device_name"),
            precision=memory.get("precision") or env.get("precision"),
            peak_cuda_allocated_bytes=memory.get("peak_cuda_allocated_bytes"),
            peak_cuda_reserved_bytes=memory.get("peak_cuda_reserved_bytes"),
            peak_rss_bytes=memory.get("peak_rss_bytes"),
            **{k: config.get(k) for k in SUMMARY_CONFIG_FIELDS},
        )
        rows.append(row)
    columns = [*HISTORY_ID_COLUMNS, "best_epoch", *SCORES, "test_loss",
               *(f"val_{m}" for m in (*SCORES, "loss")), "train_loss", "final_train_loss",
               "params_total", "params_trainable", "num_train_samples", "num_test_samples",
               "wall_time_s", "train_time_s", "eval_time_s", "train_samples_per_s", "device",
               "device_name",
               "precision", "peak_cuda_allocated_bytes", "peak_cuda_reserved_bytes",
               "peak_rss_bytes", *SUMMARY_CONFIG_FIELDS]
    df = pd.DataFrame(rows, columns=columns)
    numeric = [*SCORES, "test_loss", "train_loss", "final_train_loss", "params_total",
               "params_trainable", "peak_cuda_allocated_bytes", "peak_cuda_reserved_bytes",
               "peak_rss_bytes", *(f"val_{m}" for m in (*SCORES, "loss"))]
    df[numeric] = df[numeric].apply(pd.to_numeric, errors="coerce")
    df["trainable_share"] = df["params_trainable"] / df["params_total"]
    return df


def load_configs(runs_dir: str | os.PathLike) -> pd.DataFrame:
    """Every run's config.json as one row (the values a run actually used)."""
    rows = [_read(folder, "config.json") for folder in _run_folders(runs_dir)]
    return pd.DataFrame(rows)


def load_envs(runs_dir: str | os.PathLike) -> pd.DataFrame:
    """Every run's env.json (versions, device) as one row, with its run_id."""
    rows = []
    for folder in _run_folders(runs_dir):
        env = _read(folder, "env.json")
        packages = env.pop("packages", None) or {}
        rows.append({"run_id": folder.name, **env,
                     **{f"pkg_{k}": v for k, v in packages.items()}})
    return pd.DataFrame(rows)


def require_runs(summary: pd.DataFrame, runs_dir: str | os.PathLike) -> None:
    """Stop the notebook early, with the fix, when there is nothing to analyse."""
    if summary.empty:
        raise AnalysisError(
            f"no complete runs in {project_path(runs_dir)}: run a grid first (`make report` "
            f"runs params/cpu.yaml; `python -m helpers grid run GRID` runs one), then re-run "
            f"this notebook.")


# ----------------------------------------------------------------------------- formatting
def fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return f"{value:.{digits}f}"


def fmt_mean_std(mean: float, std: float, n: int, digits: int = 3) -> str:
    """``0.912 ± 0.010``; one seed has no spread, so it shows the mean alone (n says why)."""
    if not n or mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return MISSING
    if n < 2 or std is None or math.isnan(std):
        return fmt(mean, digits)
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def fmt_count(n: Any) -> str:
    """Parameter counts as in the text: 124.6M, 894.7K."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return MISSING
    n = float(n)
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def fmt_share(share: Any) -> str:
    if share is None or (isinstance(share, float) and math.isnan(share)):
        return MISSING
    pct = 100 * float(share)
    return f"{pct:.0f}%" if pct >= 99.95 else f"{pct:.2f}%"


def fmt_value(value: Any) -> str:
    """A hyperparameter value as a person writes it (2e-05, query, value)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(fmt_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {fmt_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def bold(text: str) -> str:
    return f"**{text}**" if text and text != MISSING else text


@dataclass
class Table:
    """A report table: ``data`` (numeric, what the CSV holds) and ``display`` (formatted)."""

    data: pd.DataFrame
    display: pd.DataFrame

    def markdown(self) -> str:
        if self.display.empty:
            return "_No runs for this table yet._"
        return self.display.to_markdown(index=False)

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def save(self, output_dir: str | os.PathLike, name: str) -> Path:
        """Write ``<output_dir>/tables/<name>.csv`` (the numeric data) and return its path."""
        return save_csv(self.data, output_dir, name)


def save_csv(frame: pd.DataFrame, output_dir: str | os.PathLike, name: str) -> Path:
    """Write ``<output_dir>/tables/<name>.csv`` and return its path."""
    folder = Path(output_dir) / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    frame.to_csv(path, index=False)
    return path


# ----------------------------------------------------------------------------- statistics
def aggregate(summary: pd.DataFrame, by: Sequence[str],
              metrics: Sequence[str] = TABLE_METRICS) -> pd.DataFrame:
    """Mean, sample std (ddof=1) and n (runs) per group, for each metric."""
    rows = []
    for keys, group in summary.groupby(list(by), sort=False, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        row = dict(zip(by, keys, strict=True))
        row["n"] = int(group["run_id"].nunique())
        for m in metrics:
            values = group[m].dropna().astype(float)
            row[f"{m}_mean"] = values.mean() if len(values) else math.nan
            row[f"{m}_std"] = values.std(ddof=1) if len(values) > 1 else math.nan
        rows.append(row)
    columns = [*by, "n", *(f"{m}_{s}" for m in metrics for s in ("mean", "std"))]
    return pd.DataFrame(rows, columns=columns)


def best_rows(means: pd.Series, metric: str) -> set[Any]:
    """Index labels holding the best mean (ties all count): max, or min for losses."""
    values = means.dropna()
    if values.empty:
        return set()
    target = values.min() if metric in LOWER_IS_BETTER else values.max()
    return set(values.index[values == target])


def _stat_cells(stats: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Formatted ``mean ± std`` columns, best per column in bold (index = stats index)."""
    out = pd.DataFrame(index=stats.index)
    for m in metrics:
        cells = [fmt_mean_std(r[f"{m}_mean"], r[f"{m}_std"], r["n"]) for _, r in stats.iterrows()]
        best = best_rows(stats[f"{m}_mean"].where(stats["n"] > 0), m)
        out[LABELS.get(m, m)] = [bold(c) if i in best else c
                                 for i, c in zip(stats.index, cells, strict=True)]
    return out


# ----------------------------------------------------------------------------- tables
def results_table(summary: pd.DataFrame, dataset: str, method: str = "full",
                  models: Sequence[str] | None = None,
                  metrics: Sequence[str] = TABLE_METRICS) -> Table:
    """Tables 1-2: for one dataset, models x train loss / accuracy / macro-F1 / micro-F1.

    Test metrics are taken at each run's best *validation* epoch; mean ± std over seeds with
    n shown; the best mean per column is bold. ``models`` defaults to every model run with
    ``method`` on any dataset, so a model missing on this dataset shows up as a row of "—".
    """
    sub = summary[summary["method"] == method]
    models = list(models) if models is not None else order_models(sub["model"])
    stats = aggregate(sub[sub["dataset"] == dataset], ["model"], metrics).set_index("model")
    stats = stats.reindex(models)
    stats["n"] = stats["n"].fillna(0).astype(int)
    shown = _stat_cells(stats, metrics)
    shown.insert(0, "model", [display_model(m) for m in models])
    shown["n"] = stats["n"].to_numpy()
    data = stats.reset_index().rename(columns={"index": "model"})
    data.insert(0, "dataset", dataset)
    data.insert(2, "method", method)
    return Table(data=data, display=shown.reset_index(drop=True))


def peft_model(summary: pd.DataFrame) -> str | None:
    """The model the PEFT comparison is about: the one with most adapter/LoRA runs."""
    peft = summary[summary["method"] != "full"]
    if peft.empty:
        return None
    counts = peft["model"].value_counts()
    top = counts[counts == counts.max()].index
    return order_models(top)[0]


def peft_table(summary: pd.DataFrame, model: str | None = None,
               datasets: Sequence[str] | None = None,
               metrics: Sequence[str] = TABLE_METRICS) -> Table:
    """Table 3: full fine-tuning vs adapter vs LoRA for one model, per dataset.

    Adds the trainable parameters and their share of the model's parameters; the best mean
    per dataset and column is bold.
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
        shown.insert(0, "method", [METHOD_LABELS[m] for m in METHODS])
        shown.insert(0, "dataset", dataset)
        shown["trainable params"] = [fmt_count(v) for v in stats["params_trainable"]]
        shown["trainable share"] = [fmt_share(v) for v in stats["trainable_share"]]
        shown["n"] = stats["n"].to_numpy()
        data = stats.reset_index().rename(columns={"index": "method"})
        data.insert(0, "dataset", dataset)
        data_parts.append(data)
        shown_parts.append(shown.reset_index(drop=True))
    data = pd.concat(data_parts, ignore_index=True) if data_parts else pd.DataFrame()
    if not data.empty:
        data.insert(0, "model", model)
    shown = pd.concat(shown_parts, ignore_index=True) if shown_parts else pd.DataFrame()
    return Table(data=data, display=shown)


def per_seed(summary: pd.DataFrame, metrics: Sequence[str] = SCORES) -> pd.DataFrame:
    """One row per run x metric: the points behind every mean (what the seed plot shows)."""
    keep = [*HISTORY_ID_COLUMNS, *metrics]
    long = summary[keep].melt(id_vars=list(HISTORY_ID_COLUMNS), var_name="metric",
                              value_name="value")
    return long.sort_values(["dataset", "model", "method", "metric", "seed"],
                            key=_sort_key).reset_index(drop=True)


def _sort_key(col: pd.Series) -> pd.Series:
    if col.name == "dataset":
        rank = {d: i for i, d in enumerate(REPORT_DATASETS)}
        return col.map(lambda d: f"{rank.get(d, len(rank)):02d}{d}")
    if col.name == "model":
        rank = {m: i for i, m in enumerate(REPORT_MODELS)}
        return col.map(lambda m: f"{rank.get(m, len(rank)):02d}{m}")
    if col.name == "method":
        order = list(METHODS)
        return col.map(lambda m: order.index(m) if m in order else len(order))
    return col


def paired_differences(summary: pd.DataFrame, model: str | None = None,
                       metrics: Sequence[str] = ("accuracy", "macro_f1")) -> pd.DataFrame:
    """Per seed: PEFT minus full fine-tuning of the same model on the same dataset.

    Runs are paired by seed (several runs of one seed, e.g. two configs, are averaged).
    Columns: dataset, method, seed, metric, full, peft, difference.
    """
    model = model or peft_model(summary)
    sub = summary[summary["model"] == model]
    means = sub.groupby(["dataset", "method", "seed"])[list(metrics)].mean().reset_index()
    full = means[means["method"] == "full"].drop(columns="method")
    rows = []
    for method in (m for m in METHODS if m != "full"):
        other = means[means["method"] == method].drop(columns="method")
        paired = full.merge(other, on=["dataset", "seed"], suffixes=("_full", "_peft"))
        for _, r in paired.iterrows():
            for m in metrics:
                rows.append({"dataset": r["dataset"], "method": method, "seed": r["seed"],
                             "metric": m, "full": r[f"{m}_full"], "peft": r[f"{m}_peft"],
                             "difference": r[f"{m}_peft"] - r[f"{m}_full"]})
    return pd.DataFrame(rows, columns=["dataset", "method", "seed", "metric", "full", "peft",
                                       "difference"])


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval of the mean (scipy); NaN below two values."""
    from scipy import stats

    values = [float(v) for v in values if not math.isnan(float(v))]
    n = len(values)
    if n < 2:
        return math.nan, math.nan
    mean = sum(values) / n
    if max(values) == min(values):  # no spread: the interval is the value itself
        return mean, mean
    sem = stats.sem(values)
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
    return float(low), float(high)


def paired_comparison(summary: pd.DataFrame, model: str | None = None,
                      metrics: Sequence[str] = ("accuracy", "macro_f1"),
                      confidence: float = 0.95) -> Table:
    """Full fine-tuning vs each PEFT method, paired by seed: mean difference with a t-interval.

    A difference is PEFT minus full (negative = PEFT worse). n is the number of seeds both
    methods ran; below two seeds there is no interval ("—").
    """
    model = model or peft_model(summary)
    diffs = paired_differences(summary, model, metrics)
    rows = []
    datasets = order_datasets(summary.loc[summary["model"] == model, "dataset"])
    for dataset in datasets:
        for method in (m for m in METHODS if m != "full"):
            for m in metrics:
                d = diffs[(diffs["dataset"] == dataset) & (diffs["method"] == method)
                          & (diffs["metric"] == m)]["difference"]
                n = len(d)
                low, high = t_interval(d.tolist(), confidence)
                rows.append({"model": model, "dataset": dataset, "method": method, "metric": m,
                             "n": n, "mean_difference": d.mean() if n else math.nan,
                             "std_difference": d.std(ddof=1) if n > 1 else math.nan,
                             "ci_low": low, "ci_high": high, "confidence": confidence})
    data = pd.DataFrame(rows, columns=["model", "dataset", "method", "metric", "n",
                                       "mean_difference", "std_difference", "ci_low",
                                       "ci_high", "confidence"])
    pct = f"{confidence:.0%}"
    shown = pd.DataFrame({
        "dataset": data["dataset"],
        "method": [METHOD_LABELS.get(m, m) for m in data["method"]],
        "metric": [LABELS.get(m, m) for m in data["metric"]],
        "PEFT − full": [_signed(v) for v in data["mean_difference"]],
        f"{pct} CI": [f"[{_signed(lo)}, {_signed(hi)}]" if not math.isnan(lo) else MISSING
                      for lo, hi in zip(data["ci_low"], data["ci_high"], strict=True)],
        "n (paired seeds)": data["n"],
    })
    return Table(data=data, display=shown)


def _signed(value: float, digits: int = 3) -> str:
    if value is None or math.isnan(value):
        return MISSING
    return f"{value:+.{digits}f}".replace("-", "−")


def memory_overview(summary: pd.DataFrame) -> Table:
    """Peak memory per model and method as the runs recorded it (largest over datasets).

    What this grid's runs measured, beside helpers.memory's accounting at the report's settings.
    """
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
        data = data.sort_values(["model", "method"], key=_sort_key).reset_index(drop=True)
    shown = pd.DataFrame({
        "model": [display_model(m) for m in data["model"]],
        "method": [METHOD_LABELS.get(m, m) for m in data["method"]],
        "device": [f"{d} ({n})" if n else str(d)
                   for d, n in zip(data["device"], data["device_name"], strict=True)],
        "trainable params": [fmt_count(v) for v in data["params_trainable"]],
        "peak CUDA allocated": [_gb(v) for v in data["peak_cuda_allocated_bytes"]],
        "peak RSS": [_gb(v) for v in data["peak_rss_bytes"]],
        "n": data["n"],
    })
    return Table(data=data, display=shown)


def _gb(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return f"{float(value) / 1e9:.2f} GB"


# ----------------------------------------------------------------------------- grid / appendix
def read_grid_file(grid_file: str | os.PathLike | None) -> dict[str, Any] | None:
    """The grid YAML as a dict, or None when there is none (the appendix then uses configs)."""
    path = project_path(grid_file)
    if path is None or not path.is_file():
        return None
    import yaml

    try:
        from .grid import parse_value  # reads 2e-5 as a float like the grid runner does

        loaded = parse_value(path.read_text())
    except ImportError:  # pragma: no cover - grid module is part of the package
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise AnalysisError(f"{path}: not valid YAML ({e}).") from None
    if not isinstance(loaded, dict):
        raise AnalysisError(f"{path}: a grid file is a mapping (defaults, methods, matrix).")
    return loaded


def grid_table(grid_file: str | os.PathLike | None) -> Table:
    """The grid file as written: description, defaults, per-method overrides, matrix blocks.

    Tolerant of the format: unknown top-level keys are listed as they are, so the appendix
    never silently drops a setting.
    """
    spec = read_grid_file(grid_file)
    rows: list[dict[str, str]] = []
    if spec is None:
        rows.append({"section": "grid", "parameter": "file",
                     "value": f"{grid_file} not found; see the values used below"})
    else:
        for key, value in spec.items():
            if key == "description":
                continue
            if key == "defaults" and isinstance(value, dict):
                rows += [{"section": "defaults", "parameter": k, "value": fmt_value(v)}
                         for k, v in value.items()]
            elif key == "methods" and isinstance(value, dict):
                for method, overrides in value.items():
                    items = overrides.items() if isinstance(overrides, dict) else [("", overrides)]
                    rows += [{"section": f"method {method}", "parameter": k,
                              "value": fmt_value(v)} for k, v in items]
            elif key == "matrix":
                blocks = value if isinstance(value, list) else [value]
                for i, block in enumerate(blocks):
                    section = f"matrix[{i}]" if len(blocks) > 1 else "matrix"
                    items = block.items() if isinstance(block, dict) else [("", block)]
                    rows += [{"section": section, "parameter": k, "value": fmt_value(v)}
                             for k, v in items]
            else:
                rows.append({"section": str(key), "parameter": "", "value": fmt_value(value)})
    data = pd.DataFrame(rows, columns=["section", "parameter", "value"])
    return Table(data=data, display=data.copy())


def hyperparameter_table(configs: pd.DataFrame) -> Table:
    """The values the runs used (config.json, resolved), per method: never typed by hand.

    One row per parameter, one column per method; several values (the grid's axes) are
    listed; adapter_*/lora_* settings show "n/a" for the methods that don't use them.
    """
    methods = [m for m in METHODS if not configs.empty and m in set(configs["method"])]
    params = [c for c in configs.columns if c not in NOT_HYPERPARAMETERS]
    rows, data_rows = [], []
    owned = {f for m in METHODS.values() for f in m.fields}
    for p in params:
        row = {"parameter": p}
        for method in methods:
            if p in owned and p not in METHODS[method].fields:
                row[method] = "n/a"
                continue
            values = configs.loc[configs["method"] == method, p].tolist()
            distinct = sorted({fmt_value(v) for v in values}, key=_natural)
            row[method] = ", ".join(distinct)
            data_rows += [{"parameter": p, "method": method, "value": v} for v in distinct]
        rows.append(row)
    shown = pd.DataFrame(rows, columns=["parameter", *methods])
    shown = shown.rename(columns={m: METHOD_LABELS[m] for m in methods})
    data = pd.DataFrame(data_rows, columns=["parameter", "method", "value"])
    return Table(data=data, display=shown)


def _natural(text: str) -> tuple:
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def planned_values(summary: pd.DataFrame, grid_file: str | os.PathLike | None, column: str,
                   method: str | None = None) -> list[str]:
    """Values of ``column`` the grid plans or the runs have (for ``method``), report order.

    Tables list these as rows, so a planned cell that has not run yet shows "—", n=0.
    """
    have = summary if method is None else summary[summary["method"] == method]
    values = list(have[column])
    planned = expected_cells(grid_file)
    if planned is not None:
        planned = planned if method is None else planned[planned["method"] == method]
        values += list(planned[column])
    order = {"model": order_models, "dataset": order_datasets}.get(column)
    return order(values) if order else sorted(set(values))


def expected_cells(grid_file: str | os.PathLike | None) -> pd.DataFrame | None:
    """(model, dataset, method, seed) of every run the grid plans, or None if unreadable.

    Lets a partial grid show which cells are still missing rather than silently shrinking.
    """
    path = project_path(grid_file)
    if path is None or not path.is_file():
        return None
    try:
        from .grid import load_grid

        grid = load_grid(path)
    except Exception:  # a grid the runner can't read is reported by the runner itself
        return None
    return pd.DataFrame([{"model": r.config.model, "dataset": r.config.dataset,
                          "method": r.config.method, "seed": r.config.seed}
                         for r in grid.runs])


# ----------------------------------------------------------------------------- original report
def load_original(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The original report's published numbers (report/original_report.csv).

    ``value`` is empty where our copy of the original does not have the number.
    """
    path = project_path(path) or DEFAULT_ORIGINAL_CSV
    if not path.is_file():
        raise AnalysisError(f"{path} not found: it holds the original report's numbers "
                            f"(columns {', '.join(ORIGINAL_COLUMNS)}).")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and set(ORIGINAL_COLUMNS) - set(rows[0]):
        raise AnalysisError(f"{path}: columns must be {', '.join(ORIGINAL_COLUMNS)}; "
                            f"missing {sorted(set(ORIGINAL_COLUMNS) - set(rows[0]))}.")
    df = pd.DataFrame(rows, columns=list(ORIGINAL_COLUMNS)).fillna("")
    df["value"] = pd.to_numeric(df["value"].replace("", math.nan), errors="coerce")
    return df


def _ours(summary: pd.DataFrame, row: pd.Series) -> tuple[float, float, int]:
    """Our mean, std and n for one row of the original's numbers."""
    sub = summary
    for key in ("model", "dataset", "method"):
        if row[key]:
            want = short_model_name(row[key]) if key == "model" else row[key]
            have = sub[key].map(short_model_name) if key == "model" else sub[key]
            sub = sub[have == want]
    metric = row["metric"]
    if metric == "peak_memory_gb":
        values = sub["peak_cuda_allocated_bytes"].dropna() / 1e9
    elif metric == "parameters_total":
        values = sub["params_total"].dropna()
    elif metric == "learning_rate":
        values = pd.to_numeric(sub["learning_rate"], errors="coerce").dropna()
    elif metric in sub.columns:
        values = pd.to_numeric(sub[metric], errors="coerce").dropna()
    else:
        return math.nan, math.nan, 0
    n = len(values)
    return (values.mean() if n else math.nan, values.std(ddof=1) if n > 1 else math.nan, n)


def original_comparison(summary: pd.DataFrame, original: pd.DataFrame,
                        counted: dict[tuple[str, str], float] | None = None) -> Table:
    """The original report's numbers beside ours (same model/dataset/method), with differences.

    Metrics: accuracy, macro_f1, micro_f1, train_loss (test at best validation epoch),
    parameters_total, peak_memory_gb (peak CUDA allocated), learning_rate. ``counted`` gives
    values that need no run, keyed by (metric, model): e.g. a parameter count from the
    architecture, or the memory benchmark's peak; they fill in where the runs have none
    (n stays 0: no run behind them).
    """
    rows, shown = [], []
    for _, r in original.iterrows():
        mean, std, n = _ours(summary, r)
        extra = (counted or {}).get((r["metric"], r["model"]))
        if not n and extra is not None:
            mean, std = float(extra), math.nan
        has = bool(n) or extra is not None
        diff = mean - r["value"] if has and not math.isnan(r["value"]) else math.nan
        rows.append({**{k: r[k] for k in ORIGINAL_COLUMNS}, "ours_mean": mean,
                     "ours_std": std, "n": n, "difference": diff})
        big = r["metric"] in ("parameters_total",)
        shown.append({
            "source": r["table"],
            "model": display_model(r["model"]) if r["model"] else "all",
            "dataset": r["dataset"] or "all",
            "method": r["method"] or "all",
            "metric": LABELS.get(r["metric"], r["metric"]),
            "original": (NOT_PUBLISHED if math.isnan(r["value"])
                         else fmt_count(r["value"]) if big else fmt_value(float(r["value"]))),
            "ours": (fmt_count(mean) if big and has else
                     fmt_value(float(mean)) if has and (r["metric"] == "learning_rate" or not n)
                     else fmt_mean_std(mean, std, n)),
            "difference": (MISSING if math.isnan(diff)
                           else _signed(diff / 1e9, 2) + "B" if big
                           else f"{diff:+g}".replace("-", "−") if r["metric"] == "learning_rate"
                           else _signed(diff)),
            "n": n,
            "note": r["note"],
        })
    data = pd.DataFrame(rows, columns=[*ORIGINAL_COLUMNS, "ours_mean", "ours_std", "n",
                                       "difference"])
    return Table(data=data, display=pd.DataFrame(shown))


__all__ = [
    "AnalysisError", "MISSING", "NOT_PUBLISHED", "Table", "aggregate",
    "expected_cells", "grid_table",
    "hyperparameter_table", "load_configs", "load_envs", "load_original", "load_runs",
    "memory_overview", "original_comparison", "paired_comparison", "paired_differences",
    "peft_model", "peft_table", "per_seed", "planned_values", "project_path", "require_runs",
    "results_table", "run_summary", "save_csv", "t_interval",
]

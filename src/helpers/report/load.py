"""From the runs folder to tidy frames: who ran what, with which settings and scores.

Everything the report states is computed from the complete runs of a RunStore, so the text
stays true when the data changes: :func:`load_runs` (history, one row per run x step x split x
metric), :func:`run_summary` (one run a row), :func:`load_configs` (its values).

Partial grids are normal (a grid still running, a CPU grid with fewer cells): a missing cell
shows ``—`` and every aggregate (:mod:`helpers.report.stats`) carries its ``n``.

A report is of its grid: given ``run_ids`` (:func:`grid_run_ids`, from the grid file the runs
came from) these read exactly those runs; other complete runs in the folder are left out and
named in the banner (:func:`runs_left_out`), never averaged in. Without a grid every complete
run is read, and :func:`require_runs` refuses a (model, dataset, method) cell holding runs of
several configurations (every field of the run id but the seed, e.g. two learning rates), or
runs of one configuration trained on different data or model files (helpers.run.provenance).
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from helpers.grid.spec import GridError, load_grid
from helpers.run import predictions as run_predictions
from helpers.run import provenance, sources
from helpers.run.catalog import REPORT_MODELS, lookup
from helpers.run.config import NON_IDENTITY_FIELDS, config_family, short_model_name
from helpers.run.legacy import legacy_note
from helpers.run.methods import METHODS
from helpers.run.records import HISTORY_COLUMNS
from helpers.run.store import RunStore
from helpers.settings import project_path

SCORES = ("accuracy", "macro_f1", "micro_f1")
TABLE_METRICS = ("train_loss", *SCORES)
LABELS = {
    "train_loss": "train loss",
    "accuracy": "accuracy",
    "macro_f1": "macro-F1",
    "micro_f1": "micro-F1",
    "loss": "loss",
    "parameters_total": "parameters",
    "peak_memory_gb": "peak GPU memory",
    "learning_rate": "learning rate",
}


class _MethodShort(Mapping[str, str]):
    """A live name -> column-sized label view of :data:`METHODS` (tables, figure ticks)."""

    def __getitem__(self, name: str) -> str:
        return METHODS[name].short or METHODS[name].label

    def __iter__(self) -> Iterator[str]:
        return iter(METHODS)

    def __len__(self) -> int:
        return len(METHODS)


METHOD_SHORT: Mapping[str, str] = _MethodShort()

#: config.json fields that say where or how fast a run went, not what it was: those the run
#: id leaves out, except the eval batch size, which the original's appendix lists.
NOT_HYPERPARAMETERS = ("run_id", *(f for f in NON_IDENTITY_FIELDS
                                   if f != "per_device_eval_batch_size"))


class AnalysisError(ValueError):
    """The runs folder or an input file can't be analysed; the message says how to fix it."""


def read_csv_rows(path: Path, columns: Sequence[str], holds: str) -> list[dict[str, str]]:
    """The rows of one of the report's own CSV inputs, or an error naming the file, what it
    ``holds`` and the columns it needs."""
    if not path.is_file():
        raise AnalysisError(f"{path} not found: it holds {holds} (columns {', '.join(columns)}).")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    missing = sorted(set(columns) - set(rows[0])) if rows else []
    if missing:
        raise AnalysisError(f"{path}: columns must be {', '.join(columns)}; missing {missing}.")
    return rows


# ----------------------------------------------------------------------------- paths, names
def display_model(name: str) -> str:
    """The catalog's label (helpers.run.catalog: RoBERTa-base, SciBERT, MiniLM-L6), else the last
    part of the name."""
    info = lookup(name)
    return info.label if info else short_model_name(name)


def _order(values: Iterable[str], preferred: Sequence[str]) -> list[str]:
    values = list(dict.fromkeys(values))
    rank = {v: i for i, v in enumerate(preferred)}
    return sorted(values, key=lambda v: (rank.get(v, len(rank)), str(v)))


def order_models(models: Iterable[str]) -> list[str]:
    return _order(models, REPORT_MODELS)


def order_datasets(datasets: Iterable[str]) -> list[str]:
    """In the data registry's order (helpers.run.sources)."""
    return sources.order(list(datasets))


# ----------------------------------------------------------------------------- loading
def _run_folders(store: RunStore, run_ids: Iterable[str] | None = None) -> list[Path]:
    if not isinstance(store, RunStore):  # a folder typed in a notebook: say what to pass
        raise TypeError(f"expected a RunStore, got {store!r}: pass RunStore.at({str(store)!r})")
    if not store.root.is_dir():
        raise AnalysisError(f"runs folder {store} does not exist: run a grid first (`make "
                            f"report`, or `python -m helpers grid run params/cpu.yaml`), or "
                            f"pass the folder that holds the runs as runs_dir.")
    folders = store.complete_runs()
    if run_ids is None:
        return folders
    wanted = set(run_ids)
    return [f for f in folders if f.name in wanted]


def grid_run_ids(grid_file: str | os.PathLike | None,
                 overrides: Mapping[str, Any] | None = None) -> list[str] | None:
    """The run ids of the grid file (with the ``--set`` overrides its ``grid run`` got), or
    None without a grid (then every complete run is read)."""
    path = project_path(grid_file)
    if path is None:
        return None
    if not path.is_file():
        raise AnalysisError(f"grid file {path} does not exist: pass the grid the runs come "
                            f"from (report --grid, the notebook's grid), or none to read "
                            f"every run in the folder.")
    try:
        grid = _load_grid(str(path), path.stat().st_mtime_ns,
                          json.dumps(dict(overrides or {}), sort_keys=True))
    except GridError as e:
        raise AnalysisError(str(e)) from None
    return [r.run_id for r in grid.runs]


@lru_cache(maxsize=8)
def _load_grid(path: str, mtime_ns: int, overrides: str):
    """A grid file read once per version and overrides (the notebook asks several times)."""
    return load_grid(path, overrides=json.loads(overrides))


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
                            f"helpers.run.training; delete the folder or run it again.")
    return {"run_id": config.get("run_id", folder.name), "model": config["model"],
            "dataset": config["dataset"], "method": config["method"],
            "seed": int(config["seed"])}


HISTORY_ID_COLUMNS = ("run_id", "model", "dataset", "method", "seed")


def load_runs(store: RunStore,
              run_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """Every history row of every complete run (of ``run_ids``, when given): one row per run
    x step x split x metric.

    Columns: run_id, model, dataset, method, seed (from config.json), step, epoch, split,
    metric, value (history.csv). Runs in progress or failed are not read (see helpers.run.store).
    """
    frames = []
    for folder in _run_folders(store, run_ids):
        ident = _identity(folder, _read(folder, "config.json"))
        hist = pd.read_csv(folder / "history.csv")
        missing = [c for c in HISTORY_COLUMNS if c not in hist.columns]
        if missing:
            raise AnalysisError(f"{folder / 'history.csv'} lacks columns {missing}.")
        for key, value in ident.items():
            hist[key] = value
        frames.append(hist[[*HISTORY_ID_COLUMNS, *HISTORY_COLUMNS]])
    if not frames:
        return pd.DataFrame(columns=[*HISTORY_ID_COLUMNS, *HISTORY_COLUMNS])
    return pd.concat(frames, ignore_index=True)


def predictions(store: RunStore,
                run_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """Per-example predictions (helpers.run.predictions) of every complete run (of ``run_ids``):
    run_id, split, epoch, example, label, prediction; :mod:`.examples` picks the epoch."""
    columns = ["run_id", *run_predictions.COLUMNS]
    frames = [pd.read_csv(f / run_predictions.FILE, usecols=columns[1:]).assign(run_id=f.name)
              for f in _run_folders(store, run_ids)]
    return (pd.concat(frames, ignore_index=True) if frames
            else pd.DataFrame(columns=columns))[columns]


#: config.json fields copied into the run summary (the rest is in :func:`load_configs`).
SUMMARY_CONFIG_FIELDS = ("learning_rate", "num_train_epochs", "per_device_train_batch_size",
                         "max_length", "max_train_samples", "max_eval_samples")


def run_summary(store: RunStore,
                run_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per complete run (of ``run_ids``, when given): best-epoch test (and
    validation) metrics and run facts.

    Columns: run_id, model, dataset, method, seed, best_epoch, accuracy, macro_f1, micro_f1,
    test_loss (test split at the best validation epoch), val_accuracy, val_macro_f1,
    val_micro_f1, val_loss, train_loss, final_train_loss, params_total, params_trainable,
    trainable_share, num_train_samples, num_test_samples, wall_time_s, train_time_s, eval_time_s,
    train_samples_per_s, device, device_name, precision, peak_cuda_allocated_bytes,
    peak_cuda_reserved_bytes, peak_rss_bytes, and :data:`SUMMARY_CONFIG_FIELDS`.
    """
    rows = []
    for folder in _run_folders(store, run_ids):
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
               "device_name", "precision", "peak_cuda_allocated_bytes", "peak_cuda_reserved_bytes",
               "peak_rss_bytes", *SUMMARY_CONFIG_FIELDS]
    df = pd.DataFrame(rows, columns=columns)
    numeric = [*SCORES, "test_loss", "train_loss", "final_train_loss", "params_total",
               "params_trainable", "peak_cuda_allocated_bytes", "peak_cuda_reserved_bytes",
               "peak_rss_bytes", *(f"val_{m}" for m in (*SCORES, "loss"))]
    df[numeric] = df[numeric].apply(pd.to_numeric, errors="coerce")
    df["trainable_share"] = df["params_trainable"] / df["params_total"]
    return df


def load_configs(store: RunStore, run_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """Every run's config.json as one row (the values a run actually used)."""
    rows = [_read(folder, "config.json") for folder in _run_folders(store, run_ids)]
    return pd.DataFrame(rows)


def runs_left_out(summary: pd.DataFrame, store: RunStore) -> list[str]:
    """The folder's complete runs not in ``summary`` (not of the grid): named, never averaged."""
    ours = set(summary["run_id"])
    return [f.name for f in store.complete_runs() if f.name not in ours]


def require_runs(summary: pd.DataFrame, store: RunStore,
                 run_ids: Sequence[str] | None = None,
                 grid: str | os.PathLike | None = None) -> None:
    """Stop the notebook early, with the fix, when there is nothing to analyse (naming the
    failed runs of ``run_ids``), when a (model, dataset, method) cell holds several
    configurations, or runs of one configuration trained on different data (module docstring)."""
    root, name = store.root, f"the grid {Path(grid).name}" if grid else "this grid"
    if summary.empty and (failed := store.failures_note(run_ids)):
        raise AnalysisError(f"no complete runs of {name} in {root}; {failed}. See `nlpdl-report "
                            f"grid status {grid or 'GRID'} --runs-dir {root}`; fix the cause, "
                            f"then run the grid again.")
    if summary.empty:
        others = runs_left_out(summary, store)
        raise AnalysisError(
            f"no complete runs of {name} in {root}"
            + (f" ({len(others)} other complete runs there are of other configurations, "
               f"e.g. {others[0]}: give the grid they come from, and the --set values its "
               f"grid run had)" if others else "")
            + ": run the grid first (`make report` runs params/cpu.yaml; `python -m helpers "
              "grid run GRID` runs one), then re-run this notebook."
            + (f" {note}" if (note := legacy_note(store)) else ""))
    folders = [store.path(rid) for rid in summary["run_id"]]
    configs = {f.name: _read(f, "config.json") for f in folders}
    _one_config_per_cell(configs)
    _one_data_per_config(configs, {f.name: provenance.read(f) for f in folders})


def _one_config_per_cell(configs: dict[str, dict[str, Any]]) -> None:
    cells: dict[tuple, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    keys: dict[str, dict[str, Any]] = {}
    for rid, config in configs.items():
        key = config_family(config)
        blob = json.dumps(key, sort_keys=True, default=str)
        keys[blob] = key
        cells[(config["model"], config["dataset"], config["method"])][blob].append(rid)
    for cell, groups in cells.items():
        if len(groups) > 1:
            differ = [f for f in keys[next(iter(groups))]
                      if len({repr(keys[b][f]) for b in groups}) > 1]
            described = "; ".join(", ".join(f"{f}={keys[b][f]!r}" for f in differ)
                                  + f" ({len(ids)} runs: {', '.join(ids)})"
                                  for b, ids in groups.items())
            raise AnalysisError(
                f"the cell {' / '.join(cell)} holds runs of {len(groups)} configurations, "
                f"and the report's tables have one row per model, dataset and method: "
                f"{described}. Averaging them would mix configurations: give the grid the "
                f"runs come from (report --grid, the notebook's grid), which reads its runs "
                f"only, with one configuration per cell; or keep each configuration's runs "
                f"in a runs folder of its own.")


def _one_data_per_config(configs: dict[str, dict[str, Any]],
                         records: dict[str, dict[str, Any] | None]) -> None:
    groups: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for rid, config in configs.items():
        if records[rid] is not None:  # runs from before provenance: unknown, not compared
            groups[json.dumps(config_family(config), sort_keys=True, default=str)][rid] = \
                records[rid]
    for recs in groups.values():
        differ = provenance.differing_files(recs)
        if differ:
            described = "; ".join(f"{rid} (" + ", ".join(f"{n} {d[:12]}" for n, d in
                                                         files.items()) + ")"
                                  for rid, files in differ.items())
            raise AnalysisError(
                f"runs of one configuration were trained on different data or model files, "
                f"and the report would average them: {described}. Rerun those trained on the "
                f"old files (`python -m helpers grid plan GRID` shows them as stale, "
                f"`python -m helpers grid run GRID --rerun-stale` reruns them), or move them "
                f"to another runs folder.")


def peft_model(summary: pd.DataFrame) -> str | None:
    """The model the PEFT comparison is about: the one with most adapter/LoRA runs."""
    peft = summary[summary["method"] != "full"]
    if peft.empty:
        return None
    counts = peft["model"].value_counts()
    top = counts[counts == counts.max()].index
    return order_models(top)[0]


# ----------------------------------------------------------------------------- planned cells
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
        grid = _load_grid(str(path), path.stat().st_mtime_ns, "{}")
    except Exception:  # a grid the runner can't read is reported by the runner itself
        return None
    return pd.DataFrame([{"model": r.config.model, "dataset": r.config.dataset,
                          "method": r.config.method, "seed": r.config.seed}
                         for r in grid.runs])

"""What a grid's runs are now: complete, running, corrupt, failed or pending, and the rows
``grid plan`` / ``grid status`` print.

The runs folder is the truth (:class:`helpers.run.store.RunStore`); a claim
(:mod:`helpers.grid.claims`) or a live ``.tmp`` writer makes a run ``running``. A complete run
whose recorded data files (:mod:`helpers.run.provenance`) have different content now is
``stale``: still a result, rerun only by ``grid run --rerun-stale``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from typing import Any

from tabulate import tabulate

from helpers.run import provenance
from helpers.run.records import read_json
from helpers.run.store import RunStore

from . import claims
from .spec import FIELD_NAMES, Grid, GridRun

STATES = ("complete", "running", "corrupt", "failed", "pending", "stale")


def run_state(store: RunStore, run_id: str) -> str:
    """``complete`` (the folder is the truth), ``running`` (claimed, or being written),
    ``corrupt`` (a folder whose records don't validate), ``failed`` or ``pending``."""
    if store.is_complete(run_id):
        return "complete"
    if claims.holder(store, run_id) is not None or store.staging_alive(run_id):
        return "running"
    if store.path(run_id).exists():
        return "corrupt"
    if store.failure_path(run_id).is_file():
        return "failed"
    return "pending"


def stale_files(store: RunStore, run: GridRun) -> list[str]:
    """The data files a complete run recorded whose content is different now (empty when
    they match, or when the run recorded none: written before provenance was recorded)."""
    rec = provenance.read(store.path(run.run_id))
    if rec is None:
        return []
    return provenance.changed_files(rec, run.config.data_dir)


def unknown_provenance(grid: Grid) -> list[str]:
    """The grid's complete runs that recorded no data files (written before they did)."""
    return [r.run_id for r in grid.runs if grid.store.is_complete(r.run_id)
            and provenance.read(grid.store.path(r.run_id)) is None]


def provenance_note(grid: Grid) -> str:
    """One line for ``plan``/``status`` about the runs whose data can't be checked, or ""."""
    unknown = unknown_provenance(grid)
    if not unknown:
        return ""
    return (f"{len(unknown)} complete run(s) were written before runs recorded the digests of "
            f"their data files (unknown provenance): they count as complete and are not "
            f"checked for stale data.")


def varying_fields(grid: Grid) -> list[str]:
    """The fields whose resolved value differs between rows (the columns worth showing)."""
    if not grid.runs:
        return []
    dicts = [r.config.identity() for r in grid.runs]
    keys = [k for k in FIELD_NAMES if any(k in d for d in dicts)]
    out = [k for k in keys if len({repr(d[k]) for d in dicts if k in d}) > 1]
    for k in ("model", "dataset", "method", "seed"):  # always show the axes of the report
        if k not in out:
            out.append(k)
    return sorted(out, key=keys.index)


def plan_rows(grid: Grid) -> list[dict[str, Any]]:
    """One dict per config: run id, state and the varying fields."""
    cols = varying_fields(grid)
    rows = []
    for r in grid.runs:
        values = r.config.resolved().to_dict()
        row = {"run_id": r.run_id, "state": run_state(grid.store, r.run_id),
               **{c: values[c] for c in cols}}
        changed = stale_files(grid.store, r) if row["state"] == "complete" else []
        if changed:
            row.update(state="stale", changed=", ".join(changed))
        rows.append(row)
    return rows


#: The scores ``grid status`` shows per run: test and validation, at the best validation epoch.
STATUS_METRICS = ("accuracy", "macro_f1", "micro_f1")


def status_rows(grid: Grid) -> list[dict[str, Any]]:
    """Plan rows plus the run's scores (test and validation at the best validation epoch),
    best epoch, wall time, and for a run that is not complete what is wrong or who holds it."""
    rows = []
    for row in plan_rows(grid):
        row = {**row, **{f"{split}_{m}": None for split in ("test", "validation")
                         for m in STATUS_METRICS},
               "best_epoch": None, "wall_time_s": None, "error": ""}
        if row["state"] in ("complete", "stale"):
            m = read_json(grid.store.path(row["run_id"]) / "metrics.json")
            for split in ("test", "validation"):
                scores = m.get(split) or {}
                row.update({f"{split}_{k}": scores.get(k) for k in STATUS_METRICS})
            row.update(best_epoch=m.get("best_epoch"), wall_time_s=m.get("wall_time_s"))
        if row["state"] == "stale":
            row["error"] = (f"trained on an older {row['changed']} (changed since); "
                            f"grid run --rerun-stale reruns it")
        elif row["state"] == "failed":
            f = grid.store.read_failure(row["run_id"]) or {}
            row["error"] = f"{f.get('ename', '?')}: {str(f.get('evalue', ''))[:80]}"
        elif row["state"] == "corrupt":
            problem = grid.store.check(row["run_id"])
            row["error"] = f"{grid.store.path(row['run_id'])}: {problem} (grid run reruns it)"
        elif row["state"] == "running":
            row["error"] = claims.held_by(grid.store, row["run_id"]) or "being written"
        rows.append(row)
    return rows


def counts(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    out = dict.fromkeys(STATES, 0)
    for r in rows:
        out[r["state"]] += 1
    return out


#: ``grid plan|status --format``: a table for people, CSV and JSON for other tools.
FORMATS = ("table", "csv", "json")


def format_rows(rows: list[dict[str, Any]], fmt: str = "table") -> str:
    """The rows as a terminal table, CSV (one header line) or a JSON list of objects."""
    if fmt == "json":
        return json.dumps(rows, indent=1, default=str)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["run_id", "state"],
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _csv_cell(v) for k, v in r.items()} for r in rows)
        return out.getvalue().rstrip("\n")
    if not rows:
        return "(no configs)"
    hidden = ("validation_", "test_micro_f1")  # a terminal's width; CSV and JSON have them all
    shown = [{k: v for k, v in r.items() if not k.startswith(hidden)} for r in rows]
    return tabulate(shown, headers="keys", floatfmt=".4g", missingval="-")


def _csv_cell(value: Any) -> Any:
    """Lists as YAML-like text (``[query, value]``), None as an empty cell."""
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return "" if value is None else value

"""Choosing hyper-parameters on validation: a sweep grid's runs -> the values a grid should use.

Per (model, dataset, method) cell of a sweep (``params/cpu-sweep.yaml``), the fields that vary
within the cell besides the seed (the learning rate, or LoRA's rank if a sweep varies it) are
the candidates; the chosen candidate has the highest *mean validation macro-F1 over its seeds*
(ties: the first in the sweep file's order). Only metrics.json's ``validation`` object is read
(:func:`validation_scores`), never a test score: the test set chooses nothing.
``grid select SWEEP --check GRID`` says whether GRID's configs use the chosen values.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from helpers.run.config import NON_IDENTITY_FIELDS
from helpers.run.records import read_json

from .spec import Grid

CELL = ("model", "dataset", "method")
#: What selection ranks by, and what else the table shows (validation only).
METRIC = "macro_f1"
SHOWN = ("macro_f1", "accuracy")
RULE = ("the value with the highest mean validation macro-F1 over its seeds, per model, "
        "dataset and method")


def swept_fields(grid: Grid) -> list[str]:
    """Identity fields taking several values within one (model, dataset, method) cell."""
    cells: dict[tuple, list[dict[str, Any]]] = {}
    for r in grid.runs:
        d = r.config.resolved().to_dict()
        cells.setdefault(tuple(d[k] for k in CELL), []).append(d)
    skip = {*CELL, "seed", *NON_IDENTITY_FIELDS}
    fields = {f for rows in cells.values() for f in rows[0]
              if f not in skip and len({json.dumps(r[f], default=str) for r in rows}) > 1}
    return sorted(fields)


def validation_scores(grid: Grid) -> pd.DataFrame:
    """One row per run of ``grid`` (in its store): cell, seed, swept fields, ``complete`` and
    the validation scores ``val_<metric>`` of complete runs (NaN otherwise). Reads
    metrics.json's ``validation`` object and nothing else of it."""
    fields = swept_fields(grid)
    rows = []
    for order, r in enumerate(grid.runs):
        d = r.config.resolved().to_dict()
        row = {**{k: d[k] for k in (*CELL, "seed", *fields)}, "run_id": r.run_id,
               "order": order}
        row["complete"] = grid.store.is_complete(r.run_id)
        validation = read_json(grid.store.path(r.run_id) / "metrics.json")["validation"] \
            if row["complete"] else {}
        row.update({f"val_{m}": validation.get(m, math.nan) for m in SHOWN})
        rows.append(row)
    return pd.DataFrame(rows)


def candidates(scores: pd.DataFrame, fields: list[str]) -> pd.DataFrame:
    """Per cell x candidate: mean validation scores over complete seeds, seeds run and
    planned, and ``chosen``. Uses the ``val_*`` columns only (any other column is ignored)."""
    keys = [*CELL, *fields]
    val = [f"val_{m}" for m in SHOWN]
    frame = scores[[*keys, "seed", "order", "complete", *val]].copy()
    for f in fields:  # lists (LoRA's target modules) as text, so they group
        frame[f] = frame[f].map(lambda v: json.dumps(v) if isinstance(v, list) else v)
    done = frame[frame["complete"]]
    out = frame.groupby(keys, sort=False, dropna=False).agg(
        order=("order", "min"), planned=("seed", "size")).reset_index()
    means = done.groupby(keys, sort=False, dropna=False)[val].mean().reset_index()
    seeds = done.groupby(keys, sort=False, dropna=False)["seed"].size().rename("seeds")
    out = out.merge(means, on=keys, how="left").merge(seeds.reset_index(), on=keys, how="left")
    out["seeds"] = out["seeds"].fillna(0).astype(int)
    out = out.sort_values("order", kind="stable").reset_index(drop=True)
    out["chosen"] = False
    for _, cell in out.groupby(list(CELL), sort=False):
        ranked = cell[cell["seeds"] > 0].sort_values([f"val_{METRIC}", "order"],
                                                      ascending=[False, True], kind="stable")
        if not ranked.empty:
            out.loc[ranked.index[0], "chosen"] = True
    return out.drop(columns="order")


@dataclass(frozen=True)
class Mismatch:
    """A cell of the checked grid whose value is not the sweep's choice (or has no choice)."""

    cell: tuple[str, str, str]
    field: str
    uses: Any
    chosen: Any


def check(table: pd.DataFrame, fields: list[str], grid: Grid) -> list[Mismatch]:
    """Where ``grid``'s configs do not use the chosen values of :func:`candidates`'s table:
    a different value, or a cell the sweep has no complete choice for."""
    chosen = table[table["chosen"]].set_index(list(CELL))
    out = []
    for r in grid.runs:
        d = r.config.resolved().to_dict()
        cell = tuple(d[k] for k in CELL)
        for f in fields:
            uses = json.dumps(d[f]) if isinstance(d[f], list) else d[f]
            pick = chosen.loc[cell, f] if cell in chosen.index else None
            if pick is None or not _same(uses, pick):
                m = Mismatch(cell, f, uses, pick)
                if m not in out:
                    out.append(m)
    return out


def _same(a: Any, b: Any) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    except (TypeError, ValueError):
        return a == b


def incomplete(table: pd.DataFrame) -> pd.DataFrame:
    """Candidates with seeds still to run: a choice among them may change."""
    return table[table["seeds"] < table["planned"]]

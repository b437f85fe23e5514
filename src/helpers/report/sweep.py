"""The appendix's selection paragraph: how the grid's hyper-parameters were chosen (always), and
the sweep's validation scores when its runs are in the runs folder (helpers.grid.select)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from helpers.grid import select
from helpers.grid.spec import GridError, load_grid
from helpers.run.store import RunStore
from helpers.settings import project_path

from .formats import MISSING, fmt, fmt_lr
from .load import METHOD_SHORT, display_model
from .table import Table


@dataclass
class SweepFacts:
    rule: str
    sweep: str | None  # the sweep grid's path as the text names it, None without one
    planned: int = 0
    complete: int = 0
    mismatches: int = 0  # the grid's cells that do not use the sweep's choice
    table: Table | None = None

    @property
    def shown(self) -> bool:
        return self.table is not None


def sweep_of(grid_file: str | os.PathLike | None) -> Path | None:
    """``params/<name>-sweep.yaml`` beside the grid ``params/<name>.yaml``, if it exists."""
    path = project_path(grid_file) if grid_file else None
    if path is None:
        return None
    sweep = path.with_name(f"{path.stem}-sweep{path.suffix}")
    return sweep if sweep.is_file() else None


def sweep_facts(grid_file: str | os.PathLike | None, store: RunStore) -> SweepFacts:
    """The selection rule, and with the sweep's runs in ``store`` its candidates table
    (validation scores only) and whether the grid uses the choice."""
    sweep = sweep_of(grid_file)
    root = project_path(".")
    out = SweepFacts(select.RULE, None if sweep is None else
                     str(sweep.relative_to(root)) if sweep.is_relative_to(root) else str(sweep))
    if sweep is None:
        return out
    try:
        grid = load_grid(sweep, runs_dir=store)
        fields = select.swept_fields(grid)
        scores = select.validation_scores(grid)
    except GridError:
        return out
    out.planned, out.complete = len(scores), int(scores["complete"].sum())
    if not out.complete or not fields:
        return out
    table = select.candidates(scores, fields)
    out.mismatches = len(select.check(table, fields, load_grid(project_path(grid_file))))
    if (table["seeds"] == 0).any():  # e.g. only the grid's own runs: most rows would be empty
        return out
    out.table = _table(table, fields)
    return out


def _table(table: pd.DataFrame, fields: list[str]) -> Table:
    return Table(data=table, group="dataset",
                 cells={"model": lambda r: display_model(r["model"]), "dataset": "dataset",
                        "method": lambda r: METHOD_SHORT.get(r["method"], r["method"]),
                        **{f: (lambda r, f=f: fmt_lr(float(r[f])) if f == "learning_rate"
                               else str(r[f])) for f in fields},
                        "validation macro-F1": lambda r: fmt(r["val_macro_f1"]) if r["seeds"]
                        else MISSING,
                        "seeds": lambda r: f"{r['seeds']}/{r['planned']}"},
                 bold={"validation macro-F1": "chosen"},
                 widths={"model": 10, "method": 8, **{f: 9 for f in fields},
                         "validation macro-F1": 12, "seeds": 5})

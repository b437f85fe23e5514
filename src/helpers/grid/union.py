"""Several grid files run as one (``grid run params/cpu.yaml params/cpu-ablations.yaml``)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from helpers.run.store import RunStore

from .spec import Grid, GridError, GridRun, load_grid


def load_grids(paths: Sequence[str | os.PathLike], overrides: Mapping[str, Any] | None = None,
               runs_dir: str | os.PathLike | RunStore | None = None) -> Grid:
    """Several grid files as one grid (``grid run params/cpu.yaml params/cpu-ablations.yaml``):
    their runs in file order, each run id once, so a config that two files share is trained
    once and the workers are shared by all."""
    if not paths:
        raise GridError("no grid file given.")
    grids = [load_grid(p, overrides, runs_dir) for p in paths]
    roots = {g.store.root for g in grids}
    if len(roots) > 1:
        raise GridError(f"grid files {', '.join(str(g.path) for g in grids)} put their runs in "
                        f"different folders ({', '.join(map(str, sorted(roots)))}); give one "
                        f"with --runs-dir.")
    runs: dict[str, GridRun] = {}
    for g in grids:
        for r in g.runs:
            runs.setdefault(r.run_id, r)
    first = grids[0]
    if len(grids) == 1:
        return first
    return dataclasses.replace(first, runs=list(runs.values()),
                               path=Path(" + ".join(str(g.path) for g in grids)))

"""``grid plan|run|status|select``: a params/*.yaml grid of notebooks/train.ipynb runs."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from helpers.grid import mps, select, status
from helpers.grid.runner import EXECUTORS, NOTEBOOK, RunOptions, run_grid
from helpers.grid.spec import GridError, load_grid, parse_overrides
from helpers.grid.union import load_grids
from helpers.grid.watchdog import STALL_S
from helpers.grid.workers import MAX_RUNS_PER_DEVICE
from helpers.run import legacy
from helpers.run.store import RunStore
from helpers.settings import (
    KERNEL_NAME,
    PARAMS_DIR,
    PROJECT_ROOT,
    cli_path,
    not_found,
    project_path,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``grid`` subcommand."""
    p = sub.add_parser("grid", help="plan, run and inspect a grid of training runs",
                       description="Plan, run or inspect a params/*.yaml grid of "
                                   "notebooks/train.ipynb runs.")
    p.add_argument("action", choices=["plan", "run", "status", "select"],
                   help="select: per model, dataset and method of a sweep grid, the value with "
                        "the best mean validation macro-F1 (see --check)")
    p.add_argument("grid", nargs="+", help="grid file(s), e.g. params/cpu.yaml "
                   "params/cpu-ablations.yaml: several run as one grid, each config once")
    p.add_argument("--runs-dir", default=None, help="results folder (default: runs)")
    p.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="only configs with this value (repeat; same key = any of the values)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override a field in every config, e.g. --set model=/path/to/model")
    p.add_argument("--workers", type=int, default=None, help="configs run at once (default 1, "
                   "or one per --devices entry)")
    p.add_argument("--devices", default=None, help="GPU ids, e.g. 0,1: runs share each GPU "
                   "(see --runs-per-device)")
    p.add_argument("--runs-per-device", type=int, default=None,
                   help="runs at once on each GPU of --devices (default: from the GPU's memory "
                        f"and the CPU cores, at most {MAX_RUNS_PER_DEVICE})")
    p.add_argument("--mps", choices=mps.MODES, default="auto",
                   help="CUDA MPS, so that the runs sharing a GPU run their kernels side by "
                        "side (auto: a private daemon when several runs share a GPU and "
                        f"{mps.CONTROL} is installed; see helpers.grid.mps)")
    p.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                   help="end a run's kernel after this long and record the run failed "
                        "(default: no limit)")
    p.add_argument("--stall-after", type=float, default=STALL_S, metavar="SECONDS",
                   help="end a run's kernel that used no CPU for this long (stopped, hung) "
                        f"and record the run failed (default {STALL_S:g})")
    p.add_argument("--format", choices=status.FORMATS, default="table",
                   help="plan/status output: a table, or CSV / JSON (one record per run: run "
                        "id, state, the fields that vary, test and validation scores, best "
                        "epoch, wall time) for other tools")
    p.add_argument("--check", default=None, metavar="GRID",
                   help="select: exit 1 unless GRID (e.g. params/cpu.yaml) uses the chosen "
                        "values")
    p.add_argument("--force", action="store_true", help="rerun complete runs too")
    p.add_argument("--rerun-stale", action="store_true",
                   help="rerun complete runs whose data files changed since they trained "
                        "(plan shows them as stale; without this they are kept)")
    p.add_argument("--executor", choices=EXECUTORS, default="local")
    p.add_argument("--notebook", default=str(NOTEBOOK), help="the training notebook")
    p.add_argument("--kernel", default=KERNEL_NAME, help="Jupyter kernel name for papermill")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    s = p.add_argument_group("slurm (--executor slurm)")
    s.add_argument("--partition", default=None)
    s.add_argument("--time", type=int, default=240, help="minutes per run (default 240)")
    s.add_argument("--gpus-per-task", type=int, default=1)
    s.add_argument("--cpus-per-task", type=int, default=None)
    s.add_argument("--mem-gb", type=int, default=None)
    s.add_argument("--account", default=None)
    s.add_argument("--array-parallelism", type=int, default=None,
                   help="array tasks running at once (default: --workers or 1)")
    p.set_defaults(func=cli)


def cli(args: argparse.Namespace) -> int:
    try:
        overrides = parse_overrides(args.overrides)
        store = RunStore.at(cli_path(args.runs_dir)) if args.runs_dir else None
        grid = load_grids([_existing(g, "Grid file") for g in args.grid], overrides=overrides,
                          runs_dir=store)
        if grid.store.root.exists() and not grid.store.root.is_dir():
            raise GridError(f"runs folder {grid.store} is a file, not a folder; choose "
                            f"another folder (--runs-dir) or move the file.")
        selected = grid.select(args.filter)
        if args.filter and not selected.runs:
            raise GridError(grid.no_match(args.filter, overrides))
        grid = selected
        if args.action in ("plan", "status"):
            rows = status.plan_rows(grid) if args.action == "plan" else status.status_rows(grid)
            print(status.format_rows(rows, args.format))
            if args.format == "table":  # CSV and JSON stay parseable: no trailing lines
                c = status.counts(rows)
                print(f"{len(rows)} configs: " + ", ".join(f"{v} {k}" for k, v in c.items()))
                for note in (status.provenance_note(grid), legacy.legacy_note(grid.store)):
                    if note:
                        print(note)
            return 0
        if args.action == "select":
            return _select(grid, args.check)
        if args.workers is not None and args.workers < 1:
            raise GridError(f"--workers {args.workers}: must be >= 1 (configs run at once).")
        devices = [d.strip() for d in args.devices.split(",") if d.strip()] \
            if args.devices else None
        gpus = args.gpus_per_task if args.executor == "slurm" else 0
        slurm = {"partition": args.partition, "time": args.time, "gpus_per_task": gpus,
                 "cpus_per_task": args.cpus_per_task, "mem_gb": args.mem_gb,
                 "account": args.account, "array_parallelism": args.array_parallelism}
        summary = run_grid(grid, RunOptions(
            workers=args.workers, devices=devices or (), runs_per_device=args.runs_per_device,
            force=args.force, rerun_stale=args.rerun_stale, executor=args.executor,
            notebook=_existing(args.notebook, "Notebook"),
            kernel_name=args.kernel, slurm=slurm, progress=not args.no_progress,
            mps_mode=args.mps, time_limit_s=args.time_limit, stall_s=args.stall_after))
    except GridError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # outside the runs: reading the data, starting MPS, ...
        signum = getattr(e, "signum", signal.SIGINT)
        print(f"stopped by {signal.Signals(signum).name} while no run was in progress; run "
              f"the same command again to finish the grid.", file=sys.stderr)
        return 128 + signum
    if summary.interrupted:
        return 128 + (summary.signal or signal.SIGINT)
    return 0 if summary.ok else 1


def add_runs_parser(sub: argparse._SubParsersAction) -> None:
    """The ``runs`` subcommand: ``runs migrate`` renames run folders of the previous run-id
    scheme (helpers.run.legacy)."""
    p = sub.add_parser("runs", help="maintain a runs folder",
                       description="migrate: rename the run folders named by the previous "
                                   "run-id scheme to their current ids (once).")
    p.add_argument("action", choices=["migrate"])
    p.add_argument("--runs-dir", default="runs", help="results folder (default: runs)")
    p.set_defaults(func=runs_cli)


def runs_cli(args: argparse.Namespace) -> int:
    store = RunStore.at(cli_path(args.runs_dir))
    if not store.root.is_dir():
        print(f"error: {not_found('Runs folder', args.runs_dir)}", file=sys.stderr)
        return 2
    try:
        renamed = legacy.migrate(store)
    except FileExistsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for old, new in renamed.items():
        print(f"{old} -> {new}")
    print(f"{len(renamed)} run folder(s) renamed to the current run-id scheme in {store}.")
    return 0


def _select(grid, check_file: str | None) -> int:
    """Print the sweep's candidates (validation scores only) and the check of ``check_file``."""
    fields = select.swept_fields(grid)
    if not fields:
        raise GridError(f"{grid.path}: no field but the seed varies within a model, dataset "
                        f"and method, so there is nothing to select; give a sweep grid, e.g. "
                        f"params/cpu-sweep.yaml.")
    table = select.candidates(select.validation_scores(grid), fields)
    shown = table.assign(chosen=table["chosen"].map({True: "<- chosen", False: ""}),
                         **{f: table[f].map(lambda v: f"{v:g}" if isinstance(v, float) else v)
                            for f in fields})
    print(f"selection rule: {select.RULE} (validation only: the test set chooses nothing)")
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    missing = select.incomplete(table)
    if len(missing):
        print(f"{len(missing)} candidate(s) have seeds still to run (`grid run {grid.path}`): "
              f"the choice may change.")
    if check_file is None:
        return 0
    other = load_grid(_existing(check_file, "Grid file"))
    wrong = select.check(table, fields, other)
    for m in wrong:
        print(f"{check_file}: {' / '.join(m.cell)} uses {m.field}={m.uses}, the sweep chose "
              f"{m.chosen if m.chosen is not None else 'nothing (no complete runs)'}")
    if not wrong and not len(missing):
        print(f"{check_file} uses the chosen values.")
    return 1 if wrong or len(missing) else 0


def _existing(arg: str, what: str) -> Path:
    """The path argument ``arg`` (helpers.settings.cli_path), or a GridError naming where it
    was looked for."""
    path = cli_path(arg)
    if not project_path(path).is_file():
        grids = sorted(str(p.relative_to(PROJECT_ROOT))
                       for p in (PROJECT_ROOT / PARAMS_DIR).glob("*.yaml"))
        raise GridError(not_found(what, arg) + (f" Grids in the project: {', '.join(grids)}."
                                                if what == "Grid file" else ""))
    return path

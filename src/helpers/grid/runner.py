"""Executing a grid: one papermill run of ``notebooks/train.ipynb`` per pending config.

* Resumable: the complete run folder is the truth (:class:`helpers.run.store.RunStore`), so
  complete runs are skipped and a killed batch leaves only ``.tmp`` debris, removed by
  ``RunStore.clean_stale``. A
  run folder whose records don't validate is set aside to ``.corrupt/`` and rerun.
* Shared: a run is claimed before it starts (:mod:`helpers.grid.claims`), so runners sharing a
  runs folder never train the same config twice; each skips, and names, what another holds.
* Failure-isolated: a failing notebook is recorded in ``runs/.failed/<run_id>.json`` (failing
  cell, exception, traceback, log) and the batch goes on; the next ``run`` retries it.
* Parallel: N worker processes, each running one notebook at a time. ``devices`` gives each
  worker its own ``CUDA_VISIBLE_DEVICES``; the CPU cores are split between workers
  (``torch_threads`` and ``OMP_NUM_THREADS``) so N workers don't oversubscribe the machine.
* Many runs per GPU (``runs_per_device``): a batch-8 step of these encoders keeps a GPU busy
  for a fraction of its wall time (the rest is Python issuing kernels), so several runs share
  each GPU; the default comes from the GPU's memory and the CPU cores
  (:func:`helpers.grid.workers.default_runs_per_device`).
* Beyond one machine: ``executor="slurm"`` submits the pending configs as one Slurm job array
  through submitit; ``"local-submitit"`` runs the same code path with submitit's local executor.

Every attempt writes its kernel output to ``runs/.logs/<run_id>.<attempt>.log`` and its executed
notebook beside it (``.ipynb``), copied into the run folder as ``train.ipynb`` on success.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, TextIO

from helpers.run.config import local_model_folder
from helpers.run.errors import ModelError
from helpers.run.model_files import check_model_folder
from helpers.run.store import NotWritableError, RunStore
from helpers.settings import KERNEL_NAME, TRAIN_NOTEBOOK

from . import claims, mps, space, stopping
from .execution import copy_notebook, last_attempt, make_task
from .pool import run_tasks
from .slurm import job_cpus
from .spec import Grid, GridError, GridRun
from .status import run_state, stale_files
from .summary import RunSummary, busy_lines, format_summary
from .tracker import GridProgress
from .watchdog import STALL_S
from .workers import check_devices, default_runs_per_device

NOTEBOOK = TRAIN_NOTEBOOK
EXECUTORS = ("local", "slurm", "local-submitit")


@dataclass
class RunOptions:
    """How ``grid run`` executes a grid (its command-line flags, one field each)."""

    #: configs run at once (local executor: worker processes; default 1, or from the GPUs)
    workers: int | None = None
    #: GPU ids the runs share; empty: CPU workers
    devices: Sequence[str] = ()
    #: runs at once on each GPU of ``devices`` (default: helpers.grid.workers decides)
    runs_per_device: int | None = None
    #: rerun complete runs too
    force: bool = False
    #: rerun complete runs whose recorded data files changed since (``stale`` in the plan)
    rerun_stale: bool = False
    #: "local", "slurm" or "local-submitit"
    executor: str = "local"
    #: the training notebook papermill executes per config
    notebook: str | os.PathLike = NOTEBOOK
    #: the Jupyter kernel papermill starts
    kernel_name: str = KERNEL_NAME
    #: submitit's Slurm settings (partition, time, gpus_per_task, ...)
    slurm: dict[str, Any] = field(default_factory=dict)
    #: draw the progress bar
    progress: bool = True
    #: CUDA MPS for runs sharing a GPU: "auto", "on" or "off" (helpers.grid.mps)
    mps_mode: str = "auto"
    #: seconds a run may take before its kernel is ended and the run recorded failed (None: no
    #: limit)
    time_limit_s: float | None = None
    #: seconds without any CPU use by a run's kernel (stopped, hung) before it is ended
    stall_s: float | None = STALL_S


def run_grid(grid: Grid, options: RunOptions | None = None, *, out: TextIO | None = None,
             **fields: Any) -> RunSummary:
    """Execute the grid's pending configs (all of them with ``force``); see the module doc.

    ``fields`` are :class:`RunOptions` fields, a shorthand for ``options`` in tests and scripts.
    """
    opts = options or RunOptions(**fields)
    with stopping.interrupt_on_signals():  # SIGTERM, SIGINT: stop what it started, then say so
        return _run(grid, opts, out or sys.stderr)


def _run(grid: Grid, opts: RunOptions, out: TextIO) -> RunSummary:
    started = time.time()
    notebook, devices, workers = _check_options(opts)
    per_device = workers // len(devices) if devices else 0
    try:
        mps_plan = mps.plan(opts.mps_mode, devices, per_device, opts.executor)
    except mps.MpsError as e:
        raise GridError(str(e)) from None
    problem = check_devices(devices) if devices else None
    if problem:
        raise GridError(problem)
    store = grid.store
    try:
        store.check_writable()
    except NotWritableError as e:
        raise GridError(str(e)) from None
    store.clean_stale()
    _wait_for_orphans(grid)

    summary, todo = _sort_runs(grid, store, opts.force, opts.rerun_stale)
    problem = space.check_space(store, min(workers, len(todo))) if todo else None
    if problem:
        raise GridError(problem)
    _check_models(todo)
    _check_data(todo)
    threads = job_cpus(opts.executor, workers, opts.slurm)
    rerun = set(summary.stale) if opts.rerun_stale else set()
    tasks = [make_task(r, store, notebook, opts.kernel_name, threads,
                       opts.force or r.run_id in rerun, started, opts.time_limit_s, opts.stall_s)
             for r in todo]
    if opts.executor == "local" and 1 < workers < len(tasks):
        tasks = longest_first(tasks)
    print(_banner(grid, summary, tasks, opts.executor, workers, devices), file=out)
    for line in busy_lines(summary):
        print(line, file=out)
    if tasks:
        try:
            with mps.for_grid(mps_plan, devices,
                              say=lambda line: print(line, file=out)) as mps_env:
                run_tasks(tasks, opts.executor, workers, devices, opts.slurm, store, summary,
                          GridProgress(len(tasks), opts.progress, out), mps_env)
                done = set(summary.executed) | set(summary.busy) | set(summary.skipped)
                done |= _published_meanwhile(summary, tasks, store, done)
                summary.not_run = [t["run_id"] for t in tasks if t["run_id"] not in done]
                if summary.not_run:  # before MPS stops: it waits for its clients
                    _wait_for_orphans(grid)  # terminated workers' kernels exit within ~1 s
        except mps.MpsError as e:
            raise GridError(str(e)) from None
        store.clean_stale()
    summary.seconds = time.time() - started
    print(format_summary(summary, grid), file=out)
    return summary


def _published_meanwhile(summary: RunSummary, tasks: list[dict[str, Any]], store: RunStore,
                         done: set[str]) -> set[str]:
    """Runs published at the instant of a signal, before their result was read: complete,
    so counted completed, never "stopped" or resumable. Returns their ids."""
    published = {t["run_id"] for t in tasks if t["run_id"] not in done
                 and store.is_complete(t["run_id"])}
    summary.completed += sorted(published)
    summary.stopped = [r for r in summary.stopped if r not in published]
    return published


def _check_options(opts: RunOptions) -> tuple[Path, list[str], int]:
    """The notebook, the GPUs and the number of runs at once, or a GridError naming the flag."""
    if opts.executor not in EXECUTORS:
        raise GridError(f"executor={opts.executor!r} is not one of {list(EXECUTORS)}.")
    notebook = Path(opts.notebook).absolute()
    if not notebook.is_file():
        raise GridError(f"Notebook {notebook} does not exist (pass notebook=... / --notebook).")
    _check_kernel(opts.kernel_name)
    devices = list(opts.devices or [])
    workers = opts.workers
    if workers is not None and workers < 1:
        raise GridError(f"workers={workers} must be >= 1.")
    if devices and opts.executor != "local":
        raise GridError(f"--devices works with --executor local (this host's GPUs); with "
                        f"--executor {opts.executor} give the GPUs per job (--gpus-per-task).")
    if opts.runs_per_device is not None:
        if not devices:
            raise GridError("runs_per_device needs devices (e.g. --devices 0); on the CPU "
                            "use --workers.")
        if opts.runs_per_device < 1:
            raise GridError(f"runs_per_device={opts.runs_per_device} must be >= 1.")
        if workers is not None:
            raise GridError("give either workers or runs_per_device, not both.")
        workers = opts.runs_per_device * len(devices)
    if devices and not workers and opts.executor == "local":
        workers = default_runs_per_device(devices) * len(devices)
    workers = workers or len(devices) or 1
    if workers < 1:
        raise GridError(f"workers={workers} must be >= 1.")
    return notebook, devices, workers


def _sort_runs(grid: Grid, store: RunStore, force: bool,
               rerun_stale: bool = False) -> tuple[RunSummary, list[GridRun]]:
    """Which runs to execute; the others are counted in the summary (complete, claimed).
    A stale run (complete, its data changed since) is in ``summary.stale``, and rerun only
    with ``rerun_stale``."""
    summary = RunSummary()
    todo: list[GridRun] = []
    for r in grid.runs:
        state = run_state(store, r.run_id)
        if state == "complete" and not force and stale_files(store, r):
            summary.stale.append(r.run_id)
            if rerun_stale:
                todo.append(r)
                continue
        if state == "running":
            summary.busy.append(r.run_id)
            summary.busy_why[r.run_id] = (claims.held_by(store, r.run_id)
                                          or "being written by a live process")
        elif state == "complete" and not force:
            summary.skipped.append(r.run_id)
            store.clear_failure(r.run_id)  # the folder is the truth: it succeeded
            claims.discard_stale(store, r.run_id)  # left by a runner killed after publishing
            # A batch killed between a run's completion and the copy of its notebook.
            executed = last_attempt(store, r.run_id).with_suffix(".ipynb")
            run_dir = store.path(r.run_id)
            if not (run_dir / "train.ipynb").is_file() and executed.is_file():
                copy_notebook(executed, run_dir)
        else:
            if state == "corrupt":
                summary.corrupt.append(r.run_id)
            todo.append(r)
    return summary, todo


def _banner(grid: Grid, summary: RunSummary, tasks: list[dict[str, Any]], executor: str,
            workers: int, devices: list[str]) -> str:
    return (f"grid {grid.path}: {len(grid.runs)} configs, {len(summary.skipped)} complete, "
            f"{len(tasks)} to run"
            + (f" ({len(summary.corrupt)} corrupt: set aside in "
               f"{grid.store.corrupt_dir.name}/ and rerun)" if summary.corrupt else "")
            + (f", {len(summary.busy)} claimed by another runner (skipped)"
               if summary.busy else "")
            + (f", {len(summary.stale)} stale (trained on data files that changed since; "
               + ("rerun)" if any(t["run_id"] in summary.stale for t in tasks)
                  else "kept: --rerun-stale reruns them)") if summary.stale else "")
            + (f" ({executor}, {workers} worker(s)"
               + (f" on GPU {','.join(devices)}, {workers // len(devices)} per GPU"
                  if devices and executor == "local" else "") + ")" if tasks else ""))


def _check_data(todo: list[GridRun]) -> None:
    """Read each dataset the pending runs use, once, before any starts (a second or two): a
    missing or malformed file is one error naming it, not a failure in every run."""
    if not todo:
        return
    # deferred: helpers.run.data imports datasets (seconds); a grid with nothing pending skips it
    from helpers.run.data import DataError, read_rows

    users: dict[tuple[str, str | None], list[str]] = {}
    for r in todo:
        p = r.params()
        names = [p["dataset"]] if isinstance(p["dataset"], str) else list(p["dataset"])
        for name in names:
            users.setdefault((name, p.get("data_dir")), []).append(r.run_id)
    for (name, data_dir), ids in users.items():
        try:
            read_rows(name, data_dir)
        except DataError as e:
            raise GridError(f"{e}\n{len(ids)} pending run(s) read {name} there (e.g. {ids[0]}); "
                            f"none was started. Fix the data, or leave them out with "
                            f"--filter.") from None


def _check_models(todo: list[GridRun]) -> None:
    """Each local model folder the pending runs load, once, before any starts (file names
    only): a folder without weights or tokenizer is one error with its path, not a failure in
    every run after it has loaded the rest."""
    users: dict[Path, list[str]] = {}
    for r in todo:
        folder = local_model_folder(r.config.model)
        if folder is not None:
            users.setdefault(folder, []).append(r.run_id)
    for folder, ids in users.items():
        try:
            check_model_folder(folder)
        except ModelError as e:
            raise GridError(f"{e}\n{len(ids)} pending run(s) load it (e.g. {ids[0]}); none was "
                            f"started.") from None


def longest_first(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Longest runs first (training examples x epochs; PEFT a little cheaper), so that the
    grid does not end waiting on one long run that started last. Grid order among equals."""
    @cache
    def rows(dataset: str, data_dir: str | None) -> int:
        from helpers.run import data  # deferred: datasets' import takes seconds

        try:
            return data.load(dataset, data_dir)["train"].num_rows
        except Exception:  # a missing data folder fails that run later, with its message
            return 0

    def cost(t: dict[str, Any]) -> float:
        p = t["params"]
        n = rows(str(p["dataset"]), p.get("data_dir"))
        if p.get("max_train_samples"):
            n = min(n, p["max_train_samples"])
        return n * p["num_train_epochs"] * (1.0 if p["method"] == "full" else 0.8)

    return sorted(tasks, key=cost, reverse=True)


def _check_kernel(name: str) -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel  # deferred: slow

    try:
        KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        raise GridError(f"Jupyter kernel '{name}' is not installed. Register it with "
                        f"'{sys.executable} -m ipykernel install --sys-prefix --name {name}' "
                        f"(make venv does this).") from None


def _wait_for_orphans(grid: Grid, timeout: float = 5.0) -> None:
    """Kernels of a killed batch exit within about a second (ipykernel polls its parent).

    Until then their ``.tmp`` folders look like runs in progress; give them that second rather
    than skipping those runs as "running elsewhere". Runs claimed by a live runner are not
    orphans and are not waited for.
    """
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not any(grid.store.staging_alive(r.run_id)
                   and claims.holder(grid.store, r.run_id) is None for r in grid.runs):
            return
        time.sleep(0.5)
    grid.store.clean_stale()

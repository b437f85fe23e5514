"""Executing a grid: one papermill run of ``notebooks/train.ipynb`` per pending config.

* Resumable: the complete run folder is the truth (:mod:`helpers.runs`), so complete runs are
  skipped and a killed batch leaves only ``.tmp`` debris, removed by ``runs.clean_stale``. A
  run folder whose records don't validate is set aside to ``.corrupt/`` and rerun.
* Shared: a run is claimed before it starts (:mod:`helpers.claims`), so runners sharing a
  runs folder never train the same config twice; each skips, and names, what another holds.
* Failure-isolated: a failing notebook is recorded in ``runs/.failed/<run_id>.json`` (failing
  cell, exception, traceback, log) and the batch goes on; the next ``run`` retries it.
* Parallel: N worker processes, each running one notebook at a time. ``devices`` gives each
  worker its own ``CUDA_VISIBLE_DEVICES``; the CPU cores are split between workers
  (``torch_threads`` and ``OMP_NUM_THREADS``) so N workers don't oversubscribe the machine.
* Many runs per GPU (``runs_per_device``): a batch-8 step of these encoders keeps a GPU busy
  for a fraction of its wall time (the rest is Python issuing kernels), so several runs share
  each GPU; the default comes from the GPU's memory and the CPU cores
  (:func:`helpers.workers.default_runs_per_device`).
* Beyond one machine: ``executor="slurm"`` submits the pending configs as one Slurm job array
  through submitit; ``"local-submitit"`` runs the same code path with submitit's local executor.

Every attempt writes its kernel output to ``runs/.logs/<run_id>.<attempt>.log`` and its executed
notebook beside it (``.ipynb``), copied into the run folder as ``train.ipynb`` on success.
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from . import claims, mps, runs
from .execution import copy_notebook, execute_run, last_attempt, make_task, record_failure
from .grid import Grid, GridError, GridRun, load_grid, parse_value, run_state, staging_alive
from .settings import KERNEL_NAME, TRAIN_NOTEBOOK, project_path
from .slurm import SUBMITIT_DIR, job_cpus, make_submitit_executor
from .workers import (
    MAX_RUNS_PER_DEVICE,
    default_runs_per_device,
    worker_envs,
)

NOTEBOOK = TRAIN_NOTEBOOK
EXECUTORS = ("local", "slurm", "local-submitit")


@dataclass
class RunSummary:
    """What a ``run`` did; ``ok`` is False when a run failed or the batch was interrupted."""

    completed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # complete before (or by another runner)
    busy: list[str] = field(default_factory=list)  # claimed by another runner: not run here
    corrupt: list[str] = field(default_factory=list)  # records did not validate: set aside
    not_run: list[str] = field(default_factory=list)  # left pending (interrupt, dead workers)
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def executed(self) -> list[str]:
        return self.completed + self.failed

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted and not self.not_run


# ---------------------------------------------------------------------------------- workers
def _worker(env: dict[str, str], tasks: Any, results: Any) -> None:
    """One worker process: its own env (GPU, threads), one notebook at a time.

    Ctrl-C is left to the parent, which terminates the workers (no traceback per worker).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.update(env)
    while True:
        task = tasks.get()
        if task is None:
            return
        results.put(("start", os.getpid(), task["run_id"]))
        results.put(("done", os.getpid(), execute_run(task)))


# ---------------------------------------------------------------------------------- batch
def run_grid(grid: Grid, *, workers: int | None = None, devices: Sequence[str] | None = None,
             runs_per_device: int | None = None, force: bool = False, executor: str = "local",
             notebook: str | os.PathLike = NOTEBOOK,
             kernel_name: str = KERNEL_NAME, slurm: dict[str, Any] | None = None,
             progress: bool = True, out: TextIO | None = None,
             mps_mode: str = "auto") -> RunSummary:
    """Execute the grid's pending configs (all of them with ``force``); see the module doc."""
    out = out or sys.stderr
    if executor not in EXECUTORS:
        raise GridError(f"executor={executor!r} is not one of {list(EXECUTORS)}.")
    notebook = Path(notebook).absolute()
    if not notebook.is_file():
        raise GridError(f"Notebook {notebook} does not exist (pass notebook=... / --notebook).")
    _check_kernel(kernel_name)
    devices = list(devices or [])
    if runs_per_device is not None:
        if not devices:
            raise GridError("runs_per_device needs devices (e.g. --devices 0); on the CPU "
                            "use --workers.")
        if runs_per_device < 1:
            raise GridError(f"runs_per_device={runs_per_device} must be >= 1.")
        if workers is not None:
            raise GridError("give either workers or runs_per_device, not both.")
        workers = runs_per_device * len(devices)
    if devices and not workers and executor == "local":
        workers = default_runs_per_device(devices) * len(devices)
    workers = workers or len(devices) or 1
    if workers < 1:
        raise GridError(f"workers={workers} must be >= 1.")
    per_device = workers // len(devices) if devices else 0
    try:
        mps_plan = mps.plan(mps_mode, devices, per_device, executor)
    except mps.MpsError as e:
        raise GridError(str(e)) from None
    started = time.time()
    runs_dir = project_path(grid.runs_dir)
    try:
        runs.check_writable(runs_dir)
    except runs.NotWritableError as e:
        raise GridError(str(e)) from None
    runs.clean_stale(runs_dir)
    _wait_for_orphans(grid)

    summary = RunSummary()
    todo: list[GridRun] = []
    for r in grid.runs:
        state = run_state(runs_dir, r.run_id)
        if state == "running":
            summary.busy.append(r.run_id)
        elif state == "complete" and not force:
            summary.skipped.append(r.run_id)
            # A batch killed between a run's completion and the copy of its notebook.
            executed = last_attempt(runs_dir, r.run_id).with_suffix(".ipynb")
            run_dir = runs.run_path(runs_dir, r.run_id)
            if not (run_dir / "train.ipynb").is_file() and executed.is_file():
                copy_notebook(executed, run_dir)
        else:
            if state == "corrupt":
                summary.corrupt.append(r.run_id)
            todo.append(r)
    _check_data(todo)
    threads = job_cpus(executor, workers, slurm or {})
    tasks = [make_task(r, runs_dir, notebook, kernel_name, threads, force, started) for r in todo]
    if executor == "local" and 1 < workers < len(tasks):
        tasks = longest_first(tasks)
    print(f"grid {grid.path}: {len(grid.runs)} configs, {len(summary.skipped)} complete, "
          f"{len(tasks)} to run"
          + (f" ({len(summary.corrupt)} corrupt: set aside in {runs.CORRUPT_DIR}/ and rerun)"
             if summary.corrupt else "")
          + (f", {len(summary.busy)} claimed by another runner (skipped)"
             if summary.busy else "")
          + (f" ({executor}, {workers} worker(s)"
             + (f" on GPU {','.join(devices)}, {workers // len(devices)} per GPU"
                if devices and executor == "local" else "") + ")" if tasks else ""), file=out)
    if tasks:
        try:
            with mps.for_grid(mps_plan, devices,
                              say=lambda line: print(line, file=out)) as mps_env:
                _run_tasks(tasks, executor, workers, devices, slurm or {}, runs_dir, summary,
                           _Progress(len(tasks), progress, out), mps_env)
                done = set(summary.executed) | set(summary.busy) | set(summary.skipped)
                summary.not_run = [t["run_id"] for t in tasks if t["run_id"] not in done]
                if summary.not_run:  # before MPS stops: it waits for its clients
                    _wait_for_orphans(grid)  # terminated workers' kernels exit within ~1 s
        except mps.MpsError as e:
            raise GridError(str(e)) from None
        runs.clean_stale(runs_dir)
    summary.seconds = time.time() - started
    print(format_summary(summary, grid), file=out)
    return summary


def _run_tasks(tasks: list[dict[str, Any]], executor: str, workers: int, devices: list[str],
               slurm: dict[str, Any], runs_dir: Path, summary: RunSummary, bar: _Progress,
               extra_env: dict[str, str]) -> None:
    try:
        if executor == "local":
            envs = [{**env, **extra_env} for env in worker_envs(workers, devices)]
            _run_local(tasks, envs, summary, bar)
        else:
            _run_submitit(tasks, executor, workers, slurm, runs_dir, summary, bar)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        bar.close()


def _check_data(todo: list[GridRun]) -> None:
    """Read each dataset the pending runs use, once, before any starts (a second or two): a
    missing or malformed file is one error naming it, not a failure in every run."""
    if not todo:
        return
    from .data import DataError, read_rows

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


def longest_first(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Longest runs first (training examples x epochs; PEFT a little cheaper), so that the
    grid does not end waiting on one long run that started last. Grid order among equals."""
    from functools import cache

    @cache
    def rows(dataset: str, data_dir: str | None) -> int:
        from . import data

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
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

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
        if not any(staging_alive(grid.runs_dir, r.run_id)
                   and claims.holder(grid.runs_dir, r.run_id) is None for r in grid.runs):
            return
        time.sleep(0.5)
    runs.clean_stale(grid.runs_dir)


class _Progress:
    """tqdm bar over finished runs, postfix done/failed/remaining, one line per finished run.

    The bar is drawn only where it redraws in place (a terminal, JupyterLab's widgets); in a
    log file each redraw would be appended, so there each finished run's line carries the
    count and the runs in flight instead.
    """

    def __init__(self, total: int, enabled: bool, out) -> None:
        from .progress import bar_class, redraws_in_place

        self.tqdm = tqdm = bar_class()  # widgets in JupyterLab, text in a terminal or log
        self.live = enabled and redraws_in_place(out)
        self.bar = tqdm(total=total, unit="run", desc="grid", disable=not self.live, file=out,
                        dynamic_ncols=True)
        self.total, self.done, self.failed, self.out = total, 0, 0, out
        self.running: dict[str, int] = {}  # runs in flight per device ("cpu", GPU ids)
        self.skipped = 0
        self._postfix()

    def _in_flight(self) -> str:
        return " ".join(f"{'gpu' if d != 'cpu' else ''}{d}:{n}"
                        for d, n in sorted(self.running.items())) or "0"

    def _postfix(self) -> None:
        self.bar.set_postfix(done=self.done, failed=self.failed, skipped=self.skipped,
                             remaining=self.total - self.done - self.failed - self.skipped,
                             running=self._in_flight())

    def started(self, device: str) -> None:
        self.running[device] = self.running.get(device, 0) + 1
        self._postfix()

    def stopped(self, device: str) -> None:
        self.running[device] = max(0, self.running.get(device, 0) - 1)

    def finish(self, result: dict[str, Any]) -> None:
        if result.get("skipped"):
            self.skipped += 1
            line = f"  skipped {result['run_id']}: {result['skipped']}"
        elif result["ok"]:
            self.done += 1
            line = f"  done   {result['run_id']} ({result['seconds']:.0f}s)"
        else:
            self.failed += 1
            line = f"  FAILED {result['run_id']} ({result['seconds']:.0f}s): {result['error']}"
        if not self.live:
            finished = self.done + self.failed + self.skipped
            line += f"  [{finished}/{self.total}, running={self._in_flight()}]"
        self.tqdm.write(line, file=self.out)
        self.bar.update(1)
        self._postfix()

    def close(self) -> None:
        self.bar.close()


def _collect(result: dict[str, Any], summary: RunSummary, bar: _Progress) -> None:
    if result.get("skipped"):
        (summary.busy if result.get("busy") else summary.skipped).append(result["run_id"])
    else:
        (summary.completed if result["ok"] else summary.failed).append(result["run_id"])
    bar.finish(result)


def _run_local(tasks: list[dict[str, Any]], envs: list[dict[str, str]], summary: RunSummary,
               bar: _Progress) -> None:
    """N spawned worker processes fed from a queue.

    Not ``concurrent.futures``: its workers prefetch tasks and survive a Ctrl-C to run them,
    and it can't give each worker its own environment (the GPU) before the kernel starts.
    """
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # no fork of a parent that may hold torch/tokenizer threads
    task_q, result_q = ctx.Queue(), ctx.Queue()
    for t in tasks:
        task_q.put(t)
    procs = [ctx.Process(target=_worker, args=(env, task_q, result_q), daemon=True)
             for env in envs[:len(tasks)]]
    for p in procs:
        task_q.put(None)
        p.start()
    device_of = {p.pid: env.get("CUDA_VISIBLE_DEVICES") or "cpu"
                 for p, env in zip(procs, envs, strict=False)}
    current: dict[int, str] = {}
    by_id = {t["run_id"]: t for t in tasks}
    pending = len(tasks)
    try:
        while pending:
            try:
                kind, pid, payload = result_q.get(timeout=1.0)
            except queue.Empty:
                for p in procs:
                    if not p.is_alive() and p.pid in current:  # died mid-run (OOM kill, ...)
                        run_id = current.pop(p.pid)
                        bar.stopped(device_of[p.pid])
                        t = by_id[run_id]
                        info = {"ename": "WorkerDied", "cell_index": None, "traceback": [],
                                "evalue": f"worker process {p.pid} exited with code "
                                          f"{p.exitcode} while running the notebook"}
                        log = last_attempt(t["runs_dir"], run_id)
                        record_failure(Path(t["runs_dir"]), run_id, info, log,
                                log.with_suffix(".ipynb"), time.time(), 0.0)
                        _collect({"run_id": run_id, "ok": False, "seconds": 0.0,
                                  "error": info["evalue"]}, summary, bar)
                        pending -= 1
                if not any(p.is_alive() for p in procs):
                    return
                continue
            if kind == "start":
                current[pid] = payload
                bar.started(device_of.get(pid, "cpu"))
            else:
                if current.pop(pid, None) is not None:
                    bar.stopped(device_of.get(pid, "cpu"))
                _collect(payload, summary, bar)
                pending -= 1
    finally:
        for p in procs:
            if p.is_alive() and pending:
                p.terminate()  # its kernel notices its parent is gone and exits (~1 s)
        for p in procs:
            p.join(timeout=10)


def _run_submitit(tasks: list[dict[str, Any]], executor: str, workers: int,
                  slurm: dict[str, Any], runs_dir: Path, summary: RunSummary,
                  bar: _Progress) -> None:
    """One job array over the pending configs; each job runs :func:`execute_run`."""
    import submitit

    ex, cpus = make_submitit_executor(executor, runs_dir / SUBMITIT_DIR, workers, slurm)
    env = {"OMP_NUM_THREADS": str(cpus), "MKL_NUM_THREADS": str(cpus),
           "TOKENIZERS_PARALLELISM": "false"}
    jobs = ex.map_array(execute_run, tasks, [env] * len(tasks))
    bar.tqdm.write(f"  submitted job array {jobs[0].job_id.split('_')[0]} ({len(jobs)} "
                   f"tasks); submitit files in {runs_dir / SUBMITIT_DIR}", file=bar.out)
    by_job = {j.job_id: t for j, t in zip(jobs, tasks, strict=True)}
    for job in submitit.helpers.as_completed(jobs, poll_frequency=2):
        t = by_job[job.job_id]
        try:
            result = job.result()
        except Exception as e:  # the job itself died: timeout, preemption, node failure
            info = {"ename": type(e).__name__, "cell_index": None,
                    "evalue": f"{str(e).splitlines()[0][:300] if str(e) else ''} "
                              f"(job {job.job_id}, stderr {job.paths.stderr})",
                    "traceback": str(e).splitlines()}
            log = last_attempt(runs_dir, t["run_id"])
            record_failure(runs_dir, t["run_id"], info, log, log.with_suffix(".ipynb"),
                           time.time(), 0)
            result = {"run_id": t["run_id"], "ok": False, "seconds": 0.0,
                      "error": f"{info['ename']}: {info['evalue']}"}
        _collect(result, summary, bar)


def format_summary(summary: RunSummary, grid: Grid) -> str:
    lines = [f"summary: {len(summary.completed)} completed, {len(summary.failed)} failed, "
             f"{len(summary.skipped)} already complete"
             + (f", {len(summary.busy)} claimed by another runner (not run here)"
                if summary.busy else "")
             + (f", {len(summary.not_run)} not run" if summary.not_run else "")
             + f" ({summary.seconds:.0f}s)"]
    for run_id in summary.failed:
        f = runs.read_failure(grid.runs_dir, run_id) or {}
        evalue = str(f.get("evalue") or "").splitlines()
        lines.append(f"  FAILED {run_id}: {f.get('ename')}: {evalue[0][:200] if evalue else ''}"
                     f"\n         log {f.get('log')}"
                     f"  details {runs.failure_path(grid.runs_dir, run_id)}")
    if summary.interrupted:
        lines.append("interrupted: run the same command again to finish the grid.")
    elif summary.failed or summary.not_run:
        lines.append("run the same command again to retry the runs that did not complete.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- CLI
def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``grid`` subcommand of ``python -m helpers``."""
    p = sub.add_parser("grid", help="plan, run and inspect a grid of training runs",
                       description="Plan, run or inspect a params/*.yaml grid of "
                                   "notebooks/train.ipynb runs.")
    p.add_argument("action", choices=["plan", "run", "status"])
    p.add_argument("grid", help="grid file, e.g. params/cpu.yaml")
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
                        f"{mps.CONTROL} is installed; see helpers.mps)")
    p.add_argument("--force", action="store_true", help="rerun complete runs too")
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
    from . import grid as g

    try:
        overrides = {}
        for item in args.overrides:
            if "=" not in item:
                raise GridError(f"--set {item!r}: expected key=value, e.g. model=minilm.")
            k, v = item.split("=", 1)
            overrides[k.strip()] = parse_value(v.strip())
        grid = load_grid(args.grid, overrides=overrides, runs_dir=args.runs_dir)
        grid = grid.select(args.filter)
        if args.action in ("plan", "status"):
            rows = g.plan_rows(grid) if args.action == "plan" else g.status_rows(grid)
            print(g.format_table(rows))
            c = g.counts(rows)
            print(f"{len(rows)} configs: " + ", ".join(f"{v} {k}" for k, v in c.items()))
            return 0
        devices = [d.strip() for d in args.devices.split(",") if d.strip()] \
            if args.devices else None
        gpus = args.gpus_per_task if args.executor == "slurm" else 0
        slurm = {"partition": args.partition, "time": args.time, "gpus_per_task": gpus,
                 "cpus_per_task": args.cpus_per_task, "mem_gb": args.mem_gb,
                 "account": args.account, "array_parallelism": args.array_parallelism}
        summary = run_grid(grid, workers=args.workers, devices=devices,
                           runs_per_device=args.runs_per_device, force=args.force,
                           executor=args.executor, notebook=args.notebook,
                           kernel_name=args.kernel, slurm=slurm,
                           progress=not args.no_progress, mps_mode=args.mps)
    except GridError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if summary.interrupted:
        return 130
    return 0 if summary.ok else 1

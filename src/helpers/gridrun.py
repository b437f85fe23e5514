"""Executing a grid: one papermill run of ``notebooks/train.ipynb`` per pending config.

* Resumable: the complete run folder is the truth (:mod:`helpers.runs`), so complete runs are
  skipped and a killed batch leaves only ``.tmp`` debris, removed by ``runs.clean_stale``.
* Failure-isolated: a failing notebook is recorded in ``runs/.failed/<run_id>.json`` (failing
  cell, exception, traceback, log) and the batch goes on; the next ``run`` retries it.
* Parallel: N worker processes, each running one notebook at a time. ``devices`` gives each
  worker its own ``CUDA_VISIBLE_DEVICES``; the CPU cores are split between workers
  (``torch_threads`` and ``OMP_NUM_THREADS``) so N workers don't oversubscribe the machine.
* Beyond one machine: ``executor="slurm"`` submits the pending configs as one Slurm job array
  through submitit; ``"local-submitit"`` runs the same code path with submitit's local executor.

Every run writes its kernel output to ``runs/.logs/<run_id>.log`` and its executed notebook to
``runs/.logs/<run_id>.ipynb``, copied into the run folder as ``train.ipynb`` on success.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import queue
import shutil
import signal
import socket
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from . import runs
from .grid import Grid, GridError, GridRun, load_grid, parse_value, run_state
from .settings import KERNEL_NAME, TRAIN_NOTEBOOK, project_path

NOTEBOOK = TRAIN_NOTEBOOK
EXECUTORS = ("local", "slurm", "local-submitit")
SUBMITIT_DIR = ".submitit"


@dataclass
class RunSummary:
    """What a ``run`` did; ``ok`` is False when a run failed or the batch was interrupted."""

    completed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # complete before the batch
    busy: list[str] = field(default_factory=list)  # being run by another process
    not_run: list[str] = field(default_factory=list)  # left pending (interrupt, dead workers)
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def executed(self) -> list[str]:
        return self.completed + self.failed

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted and not self.not_run


# ---------------------------------------------------------------------------------- one run
def execute_run(task: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Execute the notebook for one config; never raises for a failing run (it is recorded).

    ``task``: run_id, params, runs_dir, notebook, kernel_name, cwd. Returns run_id, ok,
    seconds and, on failure, error (``ename: evalue``). Module-level and picklable, so the
    local worker processes and submitit jobs run exactly this.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError, strip_color

    if env:
        os.environ.update(env)
    run_id, runs_dir = task["run_id"], Path(task["runs_dir"])
    log = runs.log_path(runs_dir, run_id)
    log.parent.mkdir(parents=True, exist_ok=True)
    out_nb = log.with_suffix(".ipynb")
    start = time.time()
    info: dict[str, Any] | None = None
    with open(log, "w", encoding="utf-8") as fh:
        fh.write(f"# run {run_id} on {socket.gethostname()} pid {os.getpid()} at "
                 f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n# CUDA_VISIBLE_DEVICES="
                 f"{os.environ.get('CUDA_VISIBLE_DEVICES', '')} OMP_NUM_THREADS="
                 f"{os.environ.get('OMP_NUM_THREADS', '')}\n# notebook {task['notebook']} -> "
                 f"{out_nb}\n")
        fh.flush()
        try:
            with _output_to(fh):
                papermill.execute_notebook(
                    task["notebook"], str(out_nb), parameters=task["params"],
                    kernel_name=task["kernel_name"], cwd=task["cwd"], progress_bar=False,
                    log_output=False, stdout_file=fh, stderr_file=fh,
                )
        except PapermillExecutionError as e:
            info = {"ename": e.ename, "evalue": e.evalue, "cell_index": e.cell_index,
                    "exec_count": e.exec_count, "cell_source": e.source,
                    "traceback": [strip_color(line) for line in e.traceback]}
        except Exception as e:  # kernel died, kernel missing, unreadable notebook, ...
            info = {"ename": type(e).__name__, "evalue": str(e), "cell_index": None,
                    "traceback": traceback.format_exc().splitlines()}
        run_dir = runs.run_path(runs_dir, run_id)
        if info is None and not runs.is_complete(run_dir):
            info = {"ename": "IncompleteRun", "cell_index": None, "traceback": [],
                    "evalue": f"the notebook finished but {run_dir} is not a complete run "
                              f"(its run id differs from the grid's, or it wrote elsewhere)"}
        seconds = time.time() - start
        if info is not None:
            fh.write(f"\n# FAILED after {seconds:.1f}s: {info['ename']}: {info['evalue']}\n")
        else:
            fh.write(f"\n# complete after {seconds:.1f}s: {run_dir}\n")
    if info is not None:
        _record(runs_dir, run_id, info, log, out_nb, start, seconds)
        return {"run_id": run_id, "ok": False, "seconds": seconds,
                "error": f"{info['ename']}: {str(info['evalue']).splitlines()[0][:200]}"
                         if str(info["evalue"]) else info["ename"]}
    _copy_notebook(out_nb, run_dir)
    runs.clear_failure(runs_dir, run_id)
    return {"run_id": run_id, "ok": True, "seconds": seconds, "error": None}


def _copy_notebook(executed: Path, run_dir: Path) -> None:
    """Add the executed notebook to a complete run folder (atomically: copy, then rename)."""
    tmp = run_dir / ".train.ipynb.tmp"
    shutil.copyfile(executed, tmp)
    tmp.replace(run_dir / "train.ipynb")


@contextlib.contextmanager
def _output_to(fh: TextIO) -> Iterator[None]:
    """Send everything else about the run to its log too: papermill's warnings and the
    kernel process's own stderr (it inherits file descriptors 1 and 2 when it starts)."""
    handler = logging.StreamHandler(fh)
    handler.setFormatter(logging.Formatter("[papermill] %(levelname)s %(message)s"))
    log = logging.getLogger("papermill")
    log.addHandler(handler)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        log.removeHandler(handler)


def _record(runs_dir: Path, run_id: str, info: dict[str, Any], log: Path, out_nb: Path,
            start: float, seconds: float) -> None:
    """Write .failed/<run_id>.json, keeping what helpers.training recorded in this attempt."""
    path = runs.failure_path(runs_dir, run_id)
    previous = {}
    if path.is_file() and path.stat().st_mtime >= start:
        previous = {"training": runs.read_json(path)}
    runs.record_failure(runs_dir, run_id, {
        **previous, **info, "log": str(log), "notebook": str(out_nb),
        "note": "cell_index counts the cells of the executed notebook (with papermill's "
                "injected-parameters cell)",
        "host": socket.gethostname(), "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seconds": round(seconds, 1),
    })


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


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_envs(workers: int, devices: Sequence[str] | None) -> list[dict[str, str]]:
    threads = str(max(1, cpu_count() // workers))
    envs = []
    for i in range(workers):
        env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
               "TOKENIZERS_PARALLELISM": "false"}
        if devices:
            env["CUDA_VISIBLE_DEVICES"] = str(devices[i % len(devices)])
        envs.append(env)
    return envs


# ---------------------------------------------------------------------------------- batch
def run_grid(grid: Grid, *, workers: int | None = None, devices: Sequence[str] | None = None,
             force: bool = False, executor: str = "local", notebook: str | os.PathLike = NOTEBOOK,
             kernel_name: str = KERNEL_NAME, slurm: dict[str, Any] | None = None,
             progress: bool = True, out: TextIO | None = None) -> RunSummary:
    """Execute the grid's pending configs (all of them with ``force``); see the module doc."""
    out = out or sys.stderr
    if executor not in EXECUTORS:
        raise GridError(f"executor={executor!r} is not one of {list(EXECUTORS)}.")
    notebook = Path(notebook).absolute()
    if not notebook.is_file():
        raise GridError(f"Notebook {notebook} does not exist (pass notebook=... / --notebook).")
    _check_kernel(kernel_name)
    devices = list(devices or [])
    workers = workers or len(devices) or 1
    if workers < 1:
        raise GridError(f"workers={workers} must be >= 1.")
    started = time.time()
    runs_dir = project_path(grid.runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
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
            executed = runs.log_path(runs_dir, r.run_id).with_suffix(".ipynb")
            run_dir = runs.run_path(runs_dir, r.run_id)
            if not (run_dir / "train.ipynb").is_file() and executed.is_file():
                _copy_notebook(executed, run_dir)
        else:
            todo.append(r)
    threads = job_cpus(executor, workers, slurm or {})
    tasks = [_task(r, runs_dir, notebook, kernel_name, threads) for r in todo]
    print(f"grid {grid.path}: {len(grid.runs)} configs, {len(summary.skipped)} complete, "
          f"{len(tasks)} to run" + (f", {len(summary.busy)} running elsewhere"
                                    if summary.busy else "")
          + (f" ({executor}, {workers} worker(s))" if tasks else ""), file=out)
    if tasks:
        bar = _Progress(len(tasks), progress, out)
        try:
            if executor == "local":
                _run_local(tasks, worker_envs(workers, devices), summary, bar)
            else:
                _run_submitit(tasks, executor, workers, slurm or {}, runs_dir, summary, bar)
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            bar.close()
        done = set(summary.executed)
        summary.not_run = [t["run_id"] for t in tasks if t["run_id"] not in done]
        if summary.not_run:
            _wait_for_orphans(grid)  # terminated workers' kernels exit within ~1 s
        runs.clean_stale(runs_dir)
    summary.seconds = time.time() - started
    print(format_summary(summary, grid), file=out)
    return summary


def _task(r: GridRun, runs_dir: Path, notebook: Path, kernel_name: str,
          threads: int) -> dict[str, Any]:
    params = r.params()
    params["runs_dir"] = str(runs_dir)
    if params.get("torch_threads") is None:  # not part of the run id: speed only
        params["torch_threads"] = threads
    return {"run_id": r.run_id, "params": params, "runs_dir": str(runs_dir),
            "notebook": str(notebook), "kernel_name": kernel_name, "cwd": os.getcwd()}


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
    than skipping those runs as "running elsewhere".
    """
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not any(run_state(grid.runs_dir, r.run_id) == "running" for r in grid.runs):
            return
        time.sleep(0.5)
    runs.clean_stale(grid.runs_dir)


class _Progress:
    """tqdm bar over finished runs, postfix done/failed/remaining, one line per finished run."""

    def __init__(self, total: int, enabled: bool, out) -> None:
        from tqdm.auto import tqdm

        self.tqdm = tqdm
        self.bar = tqdm(total=total, unit="run", desc="grid", disable=not enabled, file=out,
                        dynamic_ncols=True)
        self.total, self.done, self.failed, self.out = total, 0, 0, out
        self._postfix()

    def _postfix(self) -> None:
        self.bar.set_postfix(done=self.done, failed=self.failed,
                             remaining=self.total - self.done - self.failed)

    def finish(self, result: dict[str, Any]) -> None:
        if result["ok"]:
            self.done += 1
            line = f"  done   {result['run_id']} ({result['seconds']:.0f}s)"
        else:
            self.failed += 1
            line = f"  FAILED {result['run_id']} ({result['seconds']:.0f}s): {result['error']}"
        self.tqdm.write(line, file=self.out)
        self.bar.update(1)
        self._postfix()

    def close(self) -> None:
        self.bar.close()


def _collect(result: dict[str, Any], summary: RunSummary, bar: _Progress) -> None:
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
                        t = by_id[run_id]
                        info = {"ename": "WorkerDied", "cell_index": None, "traceback": [],
                                "evalue": f"worker process {p.pid} exited with code "
                                          f"{p.exitcode} while running the notebook"}
                        log = runs.log_path(t["runs_dir"], run_id)
                        _record(Path(t["runs_dir"]), run_id, info, log,
                                log.with_suffix(".ipynb"), time.time(), 0.0)
                        _collect({"run_id": run_id, "ok": False, "seconds": 0.0,
                                  "error": info["evalue"]}, summary, bar)
                        pending -= 1
                if not any(p.is_alive() for p in procs):
                    return
                continue
            if kind == "start":
                current[pid] = payload
            else:
                current.pop(pid, None)
                _collect(payload, summary, bar)
                pending -= 1
    finally:
        for p in procs:
            if p.is_alive() and pending:
                p.terminate()  # its kernel notices its parent is gone and exits (~1 s)
        for p in procs:
            p.join(timeout=10)


def job_cpus(executor: str, workers: int, slurm: dict[str, Any]) -> int:
    """CPU threads per run: this machine's cores split between workers; on Slurm what each
    array task asks for (default 4: tokenization and the data loader need a few)."""
    if executor == "slurm":
        return int(slurm.get("cpus_per_task") or 4)
    return max(1, cpu_count() // workers)


def make_submitit_executor(executor: str, folder: Path, workers: int,
                           slurm: dict[str, Any]) -> tuple[Any, int]:
    """A configured ``submitit.AutoExecutor`` and the CPUs each job gets.

    ``slurm`` keys: partition, time (minutes), gpus_per_task, cpus_per_task, mem_gb, account,
    array_parallelism (default: ``workers``).
    """
    import submitit

    cluster = "slurm" if executor == "slurm" else "local"
    try:
        ex = submitit.AutoExecutor(folder=folder / "%j", cluster=cluster)
    except RuntimeError as e:  # no srun/sbatch here
        raise GridError(f"--executor {executor}: {e} Run it on the cluster's login node, or "
                        f"use --executor local.") from None
    cpus = job_cpus(executor, workers, slurm)
    params: dict[str, Any] = {
        "name": "nlpdl-grid", "timeout_min": int(slurm.get("time") or 240),
        "cpus_per_task": cpus, "tasks_per_node": 1, "nodes": 1,
        "gpus_per_node": int(slurm.get("gpus_per_task") or 0),
        "slurm_array_parallelism": int(slurm.get("array_parallelism") or workers),
    }
    if slurm.get("partition"):
        params["slurm_partition"] = slurm["partition"]
    if slurm.get("mem_gb"):
        params["mem_gb"] = int(slurm["mem_gb"])
    if slurm.get("account"):
        params["slurm_account"] = slurm["account"]
    ex.update_parameters(**params)
    return ex, cpus


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
            log = runs.log_path(runs_dir, t["run_id"])
            _record(runs_dir, t["run_id"], info, log, log.with_suffix(".ipynb"), time.time(), 0)
            result = {"run_id": t["run_id"], "ok": False, "seconds": 0.0,
                      "error": f"{info['ename']}: {info['evalue']}"}
        _collect(result, summary, bar)


def format_summary(summary: RunSummary, grid: Grid) -> str:
    lines = [f"summary: {len(summary.completed)} completed, {len(summary.failed)} failed, "
             f"{len(summary.skipped)} already complete"
             + (f", {len(summary.busy)} running elsewhere" if summary.busy else "")
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
    p.add_argument("--devices", default=None, help="GPU ids, e.g. 0,1: one worker per GPU")
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
        summary = run_grid(grid, workers=args.workers, devices=devices, force=args.force,
                           executor=args.executor, notebook=args.notebook,
                           kernel_name=args.kernel, slurm=slurm,
                           progress=not args.no_progress)
    except GridError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if summary.interrupted:
        return 130
    return 0 if summary.ok else 1

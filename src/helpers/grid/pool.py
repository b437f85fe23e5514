"""Where a grid's runs execute: N local worker processes, or submitit jobs (a Slurm job
array, or submitit's local executor, ``workers`` jobs at a time). Each runs
:func:`helpers.grid.execution.execute_run` per task.

A Ctrl-C or a SIGINT/SIGTERM to the runner (:mod:`helpers.grid.stopping`) stops the workers or
local jobs, their kernels with them, before the runner returns; Slurm jobs keep running.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import time
from typing import Any

from helpers.run.disk import DiskFullError
from helpers.run.store import RunStore

from . import stopping
from .execution import execute_run, last_attempt, record_failure
from .slurm import make_submitit_executor
from .summary import RunSummary
from .tracker import GridProgress
from .workers import worker_envs


def run_tasks(tasks: list[dict[str, Any]], executor: str, workers: int, devices: list[str],
              slurm: dict[str, Any], store: RunStore, summary: RunSummary, bar: GridProgress,
              extra_env: dict[str, str]) -> None:
    """Run ``tasks`` to the end (or a signal), collecting each result into ``summary``."""
    try:
        if executor == "local":
            envs = [{**env, **extra_env} for env in worker_envs(workers, devices)]
            run_local(tasks, envs, store, summary, bar)
        else:
            run_submitit(tasks, executor, workers, slurm, store, summary, bar)
    except KeyboardInterrupt as e:  # everything it started is stopped by now
        summary.interrupted = True
        summary.signal = getattr(e, "signum", signal.SIGINT)
    finally:
        bar.close()


def _worker(env: dict[str, str], tasks: Any, results: Any) -> None:
    """One worker process: its own env (GPU, threads), one notebook at a time.

    Ctrl-C is left to the parent, which stops the workers (no traceback per worker); a
    SIGTERM from it ends the run's kernel and releases the claim (execute_run), then this.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.update(env)
    stopping.watch_parent()
    while True:
        task = tasks.get()
        if task is None:
            return
        results.put(("start", os.getpid(), task["run_id"]))
        try:
            result = execute_run(task)
        except stopping.Interrupted as e:
            os._exit(128 + e.signum)  # not through the queue's exit handlers: nobody reads
        results.put(("done", os.getpid(), result))
        if result.get("disk_full"):
            return  # the next would fail the same way; the runner takes the rest off the queue


def _collect(result: dict[str, Any], summary: RunSummary, bar: GridProgress) -> None:
    if result.get("skipped"):
        (summary.busy if result.get("busy") else summary.skipped).append(result["run_id"])
        if result.get("busy"):
            summary.busy_why[result["run_id"]] = str(result["skipped"])
    else:
        (summary.completed if result["ok"] else summary.failed).append(result["run_id"])
    if not result["ok"]:
        summary.errors[result["run_id"]] = str(result.get("error"))
    if result.get("disk_full"):
        summary.disk_full.append(result["run_id"])
    bar.finish(result)


def _stop_feeding(task_q: Any, workers: int) -> int:
    """Take the tasks not started yet off the queue (the disk is full: each would fail the
    same way); the workers then finish what they run and exit. Returns how many it took."""
    taken = 0
    with contextlib.suppress(queue.Empty):
        while True:
            taken += task_q.get(timeout=0.1) is not None
    for _ in range(workers):
        task_q.put(None)
    return taken


def run_local(tasks: list[dict[str, Any]], envs: list[dict[str, str]], store: RunStore,
              summary: RunSummary, bar: GridProgress) -> None:
    """N spawned worker processes fed from a queue.

    Not ``concurrent.futures``: its workers prefetch tasks and survive a Ctrl-C to run them,
    and it can't give each worker its own environment (the GPU) before the kernel starts.
    """
    import multiprocessing as mp  # deferred: only the local executor spawns processes

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
    current: dict[int, str] = {}  # worker pid -> the run it executes
    pending = [len(tasks)]
    try:
        _follow_workers(procs, (task_q, result_q), current, device_of, pending, summary, bar,
                        {t["run_id"]: t for t in tasks})
    finally:
        if pending[0]:  # interrupted, or workers died: stop the rest, kernels included
            summary.stopped = sorted(current.values())
            pids = stopping.stop_trees([p.pid for p in procs if p.is_alive()])
            stopping.release_claims(store, [t["run_id"] for t in tasks], pids)
        for p in procs:
            p.join(timeout=10)


def _follow_workers(procs: list[Any], queues: tuple[Any, Any], current: dict[int, str],
                    device_of: dict[int, str], pending: list[int], summary: RunSummary,
                    bar: GridProgress, by_id: dict[str, dict[str, Any]]) -> None:
    """Collect the workers' results until none is pending (``pending[0]`` counts down)."""
    task_q, result_q = queues
    while pending[0]:
        try:
            kind, pid, payload = result_q.get(timeout=1.0)
        except queue.Empty:
            for p in procs:
                if not p.is_alive() and p.pid in current:  # died mid-run (OOM kill, ...)
                    run_id = current.pop(p.pid)
                    bar.stopped(device_of[p.pid])
                    _worker_died(by_id[run_id], p, summary, bar)
                    pending[0] -= 1
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
            pending[0] -= 1
            if payload.get("disk_full") and len(summary.disk_full) == 1:
                pending[0] -= _stop_feeding(task_q, len(procs))


def _worker_died(t: dict[str, Any], p: Any, summary: RunSummary, bar: GridProgress) -> None:
    run_id = t["run_id"]
    info = {"ename": "WorkerDied", "cell_index": None, "traceback": [],
            "evalue": f"worker process {p.pid} exited with code {p.exitcode} while running "
                      f"the notebook"}
    log = last_attempt(t["store"], run_id)
    with contextlib.suppress(DiskFullError):  # the summary names the failure then
        record_failure(t["store"], run_id, info, log, log.with_suffix(".ipynb"),
                       time.time(), 0.0)
    _collect({"run_id": run_id, "ok": False, "seconds": 0.0, "error": info["evalue"]},
             summary, bar)


def run_submitit(tasks: list[dict[str, Any]], executor: str, workers: int,
                 slurm: dict[str, Any], store: RunStore, summary: RunSummary,
                 bar: GridProgress) -> None:
    """Slurm: one job array over the pending configs (``--array-parallelism``, default
    ``workers``, at once). submitit's local executor starts every job it is given at once,
    so locally ``workers`` jobs are submitted and each finished one makes room for the next.
    Each job runs :func:`execute_run`."""
    ex, cpus = make_submitit_executor(executor, store.submitit_dir, workers, slurm)
    env = {"OMP_NUM_THREADS": str(cpus), "MKL_NUM_THREADS": str(cpus),
           "TOKENIZERS_PARALLELISM": "false"}
    if executor == "slurm":
        running = dict(zip(ex.map_array(execute_run, tasks, [env] * len(tasks)), tasks,
                           strict=True))
        waiting: list[dict[str, Any]] = []
        first = next(iter(running)).job_id.split("_")[0]
        bar.tqdm.write(f"  submitted job array {first} ({len(tasks)} tasks); submitit files "
                       f"in {store.submitit_dir}", file=bar.out)
    else:
        running = {ex.submit(execute_run, t, env): t for t in tasks[:workers]}
        waiting = list(tasks[workers:])
        bar.tqdm.write(f"  submitit local jobs, {workers} at a time; submitit files in "
                       f"{store.submitit_dir}", file=bar.out)
    try:
        while running:
            done = [j for j in running if j.done()]
            for job in done:
                _collect(_job_result(job, running.pop(job), store), summary, bar)
                if summary.disk_full:
                    waiting.clear()  # each would fail the same way
                if waiting:
                    t = waiting.pop(0)
                    running[ex.submit(execute_run, t, env)] = t
            if not done:
                time.sleep(2.0 if executor == "slurm" else 0.5)
    finally:
        if running and executor != "slurm":  # interrupted: stop the local jobs, kernels too
            summary.stopped = sorted(t["run_id"] for t in running.values())
            pids = stopping.stop_trees([j._process.pid for j in running if j._process])
            stopping.release_claims(store, [t["run_id"] for t in tasks], pids)
        elif running:
            summary.detached = sorted(t["run_id"] for t in running.values())


def _job_result(job: Any, t: dict[str, Any], store: RunStore) -> dict[str, Any]:
    try:
        return job.result()
    except Exception as e:  # the job itself died: timeout, preemption, node failure
        info = {"ename": type(e).__name__, "cell_index": None,
                "evalue": f"{str(e).splitlines()[0][:300] if str(e) else ''} "
                          f"(job {job.job_id}, stderr {job.paths.stderr})",
                "traceback": str(e).splitlines()}
        log = last_attempt(store, t["run_id"])
        with contextlib.suppress(DiskFullError):  # the summary names the failure then
            record_failure(store, t["run_id"], info, log, log.with_suffix(".ipynb"),
                           time.time(), 0)
        return {"run_id": t["run_id"], "ok": False, "seconds": 0.0,
                "error": f"{info['ename']}: {info['evalue']}"}

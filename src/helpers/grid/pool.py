"""Where a grid's runs execute: N local worker processes, or a submitit job array (Slurm, or
submitit's local executor). Each runs :func:`helpers.grid.execution.execute_run` per task.
"""

from __future__ import annotations

import os
import queue
import signal
import time
from pathlib import Path
from typing import Any

from .execution import execute_run, last_attempt, record_failure
from .slurm import SUBMITIT_DIR, make_submitit_executor
from .summary import RunSummary
from .tracker import GridProgress
from .workers import worker_envs


def run_tasks(tasks: list[dict[str, Any]], executor: str, workers: int, devices: list[str],
              slurm: dict[str, Any], runs_dir: Path, summary: RunSummary, bar: GridProgress,
              extra_env: dict[str, str]) -> None:
    """Run ``tasks`` to the end (or a Ctrl-C), collecting each result into ``summary``."""
    try:
        if executor == "local":
            envs = [{**env, **extra_env} for env in worker_envs(workers, devices)]
            run_local(tasks, envs, summary, bar)
        else:
            run_submitit(tasks, executor, workers, slurm, runs_dir, summary, bar)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        bar.close()


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


def _collect(result: dict[str, Any], summary: RunSummary, bar: GridProgress) -> None:
    if result.get("skipped"):
        (summary.busy if result.get("busy") else summary.skipped).append(result["run_id"])
    else:
        (summary.completed if result["ok"] else summary.failed).append(result["run_id"])
    bar.finish(result)


def run_local(tasks: list[dict[str, Any]], envs: list[dict[str, str]], summary: RunSummary,
               bar: GridProgress) -> None:
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


def run_submitit(tasks: list[dict[str, Any]], executor: str, workers: int,
                  slurm: dict[str, Any], runs_dir: Path, summary: RunSummary,
                  bar: GridProgress) -> None:
    """One job array over the pending configs; each job runs :func:`execute_run`."""
    import submitit  # deferred: only the submitit executors need it

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



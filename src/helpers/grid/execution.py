"""One run of a grid: claim it, execute ``notebooks/train.ipynb`` for its config through
papermill, and record the outcome (its log and executed notebook per attempt, a failure record,
or the notebook copied into the complete run folder).

Module-level and picklable, so the grid's local worker processes and submitit jobs run exactly
:func:`execute_run`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from helpers.run import disk
from helpers.run.failures import FAILURE_OWNER_ENV
from helpers.run.store import RunStore, new_attempt
from helpers.settings import kernel_options

from . import claims, mps, stopping
from .spec import GridRun
from .watchdog import STALL_S, Watchdog


def make_task(r: GridRun, store: RunStore, notebook: Path, kernel_name: str,
          threads: int, force: bool = False, since: float | None = None,
          time_limit_s: float | None = None, stall_s: float | None = STALL_S
          ) -> dict[str, Any]:
    params = r.params()
    params["runs_dir"] = str(store.root)  # the notebook's parameter: the kernel's store
    if params.get("torch_threads") is None:  # not part of the run id: speed only
        params["torch_threads"] = threads
    return {"run_id": r.run_id, "params": params, "store": store,
            "notebook": str(notebook), "kernel_name": kernel_name, "cwd": os.getcwd(),
            "force": force, "since": since, "time_limit_s": time_limit_s, "stall_s": stall_s}


def execute_run(task: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Claim the run, then execute the notebook for its config; never raises for a failing
    run (it is recorded).

    ``task``: run_id, params, store (a :class:`RunStore`), notebook, kernel_name, cwd, force,
    since (the batch's start). Returns run_id, ok, seconds, error (``ename: evalue``) on
    failure, and ``skipped`` (why, e.g. "claimed by pid 12 on host-a since 10:01:02") when
    another runner holds the run or completed it meanwhile. Module-level and picklable, so the
    local worker processes and submitit jobs run exactly this.
    """
    if env:
        os.environ.update(env)
    run_id, store = task["run_id"], task["store"]
    claim = claims.try_claim(store, run_id)
    if claim is None:
        return _skipped(run_id, claims.held_by(store, run_id) or "claimed by another runner",
                        busy=True)
    # a SIGTERM (the runner stopping, scancel) ends the kernel, then releases the claim
    with claim, stopping.runs_end_with_signals():
        # --force reruns what was complete when this batch started, not what another (forced)
        # runner completed since: that would train it twice
        if store.is_complete(run_id) and (not task.get("force")
                                         or _written_since(store.path(run_id), task.get("since"))):
            return _skipped(run_id, "completed by another runner meanwhile", busy=False)
        return _execute_claimed(task, run_id, store)


def _written_since(run_dir: Path, since: float | None) -> bool:
    try:
        return since is not None and (run_dir / "metrics.json").stat().st_mtime >= since
    except OSError:
        return False


def _skipped(run_id: str, why: str, busy: bool) -> dict[str, Any]:
    return {"run_id": run_id, "ok": True, "seconds": 0.0, "error": None, "skipped": why,
            "busy": busy}


def _execute_claimed(task: dict[str, Any], run_id: str, store: RunStore) -> dict[str, Any]:
    """One attempt at a claimed run; a full disk anywhere in it (the log, the executed
    notebook, the failure record) is one clear error, never a dead worker, and never a
    failure of a run whose folder was published in this attempt."""
    start = time.time()
    try:
        return _attempt(task, run_id, store, start)
    except OSError as e:
        if not disk.is_disk_full(e):
            raise
        full = disk.disk_full(e, getattr(e, "filename", None) or store.root)
        if _published(store, run_id, start):
            return _complete(run_id, store, time.time() - start,
                             f"but its log or executed notebook was not saved: {full}")
        return {"run_id": run_id, "ok": False, "seconds": time.time() - start,
                "error": str(full), "disk_full": True}


def _published(store: RunStore, run_id: str, start: float) -> bool:
    """Whether this attempt published the run (its metrics.json was written since ``start``)."""
    return store.is_complete(run_id) and _written_since(store.path(run_id), start)


def _complete(run_id: str, store: RunStore, seconds: float, warning: str | None = None
              ) -> dict[str, Any]:
    store.clear_failure(run_id)
    return {"run_id": run_id, "ok": True, "seconds": seconds, "error": None,
            **({"warning": warning} if warning else {})}


def _attempt(task: dict[str, Any], run_id: str, store: RunStore, start: float
             ) -> dict[str, Any]:
    log = store.log_path(run_id, new_attempt())
    log.parent.mkdir(parents=True, exist_ok=True)
    out_nb = log.with_suffix(".ipynb")
    run_dir = store.path(run_id)
    with open(log, "w", encoding="utf-8") as fh:
        fh.write(f"# run {run_id} on {socket.gethostname()} pid {os.getpid()} at "
                 f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n# CUDA_VISIBLE_DEVICES="
                 f"{os.environ.get('CUDA_VISIBLE_DEVICES', '')} OMP_NUM_THREADS="
                 f"{os.environ.get('OMP_NUM_THREADS', '')}"
                 + (f" {mps.PIPE_ENV}={os.environ[mps.PIPE_ENV]}"
                    if os.environ.get(mps.PIPE_ENV) else "")
                 + f"\n# notebook {task['notebook']} -> "
                 f"{out_nb}\n")
        problem = store.check(run_id) if run_dir.exists() else None
        if problem:  # never published like this by us: a damaged or hand-made folder
            fh.write(f"# {run_dir} is corrupt ({problem}): moved to "
                     f"{store.set_aside(run_id, problem)}\n")
        fh.flush()
        info = _papermill(task, out_nb, fh)
        warning, saved = None, True
        if info is not None and _published(store, run_id, start):  # the kernel published the run:
            saved = not _disk_full_text(info)  # what failed came after it: the notebook's
            warning = ("but its executed notebook was not saved: disk full in "  # last save
                       f"{out_nb.parent} ({disk.size(disk.free_bytes(out_nb))} free there)"
                       if not saved else f"but a later cell failed: {info['ename']}: "
                       f"{str(info['evalue']).splitlines()[0][:300] if info['evalue'] else ''}")
            info = None
        if info is None and not store.is_complete(run_id):
            info = {"ename": "IncompleteRun", "cell_index": None, "traceback": [],
                    "evalue": f"the notebook finished but {run_dir} is not a complete run "
                              f"(its run id differs from the grid's, or it wrote elsewhere)"}
        seconds = time.time() - start
        if info is not None:
            fh.write(f"\n# FAILED after {seconds:.1f}s: {info['ename']}: {info['evalue']}\n")
        else:
            fh.write(f"\n# complete after {seconds:.1f}s: {run_dir}"
                     + (f" ({warning})" if warning else "") + "\n")
    if info is not None:
        return _failed(store, run_id, info, log, out_nb, start, seconds)
    problem = copy_notebook(out_nb, run_dir) if saved else None
    if problem:
        warning = (f"{warning}; " if warning else "but ") + \
            f"its executed notebook was not copied into the run folder: {problem}"
    return _complete(run_id, store, seconds, warning)


def _papermill(task: dict[str, Any], out_nb: Path, fh: TextIO) -> dict[str, Any] | None:
    """Execute the notebook for the task's config; None, or what failed (cell, traceback)."""
    # deferred: papermill's import takes a second, paid in the worker that runs the notebook
    import papermill
    from nbclient.exceptions import DeadKernelError
    from papermill.exceptions import PapermillExecutionError, strip_color

    watchdog = Watchdog(task.get("time_limit_s"), task.get("stall_s", STALL_S))
    try:
        with _output_to(fh), watchdog, _env(FAILURE_OWNER_ENV, "helpers.grid.execution"):
            papermill.execute_notebook(
                task["notebook"], str(out_nb), parameters=task["params"],
                kernel_name=task["kernel_name"], cwd=task["cwd"], progress_bar=False,
                log_output=False, stdout_file=fh, stderr_file=fh,
                kernel_manager_class=watchdog.kernel_manager_class(),
                **kernel_options(shutdown="immediate"),
            )
    except PapermillExecutionError as e:
        return {"ename": e.ename, "evalue": e.evalue, "cell_index": e.cell_index,
                "exec_count": e.exec_count, "cell_source": e.source,
                "traceback": [strip_color(line) for line in e.traceback]}
    except Exception as e:  # kernel died, kernel missing, unreadable notebook, ...
        info = {"ename": type(e).__name__, "evalue": str(e), "cell_index": None,
                "traceback": traceback.format_exc().splitlines()}
        # killed: by which signal, out of memory, stalled, too long. Only when the kernel died
        # under the run (or the watchdog ended it): after any other error (a full disk when
        # the notebook is saved) the grid's own immediate shutdown has killed it, and that
        # SIGKILL says nothing about the run.
        died = isinstance(e, DeadKernelError) or watchdog.reason is not None
        why = watchdog.explain() if died else None
        return {**info, **why, "detail": f"{type(e).__name__}: {e}"} if why else info
    return None


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    """``name=value`` in the environment the kernel starts with, for this attempt only."""
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def _disk_full_text(info: dict[str, Any]) -> bool:
    """Whether a failure (as papermill reports it) was a full disk."""
    return (info["ename"] == "DiskFullError"
            or disk.from_message(str(info["evalue"]), ".") is not None)


def _failed(store: RunStore, run_id: str, info: dict[str, Any], log: Path, out_nb: Path,
            start: float, seconds: float) -> dict[str, Any]:
    """Record the failure; the result names it (a full disk: the folder and the space)."""
    evalue = str(info["evalue"])
    error = (f"{info['ename']}: {evalue.splitlines()[0][:200]}" if evalue else info["ename"])
    found = disk.from_message(evalue, store.root)  # a raw ENOSPC (papermill's save, pandas)
    full = info["ename"] == "DiskFullError" or found is not None
    if full:  # one clear error: the folder, the space
        error = evalue.splitlines()[0] if found is None else str(found)
    try:
        record_failure(store, run_id, info, log, out_nb, start, seconds)
    except OSError as e:
        if not disk.is_disk_full(e):
            raise
        error = (f"{error} (nor could its failure record be saved)" if full else
                 f"{error}; its failure record was not saved: "
                 f"{disk.disk_full(e, store.failure_path(run_id))}")
        full = True
    return {"run_id": run_id, "ok": False, "seconds": seconds, "error": error,
            **({"disk_full": True} if full else {})}


def last_attempt(store: RunStore, run_id: str) -> Path:
    """The newest attempt's log (a placeholder name when no attempt wrote one)."""
    logs = store.attempt_logs(run_id)
    return logs[-1] if logs else store.log_path(run_id, "none")


def copy_notebook(executed: Path, run_dir: Path) -> str | None:
    """Add the executed notebook to a complete run folder (atomically: copy, then rename);
    None, or why not: it is missing or cut short, or the disk is full."""
    try:
        text = executed.read_bytes().decode("utf-8")  # as it is: no newline translation
        json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return f"{executed} is not a whole notebook ({type(e).__name__})"
    try:
        disk.write_atomic(run_dir / "train.ipynb", text)
    except disk.DiskFullError as e:
        return str(e)
    return None


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


def record_failure(store: RunStore, run_id: str, info: dict[str, Any], log: Path,
                   out_nb: Path, start: float, seconds: float) -> None:
    """Write .failed/<run_id>.json through :meth:`RunStore.record_failure`: the one record of
    this attempt (the kernel wrote none, see FAILURE_OWNER_ENV), with the cell, the log, the
    host and why the kernel died."""
    step = re.search(r"at step (\d+): training diverged", str(info.get("evalue", "")))
    store.record_failure(run_id, {
        **info, "log": str(log), "notebook": str(out_nb),
        **({"diverged_at_step": int(step.group(1))} if step else {}),
        "note": "cell_index counts the cells of the executed notebook (with papermill's "
                "injected-parameters cell)",
        "host": socket.gethostname(), "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seconds": round(seconds, 1), "source": "helpers.grid.execution",
    })

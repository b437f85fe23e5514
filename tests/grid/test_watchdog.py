"""A run's kernel that hangs, runs too long or dies of a signal (issue 31.4, 31.5): ended by
the grid, its claim released, and one failure record saying why."""

from __future__ import annotations

import json

import nbformat
import pytest

from helpers.grid import watchdog
from helpers.grid.execution import execute_run


def _task(tmp_path, store, code, **extra):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(code)]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    return {"run_id": "r", "params": {}, "store": store,
            "notebook": str(path), "kernel_name": "nlpdl-report", "cwd": str(tmp_path),
            "force": False, "since": None, **extra}


def _record(store):
    record = json.loads(store.failure_path("r").read_text())
    assert "training" not in record  # one record, none nested in another
    return record


@pytest.mark.slow
def test_a_stopped_kernel_is_ended_and_its_claim_released(tmp_path, store):
    task = _task(tmp_path, store, "import os, signal\nos.kill(os.getpid(), signal.SIGSTOP)",
                 stall_s=3)
    result = execute_run(task)
    assert not result["ok"] and result["error"].startswith("RunStalled")
    record = _record(store)
    assert record["cause"] == "stalled" and "no CPU for 3 s" in record["evalue"]
    assert not store.claim_path("r").exists()


@pytest.mark.slow
def test_a_run_past_its_time_limit_is_ended(tmp_path, store):
    result = execute_run(_task(tmp_path, store, "while True:\n    pass", time_limit_s=3))
    assert result["error"].startswith("RunTimeLimit")
    assert _record(store)["cause"] == "time_limit"
    assert not store.claim_path("r").exists()


@pytest.mark.slow
def test_a_kernel_killed_by_a_signal_says_which(tmp_path, store):
    result = execute_run(_task(tmp_path, store, "import os, signal\nos.kill(os.getpid(), "
                                         "signal.SIGSEGV)"))
    record = _record(store)
    assert result["error"].startswith("KernelKilled")
    assert record["signal"] == "SIGSEGV" and record["cause"] == "signal"
    assert "killed by SIGSEGV" in record["evalue"] and "DeadKernelError" in record["detail"]


@pytest.mark.slow
def test_a_sigkill_while_the_cgroup_counts_an_oom_kill_is_out_of_memory(tmp_path, store,
                                                                         monkeypatch):
    """The cgroup's oom_kill counter is the evidence; here a stand-in counter rises by one
    while the kernel dies of SIGKILL (a real OOM kill needs a memory-limited cgroup)."""
    counts = iter([3, 4])
    monkeypatch.setattr(watchdog, "cgroup_oom_kills", lambda: next(counts))
    execute_run(_task(tmp_path, store,
                      "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"))
    record = _record(store)
    assert record["ename"] == "OutOfMemory" and record["cause"] == "out_of_memory"
    assert "oom_kill count went from 3 to 4" in record["evalue"]
    assert record["signal"] == "SIGKILL"

"""Ctrl-C during `nlpdl-report report` (issue 31, point 8) prints one line -- what it stopped,
that the previous build is intact -- and exits 130, wherever it lands: a real SIGINT to the
report's pid or to its process group (a terminal's Ctrl-C), while the kernel starts, while
the analysis notebook's cells run, and while quarto renders. Before, it printed dozens of
lines of KeyboardInterrupt and ZMQ tracebacks (the kernel's among them)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from helpers.grid.spec import load_grid
from helpers.run.store import RunStore
from helpers.testing import synthetic

ROOT = Path(__file__).resolve().parents[2]
GRID = """
defaults: {num_train_epochs: 3, learning_rate: 2.0e-5}
matrix: {model: roberta-base, dataset: restaurant_sup, method: full, seed: [1, 2]}
"""
#: A stand-in for quarto that renders nothing for a minute, with a child as pandoc would be.
QUARTO = """#!/bin/sh
echo "pandoc: rendering" >&2
sleep 60 &
echo $! > "$(dirname "$0")/child.pid"
wait
"""


def old_build(folder: Path) -> dict[str, bytes]:
    """A previous build (as tests/report/test_build.py's); returns its files' contents."""
    (folder / "tables").mkdir(parents=True)
    for name, content in {"analysis.ipynb": b'{"old": true}', "tables/t.csv": b"a\n1\n"}.items():
        (folder / name).write_bytes(content)
    return contents(folder)


def contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def report(tmp_path, real_data_dir):
    grid = tmp_path / "g.yaml"
    grid.write_text(GRID)
    synthetic.write_grid_runs(load_grid(grid), RunStore(tmp_path / "runs"))
    build = tmp_path / "build"
    before = old_build(build)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "quarto").write_text(QUARTO)
    (bin_dir / "quarto").chmod(0o755)
    env = {**os.environ, "NLPDL_DATA_DIR": str(real_data_dir),
           "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}

    def start(*flags: str) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "helpers", "report", "--grid", str(grid), "--runs-dir",
               str(tmp_path / "runs"), "--output-dir", str(build), *flags]
        # a session of its own, SIGINT at its default: as the foreground job of a terminal
        return subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=open(tmp_path / "err", "w"),
                                preexec_fn=lambda: signal.signal(signal.SIGINT,
                                                                 signal.SIG_DFL))
    yield {"start": start, "build": build, "before": before, "tmp": tmp_path, "bin": bin_dir}


def wait_for(proc: subprocess.Popen, what: str, ready, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while not ready():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"the report ended or took too long before {what}")
        time.sleep(0.05)


def kernels(proc: subprocess.Popen) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(proc.pid).children(recursive=True)
                if "ipykernel" in " ".join(p.cmdline())]
    except psutil.NoSuchProcess:
        return []


@pytest.mark.slow
@pytest.mark.parametrize("moment, group", [
    ("kernel start", False),     # `kill -INT <pid>` as the kernel comes up
    ("cell execution", True),    # Ctrl-C in a terminal while the cells run
    ("cell execution", False),
    ("quarto", True),
    ("quarto", False),
])
def test_ctrl_c_prints_one_line_and_leaves_the_previous_build(report, moment, group):
    proc = report["start"](*(() if moment == "quarto" else ("--no-render",)))
    started: list[psutil.Process] = []
    stage = report["tmp"] / f".build.building-{proc.pid}"
    if moment == "kernel start":
        wait_for(proc, "a kernel", lambda: bool(started.extend(kernels(proc)) or started))
    elif moment == "cell execution":
        wait_for(proc, "the first cell ran", lambda: (stage / "runs_summary.csv").exists())
        started = kernels(proc)
        assert started, "no kernel while the cells run"
    else:
        wait_for(proc, "quarto", lambda: (report["bin"] / "child.pid").exists())
        started = [psutil.Process(int((report["bin"] / "child.pid").read_text()))]
    (os.killpg if group else os.kill)(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    err = (report["tmp"] / "err").read_text()
    step = {"kernel start": "executing the analysis notebook",
            "cell execution": "executing the analysis notebook",
            "quarto": "rendering the report with quarto"}[moment]
    # beside papermill's progress bar (and what quarto printed before), the one line
    lines = [ln for ln in err.split("\n") if ln.strip() and not ln.startswith("Executing:")]
    assert "Traceback" not in err and "Error" not in err, err
    assert len(lines) == 1 + (moment == "quarto"), err
    assert lines[-1] == (f"stopped by Ctrl-C (SIGINT) while {step}: {report['build']} is "
                         f"unchanged (the previous build); the stopped build is in "
                         f"{report['build']}.failed."), err
    assert contents(report["build"]) == report["before"]
    assert not stage.exists()
    gone, alive = psutil.wait_procs(started, timeout=10)
    assert not alive, f"left running: {alive}"

"""Stopping a grid: a signal to the runner's pid alone stops every worker, submitit job and
kernel it started, releases their claims, says what it stopped, and exits 128 + the signal.

The runs execute a stand-in notebook (``--notebook``) that appends a timestamp to a file every
0.1 s for as long as its kernel lives: a kernel left running after the runner has exited
keeps writing, which is what "nothing trains after the runner has exited" rules out.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from helpers.grid import runner, stopping
from helpers.grid.spec import load_grid
from helpers.run.store import RunStore
from helpers.testing.synthetic import write_grid_runs

ROOT = Path(__file__).resolve().parents[2]

GRID = """
defaults: {model: minilm, dataset: restaurant_sup, max_train_samples: 16}
matrix: {seed: [1, 2]}
"""


def beating_notebook(path: Path) -> Path:
    """A notebook that writes ``$STUB_BEAT_DIR/<seed>.txt`` every 0.1 s, $STUB_BEATS times."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("seed = 0\nruns_dir = 'runs'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "import os, time\n"
        "beat = os.path.join(os.environ['STUB_BEAT_DIR'], f'{seed}.txt')\n"
        "for _ in range(int(os.environ.get('STUB_BEATS', '3000'))):\n"
        "    with open(beat, 'a') as fh:\n"
        "        fh.write(f'{os.getpid()} {time.time()}\\n')\n"
        "    time.sleep(0.1)\n")]
    nb.metadata["kernelspec"] = {"name": "nlpdl-report", "display_name": "nlpdl-report",
                                 "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture
def setup(tmp_path, real_data_dir):
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID)
    beats = tmp_path / "beats"
    beats.mkdir()
    env = {**os.environ, "NLPDL_DATA_DIR": str(real_data_dir), "STUB_BEAT_DIR": str(beats)}
    s = {"grid": grid, "runs": tmp_path / "runs", "store": RunStore(tmp_path / "runs"),
         "beats": beats, "env": env,
         "notebook": beating_notebook(tmp_path / "beating.ipynb"), "log": tmp_path / "out.log",
         "started": []}
    yield s
    for p in s["started"]:  # what a failing runner left behind
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def start_runner(s: dict, executor: str, workers: int = 1, **env: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "helpers", "grid", "run", str(s["grid"]), "--runs-dir",
           str(s["runs"]), "--notebook", str(s["notebook"]), "--executor", executor,
           "--workers", str(workers), "--no-progress"]
    # output to a file: a pipe stays open as long as any process the runner started lives.
    # SIGINT at its default, as under a terminal's Ctrl-C: when pytest itself runs in a
    # background job bash ignores SIGINT, and the runner keeps an ignored SIGINT ignored
    # (test_an_ignored_sigint_stays_ignored).
    with open(s["log"], "w") as log:
        return subprocess.Popen(cmd, cwd=ROOT, env={**s["env"], **env}, start_new_session=True,
                                stdout=log, stderr=subprocess.STDOUT, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def finish(s: dict, proc: subprocess.Popen, timeout: float) -> str:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return s["log"].read_text()


def wait_for_beats(s: dict, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not list(s["beats"].glob("*.txt")):
        if proc.poll() is not None or time.time() > deadline:
            pytest.fail(f"no kernel started: {finish(s, proc, 1)}")
        time.sleep(0.2)


def footprint(s: dict) -> dict[str, tuple[int, int]]:
    """Size and mtime of everything under the runs folder and the beat files."""
    files = [*s["beats"].rglob("*"), *s["runs"].rglob("*")]
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in files if p.is_file()}


def alive(procs: list[psutil.Process]) -> list[str]:
    out = []
    for p in procs:
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                out.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.mark.slow
@pytest.mark.parametrize("executor, sig, group", [
    ("local", signal.SIGTERM, False),           # `kill -TERM <pid>`: the worker trained on
    ("local-submitit", signal.SIGINT, False),   # `kill -INT <pid>`: the job trained on
    ("local", signal.SIGINT, True),             # Ctrl-C: the terminal signals the group
])
def test_a_signal_to_the_runner_stops_everything_it_started(setup, executor, sig, group):
    proc = start_runner(setup, executor)
    wait_for_beats(setup, proc)
    started = psutil.Process(proc.pid).children(recursive=True)  # workers/jobs and kernels
    setup["started"] = started
    assert any("ipykernel" in " ".join(p.cmdline()) for p in started), alive(started)
    (os.killpg if group else os.kill)(proc.pid, sig)
    err = finish(setup, proc, 120)
    assert proc.returncode == 128 + sig, err
    # multiprocessing's resource tracker ends when it reads the runner's EOF, a moment later
    assert not [p for p in alive(started) if "resource_tracker" not in p], err
    psutil.wait_procs(started, timeout=5)
    assert not alive(started), err
    stopped = [line for line in err.splitlines() if line.startswith("stopped by ")]
    assert len(stopped) == 1, err
    name = signal.Signals(sig).name
    ids = [r.run_id for r in load_grid(setup["grid"], runs_dir=setup["runs"]).runs]
    assert stopped[0].startswith(f"stopped by {name}: ") and "resumable" in stopped[0], err
    assert ids[0] in stopped[0], err  # the run it stopped, by name
    assert "Traceback" not in err, err
    assert not list(setup["store"].claims_dir.glob("*"))  # claims released
    before = footprint(setup)
    time.sleep(3)  # a kernel still running would write a beat every 0.1 s
    assert footprint(setup) == before
    assert not [p for p in setup["runs"].iterdir() if not p.name.startswith(".")]
    assert not setup["store"].read_failure(ids[0])  # stopped is not failed


@pytest.mark.slow
def test_workers_bound_the_submitit_jobs_at_once(setup):
    """`--executor local-submitit --workers 1` ran both jobs at once."""
    proc = start_runner(setup, "local-submitit", STUB_BEATS="20")
    err = finish(setup, proc, 400)
    assert proc.returncode == 1, err  # the stand-in writes no run folder: IncompleteRun
    spans = []
    for beat in sorted(setup["beats"].glob("*.txt")):
        times = [float(line.split()[1]) for line in beat.read_text().splitlines()]
        spans.append((min(times), max(times)))
    assert len(spans) == 2, err
    (a0, a1), (b0, b1) = sorted(spans)
    assert a1 < b0, f"the two jobs ran at the same time: {spans}"


@pytest.mark.slow
def test_kill_9_of_the_runner_alone_ends_its_worker_and_kernel(setup):
    """SIGKILL can't be handled: the worker watches its runner and ends with it (~1 s)."""
    proc = start_runner(setup, "local")
    wait_for_beats(setup, proc)
    started = psutil.Process(proc.pid).children(recursive=True)
    setup["started"] = started
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    psutil.wait_procs(started, timeout=10)
    assert not alive(started)
    before = footprint(setup)
    time.sleep(2)
    assert footprint(setup) == before


def test_an_ignored_sigint_stays_ignored():
    """As after ``nohup cmd &``: a runner started with SIGINT ignored is not stopped by it;
    SIGTERM still stops it."""
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with stopping.interrupt_on_signals():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert callable(signal.getsignal(signal.SIGTERM))
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_run_published_at_the_signal_is_complete_not_resumable(tmp_path, real_data_dir,
                                                                 monkeypatch):
    """SIGINT arrived as a worker published its run, before the runner read the result: the
    summary said "stopped 1 run(s) in progress ... 2 run(s) resumable" for a complete run."""
    (tmp_path / "grid.yaml").write_text(GRID)
    grid = load_grid(tmp_path / "grid.yaml", runs_dir=tmp_path / "runs")
    first = grid.runs[0]

    def published_then_interrupted(tasks, executor, workers, devices, slurm, store, summary,
                                   bar, env):
        assert store == grid.store
        write_grid_runs(grid.select({"run_id": first.run_id}))  # the worker's rename
        summary.stopped = [first.run_id]  # what the runner saw running at the signal
        summary.interrupted, summary.signal = True, signal.SIGINT

    monkeypatch.setenv("NLPDL_DATA_DIR", str(real_data_dir))
    monkeypatch.setattr(runner, "run_tasks", published_then_interrupted)
    out = io.StringIO()
    summary = runner.run_grid(grid, runner.RunOptions(), out=out)
    assert summary.completed == [first.run_id] and summary.stopped == []
    assert summary.not_run == [grid.runs[1].run_id]
    last = out.getvalue().splitlines()[-1]
    assert last.startswith("stopped by SIGINT: no run was in progress; 1 run(s) resumable"), last

"""A full disk during a grid (issue 20, case 5): one clear error naming the folder and the
space; never FAILED for a run that was published; a success removes a stale failure record;
no debris after the next start.

In-process tests use the ``disk_full`` fixture (conftest: files opened for writing in a
folder fail with ENOSPC, the code's own writes unchanged). The last test fills a real disk:
a small tmpfs in a mount namespace of its own (``unshare``), skipped where none can be made.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from helpers.grid.execution import execute_run, make_task
from helpers.grid.runner import run_grid
from helpers.grid.spec import GridError, load_grid
from helpers.run import disk
from helpers.run.store import RunStore
from helpers.testing.synthetic import write_synthetic_runs

ROOT = Path(__file__).resolve().parents[2]
SYNTHETIC_GRID = """
defaults: {num_train_epochs: 3, logging_steps: 2, max_train_samples: 48}
matrix: {model: roberta-base, dataset: restaurant_sup, method: full, seed: [1, 2, 3]}
"""


@pytest.fixture
def synthetic(tmp_path):
    """Three complete synthetic runs in ``source/`` and their grid over ``runs/``."""
    ids = write_synthetic_runs(RunStore(tmp_path / "source"), [("roberta-base", "restaurant_sup",
                                                      "full")])
    path = tmp_path / "grid.yaml"
    path.write_text(SYNTHETIC_GRID)
    grid = load_grid(path, runs_dir=tmp_path / "runs")
    assert [r.run_id for r in grid.runs] == ids
    return {"grid": grid, "ids": ids, "source": tmp_path / "source", "runs": tmp_path / "runs",
            "store": grid.store}


def no_debris(store: RunStore) -> list[Path]:
    tmp = store.tmp_dir.name
    return [p for p in store.root.rglob("*") if p.parent.name == tmp
            or (p.name.endswith(".tmp") and p.name != tmp)]


def test_a_failure_record_on_a_full_disk_does_not_kill_the_worker(synthetic, tmp_path,
                                                                   disk_full):
    """The worker crashed inside record_failure with a raw OSError; the runner then recorded
    `WorkerDied` with an empty traceback."""
    store = synthetic["store"]
    store.failed_dir.mkdir(parents=True)
    disk_full(store.failed_dir)
    run = synthetic["grid"].runs[0]
    result = execute_run(make_task(run, store, tmp_path / "missing.ipynb", "nlpdl-report", 1))
    assert not result["ok"] and result["disk_full"]
    assert f"disk full: could not write {store.failed_dir}" in result["error"]
    assert "free there" in result["error"]
    assert "missing.ipynb" in result["error"]  # and what failed in the first place
    assert not no_debris(store)
    assert not list(store.claims_dir.iterdir())


def publishing_notebook(path: Path, then: str = "") -> Path:
    """Copies $STUB_SOURCE/<run id> into $STUB_RUNS: a run published by its kernel; then
    runs the cell ``then``."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import os, shutil\n"
        "src, runs = os.environ['STUB_SOURCE'], os.environ['STUB_RUNS']\n"
        "rid = os.environ['STUB_RUN_ID']\n"
        "shutil.copytree(os.path.join(src, rid), os.path.join(runs, '.tmp', rid),\n"
        "                copy_function=shutil.copy)  # written now, as training writes it\n"
        "os.rename(os.path.join(runs, '.tmp', rid), os.path.join(runs, rid))\n"),
        nbformat.v4.new_code_cell(then)]
    nb.metadata["kernelspec"] = {"name": "nlpdl-report", "display_name": "nlpdl-report",
                                 "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_a_run_published_before_the_disk_filled_is_complete_not_failed(
        synthetic, tmp_path, disk_full, monkeypatch):
    """With ~90 KB free the grid printed FAILED for a run it had published (status complete,
    no train.ipynb) and left a failure record that outlived the next success."""
    runs_dir, store, run = synthetic["runs"], synthetic["store"], synthetic["grid"].runs[0]
    store.tmp_dir.mkdir(parents=True)
    store.record_failure(run.run_id, {"ename": "OlderFailure"})  # a stale one
    for key, value in (("STUB_SOURCE", synthetic["source"]), ("STUB_RUNS", runs_dir),
                       ("STUB_RUN_ID", run.run_id)):
        monkeypatch.setenv(key, str(value))
    published = store.path(run.run_id)
    # the disk fills once the run is published: papermill can't save the executed notebook
    disk_full(lambda p: p.suffix == ".ipynb" and published.exists())
    result = execute_run(make_task(run, store, publishing_notebook(tmp_path / "nb.ipynb"),
                                   "nlpdl-report", 1))
    assert result["ok"], result
    assert "executed notebook was not saved" in result["warning"], result
    assert "disk full" in result["warning"], result
    assert store.is_complete(run.run_id)
    assert store.read_failure(run.run_id) is None
    assert not no_debris(store)


@pytest.mark.slow
def test_a_published_run_whose_later_cell_fails_is_complete(synthetic, tmp_path,
                                                            monkeypatch):
    """The folder is the truth: `grid status` says complete, so the runner must not say
    FAILED; the failing cell is named in a warning and kept in train.ipynb."""
    runs_dir, store, run = synthetic["runs"], synthetic["store"], synthetic["grid"].runs[0]
    store.tmp_dir.mkdir(parents=True)
    for key, value in (("STUB_SOURCE", synthetic["source"]), ("STUB_RUNS", runs_dir),
                       ("STUB_RUN_ID", run.run_id)):
        monkeypatch.setenv(key, str(value))
    notebook = publishing_notebook(tmp_path / "nb.ipynb", "raise ValueError('a late plot')")
    result = execute_run(make_task(run, store, notebook, "nlpdl-report", 1))
    assert result["ok"] and "later cell failed: ValueError: a late plot" in result["warning"]
    assert "a late plot" in (store.path(run.run_id) / "train.ipynb").read_text()
    assert store.read_failure(run.run_id) is None


def test_a_complete_run_clears_its_stale_failure_record(synthetic, capsys):
    store = synthetic["store"]
    shutil.copytree(synthetic["source"], store.root)
    rid = synthetic["ids"][0]
    store.record_failure(rid, {"ename": "OlderFailure"})
    summary = run_grid(synthetic["grid"], progress=False)
    assert summary.ok and sorted(summary.skipped) == sorted(synthetic["ids"])
    assert store.read_failure(rid) is None


def test_too_little_free_space_is_one_error_before_any_run(synthetic, monkeypatch):
    runs_dir = synthetic["runs"]
    shutil.copytree(synthetic["source"] / synthetic["ids"][0], runs_dir / synthetic["ids"][0])
    monkeypatch.setattr(disk, "free_bytes", lambda path: 90_000)
    with pytest.raises(GridError) as e:
        run_grid(synthetic["grid"], progress=False)
    message = str(e.value)
    assert f"runs folder {runs_dir} has 90.0 KB free" in message, message
    assert "a run needs about" in message and "none was started" in message, message
    assert not synthetic["store"].logs_dir.exists()


TINY_GRID = """
defaults: {{model: "{model}", dataset: acl_sup, num_train_epochs: 1, max_length: 32,
           max_train_samples: 16, max_eval_samples: 16, torch_threads: 1}}
matrix: {{seed: [1, 2, 3, 4, 5]}}
"""
IN_NAMESPACE = """
set -u
mount -t tmpfs -o size="$SIZE" tmpfs "$RUNS" || exit 99
cd "$ROOT"
"$PY" -m helpers grid run "$GRID" --runs-dir "$RUNS" --no-progress > "$OUT/first.log" 2>&1
echo $? > "$OUT/first.rc"
"$PY" "$OUT/state.py" > "$OUT/first.json"
mount -o remount,size=100m "$RUNS"
"$PY" -m helpers grid run "$GRID" --runs-dir "$RUNS" --no-progress > "$OUT/second.log" 2>&1
echo $? > "$OUT/second.rc"
"$PY" "$OUT/state.py" > "$OUT/second.json"
"""
STATE = """
import json, os, sys
from pathlib import Path
from helpers.grid.spec import load_grid
from helpers.grid.status import run_state
from helpers.run.store import RunStore
store = RunStore(Path(os.environ["RUNS"]))
grid = load_grid(os.environ["GRID"], runs_dir=store)
tmp = store.tmp_dir.name
debris = [str(p) for p in store.root.rglob("*") if p.parent.name == tmp
          or (p.name.endswith(".tmp") and p.name != tmp)]
print(json.dumps({"runs": {r.run_id: [run_state(store, r.run_id),
                                      store.failure_path(r.run_id).is_file(),
                                      (store.path(r.run_id) / "train.ipynb").is_file()]
                           for r in grid.runs}, "debris": debris}))
"""


def namespace_command() -> list[str] | None:
    """``unshare`` with a mount namespace in which this process may mount a tmpfs."""
    if not shutil.which("unshare"):
        return None
    for cmd in (["unshare", "-m"], ["unshare", "-rm"]):
        probe = subprocess.run([*cmd, "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                               capture_output=True)
        if probe.returncode == 0:
            return cmd
    return None


@pytest.mark.slow
@pytest.mark.parametrize("size", ["1050k", "1150k"])  # full at a run's start; after its publish
def test_a_grid_on_a_real_full_disk(size, tiny_bert, real_data_dir, tmp_path):
    """A real full disk: the runs folder is a tmpfs of ``size`` (in a mount namespace of its
    own), enough for the first runs of five; then it is enlarged and the grid run again."""
    cmd = namespace_command()
    if cmd is None:
        pytest.skip("no mount namespace here (unshare -m / -rm) to make a small tmpfs in")
    grid = tmp_path / "grid.yaml"
    grid.write_text(TINY_GRID.format(model=tiny_bert))
    (tmp_path / "state.py").write_text(STATE)
    runs = tmp_path / "runs"
    runs.mkdir()
    env = {**os.environ, "SIZE": size, "RUNS": str(runs), "ROOT": str(ROOT), "GRID": str(grid),
           "PY": sys.executable, "OUT": str(tmp_path), "NLPDL_DATA_DIR": str(real_data_dir)}
    proc = subprocess.run([*cmd, "sh", "-c", IN_NAMESPACE], env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    first = (tmp_path / "first.log").read_text()
    state = json.loads((tmp_path / "first.json").read_text())
    assert (tmp_path / "first.rc").read_text().strip() in ("0", "1"), first
    assert "disk full" in first, first  # the disk did fill up during the grid
    assert "Traceback" not in first and "WorkerDied" not in first, first
    for line in first.splitlines():
        if "FAILED" in line:
            assert "disk full: could not write" in line and str(runs) in line, line
            assert "free there" in line, line
    for rid, (run_state, failure_record, _) in state["runs"].items():
        if run_state == "complete":
            assert f"FAILED {rid}" not in first, first
            assert not failure_record, rid
    assert not state["debris"], state
    second = (tmp_path / "second.log").read_text()
    state = json.loads((tmp_path / "second.json").read_text())
    assert (tmp_path / "second.rc").read_text().strip() == "0", second
    # every run complete with no failure record; its executed notebook is there unless the
    # first pass said the disk had no room left to save it (a warning, the run being published)
    unsaved = {rid for rid in state["runs"] for line in first.splitlines()
               if rid in line and "notebook was not saved" in line}
    for rid, (run_state, failure_record, notebook) in state["runs"].items():
        assert (run_state, failure_record) == ("complete", False), (rid, state)
        assert notebook or rid in unsaved, (rid, first)
    assert not state["debris"], state


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["local", "local-submitit"])
def test_after_a_run_finds_the_disk_full_no_other_run_starts(executor, tiny_bert,
                                                              real_data_dir, tmp_path,
                                                              monkeypatch):
    """Each would fail the same way: one clear error, the rest left to resume."""
    import io

    monkeypatch.setenv("NLPDL_DATA_DIR", str(real_data_dir))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "raise OSError(28, 'No space left on device', '/runs/x/history.csv')")]
    nb.metadata["kernelspec"] = {"name": "nlpdl-report", "display_name": "nlpdl-report",
                                 "language": "python"}
    nbformat.write(nb, tmp_path / "full.ipynb")
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(TINY_GRID.format(model=tiny_bert))
    grid = load_grid(grid_file, runs_dir=tmp_path / "runs")
    out = io.StringIO()
    summary = run_grid(grid, notebook=tmp_path / "full.ipynb", workers=1, executor=executor,
                       progress=False, out=out)
    text = out.getvalue()
    assert len(summary.failed) == 1 and len(summary.not_run) == 4, text
    assert summary.disk_full == summary.failed
    assert "disk full: could not write /runs/x/history.csv" in text, text
    assert "not started: 4 run(s), the disk being full" in text, text

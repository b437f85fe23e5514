"""The grid runner: grid files, plan/status, and real papermill batches of the train notebook."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.cli import main
from helpers.grid.runner import run_grid
from helpers.grid.slurm import make_submitit_executor
from helpers.grid.spec import GridError, load_grid
from helpers.grid.status import plan_rows, run_state, status_rows
from helpers.grid.workers import cpu_count, worker_envs
from helpers.run.config import TrainConfig
from helpers.run.records import REQUIRED_FILES, read_json, write_json
from helpers.run.store import RunStore

ROOT = Path(__file__).resolve().parents[2]
FULL = ROOT / "params" / "full.yaml"
CPU = ROOT / "params" / "cpu.yaml"
SMOKE = ROOT / "params" / "smoke.yaml"


@pytest.fixture
def data_env(real_data_dir, monkeypatch):
    """Workers and kernels inherit the data folder through the environment."""
    monkeypatch.setenv("NLPDL_DATA_DIR", str(real_data_dir))
    return real_data_dir


def run_folders(runs_dir: Path) -> list[str]:
    return sorted(p.name for p in runs_dir.iterdir() if not p.name.startswith("."))


def assert_all_complete(store: RunStore, ids: list[str]) -> None:
    """Exactly these runs, each complete with its executed notebook; no debris in .tmp."""
    assert run_folders(store.root) == sorted(ids)
    for rid in ids:
        folder = store.path(rid)
        assert store.is_complete(rid)
        assert (folder / "train.ipynb").is_file()
        assert read_json(folder / "config.json")["run_id"] == rid
        assert read_json(folder / "metrics.json")["run_id"] == rid
    assert not list(store.tmp_dir.glob("*"))


# ---------------------------------------------------------------------------------- grids
def test_full_grid_is_the_report(tmp_path):
    grid = load_grid(FULL, runs_dir=tmp_path)
    ids = [r.run_id for r in grid.runs]
    assert len(ids) == 75 and len(set(ids)) == 75
    assert ids == [r.run_id for r in load_grid(FULL, runs_dir=tmp_path / "elsewhere").runs]
    by_method: dict[str, set] = {}
    for r in grid.runs:
        cfg = r.config.resolved()
        by_method.setdefault(cfg.method, set()).add((cfg.model, cfg.dataset, cfg.seed))
        assert (cfg.num_train_epochs, cfg.per_device_train_batch_size, cfg.weight_decay,
                cfg.max_length, cfg.logging_steps) == (3, 8, 0.01, 256, 10)
        assert cfg.learning_rate == {"full": 2e-5, "adapter": 1e-4, "lora": 5e-4}[cfg.method]
    assert len(by_method["full"]) == 45
    assert {m for m, _, _ in by_method["full"]} == {
        "roberta-base", "bert-base-uncased", "allenai/scibert_scivocab_uncased"}
    for method in ("adapter", "lora"):
        assert len(by_method[method]) == 15
        assert {m for m, _, _ in by_method[method]} == {"roberta-base"}
    assert {d for _, d, _ in by_method["full"]} == {"restaurant_sup", "acl_sup", "agnews_sup"}
    assert {s for _, _, s in by_method["full"]} == {1, 2, 3, 4, 5}


def test_plan_cli_lists_states(tmp_path, capsys):
    assert main(["grid", "plan", str(FULL), "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "75 configs: 0 complete, 0 running, 0 corrupt, 0 failed, 75 pending" in out
    assert "roberta-base__acl_sup__lora__s3__" in out
    assert not list(tmp_path.iterdir())  # plan executes nothing
    assert main(["grid", "plan", str(FULL), "--runs-dir", str(tmp_path),
                 "--filter", "method=lora", "--filter", "seed=1"]) == 0
    assert "3 configs:" in capsys.readouterr().out


def test_cpu_and_smoke_grids_load(tmp_path):
    cpu = load_grid(CPU, runs_dir=tmp_path)
    assert len(cpu) == 18
    assert {(r.config.dataset, r.config.method) for r in cpu.runs} == {
        (d, m) for d in ("restaurant_sup", "acl_sup", "agnews_sup")
        for m in ("full", "adapter", "lora")}
    assert all(r.config.model == "minilm" for r in cpu.runs)
    assert len({r.config.seed for r in cpu.runs}) >= 2
    assert 1 <= len(load_grid(SMOKE, runs_dir=tmp_path)) <= 4


def test_filter_and_overrides(tmp_path, tiny_bert):
    grid = load_grid(SMOKE, overrides={"model": str(tiny_bert)}, runs_dir=tmp_path)
    assert {r.config.model for r in grid.runs} == {str(tiny_bert)}
    assert len(grid.select(["method=lora"])) == 1
    assert len(grid.select({"method": "full"}).runs) == 1
    with pytest.raises(GridError, match="Did you mean 'method'"):
        grid.select(["methd=lora"])


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    return path


GOOD = "defaults: {model: minilm}\nmatrix: {method: [full, lora], seed: [1, 2]}\n"


@pytest.mark.parametrize("text, expected", [
    ("defaults: {model: minilm}\nmatrx: {seed: [1]}\n",
     ["unknown key 'matrx' at 'matrx'", "Did you mean 'matrix'?"]),
    ("defaults: {learning_rat: 1e-4}\nmatrix: {seed: [1]}\n",
     ["'defaults.learning_rat'", "Did you mean 'learning_rate'?"]),
    ("matrix:\n  - {seed: [1]}\n  - {sed: [2]}\n",
     ["'matrix[1].sed'", "Did you mean 'seed'?"]),
    ("methods: {adaptr: {learning_rate: 1e-3}}\nmatrix: {seed: [1]}\n",
     ["'methods.adaptr'", "Did you mean 'adapter'?"]),
    ("methods: {lora: {lora_rank: 4}}\nmatrix: {seed: [1]}\n",
     ["'methods.lora.lora_rank'", "Did you mean 'lora_r'?"]),
    ("matrix: {method: [full, ful]}\n",
     ["matrix.method[1]", "'ful'", "['full', 'adapter', 'lora', 'ia3']"]),
    ("matrix: {dataset: [restaurant_sup, agnews]}\n",
     ["matrix.dataset[1]", "Unknown dataset 'agnews'", "agnews_sup"]),
    ("defaults: {precision: half}\nmatrix: {seed: [1]}\n",
     ["defaults.precision", "['auto', 'fp32', 'bf16', 'fp16']"]),
    ("defaults: {seed: one}\nmatrix: {method: [full]}\n",
     ["defaults.seed", "seed='one' must be an integer"]),
    ("defaults: {max_length: 1024}\nmatrix: {model: [bert-base-uncased]}\n",
     ["matrix (model=bert-base-uncased", "limit of model 'bert-base-uncased' (512 tokens)"]),
    ("matrix:\n  - {seed: [1, 2]}\n  - {seed: [2]}\n", ["matrix[1] repeats the config of matrix"]),
])
def test_invalid_grids_name_file_key_and_fix(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(GridError) as err:
        load_grid(path, runs_dir=tmp_path / "runs")
    message = str(err.value)
    assert str(path) in message
    for part in expected:
        assert part in message, message


def test_yaml_floats_and_good_grid(tmp_path):
    grid = load_grid(write(tmp_path, GOOD + "methods: {lora: {learning_rate: 1e-3}}\n"),
                     runs_dir=tmp_path)
    assert len(grid) == 4
    assert {r.config.learning_rate for r in grid.runs if r.config.method == "lora"} == {1e-3}


def test_exclude_drops_matching_rows(tmp_path):
    grid = load_grid(write(tmp_path, GOOD + "exclude:\n  - {method: lora, seed: 2}\n"),
                     runs_dir=tmp_path)
    assert sorted((r.config.method, r.config.seed) for r in grid.runs) == [
        ("full", 1), ("full", 2), ("lora", 1)]


def test_workers_split_cores_and_gpus():
    envs = worker_envs(2, ["0", "1"])
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1"]
    threads = str(max(1, cpu_count() // 2))
    assert all(e["OMP_NUM_THREADS"] == e["MKL_NUM_THREADS"] == threads for e in envs)
    assert "CUDA_VISIBLE_DEVICES" not in worker_envs(1, None)[0]


def test_slurm_job_array_script(tmp_path, monkeypatch):
    """The sbatch script submitit would submit (a stand-in `srun` makes this a login node)."""
    from submitit.slurm.slurm import _make_sbatch_string

    with pytest.raises(GridError, match="slurm cluster"):
        make_submitit_executor("slurm", tmp_path, 2, {})
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    ex, cpus = make_submitit_executor("slurm", tmp_path, 3, {
        "partition": "gpu", "time": 90, "gpus_per_task": 1, "cpus_per_task": 8})
    assert cpus == 8
    script = _make_sbatch_string(command="python x", folder=tmp_path,
                                 **{**ex._executor.parameters, "map_count": 5})
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=90", "#SBATCH --gpus-per-node=1",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --array=0-4%3"):
        assert line in script, script


def test_invalid_grid_runs_nothing(tmp_path, capsys):
    path = write(tmp_path, "matrix: {method: [full, adapterr]}\n")
    runs_dir = tmp_path / "runs"
    assert main(["grid", "run", str(path), "--runs-dir", str(runs_dir)]) == 2
    err = capsys.readouterr().err
    assert "'adapterr'" in err and "['full', 'adapter', 'lora', 'ia3']" in err
    assert not runs_dir.exists()


# ---------------------------------------------------------------------------------- batches
@pytest.mark.slow
def test_smoke_grid_end_to_end_twice(tmp_path, data_env, capsys):
    grid = load_grid(SMOKE, runs_dir=tmp_path)
    ids = [r.run_id for r in grid.runs]
    first = run_grid(grid, workers=2, progress=False)
    assert first.ok and sorted(first.completed) == sorted(ids) and not first.skipped
    assert_all_complete(grid.store, ids)
    for rid in ids:
        (log,) = grid.store.attempt_logs(rid)  # one attempt each
        assert log.read_text().rstrip().endswith(str(tmp_path / rid))
        # kernels get CurveZMQ keys (helpers.settings.kernel_options): no TCP warning
        assert "without encryption" not in log.read_text()
    rows = status_rows(grid)
    assert {r["state"] for r in rows} == {"complete"}
    assert all(0 <= r["test_macro_f1"] <= 1 for r in rows)

    mtimes = {rid: (tmp_path / rid / "metrics.json").stat().st_mtime_ns for rid in ids}
    capsys.readouterr()
    assert main(["grid", "run", str(SMOKE), "--runs-dir", str(tmp_path), "--no-progress"]) == 0
    assert "0 completed, 0 failed, 3 already complete" in capsys.readouterr().err
    assert mtimes == {rid: (tmp_path / rid / "metrics.json").stat().st_mtime_ns for rid in ids}
    assert main(["grid", "status", str(SMOKE), "--runs-dir", str(tmp_path)]) == 0
    assert "3 complete" in capsys.readouterr().out


@pytest.mark.slow
def test_kill_and_resume(tmp_path, data_env):
    """kill -9 of the whole process group mid-batch, then `run` again finishes the grid."""
    grid = load_grid(SMOKE, runs_dir=tmp_path)
    ids = [r.run_id for r in grid.runs]
    cmd = [sys.executable, "-m", "helpers", "grid", "run", str(SMOKE), "--runs-dir",
           str(tmp_path), "--workers", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    try:
        # Kill once one run is complete and the next one is being written (.tmp exists).
        while time.time() < deadline and proc.poll() is None:
            done = [rid for rid in ids if grid.store.is_complete(rid)]
            staging = list(grid.store.tmp_dir.glob("*"))
            if done and staging:
                break
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = [rid for rid in ids if grid.store.is_complete(rid)]
    assert 1 <= len(before) < len(ids), "the batch was not killed mid-run"
    assert run_folders(tmp_path) == sorted(before)  # no partial run folder

    summary = run_grid(load_grid(SMOKE, runs_dir=tmp_path), progress=False)
    assert summary.ok
    assert sorted(summary.completed) == sorted(set(ids) - set(before))
    assert sorted(summary.skipped) == sorted(before)
    assert_all_complete(grid.store, ids)


@pytest.mark.slow
def test_failing_run_is_recorded_and_the_batch_goes_on(tmp_path, data_env, tiny_bert, capsys):
    broken = tmp_path / "broken_model"  # a model folder whose weights were cut short
    shutil.copytree(tiny_bert, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    path = write(tmp_path, f"""
defaults: {{model: "{tiny_bert}", dataset: acl_sup, num_train_epochs: 1, max_length: 32,
           max_train_samples: 16, max_eval_samples: 16}}
matrix:
  - {{seed: 1}}
  - {{seed: 2, model: "{broken}"}}
""")
    runs_dir = tmp_path / "runs"
    grid = load_grid(path, runs_dir=runs_dir)
    good, bad = (r.run_id for r in grid.runs)
    assert main(["grid", "run", str(path), "--runs-dir", str(runs_dir), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"FAILED {bad}" in err and "1 completed, 1 failed" in err
    assert_all_complete(grid.store, [good])
    failure = grid.store.read_failure(bad)
    assert failure["ename"] == "SafetensorError" and "header" in failure["evalue"]
    assert isinstance(failure["cell_index"], int)
    assert "training.run(cfg)" in failure["cell_source"]
    assert any("SafetensorError" in line for line in failure["traceback"])
    assert "SafetensorError" in Path(failure["log"]).read_text()
    assert run_state(grid.store, bad) == "failed"
    assert [r["state"] for r in plan_rows(grid)] == ["complete", "failed"]

    again = run_grid(grid, progress=False)  # the next run retries the failed one only
    assert again.failed == [bad] and again.skipped == [good] and not again.completed


def test_bad_data_stops_the_grid_before_any_run(tmp_path, data_env, capsys):
    """A missing or malformed data file was reported by each run that read it, in turn."""
    empty = tmp_path / "no_data"
    empty.mkdir()
    path = write(tmp_path, f"""
defaults: {{model: minilm, dataset: acl_sup, max_train_samples: 16}}
matrix:
  - {{seed: 1}}
  - {{seed: 2, data_dir: "{empty}"}}   # a valid name, but the files aren't there
  - {{seed: 3, data_dir: "{empty}"}}
""")
    runs_dir = tmp_path / "runs"
    assert main(["grid", "run", str(path), "--runs-dir", str(runs_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"Missing data file {empty}" in err and "2 pending run(s) read acl_sup" in err
    assert "none was started" in err
    assert not RunStore(runs_dir).logs_dir.exists()
    bad = tmp_path / "bad_data"  # the real files, one byte of the train file not UTF-8
    shutil.copytree(data_env / "acl_sup", bad / "acl_sup")
    train = bad / "acl_sup" / "train.json"
    lines = train.read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b"a", b"\xe9", 1)
    train.write_bytes(b"\n".join(lines))
    path.write_text(f"defaults: {{dataset: acl_sup, data_dir: \"{bad}\"}}\n"
                    "matrix: {seed: [1]}\n")
    assert main(["grid", "run", str(path), "--runs-dir", str(runs_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{train}: line 4" in err and "not UTF-8" in err and "none was started" in err


@pytest.mark.slow
def test_submitit_local_executor(tmp_path, data_env):
    grid = load_grid(SMOKE, runs_dir=tmp_path).select(["method=full"])
    summary = run_grid(grid, executor="local-submitit", progress=False)
    assert summary.ok and summary.completed == [grid.runs[0].run_id]
    assert_all_complete(grid.store, [grid.runs[0].run_id])
    assert list(grid.store.submitit_dir.rglob("*_result.pkl"))


# ---------------------------------------------------------------------------------- issue 12
SYNTHETIC_GRID = """
defaults: {num_train_epochs: 3, logging_steps: 2, max_train_samples: 48}
matrix: {model: roberta-base, dataset: restaurant_sup, method: full, seed: [1, 2, 3]}
"""


def test_corrupt_records_are_reported_not_crashing(tmp_path, capsys):
    """A truncated or non-object metrics.json made `grid status` crash and counted as done."""
    from helpers.testing.synthetic import write_synthetic_runs

    runs_dir = tmp_path / "runs"
    ids = write_synthetic_runs(RunStore(runs_dir), [("roberta-base", "restaurant_sup", "full")])
    path = write(tmp_path, SYNTHETIC_GRID)
    assert [r.run_id for r in load_grid(path, runs_dir=runs_dir).runs] == ids
    truncated, listed = runs_dir / ids[0] / "metrics.json", runs_dir / ids[1] / "metrics.json"
    truncated.write_text(truncated.read_text()[:40])
    listed.write_text("[]")
    assert main(["grid", "status", str(path), "--runs-dir", str(runs_dir)]) == 0
    out = capsys.readouterr().out
    assert "1 complete" in out and "2 corrupt" in out
    assert f"{runs_dir / ids[0]}: metrics.json: not readable JSON" in out
    assert f"{runs_dir / ids[1]}: metrics.json: expected a JSON object, got list" in out
    assert main(["grid", "plan", str(path), "--runs-dir", str(runs_dir)]) == 0
    assert "2 corrupt" in capsys.readouterr().out
    assert [run_state(RunStore(runs_dir), rid) for rid in ids] == ["corrupt", "corrupt",
                                                                    "complete"]


def test_force_does_not_retrain_what_another_runner_completed_meanwhile(tmp_path):
    """Two `grid run --force` on one folder trained a run twice: the second runner claimed
    it once the first had published it."""
    from helpers.grid.execution import execute_run, make_task
    from helpers.testing.synthetic import write_synthetic_runs

    runs_dir = tmp_path / "runs"
    write_synthetic_runs(RunStore(runs_dir), [("roberta-base", "restaurant_sup", "full")])
    run = load_grid(write(tmp_path, SYNTHETIC_GRID), runs_dir=runs_dir).runs[0]
    notebook = tmp_path / "missing.ipynb"  # any attempt to train fails fast, and says so
    now = time.time()
    store = RunStore(runs_dir)
    during = execute_run(make_task(run, store, notebook, "nlpdl-report", 1, force=True,
                               since=now - 3600))  # batch began before the run was written
    assert during["ok"] and during["skipped"] == "completed by another runner meanwhile"
    assert not store.attempt_logs(run.run_id)
    before = execute_run(make_task(run, store, notebook, "nlpdl-report", 1, force=True,
                               since=now + 1))  # complete before the batch: --force reruns
    assert not before["ok"] and "missing.ipynb" in before["error"]
    assert len(store.attempt_logs(run.run_id)) == 1
    assert store.is_complete(run.run_id)  # a failed rerun leaves the old result


def test_read_only_runs_folder_fails_in_one_line(tmp_path):
    """Raised three raw OSError tracebacks (two workers and the runner)."""
    import shutil

    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    cmd = [sys.executable, "-m", "helpers", "grid", "run", str(SMOKE), "--runs-dir",
           str(runs_dir), "--no-progress"]
    if os.geteuid() == 0:  # root writes through file modes: use a read-only mount instead
        if not shutil.which("unshare"):
            pytest.skip("root without unshare(1): no read-only folder to test with")
        cmd = ["unshare", "-m", "sh", "-c", 'mount -t tmpfs -o ro tmpfs "$0" && exec "$@"',
               str(runs_dir), *cmd]
    runs_dir.chmod(0o555)
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    finally:
        runs_dir.chmod(0o755)
    if "mount:" in proc.stderr:
        pytest.skip(f"no read-only mount here: {proc.stderr.strip()}")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: runs folder {runs_dir} is not writable (")
    assert lines[0].endswith("choose another folder (--runs-dir, or the runs_dir parameter).")
    assert list(runs_dir.iterdir()) == []


@pytest.mark.slow
def test_corrupt_run_is_set_aside_and_rerun(tmp_path, data_env, tiny_bert):
    path = write(tmp_path, f"""
defaults: {{model: "{tiny_bert}", num_train_epochs: 1, max_length: 32,
           max_train_samples: 16, max_eval_samples: 16}}
matrix: {{seed: 1}}
""")
    runs_dir = tmp_path / "runs"
    grid = load_grid(path, runs_dir=runs_dir)
    (rid,) = [r.run_id for r in grid.runs]
    bad = runs_dir / rid
    bad.mkdir(parents=True)
    for name in REQUIRED_FILES:  # every file there, one of them cut short
        (bad / name).write_text('{"run_id": "' if name == "metrics.json" else "{}")
    summary = run_grid(grid, progress=False)
    assert summary.ok and summary.completed == [rid] and summary.corrupt == [rid]
    assert_all_complete(grid.store, [rid])
    (kept,) = [p for p in grid.store.corrupt_dir.iterdir() if p.is_dir()]
    assert kept.name.startswith(f"{rid}-")
    assert (kept / "metrics.json").read_text() == '{"run_id": "'  # nothing deleted
    assert "metrics.json" in kept.with_name(kept.name + ".txt").read_text()


TWO_RUNNERS_GRID = """
defaults: {{model: "{model}", num_train_epochs: 1, max_length: 32, max_train_samples: 16,
           max_eval_samples: 16, torch_threads: 1}}
matrix: {{seed: [1, 2]}}
"""


@pytest.mark.slow
def test_two_runners_train_each_run_once(tmp_path, data_env, tiny_bert):
    """Two `grid run` on one runs folder, started at once: every run trains exactly once."""
    import re

    path = write(tmp_path, TWO_RUNNERS_GRID.format(model=tiny_bert))
    runs_dir = tmp_path / "runs"
    ids = [r.run_id for r in load_grid(path, runs_dir=runs_dir).runs]
    cmd = [sys.executable, "-m", "helpers", "grid", "run", str(path), "--runs-dir",
           str(runs_dir), "--no-progress"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=400)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    done = []
    for err in outputs:
        summary = re.search(r"summary: (\d+) completed, (\d+) failed, (\d+) already complete"
                            r"(?:, (\d+) claimed by another runner)?", err)
        assert summary, err
        completed, failed, complete, claimed = (int(g or 0) for g in summary.groups())
        assert failed == 0 and completed + complete + claimed == len(ids), err
        done.append(completed)
        for rid in re.findall(r"skipped (\S+): claimed by pid \d+", err):
            assert rid in ids
    assert sum(done) == len(ids), outputs  # the runners shared the work
    store = RunStore(runs_dir)
    assert_all_complete(store, ids)
    for rid in ids:  # one attempt, one executed notebook per run
        assert len(store.attempt_logs(rid)) == 1, rid
        assert len(list(store.logs_dir.glob(f"{rid}.*.ipynb"))) == 1
    assert not list(store.claims_dir.glob("*"))  # all released


def test_status_formats_for_other_tools(tmp_path, capsys):
    """grid status --format json/csv: one record per run with its state, the varying fields,
    test and validation scores, best epoch and wall time, parseable as they are."""
    import csv
    import json

    import yaml

    from helpers.testing.synthetic import write_synthetic_runs

    runs_dir = tmp_path / "runs"
    ids = write_synthetic_runs(RunStore(runs_dir), [("roberta-base", "restaurant_sup", "full")],
                               seeds=(1, 2))
    grid_file = tmp_path / "g.yaml"
    grid_file.write_text(yaml.safe_dump({
        "defaults": {"num_train_epochs": 3, "logging_steps": 2, "max_train_samples": 48},
        "matrix": {"model": ["roberta-base"], "dataset": ["restaurant_sup"],
                   "method": ["full"], "seed": [1, 2, 3]}}))
    args = ["grid", "status", str(grid_file), "--runs-dir", str(runs_dir)]
    assert main([*args, "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    by_id = {r["run_id"]: r for r in records}
    assert [by_id[i]["state"] for i in ids] == ["complete", "complete"]
    assert sorted(r["state"] for r in records) == ["complete", "complete", "pending"]
    for rid in ids:
        metrics = json.loads((runs_dir / rid / "metrics.json").read_text())
        assert by_id[rid]["test_macro_f1"] == metrics["test"]["macro_f1"]
        assert by_id[rid]["validation_accuracy"] == metrics["validation"]["accuracy"]
        assert by_id[rid]["best_epoch"] == metrics["best_epoch"]
        assert by_id[rid]["seed"] in (1, 2)
    assert main([*args, "--format", "csv"]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert [r["run_id"] for r in rows] == [r["run_id"] for r in records]
    assert float(rows[0]["test_accuracy"]) == records[0]["test_accuracy"]


# ---------------------------------------------------------------------------------- issue 20
@pytest.mark.parametrize("seeds, bad", [("[-1, -2]", "-1"), ("[1, 4294967296]", "4294967296"),
                                        ("[1, 1.5]", "1.5"), ("[true]", "True")])
def test_plan_rejects_the_seeds_the_notebook_would(tmp_path, capsys, seeds, bad):
    """A grid with seed: [-1, -2] passed `plan`, then failed once per config."""
    path = write(tmp_path, f"matrix: {{method: full, seed: {seeds}}}\n")
    assert main(["grid", "plan", str(path), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "matrix.seed[" in err and bad in err and "seed" in err
    good = write(tmp_path, "matrix: {method: full, seed: [1]}\n")
    assert main(["grid", "plan", str(good), "--runs-dir", str(tmp_path / "runs"),
                 "--set", "seed=abc"]) == 2
    assert "seed='abc' must be an integer" in capsys.readouterr().err
    with pytest.raises(Exception, match=r"seed=-3 must be an integer in \[0, 4294967295\]"):
        TrainConfig.from_dict({"seed": -3})


@pytest.mark.parametrize("text, key, lines", [
    ("matrix: {method: full, seed: [1]}\ndefaults: {model: minilm}\n"
     "matrix: {method: lora, seed: [1]}\n", "matrix", (1, 3)),
    ("defaults:\n  num_train_epochs: 3\n  model: minilm\n  num_train_epochs: 5\n"
     "matrix: {seed: [1]}\n", "num_train_epochs", (2, 4)),
    ("matrix:\n  - {seed: [1], seed: [2]}\n", "seed", (2, 2)),
])
def test_duplicate_keys_are_an_error_naming_the_key_and_both_lines(tmp_path, text, key, lines):
    """Two `matrix:` blocks silently planned only the second (YAML's last-wins)."""
    path = write(tmp_path, text)
    with pytest.raises(GridError) as err:
        load_grid(path, runs_dir=tmp_path / "runs")
    message = str(err.value)
    assert str(path) in message and f"duplicate key '{key}'" in message
    assert f"lines {lines[0]} and {lines[1]}" in message, message


def test_yaml_anchors_and_merge_keys_are_not_duplicates(tmp_path):
    path = write(tmp_path, "defaults: &d {model: minilm, num_train_epochs: 2}\n"
                           "methods:\n  lora: {<<: *d, learning_rate: 1e-3}\n"
                           "matrix: {method: [full, lora], seed: &s [1, 2]}\n")
    assert len(load_grid(path, runs_dir=tmp_path / "runs")) == 4



def test_runs_from_before_provenance_are_complete_and_said_so_once(tmp_path, capsys):
    """A run written before runs recorded their data has no digests: unknown provenance,
    complete (never stale), and plan/status say so in one line."""
    from helpers.testing import synthetic

    runs_dir = tmp_path / "runs"
    grid = load_grid(CPU).select(["dataset=acl_sup", "method=full", "seed=1"])
    (run_id,) = synthetic.write_grid_runs(grid, RunStore(runs_dir))
    env = json.loads((runs_dir / run_id / "env.json").read_text())
    env.pop("provenance")  # as runs written before provenance (tests/fixtures/legacy_runs)
    (runs_dir / run_id / "env.json").write_text(json.dumps(env))
    for action in ("plan", "status"):
        assert main(["grid", action, str(CPU), "--runs-dir", str(runs_dir),
                     "--filter", "dataset=acl_sup", "--filter", "method=full"]) == 0
        out = capsys.readouterr().out
        assert "2 configs: 1 complete, 0 running, 0 corrupt, 0 failed, 1 pending, 0 stale" in out
        assert out.count("unknown provenance") == 1, out
        assert "1 complete run(s) were written before runs recorded" in out


@pytest.mark.slow
def test_stale_runs_are_shown_and_rerun_only_when_asked(tmp_path, real_data_dir, tiny_bert,
                                                        capsys):
    """Editing one training example left the run trained on the old file `complete`,
    indistinguishable from a run on the new one."""
    data_dir = tmp_path / "data"
    shutil.copytree(real_data_dir / "SemEval14-res", data_dir / "SemEval14-res")
    path = write(tmp_path, f"""
defaults: {{model: "{tiny_bert}", data_dir: "{data_dir}", num_train_epochs: 1, max_length: 32,
           max_train_samples: 16, max_eval_samples: 8, torch_threads: 1}}
matrix: {{seed: [1]}}
""")
    runs_dir = tmp_path / "runs"
    args = [str(path), "--runs-dir", str(runs_dir), "--no-progress"]
    assert main(["grid", "run", *args]) == 0
    (rid,) = [r.run_id for r in load_grid(path, runs_dir=runs_dir).runs]
    old = (runs_dir / rid / "env.json").read_text()
    train = data_dir / "SemEval14-res" / "train.json"
    examples = read_json(train)
    first = next(iter(examples))
    examples[first]["polarity"] = "negative" if examples[first]["polarity"] != "negative" \
        else "positive"
    write_json(train, examples)
    capsys.readouterr()
    assert main(["grid", "plan", str(path), "--runs-dir", str(runs_dir)]) == 0
    out = capsys.readouterr().out
    assert "1 configs: 0 complete" in out and "1 stale" in out
    assert "stale" in out and "SemEval14-res/train.json" in out
    assert "unknown provenance" not in out
    assert main(["grid", "status", str(path), "--runs-dir", str(runs_dir)]) == 0
    assert "--rerun-stale reruns it" in capsys.readouterr().out

    assert main(["grid", "run", *args]) == 0  # kept unless asked
    err = capsys.readouterr().err
    assert "1 stale (trained on data files that changed since; kept" in err
    assert (runs_dir / rid / "env.json").read_text() == old
    assert main(["grid", "run", *args, "--rerun-stale"]) == 0
    err = capsys.readouterr().err
    assert "1 to run" in err and "1 completed, 0 failed" in err
    assert run_state(RunStore(runs_dir), rid) == "complete"
    assert [r["state"] for r in plan_rows(load_grid(path, runs_dir=runs_dir))] == ["complete"]
    rec = read_json(runs_dir / rid / "env.json")["provenance"]
    assert rec["data_files"]["SemEval14-res/train.json"] == hashlib.sha256(
        train.read_bytes()).hexdigest()

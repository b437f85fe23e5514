"""Command-line input that can't work is an error before anything runs (issue 20, case 8):
a filter that matches nothing, GPUs this host lacks, --workers 0, a path that is neither in
the current directory nor in the project root."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.cli import main
from helpers.grid.runner import run_grid
from helpers.grid.spec import GridError, load_grid
from helpers.run.store import NotWritableError, RunStore

ROOT = Path(__file__).resolve().parents[2]
CPU = ROOT / "params" / "cpu.yaml"
SMOKE = ROOT / "params" / "smoke.yaml"


@pytest.mark.parametrize("args, says", [
    (["--filter", "dataset=restaurant"],
     ["--filter dataset=restaurant matches no config", "restaurant_sup, acl_sup, agnews_sup"]),
    (["--filter", "dataset=acl_sup", "--filter", "method=bitfit"],
     ["method=bitfit", "full, adapter, lora"]),
    (["--set", "seed=5", "--filter", "seed=1"],
     ["--filter seed=1 matches no config", "seed: 5 (after --set)"]),
    (["--filter", "learning_rate=1e-4", "--filter", "method=lora"],
     ["together match no config", "learning_rate: 0.0002, 0.003, 0.001", "method: full,"]),
])
def test_a_filter_that_matches_nothing_names_the_values_there(args, says, tmp_path, capsys):
    """It exited 0 with '0 configs' and no hint."""
    for action in ("plan", "run"):
        assert main(["grid", action, str(CPU), "--runs-dir", str(tmp_path / "runs"),
                     *args]) == 2
        err = capsys.readouterr().err
        for part in says:
            assert part in err, err
    assert not (tmp_path / "runs").exists()


def test_workers_must_be_at_least_one(tmp_path, capsys):
    """--workers 0 was taken as 1."""
    assert main(["grid", "run", str(SMOKE), "--runs-dir", str(tmp_path), "--workers",
                 "0"]) == 2
    assert "--workers 0: must be >= 1" in capsys.readouterr().err
    with pytest.raises(GridError, match="workers=0 must be >= 1"):
        run_grid(load_grid(SMOKE, runs_dir=tmp_path), workers=0)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("gpus, devices, says", [
    ("0", "0", "GPU 0 is not on this host: nvidia-smi lists no GPU"),
    ("1", "0,3", "GPU 3 is not on this host: nvidia-smi lists GPU 0"),
])
def test_devices_this_host_lacks_fail_before_any_run(gpus, devices, says, stub_gpus, tmp_path,
                                                     monkeypatch, capsys):
    """`--devices 0` on a host without CUDA said "2 worker(s) on GPU 0" and trained on the
    CPU. nvidia-smi is asked in a subprocess: the runner never initialises CUDA itself."""
    monkeypatch.setenv("STUB_GPUS", gpus)
    runs_dir = tmp_path / "runs"
    assert main(["grid", "run", str(SMOKE), "--runs-dir", str(runs_dir), "--devices",
                 devices]) == 2
    err = capsys.readouterr().err
    assert says in err and "--devices" in err, err
    assert not runs_dir.exists()


def test_devices_without_nvidia_smi_ask_torch_in_a_subprocess(tmp_path, monkeypatch, capsys):
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # no nvidia-smi
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # and torch sees no GPU, on any host
    assert main(["grid", "run", str(SMOKE), "--runs-dir", str(tmp_path / "runs"),
                 "--devices", "0"]) == 2
    err = capsys.readouterr().err
    assert "GPU 0 is not on this host: torch sees no CUDA GPU" in err, err


def test_devices_are_for_the_local_executor(stub_gpus, tmp_path, capsys):
    """local-submitit ignored --devices and trained on the CPU."""
    assert main(["grid", "run", str(SMOKE), "--runs-dir", str(tmp_path / "runs"),
                 "--executor", "local-submitit", "--devices", "0"]) == 2
    assert "--devices works with --executor local" in capsys.readouterr().err


def test_relative_paths_are_taken_from_the_current_directory_first(tmp_path, monkeypatch,
                                                                   capsys):
    """`grid plan tiny.yaml` beside tiny.yaml said it "does not exist"."""
    (tmp_path / "tiny.yaml").write_text("defaults: {model: minilm}\nmatrix: {seed: [1, 2]}\n")
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["grid", "plan", "tiny.yaml", "--runs-dir", "runs"]) == 0
    assert "2 configs: 0 complete" in capsys.readouterr().out
    assert main(["grid", "plan", "params/cpu.yaml", "--runs-dir", "runs"]) == 0  # the root's
    assert "18 configs" in capsys.readouterr().out
    assert main(["grid", "plan", "nope.yaml"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'nope.yaml'} (the current directory)" in err, err
    assert f"{ROOT / 'nope.yaml'} (the project root)" in err, err
    assert main(["grid", "run", "tiny.yaml", "--runs-dir", "runs", "--notebook",
                 "nope.ipynb"]) == 2
    err = capsys.readouterr().err
    assert "nope.ipynb" in err and "(the current directory)" in err, err


def test_a_grid_whose_excludes_remove_every_row_is_an_error(tmp_path, capsys):
    """It exited 0 with '0 configs', silently (issue 31.8)."""
    grid = tmp_path / "g.yaml"
    grid.write_text("defaults: {model: minilm}\nmatrix: {method: [full, lora], seed: [1]}\n"
                    "exclude:\n  - {method: full}\n  - {method: lora, seed: 1}\n")
    for action in ("plan", "run"):
        assert main(["grid", action, str(grid), "--runs-dir", str(tmp_path / "runs")]) == 2
        err = capsys.readouterr().err
        assert "0 configs: the exclude entries remove every row" in err, err
        assert "exclude[0] method=full; exclude[1] method=lora, seed=1" in err, err
    assert not (tmp_path / "runs").exists()


def test_a_runs_dir_that_is_a_file_is_said_to_be_one(tmp_path, capsys):
    """--runs-dir FILE said "not writable (File exists)", or planned into it (issue 31.8)."""
    file = tmp_path / "runs.txt"
    file.write_text("not a folder\n")
    for args in (["grid", "plan", str(SMOKE)], ["grid", "run", str(SMOKE)],
                 ["grid", "status", str(SMOKE)], ["report", "--output-dir", str(tmp_path / "b")]):
        assert main([*args, "--runs-dir", str(file)]) == 2, args
        err = capsys.readouterr().err
        assert f"{file} is a file, not a folder" in err, (args, err)
    below = file / "runs"  # a file above the folder: the same
    assert main(["grid", "run", str(SMOKE), "--runs-dir", str(below)]) == 2
    assert f"{file} is a file, not a folder" in capsys.readouterr().err
    with pytest.raises(NotWritableError, match="is a file, not a folder"):
        RunStore(below).check_writable()

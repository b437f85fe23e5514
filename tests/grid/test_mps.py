"""CUDA MPS for runs sharing a GPU (helpers.grid.mps): when the grid starts a daemon, and that it
always stops it.

There is no GPU or NVIDIA driver here, so the daemon's control program is a stand-in script
that logs what it is asked (start, get_server_list, quit) and answers like the real one. It
tests our side of the protocol; MPS itself is measured by benchmarks/gpu_grid.sh on a GPU.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from helpers.cli import main
from helpers.grid import mps
from helpers.grid.runner import run_grid
from helpers.grid.spec import load_grid

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "params" / "smoke.yaml"

STAND_IN = """#!/usr/bin/env bash
if [ "${1:-}" = "-d" ]; then
  echo "start visible=${CUDA_VISIBLE_DEVICES-unset}" >> "$STUB_MPS_LOG"
  touch "$CUDA_MPS_PIPE_DIRECTORY/control"
  exit 0
fi
read -r cmd
echo "$cmd" >> "$STUB_MPS_LOG"
case "$cmd" in
  get_server_list) if [ -n "${STUB_MPS_SERVER:-}" ]; then echo 4242; fi ;;
  quit) rm -f "$CUDA_MPS_PIPE_DIRECTORY/control" ;;
esac
"""


@pytest.fixture
def control(tmp_path, monkeypatch):
    """The stand-in control program first on PATH; returns its call log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / mps.CONTROL
    exe.write_text(STAND_IN)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "mps-calls.log"
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("STUB_MPS_LOG", str(log))
    monkeypatch.delenv(mps.PIPE_ENV, raising=False)
    monkeypatch.setattr(mps, "SYSTEM_PIPE_DIR", tmp_path / "no-system-daemon")
    return log


def calls(log: Path) -> list[str]:
    return log.read_text().split("\n")[:-1] if log.exists() else []


@pytest.mark.parametrize("mode, devices, per_device, executor, env, found, start, says", [
    ("auto", ["0"], 16, "local", {}, True, True, "private daemon"),
    ("auto", ["0"], 16, "local", {}, False, False, "not found"),
    ("auto", ["0"], 1, "local", {}, True, False, "one run per GPU"),
    ("on", ["0"], 1, "local", {}, True, True, "private daemon"),
    ("auto", [], 0, "local", {}, True, False, ""),  # CPU workers: nothing to say
    ("auto", ["0"], 16, "slurm", {}, True, False, ""),
    ("off", ["0"], 16, "local", {}, True, False, "--mps off"),
    ("auto", ["0"], 16, "local", {mps.PIPE_ENV: "/tmp/site-mps"}, True, False, "/tmp/site-mps"),
])
def test_plan(mode, devices, per_device, executor, env, found, start, says, tmp_path,
              monkeypatch):
    monkeypatch.setattr(mps, "SYSTEM_PIPE_DIR", tmp_path)
    p = mps.plan(mode, devices, per_device, executor, env=env,
                 which=lambda name: f"/usr/bin/{name}" if found else None)
    assert p.start is start
    assert (says in p.reason) if says else p.reason == ""


def test_plan_uses_a_running_system_daemon(tmp_path, monkeypatch):
    (tmp_path / "control").touch()
    monkeypatch.setattr(mps, "SYSTEM_PIPE_DIR", tmp_path)
    p = mps.plan("auto", ["0"], 8, env={}, which=lambda name: "/usr/bin/x")
    assert not p.start and str(tmp_path) in p.reason


@pytest.mark.parametrize("args, says", [
    (["--mps", "on"], "not on PATH"),
    (["--mps", "on", "--workers", "2"], "needs GPUs given with --devices"),
])
def test_mps_on_that_cannot_work_fails_before_any_run(args, says, tmp_path, monkeypatch,
                                                      capsys):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no NVIDIA tools, even on a GPU host
    monkeypatch.delenv(mps.PIPE_ENV, raising=False)
    monkeypatch.setattr(mps, "SYSTEM_PIPE_DIR", tmp_path / "no-system-daemon")
    runs_dir = tmp_path / "runs"
    devices = [] if "--workers" in args else ["--devices", "0", "--runs-per-device", "2"]
    assert main(["grid", "run", str(SMOKE), "--runs-dir", str(runs_dir), *devices,
                 *args]) == 2
    err = capsys.readouterr().err
    assert says in err and "--mps" in err
    assert not runs_dir.exists()


def test_daemon_starts_checks_and_always_stops(control, monkeypatch):
    monkeypatch.setenv("STUB_MPS_SERVER", "1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    said: list[str] = []
    with pytest.raises(KeyboardInterrupt):  # a Ctrl-C in the middle of the grid
        with mps.for_grid(mps.plan("auto", ["0"], 4), ["0"], say=said.append) as env:
            pipe = Path(env[mps.PIPE_ENV])
            assert (pipe / "control").exists() and env[mps.LOG_ENV].startswith(str(pipe))
            raise KeyboardInterrupt
    # the daemon sees every GPU; the check's client ran, then the server list was read
    assert calls(control) == ["start visible=unset", "get_server_list", "quit"]
    assert not pipe.exists()
    assert said == [f"MPS: on (private daemon, {pipe}; stopped when the grid ends)"]


def test_daemon_that_starts_no_server_is_stopped_and_auto_goes_on(control):
    said: list[str] = []
    with mps.for_grid(mps.plan("auto", ["0"], 4), ["0"], say=said.append) as env:
        assert env == {}
    assert calls(control) == ["start visible=unset", "get_server_list", "quit"]
    assert said and said[0].startswith("MPS: off: it did not work here")
    assert "started no server" in said[0]
    with pytest.raises(mps.MpsError, match="--mps on: .*started no server"):
        with mps.for_grid(mps.plan("on", ["0"], 4), ["0"], say=said.append):
            pass
    assert calls(control)[-1] == "quit"


@pytest.mark.slow
def test_grid_runs_connect_to_the_private_daemon(control, stub_gpus, tmp_path, real_data_dir,
                                                 monkeypatch, capsys):
    """The runs get the daemon's pipe folder (it is in each attempt's log) and the daemon is
    stopped once the grid is done."""
    monkeypatch.setenv("NLPDL_DATA_DIR", str(real_data_dir))
    monkeypatch.setenv("STUB_MPS_SERVER", "1")
    runs_dir = tmp_path / "runs"
    grid = load_grid(SMOKE, runs_dir=runs_dir).select(["method=lora"])
    summary = run_grid(grid, devices=["0"], runs_per_device=2, progress=False)
    assert summary.ok and summary.completed == [grid.runs[0].run_id]
    err = capsys.readouterr().err
    (line,) = [x for x in err.splitlines() if x.startswith("MPS: on")]
    pipe = line.split("private daemon, ")[1].split(";")[0]
    (log,) = grid.store.attempt_logs(grid.runs[0].run_id)
    assert f"{mps.PIPE_ENV}={pipe}" in log.read_text().splitlines()[1]
    assert calls(control) == ["start visible=unset", "get_server_list", "quit"]
    assert not Path(pipe).exists()

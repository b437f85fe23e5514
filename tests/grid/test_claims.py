"""Claims on run ids: one holder at a time, released on exit, taken over when stale."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

from helpers.grid import claims
from helpers.grid.runner import _sort_runs
from helpers.grid.spec import load_grid
from helpers.grid.summary import busy_lines
from helpers.run import liveness
from helpers.testing.synthetic import write_grid_runs

HOLD = """
import sys, time
from helpers.grid import claims
from helpers.grid.runner import _sort_runs
from helpers.grid.spec import load_grid
from helpers.grid.summary import busy_lines
from helpers.run import liveness
from helpers.run.store import RunStore
c = claims.try_claim(RunStore(sys.argv[1]), "r", heartbeat_s=0.2)
print("held" if c else "busy", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_a_claim_is_held_once_and_released(store):
    first = claims.try_claim(store, "r")
    assert first is not None and first.held()
    assert claims.try_claim(store, "r") is None  # also within one process
    assert claims.holder(store, "r")["pid"] == os.getpid()
    assert claims.try_claim(store, "other") is not None
    first.release()
    assert not store.claim_path("r").exists()
    with claims.try_claim(store, "r") as again:
        assert again.held()
    assert claims.holder(store, "r") is None


def test_another_process_holds_it_until_it_dies(store):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(store.root), "60"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        assert claims.try_claim(store, "r") is None
        info = claims.holder(store, "r")
        assert info["pid"] == proc.pid and info["host"] == socket.gethostname()
        assert f"pid {proc.pid}" in claims.describe(info)
        path = store.claim_path("r")
        before = claims.last_beat(info, path)
        time.sleep(0.6)
        assert claims.last_beat(info, path) > before  # heartbeat, in its content
        proc.kill()  # kill -9: no release, the lock file stays behind
        deadline = time.time() + 10
        while claims.holder(store, "r") is not None and time.time() < deadline:
            time.sleep(0.05)
        assert claims.holder(store, "r") is None  # a zombie (killed, not reaped) holds none
    finally:
        proc.kill()
        proc.wait()
    assert store.claim_path("r").exists()
    assert claims.holder(store, "r") is None  # its pid is dead: stale
    taken = claims.try_claim(store, "r")
    assert taken is not None and taken.info["pid"] == os.getpid()
    taken.release()


def test_other_hosts_go_by_heartbeat_age(store):
    path = store.claim_path("r")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"host": "node-17", "pid": 1, "started": time.time(),
                                "token": "abc"}))
    assert claims.try_claim(store, "r") is None  # fresh heartbeat: held
    assert claims.holder(store, "r")["host"] == "node-17"
    old = time.time() - claims.STALE_AFTER_S - 1
    path.write_text(json.dumps({"host": "node-17", "pid": 1, "started": old, "token": "abc"}))
    assert claims.holder(store, "r") is None  # by its content: a fresh mtime counts nothing
    taken = claims.try_claim(store, "r")
    assert taken is not None and taken.info["host"] == socket.gethostname()
    taken.release()


def test_a_claim_taken_over_is_not_released_by_its_old_holder(store):
    mine = claims.try_claim(store, "r")
    path = store.claim_path("r")
    path.write_text(json.dumps({**mine.info, "token": "someone-else"}))  # taken over
    mine.release()
    assert path.exists()


def test_a_reused_pid_does_not_keep_a_dead_runners_claim(store):
    """The pid in the claim is alive but is another process now (its start time differs)."""
    other = subprocess.Popen(["sleep", "60"])
    try:
        path = store.claim_path("r")
        path.parent.mkdir(parents=True)
        started = liveness.process_start(other.pid)
        info = {"host": socket.gethostname(), "pid": other.pid, "started": time.time(),
                "token": "abc"}
        path.write_text(json.dumps({**info, "pid_started": started}))
        assert claims.holder(store, "r")["pid"] == other.pid  # same process: held
        path.write_text(json.dumps({**info, "pid_started": started - 100}))
        assert claims.holder(store, "r") is None  # the claim's runner died, its pid reused
        taken = claims.try_claim(store, "r")
        assert taken is not None and taken.info["pid"] == os.getpid()
        taken.release()
    finally:
        other.kill()
        other.wait()


# ------------------------------------------------------------------ issue 31.4: never forever
def _claim(store, content):
    path = store.claim_path("r")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return path


def test_an_empty_or_unparseable_claim_is_stale(store):
    for content in ("", "{not json", "[1, 2]", json.dumps({"host": "node-17"})):
        _claim(store, content)  # fresh mtime: it used to hold the run for 5 minutes
        assert claims.holder(store, "r") is None, content
        taken = claims.try_claim(store, "r")
        assert taken is not None, content
        taken.release()


def test_a_heartbeat_dated_ahead_is_stale(store):
    ahead = time.time() + 86400
    path = _claim(store, json.dumps({"host": "node-17", "pid": 1, "started": ahead,
                                        "token": "abc"}))
    os.utime(path, (ahead, ahead))
    assert claims.holder(store, "r") is None
    taken = claims.try_claim(store, "r")
    assert taken is not None
    taken.release()


def test_another_hosts_claim_lives_by_its_heartbeat_file(store):
    old = time.time() - claims.STALE_AFTER_S - 1
    path = _claim(store, json.dumps({"host": "node-17", "pid": 1, "started": old,
                                        "token": "abc"}))
    assert claims.holder(store, "r") is None
    beat = path.with_name(f".{path.name}.abc.beat")
    beat.write_text(json.dumps({"time": time.time() - 10}))
    assert claims.holder(store, "r")["host"] == "node-17"  # it beat 10 s ago: held
    message = claims.held_by(store, "r")
    assert "pid 1 on node-17" in message and "last heartbeat" in message
    expires = time.strftime("%H:%M:%S", time.localtime(time.time() - 10 + claims.STALE_AFTER_S))
    assert f"expires at {expires}" in message


def test_the_skip_names_the_run_the_holder_and_the_expiry(tmp_path, store):
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text("defaults: {model: minilm}\nmatrix: {seed: [1, 2]}\n")
    grid = load_grid(grid_file, runs_dir=store)
    held = grid.runs[0].run_id
    path = store.claim_path(held)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"host": "node-17", "pid": 4, "started": time.time(),
                                "token": "abc"}))
    summary, todo = _sort_runs(grid, store, force=False)
    assert [r.run_id for r in todo] == [grid.runs[1].run_id]
    (line,) = busy_lines(summary)
    assert held in line and "pid 4 on node-17" in line and "expires at" in line


def test_a_zombie_writer_is_gone_everywhere(store):
    """One liveness rule (helpers.run.liveness): store's .tmp sweep took a killed, unreaped
    process (a zombie) for a live writer, while claims did not."""
    zombie = subprocess.Popen(["sleep", "60"])
    zombie.kill()
    deadline = time.time() + 5
    while liveness.process_start(zombie.pid) is not None and time.time() < deadline:
        time.sleep(0.05)
    try:
        assert not liveness.pid_alive(zombie.pid)
        debris = store.tmp_dir / f"r.{zombie.pid}.0"
        debris.mkdir(parents=True)
        assert debris in store.clean_stale()
    finally:
        zombie.wait()


def test_a_resume_removes_the_stale_claims_of_complete_runs(tmp_path, store):
    """A runner killed after publishing left `.claims/<run_id>.lock` behind for good: each
    resume skipped the complete run and kept its claim (issue 31.8). A held claim stays."""
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text("defaults: {model: minilm}\nmatrix: {seed: [1, 2, 3]}\n")
    grid = load_grid(grid_file, runs_dir=store)
    ids = write_grid_runs(grid)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = store.claim_path(ids[0])
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead),
                                 "started": time.time(), "token": "dead"}))
    store.claim_path(ids[1]).write_text("")  # empty: nobody's
    held = claims.try_claim(store, ids[2])  # this process: alive
    try:
        summary, todo = _sort_runs(grid, store, force=False)
        assert todo == [] and sorted(summary.skipped) == sorted(ids)
        left = sorted(p.name for p in store.claims_dir.glob("*.lock"))
        assert left == [f"{ids[2]}.lock"]
    finally:
        held.release()

"""Claims on run ids: one holder at a time, released on exit, taken over when stale."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

from helpers.grid import claims

HOLD = """
import sys, time
from helpers.grid import claims
c = claims.try_claim(sys.argv[1], "r", heartbeat_s=0.2)
print("held" if c else "busy", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_a_claim_is_held_once_and_released(tmp_path):
    first = claims.try_claim(tmp_path, "r")
    assert first is not None and first.held()
    assert claims.try_claim(tmp_path, "r") is None  # also within one process
    assert claims.holder(tmp_path, "r")["pid"] == os.getpid()
    assert claims.try_claim(tmp_path, "other") is not None
    first.release()
    assert not claims.claim_path(tmp_path, "r").exists()
    with claims.try_claim(tmp_path, "r") as again:
        assert again.held()
    assert claims.holder(tmp_path, "r") is None


def test_another_process_holds_it_until_it_dies(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path), "60"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        assert claims.try_claim(tmp_path, "r") is None
        info = claims.holder(tmp_path, "r")
        assert info["pid"] == proc.pid and info["host"] == socket.gethostname()
        assert f"pid {proc.pid}" in claims.describe(info)
        before = claims.claim_path(tmp_path, "r").stat().st_mtime
        time.sleep(0.6)
        assert claims.claim_path(tmp_path, "r").stat().st_mtime > before  # heartbeat
        proc.kill()  # kill -9: no release, the lock file stays behind
        deadline = time.time() + 10
        while claims.holder(tmp_path, "r") is not None and time.time() < deadline:
            time.sleep(0.05)
        assert claims.holder(tmp_path, "r") is None  # a zombie (killed, not reaped) holds none
    finally:
        proc.kill()
        proc.wait()
    assert claims.claim_path(tmp_path, "r").exists()
    assert claims.holder(tmp_path, "r") is None  # its pid is dead: stale
    taken = claims.try_claim(tmp_path, "r")
    assert taken is not None and taken.info["pid"] == os.getpid()
    taken.release()


def test_other_hosts_go_by_heartbeat_age(tmp_path):
    path = claims.claim_path(tmp_path, "r")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"host": "node-17", "pid": 1, "started": time.time(),
                                "token": "abc"}))
    assert claims.try_claim(tmp_path, "r") is None  # fresh heartbeat: held
    assert claims.holder(tmp_path, "r")["host"] == "node-17"
    old = time.time() - claims.STALE_AFTER_S - 1
    os.utime(path, (old, old))
    assert claims.holder(tmp_path, "r") is None
    taken = claims.try_claim(tmp_path, "r")
    assert taken is not None and taken.info["host"] == socket.gethostname()
    taken.release()


def test_a_claim_taken_over_is_not_released_by_its_old_holder(tmp_path):
    mine = claims.try_claim(tmp_path, "r")
    path = claims.claim_path(tmp_path, "r")
    path.write_text(json.dumps({**mine.info, "token": "someone-else"}))  # taken over
    mine.release()
    assert path.exists()


def test_a_reused_pid_does_not_keep_a_dead_runners_claim(tmp_path):
    """The pid in the claim is alive but is another process now (its start time differs)."""
    other = subprocess.Popen(["sleep", "60"])
    try:
        path = claims.claim_path(tmp_path, "r")
        path.parent.mkdir(parents=True)
        started = claims._process_start(other.pid)
        info = {"host": socket.gethostname(), "pid": other.pid, "started": time.time(),
                "token": "abc"}
        path.write_text(json.dumps({**info, "pid_started": started}))
        assert claims.holder(tmp_path, "r")["pid"] == other.pid  # same process: held
        path.write_text(json.dumps({**info, "pid_started": started - 100}))
        assert claims.holder(tmp_path, "r") is None  # the claim's runner died, its pid reused
        taken = claims.try_claim(tmp_path, "r")
        assert taken is not None and taken.info["pid"] == os.getpid()
        taken.release()
    finally:
        other.kill()
        other.wait()

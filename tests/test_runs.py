"""The runs store: a run folder appears complete in one rename or not at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import runs


def write_all(folder):
    for name in runs.REQUIRED_FILES:
        if name.endswith(".json"):
            runs.write_json(folder / name, {"name": name})
        else:
            (folder / name).write_text("step,epoch,split,metric,value\n")


def test_staging_publishes_complete_folder(tmp_path):
    runs.record_failure(tmp_path, "r1", {"error": "earlier"})
    with runs.staging(tmp_path, "r1") as tmp:
        assert tmp.parent == tmp_path / runs.TMP_DIR
        write_all(tmp)
        assert runs.complete_runs(tmp_path) == []  # nothing visible while writing
    assert runs.complete_runs(tmp_path) == [tmp_path / "r1"]
    assert runs.read_failure(tmp_path, "r1") is None  # success clears the old failure
    assert list((tmp_path / runs.TMP_DIR).iterdir()) == []


def test_republish_replaces_old_run(tmp_path):
    for value in ("old", "new"):
        with runs.staging(tmp_path, "r") as tmp:
            write_all(tmp)
            (tmp / "marker").write_text(value)
    assert (tmp_path / "r" / "marker").read_text() == "new"
    assert list((tmp_path / runs.TMP_DIR).iterdir()) == []


def test_failure_and_missing_files_leave_nothing(tmp_path):
    with pytest.raises(ZeroDivisionError), runs.staging(tmp_path, "r") as tmp:
        write_all(tmp)
        1 / 0  # noqa: B018
    with pytest.raises(RuntimeError, match="metrics.json"), runs.staging(tmp_path, "r") as tmp:
        write_all(tmp)
        (tmp / "metrics.json").unlink()
    assert not (tmp_path / "r").exists()
    assert list((tmp_path / runs.TMP_DIR).iterdir()) == []


def test_clean_stale_removes_only_dead_writers(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / runs.TMP_DIR / f"r.{dead}.0"
    live = tmp_path / runs.TMP_DIR / f"r.{os.getppid()}.0"  # alive: our parent
    stale.mkdir(parents=True)
    live.mkdir()
    assert runs.clean_stale(tmp_path) == [stale]
    assert live.is_dir() and not stale.exists()


def test_hand_made_folder_is_not_complete(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.json").write_text("{}")
    assert runs.complete_runs(tmp_path) == []
    assert runs.complete_runs(tmp_path / "missing") == []


def test_failure_records_roundtrip(tmp_path):
    path = runs.record_failure(tmp_path, "r", {"error": "boom", "traceback": "tb"})
    assert json.loads(path.read_text())["run_id"] == "r"
    assert runs.read_failure(tmp_path, "r")["error"] == "boom"
    runs.clear_failure(tmp_path, "r")
    assert runs.read_failure(tmp_path, "r") is None
    runs.write_json(tmp_path / "x.json", {"a": 1})
    assert runs.read_json(tmp_path / "x.json") == {"a": 1}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".x")] == []

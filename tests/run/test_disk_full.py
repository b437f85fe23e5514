"""A full disk (ENOSPC) while writing a run's records, a failure record or the token cache:
one error that names the folder and the space, and no ``.tmp`` debris (issue 20, case 5).

The ``disk_full`` fixture (conftest) makes files opened for writing in a folder fail to take
data with ENOSPC, as a full disk does: the code under test runs unchanged, with its own
``open``/``write`` calls. tests/grid/test_disk_full_grid.py fills a real (tmpfs) disk.
"""

from __future__ import annotations

import os

import pytest

from helpers.run import batches, data, liveness, models, records
from helpers.run.disk import DiskFullError
from helpers.run.store import RunStore


def test_a_record_on_a_full_disk_names_the_folder_and_leaves_no_tmp(tmp_path, disk_full):
    """Raised a raw `OSError: [Errno 28]` and left a 0-byte `.x.json.<pid>.tmp`."""
    folder = tmp_path / ".failed"
    folder.mkdir()
    disk_full(folder)
    with pytest.raises(DiskFullError) as e:
        records.write_json(folder / "x.json", {"a": 1})
    message = str(e.value)
    assert f"disk full: could not write {folder / 'x.json'}" in message, message
    assert "free" in message and "needed" in message and "13 B needed" in message, message
    assert e.value.errno == 28 and isinstance(e.value, OSError)
    assert list(folder.iterdir()) == []
    with pytest.raises(DiskFullError):
        RunStore(tmp_path).record_failure("some_run", {"ename": "X"})
    assert list(folder.iterdir()) == []


def test_the_token_cache_on_a_full_disk_is_skipped_and_leaves_no_partial_folder(
        tmp_path, tiny_bert, real_data_dir, disk_full, capsys):
    """Left a partial `.<hash>.<pid>.tmp` folder in the cache, and failed the run."""
    dd = data.load("restaurant_sup", real_data_dir)
    dd = dd.__class__({k: v.select(range(8)) for k, v in dd.items()})
    cache = tmp_path / "cache"
    cache.mkdir()
    disk_full(cache)
    out = batches.tokenize(dd, models.load_tokenizer(str(tiny_bert)), 32, cache)
    assert out["train"].num_rows == 8  # the run goes on, without a cache entry
    assert list(cache.iterdir()) == []
    err = capsys.readouterr().err
    assert f"token cache not saved: disk full in {cache}" in err, err


def test_the_next_start_removes_what_dead_writers_left(tmp_path):
    """Partial cache folders and 0-byte `.failed/.*.tmp` files were never removed."""
    dead = 2 ** 22 + 12345  # above the default pid_max: no such process
    while liveness.pid_alive(dead):
        dead += 1
    store = RunStore(tmp_path)
    debris = [store.tmp_dir / f"run_a.{dead}.0",
              store.token_cache / f".0123456789abcdef.{dead}.tmp"]
    for d in debris:
        d.mkdir(parents=True)
        (d / "data.arrow").write_bytes(b"x")
    store.failed_dir.mkdir()
    debris.append(store.failed_dir / f".run_a.json.{dead}.tmp")
    debris[-1].write_bytes(b"")
    live = store.failed_dir / f".run_b.json.{os.getppid()}.tmp"  # being written
    live.write_bytes(b"")
    kept = store.failed_dir / "run_a.json"
    kept.write_text("{}")
    removed = store.clean_stale()
    assert sorted(removed) == sorted(debris)
    assert not any(d.exists() for d in debris)
    assert live.exists() and kept.exists()

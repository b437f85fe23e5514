"""What a run trained on (issue 20, case 2): the digests of its data and model files, computed
from the bytes as read, and how a run whose data changed since is told from one that matches."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from helpers.run import provenance, records, training
from helpers.run.config import TrainConfig

TINY = {"max_train_samples": 16, "max_eval_samples": 8, "num_train_epochs": 1,
        "max_length": 32, "per_device_train_batch_size": 8, "logging_steps": 1,
        "torch_threads": 1}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def data_copy(real_data_dir, tmp_path) -> Path:
    """The restaurant files in a folder of the test's own, to edit."""
    shutil.copytree(real_data_dir / "SemEval14-res", tmp_path / "data" / "SemEval14-res")
    return tmp_path / "data"


def edit_one_example(data_dir: Path) -> Path:
    """Change one training example's label, as the issue did."""
    train = data_dir / "SemEval14-res" / "train.json"
    examples = json.loads(train.read_text())
    key = next(iter(examples))
    polarity = examples[key]["polarity"]
    examples[key]["polarity"] = "negative" if polarity != "negative" else "positive"
    train.write_text(json.dumps(examples))
    return train


def test_a_same_size_edit_with_its_time_restored_is_noticed(data_copy):
    """Digests were cached by path, size and mtime: an edit of the same size with its mtime
    put back (``touch -r``) kept the old digest, in env.json and in ``grid plan`` (issue 31.2).
    """
    root, files = provenance.data_files("restaurant_sup", data_copy)
    rec = {"data_files": provenance.digests(root, files)}
    train = data_copy / "SemEval14-res" / "train.json"
    st = train.stat()
    text = train.read_text()
    swapped = text.replace('"positive"', '"negative"', 1)  # same length, another label
    assert len(swapped) == len(text) and swapped != text
    train.write_text(swapped)
    os.utime(train, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert train.stat().st_size == st.st_size and train.stat().st_mtime_ns == st.st_mtime_ns
    assert provenance.file_digest(train) == sha256(train) != rec["data_files"][
        "SemEval14-res/train.json"]
    assert provenance.changed_files(rec, data_copy) == ["SemEval14-res/train.json"]


def test_changed_files_name_what_differs(data_copy, tmp_path):
    root, files = provenance.data_files("restaurant_sup", data_copy)
    assert root == data_copy.resolve()
    assert [p.name for p in files] == ["train.json", "dev.json", "test.json"]
    rec = {"data_files": provenance.digests(root, files)}
    assert provenance.changed_files(rec, data_copy) == []
    edit_one_example(data_copy)
    assert provenance.changed_files(rec, data_copy) == ["SemEval14-res/train.json"]
    moved = tmp_path / "moved"  # the same content elsewhere still matches ...
    shutil.copytree(data_copy, moved)
    rec2 = {"data_files": provenance.digests(*provenance.data_files("restaurant_sup", moved))}
    assert provenance.changed_files(rec2, data_copy) == []
    # ... and a folder without the files can't be compared: not stale
    assert provenance.changed_files(rec, tmp_path / "empty") == []
    assert provenance.recorded({"python": "3.11"}) is None  # a run from before: unknown


@pytest.mark.slow
def test_run_records_its_data_and_model_files(data_copy, tiny_bert, tmp_path):
    """config.json had "data_dir": null and nothing held a checksum of the files read."""
    cfg = TrainConfig.from_dict({"model": str(tiny_bert), "dataset": "restaurant_sup",
                                 "data_dir": str(data_copy), "runs_dir": str(tmp_path / "runs"),
                                 **TINY})
    before = cfg.run_id()
    run_dir = training.run(cfg, progress=False, device="cpu")
    assert run_dir.name == before  # new keys in env.json only: the run id is unchanged
    config = records.read_json(run_dir / "config.json")
    assert set(config) == {*cfg.to_dict(), "run_id"}
    rec = provenance.read(run_dir)
    assert rec["data_dir"] == str(data_copy.resolve())
    assert rec["data_files"] == {f"SemEval14-res/{n}": sha256(data_copy / "SemEval14-res" / n)
                                 for n in ("train.json", "dev.json", "test.json")}
    assert rec["model_dir"] == str(Path(tiny_bert).resolve())
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        assert rec["model_files"][name] == sha256(Path(tiny_bert) / name)
    metrics = records.read_json(run_dir / "metrics.json")
    assert metrics["timings"]["provenance_s"] >= 0


def test_differing_files_compare_what_every_record_has():
    a = {"data_files": {"d/train.json": "1", "d/test.json": "2"},
         "model_files": {"config.json": "3"}}
    grown = {**a, "model_files": {"config.json": "3", "tf_model.h5": "4"}}  # a Hub snapshot
    assert provenance.differing_files({"r1": a, "r2": grown}) == {}
    edited = {**a, "data_files": {"d/train.json": "9", "d/test.json": "2"}}
    assert provenance.differing_files({"r1": a, "r2": edited}) == {
        "r1": {"d/train.json": "1"}, "r2": {"d/train.json": "9"}}
    other_weights = {**a, "model_files": {"config.json": "8"}}
    assert provenance.differing_files({"r1": a, "r2": other_weights}) == {
        "r1": {"model config.json": "3"}, "r2": {"model config.json": "8"}}

"""The runs store: a run folder appears complete in one rename or not at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.run import liveness, predictions, records
from helpers.run import store as runs
from helpers.run.store import RunStore

SCORES = {"accuracy": 0.5, "macro_f1": 0.4, "micro_f1": 0.5, "loss": 0.9}
#: Six examples scoring SCORES: 3 of 6 right; F1 0.4, 0.8 and 0 for classes 0, 1 and 2.
LABELS, PREDICTIONS = [0, 0, 0, 0, 1, 1], [0, 1, 2, 2, 1, 1]


def write_all(folder, run_id="r"):
    """The records of a complete run, as small as validation allows: one epoch of two, whose
    validation and test scores history.csv holds as metrics.json does."""
    records.write_json(folder / "config.json", {"run_id": run_id, "seed": 1,
                                             "num_train_epochs": 2})
    records.write_json(folder / "metrics.json", {"run_id": run_id, "best_epoch": 1,
                                              "validation": SCORES, "test": SCORES,
                                              "train_loss": 1.0, "num_epochs": 2})
    records.write_json(folder / "memory.json", {"peak_rss_bytes": 1})
    records.write_json(folder / "env.json", {"python": "3"})
    rows = ["step,epoch,split,metric,value", "2,1.0,train,loss,0.9"]
    for epoch, shift in ((1, 0.0), (2, -0.1)):
        rows += [f"{2 * epoch},{epoch},{split},{m},{v + shift}" for split in ("validation", "test")
                 for m, v in SCORES.items()]
    (folder / "history.csv").write_text("\n".join(rows) + "\n")
    predictions.write(folder / predictions.FILE, [
        (split, epoch, range(6), LABELS, PREDICTIONS if epoch == 1 else LABELS, None)
        for split in ("validation", "test") for epoch in (1, 2)])


def _rewrite_predictions(folder, change):
    """predictions.csv.gz with ``change(lines)`` applied to its text lines, gzip intact."""
    import gzip

    path = folder / predictions.FILE
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    path.write_bytes(gzip.compress(("\n".join(change(lines)) + "\n").encode()))


def test_staging_publishes_complete_folder(tmp_path):
    RunStore(tmp_path).record_failure("r1", {"error": "earlier"})
    with RunStore(tmp_path).staging("r1") as tmp:
        assert tmp.parent == RunStore(tmp_path).tmp_dir
        write_all(tmp, "r1")
        assert RunStore(tmp_path).complete_runs() == []  # nothing visible while writing
    assert RunStore(tmp_path).complete_runs() == [tmp_path / "r1"]
    assert RunStore(tmp_path).read_failure("r1") is None  # success clears the old failure
    assert list((RunStore(tmp_path).tmp_dir).iterdir()) == []


def test_republish_replaces_old_run(tmp_path):
    for value in ("old", "new"):
        with RunStore(tmp_path).staging("r") as tmp:
            write_all(tmp)
            (tmp / "marker").write_text(value)
    assert (tmp_path / "r" / "marker").read_text() == "new"
    assert list((RunStore(tmp_path).tmp_dir).iterdir()) == []


def test_failure_and_missing_files_leave_nothing(tmp_path):
    with pytest.raises(ZeroDivisionError), RunStore(tmp_path).staging("r") as tmp:
        write_all(tmp)
        1 / 0  # noqa: B018
    with pytest.raises(RuntimeError, match="metrics.json"), RunStore(tmp_path).staging("r") as tmp:
        write_all(tmp)
        (tmp / "metrics.json").unlink()
    assert not (tmp_path / "r").exists()
    assert list((RunStore(tmp_path).tmp_dir).iterdir()) == []


def test_clean_stale_removes_only_dead_writers(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = RunStore(tmp_path).tmp_dir / f"r.{dead}.0"
    live = RunStore(tmp_path).tmp_dir / f"r.{os.getppid()}.0"  # alive: our parent
    stale.mkdir(parents=True)
    live.mkdir()
    assert RunStore(tmp_path).clean_stale() == [stale]
    assert live.is_dir() and not stale.exists()


def test_hand_made_folder_is_not_complete(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.json").write_text("{}")
    assert RunStore(tmp_path).complete_runs() == []
    assert RunStore(tmp_path / "missing").complete_runs() == []


def test_failure_records_roundtrip(tmp_path):
    path = RunStore(tmp_path).record_failure("r", {"error": "boom", "traceback": "tb"})
    assert json.loads(path.read_text())["run_id"] == "r"
    assert RunStore(tmp_path).read_failure("r")["error"] == "boom"
    RunStore(tmp_path).clear_failure("r")
    assert RunStore(tmp_path).read_failure("r") is None
    records.write_json(tmp_path / "x.json", {"a": 1})
    assert records.read_json(tmp_path / "x.json") == {"a": 1}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".x")] == []


# ------------------------------------------------------------------ issue 12: corrupt records
def _metrics(folder):
    return json.loads((folder / "metrics.json").read_text())


CORRUPTIONS = [  # (what is done to a complete run "r", the file the message names)
    (lambda f: (f / "metrics.json").write_text('{"run_id": "r", "best_ep'), "metrics.json"),
    (lambda f: (f / "metrics.json").write_text("[1, 2]"), "metrics.json"),
    (lambda f: (f / "metrics.json").write_text(""), "metrics.json"),
    (lambda f: records.write_json(f / "metrics.json", {**_metrics(f), "test": None}),
     "metrics.json"),
    (lambda f: records.write_json(f / "metrics.json", {**_metrics(f), "train_loss": float("nan")}),
     "train_loss"),
    (lambda f: records.write_json(f / "metrics.json", {**_metrics(f), "run_id": "other"}),
     "run_id"),
    (lambda f: (f / "config.json").write_bytes(b"\xff\xfe"), "config.json"),
    (lambda f: (f / "env.json").unlink(), "env.json"),
    (lambda f: (f / "history.csv").write_text("step,value\n1,2\n"), "history.csv"),
    (lambda f: (f / "history.csv").write_text("step,epoch,split,metric,value\n2,1,train,loss,\n"),
     "history.csv line 2"),
    # issue 20: records that cannot be true
    (lambda f: _set(f, "test", "macro_f1", 7.5),
     "test.macro_f1 is 7.5, expected a number in [0, 1]"),
    (lambda f: _set(f, "validation", "accuracy", -3), "validation.accuracy is -3"),
    (lambda f: _set(f, "test", "micro_f1", 1.0000001), "test.micro_f1"),
    (lambda f: _set(f, "test", "loss", -0.5), "test.loss is -0.5, expected a finite number >= 0"),
    (lambda f: records.write_json(f / "metrics.json", {**_metrics(f), "train_loss": -1.0}),
     "train_loss is -1.0"),
    (lambda f: records.write_json(f / "metrics.json", {**_metrics(f), "best_epoch": 99}),
     "best_epoch is 99, expected 1..2"),
    (lambda f: records.write_json(f / "metrics.json", {**_metrics(f), "best_epoch": 0}),
     "best_epoch is 0"),
    (lambda f: records.write_json(f / "metrics.json", {**_metrics(f), "best_epoch": True}),
     "best_epoch is True"),
    (lambda f: records.write_json(f / "config.json", {"run_id": "r", "num_train_epochs": 1}),
     "metrics.json: num_epochs is 2, but config.json's num_train_epochs is 1"),
    (lambda f: records.write_json(f / "metrics.json", {**_metrics(f), "best_epoch": 2}),
     "history.csv: validation accuracy at epoch 2 is 0.4, metrics.json says 0.5"),
    (lambda f: _set(f, "test", "macro_f1", 0.41), "test macro_f1 at epoch 1 is 0.4, "
                                                   "metrics.json says 0.41"),
    (lambda f: (f / "history.csv").write_text("step,epoch,split,metric,value\n2,1,train,loss,1\n"),
     "history.csv has no validation accuracy at epoch 1"),
    # issue 31: sizes, counts and losses that cannot be true
    (lambda f: records.write_json(f / "memory.json", {"peak_rss_bytes": -5e18}),
     "memory.json: peak_rss_bytes is -5e+18, expected a finite number >= 0"),
    (lambda f: records.write_json(f / "memory.json", {"peak_cuda_allocated_bytes": float("inf")}),
     "peak_cuda_allocated_bytes is inf"),
    (lambda f: records.write_json(f / "metrics.json", {**_metrics(f),
                                                    "final_train_loss": float("nan")}),
     "metrics.json: final_train_loss is nan"),
    (lambda f: records.write_json(f / "metrics.json", {**_metrics(f), "wall_time_s": -1}),
     "wall_time_s is -1"),
    (lambda f: records.write_json(f / "memory.json", {"parameters": {"total": float("nan"),
                                                                  "trainable": 1}}),
     "memory.json: parameters.total is nan, expected an integer >= 0"),
    (lambda f: records.write_json(f / "metrics.json", {**_metrics(f), "parameters": {
        "total": -10, "trainable": 1}}), "metrics.json: parameters.total is -10"),
    (lambda f: records.write_json(f / "memory.json", {"parameters": {"total": 5, "trainable": 9}}),
     "parameters.trainable (9) is more than parameters.total (5)"),
    # issue 30: per-example predictions, deleted, truncated or disagreeing with metrics.json
    (lambda f: (f / predictions.FILE).unlink(), "missing predictions.csv.gz"),
    (lambda f: (f / predictions.FILE).write_bytes((f / predictions.FILE).read_bytes()[:-12]),
     "predictions.csv.gz: not readable"),
    (lambda f: (f / predictions.FILE).write_bytes(b""), "predictions.csv.gz"),
    (lambda f: _rewrite_predictions(f, lambda lines: lines[:-1]),
     "predictions.csv.gz: test epoch 2 holds examples"),
    (lambda f: _rewrite_predictions(f, lambda lines: [lines[0]] + [
        line.replace("test,1,2,0,2", "test,1,2,0,0") for line in lines[1:]]),
     "predictions.csv.gz: test accuracy at epoch 1 is 0.666667, metrics.json says 0.5"),
    (lambda f: _rewrite_predictions(f, lambda lines: [lines[0]] + [
        line.replace("validation,", "valid,") for line in lines[1:]]),
     "predictions.csv.gz line 2"),
]


def _set(folder, split, metric, value):
    m = _metrics(folder)
    records.write_json(folder / "metrics.json", {**m, split: {**m[split], metric: value}})


@pytest.mark.parametrize("corrupt,named", CORRUPTIONS)
def test_damaged_records_are_not_complete(tmp_path, corrupt, named):
    with RunStore(tmp_path).staging("r") as tmp:
        write_all(tmp)
    assert records.is_complete(tmp_path / "r") and records.check_records(tmp_path / "r") is None
    corrupt(tmp_path / "r")
    problem = records.check_records(tmp_path / "r")
    assert problem and named in problem
    assert not records.is_complete(tmp_path / "r") and RunStore(tmp_path).complete_runs() == []


def test_staging_refuses_records_that_do_not_validate(tmp_path):
    with pytest.raises(RuntimeError, match="train_loss"), RunStore(tmp_path).staging("r") as tmp:
        write_all(tmp)
        records.write_json(tmp / "metrics.json", {**_metrics(tmp), "train_loss": float("inf")})
    assert not (tmp_path / "r").exists()


def test_set_aside_keeps_the_folder_and_says_why(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "metrics.json").write_text("{")
    dest = RunStore(tmp_path).set_aside("r", "metrics.json: not readable JSON")
    assert not (tmp_path / "r").exists()
    assert dest.parent == RunStore(tmp_path).corrupt_dir and dest.name.startswith("r-")
    assert (dest / "metrics.json").read_text() == "{"
    assert "not readable JSON" in dest.with_name(dest.name + ".txt").read_text()


def test_publishing_over_a_corrupt_folder_sets_it_aside(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "notes.txt").write_text("mine")
    with RunStore(tmp_path).staging("r") as tmp:
        write_all(tmp)
    assert records.is_complete(tmp_path / "r")
    (kept,) = [p for p in (RunStore(tmp_path).corrupt_dir).iterdir() if p.is_dir()]
    assert (kept / "notes.txt").read_text() == "mine"


def test_attempt_logs_are_kept_per_attempt(tmp_path):
    first = RunStore(tmp_path).log_path("r", "20260101T000000-1")
    second = RunStore(tmp_path).log_path("r", runs.new_attempt())
    other = RunStore(tmp_path).log_path("r2", runs.new_attempt())
    for path in (first, second, other):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("log")
        path.with_suffix(".ipynb").write_text("{}")
    os.utime(first, (1, 1))
    assert RunStore(tmp_path).attempt_logs("r") == [first, second]
    assert RunStore(tmp_path).attempt_logs("missing") == []


def test_runs_of_the_previous_code_are_incomplete_and_synthetic_runs_complete(tmp_path):
    """A real params/cpu.yaml run written before issue 30 (tests/fixtures/legacy_runs) kept no
    predictions, so it is no longer complete (a grid reruns it: its intervals need them);
    synthetic runs are complete under the stricter checks."""
    from helpers.testing import synthetic

    legacy = Path(__file__).parents[1] / "fixtures" / "legacy_runs"
    (run,) = legacy.iterdir()
    assert records.check_records(run) == "missing predictions.csv.gz"
    ids = synthetic.write_synthetic_runs(RunStore(tmp_path), [("roberta-base", "acl_sup", "lora")],
                                        seeds=range(1, 6))
    assert [p.name for p in RunStore(tmp_path).complete_runs()] == sorted(ids)


def test_a_store_named_by_a_person_is_taken_from_the_project_root(tmp_path):
    from helpers.settings import PROJECT_ROOT

    assert RunStore.at("runs").root == PROJECT_ROOT / "runs"
    assert RunStore.at(tmp_path).root == tmp_path
    store = RunStore(tmp_path)
    assert RunStore.at(store) is store
    # the grid hands one store to its worker processes
    import pickle

    assert pickle.loads(pickle.dumps(store)) == store


def test_staging_alive_asks_the_writer_of_that_run_only(tmp_path):
    store = RunStore(tmp_path)
    dead = 2 ** 22 + 12345
    while liveness.pid_alive(dead):
        dead += 1
    (store.tmp_dir / f"r[1].{dead}.0").mkdir(parents=True)
    assert not store.staging_alive("r[1]")
    (store.tmp_dir / f"r[1]x.{os.getpid()}.0").mkdir()  # another run's writer, alive
    assert not store.staging_alive("r[1]")
    (store.tmp_dir / f"r[1].{os.getpid()}.1").mkdir()
    assert store.staging_alive("r[1]")


def test_run_folders_are_every_run_named_folder_and_complete_runs_the_valid_ones(tmp_path):
    store = RunStore(tmp_path)
    with store.staging("good") as tmp:
        write_all(tmp, "good")
    (tmp_path / "half").mkdir()
    (tmp_path / "note.txt").write_text("not a run")
    store.tmp_dir.mkdir(exist_ok=True)
    assert [p.name for p in store.run_folders()] == ["good", "half"]
    assert store.complete_runs() == [store.path("good")]
    assert store.check("half").startswith("missing") and store.check("gone") == "no folder"
    assert store.is_complete("good") and not store.is_complete("half")

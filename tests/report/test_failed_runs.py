"""A report over failed runs names the failures (issue 31, point 8): with no complete run the
error lists how many of the grid's runs failed and why, and points at `grid status`; with
some complete, the banner names the failed ones. Before, both said only "no complete runs" or
a count of configurations without a run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers.cli import main
from helpers.grid.spec import load_grid
from helpers.report import load, narrative
from helpers.run.store import RunStore
from helpers.testing import synthetic


def grid_file(path: Path, seeds: list[int]) -> Path:
    path.write_text(yaml.safe_dump({
        "defaults": {"num_train_epochs": 3, "learning_rate": 2e-5},
        "matrix": {"model": "roberta-base", "dataset": "restaurant_sup", "method": "full",
                   "seed": seeds}}))
    return path


def fail(store: RunStore, run_id: str, evalue: str) -> None:
    store.record_failure(run_id, {"ename": "RuntimeError", "evalue": evalue,
                                  "cause": "exception"})


def test_no_complete_run_names_the_failed_ones_and_grid_status(tmp_path):
    runs_dir = tmp_path / "runs"
    store = RunStore(runs_dir)
    grid = grid_file(tmp_path / "g.yaml", [1, 2, 3, 4, 5])
    ids = load.grid_run_ids(grid)
    for i, rid in enumerate(ids):
        fail(store, rid, f"CUDA out of memory number {i}\nsecond line")
    fail(store, "another-grid-run", "not of this grid")
    empty = load.run_summary(store, ids)
    with pytest.raises(load.AnalysisError) as err:
        load.require_runs(empty, store, ids, grid)
    message = str(err.value)
    assert f"no complete runs of the grid g.yaml in {runs_dir}; 5 failed: " in message, message
    first = sorted(ids)[:3]
    for rid in first:
        i = ids.index(rid)
        assert f"{rid}: RuntimeError: CUDA out of memory number {i}" in message, message
    assert "and 2 more" in message and "second line" not in message
    assert "another-grid-run" not in message
    assert f"nlpdl-report grid status {grid} --runs-dir {runs_dir}" in message
    # without a grid, every failure record of the folder is the report's
    with pytest.raises(load.AnalysisError, match="6 failed: another-grid-run: RuntimeError"):
        load.require_runs(load.run_summary(store), store)
    # no failure record: the message of before
    with pytest.raises(load.AnalysisError, match="run the grid first"):
        load.require_runs(empty, RunStore(tmp_path / "other"), ids, grid)


def test_the_banner_names_the_failed_runs_beside_the_complete_ones(tmp_path):
    store = RunStore(tmp_path / "runs")
    grid = grid_file(tmp_path / "g.yaml", [1, 2, 3])
    ids = synthetic.write_grid_runs(load_grid(grid), store)
    summary = load.run_summary(store, ids)
    assert narrative.banner_facts(summary, grid, store, ids).failed == {}
    assert "failed" not in narrative.banner(summary, grid, store, ids)
    (store.path(ids[1]) / "metrics.json").unlink()  # seed 2 is no longer complete
    fail(store, ids[1], "Kernel died")
    fail(store, "another-grid-run", "not of this grid")
    summary = load.run_summary(store, ids)
    facts = narrative.banner_facts(summary, grid, store, ids)
    assert facts.failed == {ids[1]: "RuntimeError: Kernel died"}
    text = " ".join(narrative.banner(summary, grid, store, ids).split())
    assert f"One run of this grid failed and is not in it: `{ids[1]}` (RuntimeError: Kernel " \
           f"died)" in text, text
    assert "another-grid-run" not in text and "nlpdl-report grid status" in text


@pytest.mark.slow
def test_a_report_over_failed_runs_only_says_so(tmp_path, capsys):
    """Through the command and the analysis notebook (its require_runs gets the grid)."""
    runs_dir = tmp_path / "runs"
    grid = grid_file(tmp_path / "g.yaml", [1, 2])
    ids = load.grid_run_ids(grid)
    for rid in ids:
        fail(RunStore(runs_dir), rid, "DeadKernelError: Kernel died")
    assert main(["report", "--grid", str(grid), "--runs-dir", str(runs_dir), "--output-dir",
                 str(tmp_path / "build"), "--no-render"]) == 1
    err = capsys.readouterr().err
    assert "no complete runs of the grid g.yaml" in err and "2 failed: " in err, err
    assert all(rid in err for rid in ids) and "grid status" in err, err


def test_a_folder_typed_where_a_store_is_expected_says_what_to_pass(tmp_path):
    from helpers.report import load

    with pytest.raises(TypeError, match=r"pass RunStore.at\("):
        load.run_summary(str(tmp_path))

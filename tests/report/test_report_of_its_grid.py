"""A report is of its grid (issue 20, case 1), and never averages runs of one configuration
trained on different data (case 2): with a grid the analysis reads exactly its run ids and
names the other runs of the folder; without one, a cell of several configurations, or one
configuration on two versions of the data, is refused with the runs named."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import yaml

from helpers.cli import main
from helpers.grid.runner import run_grid
from helpers.grid.spec import load_grid
from helpers.report import formats, load, narrative, tables
from helpers.run import provenance
from helpers.run.records import read_json, write_json
from helpers.run.store import RunStore
from helpers.testing import synthetic

ROOT = Path(__file__).resolve().parents[2]
FULL = ROOT / "params" / "full.yaml"


def grid_file(path: Path, learning_rate: float, **defaults) -> Path:
    path.write_text(yaml.safe_dump({
        "defaults": {"num_train_epochs": 3, "learning_rate": learning_rate, **defaults},
        "matrix": {"model": "roberta-base", "dataset": "restaurant_sup", "method": "full",
                   "seed": [1, 2, 3]}}))
    return path


@pytest.fixture
def two_grids(tmp_path) -> tuple[Path, Path, RunStore]:
    """Two grids that differ in the learning rate only, run into one folder."""
    store = RunStore(tmp_path / "runs")
    first = grid_file(tmp_path / "first.yaml", 2e-5)
    second = grid_file(tmp_path / "second.yaml", 1e-4)
    for path in (first, second):
        synthetic.write_grid_runs(load_grid(path), store)
    return first, second, store


def test_a_grid_reads_its_runs_only_and_names_the_others(two_grids):
    first, second, store = two_grids
    ids = load.grid_run_ids(first)
    summary = load.run_summary(store, ids)
    assert sorted(summary["run_id"]) == sorted(ids) and set(summary["learning_rate"]) == {2e-5}
    load.require_runs(summary, store)
    table = tables.results_table(summary, "restaurant_sup")
    assert table.shown()["n"].tolist() == [3]
    assert len(load.load_runs(store, ids)["run_id"].unique()) == 3
    assert len(load.load_configs(store, ids)) == 3
    others = sorted(load.grid_run_ids(second))
    assert sorted(narrative.banner_facts(summary, first, store).other_runs) == others
    banner = narrative.banner(summary, first, store)
    assert "left out" in banner and all(f"`{r}`" in banner for r in others)
    assert load.runs_left_out(load.run_summary(store), store) == []  # no grid: all read


def test_a_partial_build_says_how_many_of_its_grids_configs_have_no_run(tmp_path):
    store = RunStore(tmp_path / "runs")
    grid = grid_file(tmp_path / "g.yaml", 2e-5)
    ids = synthetic.write_grid_runs(load_grid(grid), store)
    summary = load.run_summary(store, ids)
    assert "partial build" not in narrative.banner(summary, grid, store, ids)
    (store.path(ids[1]) / "metrics.json").unlink()  # seed 2 no longer complete
    summary = load.run_summary(store, ids)
    facts = narrative.banner_facts(summary, grid, store, ids)
    assert (facts.runs, facts.planned, facts.not_run) == (2, 3, 1)
    assert "partial build: 1 of its 3 configurations have no complete run yet" in \
        " ".join(narrative.banner(summary, grid, store, ids).split())


def test_without_a_grid_two_learning_rates_are_refused_not_averaged(two_grids):
    """Tables group by (model, dataset, method): the two learning rates made one row, n=6."""
    first, second, store = two_grids
    summary = load.run_summary(store)
    assert len(summary) == 6
    with pytest.raises(load.AnalysisError) as err:
        load.require_runs(summary, store)
    message = str(err.value)
    assert "roberta-base / restaurant_sup / full holds runs of 2 configurations" in message
    assert "learning_rate=2e-05 (3 runs:" in message and "learning_rate=0.0001 (3 runs:" in message
    for rid in load.grid_run_ids(first) + load.grid_run_ids(second):
        assert rid in message
    assert "report --grid" in message
    # one configuration per cell: the tables of today, whatever the folder's other cells
    one = load.run_summary(store, load.grid_run_ids(second))
    load.require_runs(one, store)
    assert "left out" in narrative.banner(one, second, store)


def test_a_grid_with_no_runs_here_says_where_the_runs_are(two_grids, tmp_path):
    first, _, store = two_grids
    third = grid_file(tmp_path / "third.yaml", 3e-5)
    empty = load.run_summary(store, load.grid_run_ids(third))
    with pytest.raises(load.AnalysisError, match="no complete runs of this grid.*6 other"):
        load.require_runs(empty, store)
    with pytest.raises(load.AnalysisError, match="does not exist"):
        load.grid_run_ids(tmp_path / "missing.yaml")
    assert load.grid_run_ids(None) is None
    # a grid run with --set made other run ids: the same --set finds them
    changed = load.grid_run_ids(first, {"max_train_samples": 64})
    assert not set(changed) & set(load.grid_run_ids(first))


def test_runs_of_one_config_on_different_data_are_refused_naming_them(tmp_path):
    """Seed 1 trained on the old train.json, seeds 2-3 on the edited one, all averaged."""
    grid = load_grid(grid_file(tmp_path / "g.yaml", 2e-5))
    store = RunStore(tmp_path / "runs")
    ids = synthetic.write_grid_runs(grid, store)
    for rid, digest in zip(ids, ("a" * 64, "b" * 64, "b" * 64), strict=True):
        env = read_json(store.path(rid) / "env.json")
        env[provenance.KEY] = {"data_dir": "/data", "model_dir": None, "model_files": {},
                               "data_files": {"SemEval14-res/train.json": digest,
                                              "SemEval14-res/test.json": "c" * 64}}
        write_json(store.path(rid) / "env.json", env)
    summary = load.run_summary(store, ids)
    with pytest.raises(load.AnalysisError) as err:
        load.require_runs(summary, store)
    message = str(err.value)
    assert "trained on different data or model files" in message
    assert f"{ids[0]} (SemEval14-res/train.json aaaaaaaaaaaa)" in message
    assert f"{ids[1]} (SemEval14-res/train.json bbbbbbbbbbbb)" in message
    assert "test.json" not in message and "--rerun-stale" in message
    # a run from before provenance (no record) is unknown, not a conflict
    env = read_json(store.path(ids[0]) / "env.json")
    del env[provenance.KEY]
    write_json(store.path(ids[0]) / "env.json", env)
    load.require_runs(load.run_summary(store, ids), store)


def test_a_synthetic_build_of_the_full_grid_fills_every_table(tmp_path):
    """Synthetic runs of exactly params/full.yaml's 75 configs (write_grid_runs): every cell
    of Tables 1-3 has its 5 seeds once the report reads the grid's runs only."""
    grid = load_grid(FULL)
    store = RunStore(tmp_path / "runs")
    ids = synthetic.write_grid_runs(grid, store, device="cuda")
    assert ids == [r.run_id for r in grid.runs]
    summary = load.run_summary(store, load.grid_run_ids(FULL))
    load.require_runs(summary, store)
    assert len(summary) == 75
    for dataset in ("restaurant_sup", "acl_sup", "agnews_sup"):
        shown = tables.results_table(summary, dataset).shown()
        assert shown["n"].tolist() == [5, 5, 5]
        assert not (shown == formats.MISSING).any().any()
    peft = tables.peft_table(summary).shown()
    assert peft["n"].tolist() == [5] * 9 and not (peft == formats.MISSING).any().any()
    assert "left out" not in narrative.banner(summary, FULL, store)


# ---------------------------------------------------------------------------------- the issue
TINY_GRID = """
defaults: {{model: minilm, dataset: restaurant_sup, method: full, learning_rate: {lr},
           num_train_epochs: 1, max_length: 32, max_train_samples: 16, max_eval_samples: 16,
           torch_threads: 1}}
matrix: {{seed: [1, 2]}}
"""


@pytest.mark.slow
def test_issue_case_1_a_second_learning_rate_in_the_same_folder(tmp_path, real_data_dir,
                                                                 monkeypatch, capsys):
    """The issue's reproduction: a tiny MiniLM grid at lr 1e-4, then the same at lr 5e-3 into
    the same folder; the report of the first showed n=4 and "2 seeds per cell"."""
    monkeypatch.setenv("NLPDL_DATA_DIR", str(real_data_dir))
    runs_dir = tmp_path / "runs"
    paths = []
    for name, lr in (("first", "1e-4"), ("second", "5e-3")):
        path = tmp_path / f"{name}.yaml"
        path.write_text(TINY_GRID.format(lr=lr))
        assert run_grid(load_grid(path, runs_dir=runs_dir), workers=2, progress=False,
                        out=io.StringIO()).ok
        paths.append(path)
    assert len(RunStore(runs_dir).complete_runs()) == 4
    build = tmp_path / "build"
    assert main(["report", "--grid", str(paths[0]), "--runs-dir", str(runs_dir),
                 "--output-dir", str(build), "--no-render"]) == 0, capsys.readouterr().err
    with open(build / "tables" / "task2_restaurant_sup.csv", newline="") as fh:
        (row,) = [r for r in csv.DictReader(fh) if r["model"] == "minilm"]
    assert row["n"] == "2"
    first = set(load.grid_run_ids(paths[0]))
    with open(build / "runs_summary.csv", newline="") as fh:
        assert {r["run_id"] for r in csv.DictReader(fh)} == first
    html = (build / "analysis.html").read_text()
    assert "left out" in html
    for rid in load.grid_run_ids(paths[1]):
        assert rid in html

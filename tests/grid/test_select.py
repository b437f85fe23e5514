"""helpers.grid.select: hyper-parameters chosen on validation, never on test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.cli import main
from helpers.grid import select
from helpers.grid.spec import load_grid
from helpers.testing import synthetic

ROOT = Path(__file__).resolve().parents[2]
SWEEP = """
defaults: {model: minilm, num_train_epochs: 3}
matrix:
  - {dataset: [restaurant_sup, acl_sup], method: full, learning_rate: [1e-4, 2e-4, 5e-4],
     seed: [1, 2]}
"""


@pytest.fixture
def sweep(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP)
    grid = load_grid(path, runs_dir=tmp_path / "runs")
    synthetic.write_grid_runs(grid, rng_seed=3)
    return path, grid


def expected_choice(grid) -> dict[str, float]:
    """Per dataset, the learning rate of the best mean validation macro-F1, from the files."""
    rows = []
    for r in grid.runs:
        m = json.loads((grid.store.path(r.run_id) / "metrics.json").read_text())
        rows.append({"dataset": r.config.dataset, "lr": r.config.learning_rate,
                     "f1": m["validation"]["macro_f1"]})
    means = pd.DataFrame(rows).groupby(["dataset", "lr"])["f1"].mean()
    return {d: float(means[d].idxmax()) for d in means.index.get_level_values(0).unique()}


def chosen(table: pd.DataFrame) -> dict[str, float]:
    return {r["dataset"]: r["learning_rate"] for _, r in table[table["chosen"]].iterrows()}


def test_selection_is_the_best_mean_validation_score(sweep):
    _, grid = sweep
    assert select.swept_fields(grid) == ["learning_rate"]
    table = select.candidates(select.validation_scores(grid), ["learning_rate"])
    assert chosen(table) == expected_choice(grid)
    assert (table["seeds"] == 2).all() and table["chosen"].sum() == 2
    assert select.incomplete(table).empty


def test_selection_reads_no_test_metric(sweep, monkeypatch):
    """The same choice when test scores are shuffled, NaN, or absent from what is read."""
    _, grid = sweep
    scores = select.validation_scores(grid)
    assert not [c for c in scores.columns if c in ("accuracy", "macro_f1", "micro_f1")
                or c.startswith("test")]
    want = chosen(select.candidates(scores, ["learning_rate"]))
    rng = np.random.default_rng(0)
    for test in (rng.permutation(len(scores)) / len(scores), np.full(len(scores), np.nan)):
        noisy = scores.assign(macro_f1=test, test_macro_f1=test, accuracy=test)
        assert chosen(select.candidates(noisy, ["learning_rate"])) == want
    # metrics.json as selection reads it, with its test scores removed: the same choice
    read = select.read_json
    monkeypatch.setattr(select, "read_json",
                        lambda p: {k: v for k, v in read(p).items() if k != "test"})
    assert chosen(select.candidates(select.validation_scores(grid), ["learning_rate"])) == want


def test_check_says_whether_a_grid_uses_the_choice(sweep, tmp_path, capsys):
    path, grid = sweep
    want = expected_choice(grid)
    blocks = "\n".join(f"  - {{dataset: {d}, method: full, learning_rate: {lr}, seed: 1}}"
                       for d, lr in want.items())
    good = tmp_path / "good.yaml"
    good.write_text(f"defaults: {{model: minilm, num_train_epochs: 3}}\nmatrix:\n{blocks}\n")
    args = ["grid", "select", str(path), "--runs-dir", str(grid.store.root)]
    assert main([*args, "--check", str(good)]) == 0
    out = capsys.readouterr().out
    assert "uses the chosen values" in out and "<- chosen" in out
    other = {d: next(v for v in (1e-4, 2e-4, 5e-4) if v != lr) for d, lr in want.items()}
    bad = tmp_path / "bad.yaml"
    bad.write_text("defaults: {model: minilm, num_train_epochs: 3}\nmatrix:\n" + "\n".join(
        f"  - {{dataset: {d}, method: full, learning_rate: {lr}, seed: 1}}"
        for d, lr in other.items()) + "\n")
    assert main([*args, "--check", str(bad)]) == 1
    assert "the sweep chose" in capsys.readouterr().out
    # a grid with nothing to select is refused with the fix
    assert main(["grid", "select", str(good), "--runs-dir", str(grid.store.root)]) == 2


def test_the_cpu_sweep_holds_the_cpu_grid():
    """params/cpu.yaml's runs are runs of params/cpu-sweep.yaml (trained once, shared), and
    the same for the GPU grid's seeds 1-3 in params/full-sweep.yaml."""
    sweep = {r.run_id for r in load_grid(ROOT / "params" / "cpu-sweep.yaml").runs}
    assert {r.run_id for r in load_grid(ROOT / "params" / "cpu.yaml").runs} <= sweep
    full = {r.run_id for r in load_grid(ROOT / "params" / "full-sweep.yaml").runs}
    assert {r.run_id for r in load_grid(ROOT / "params" / "full.yaml").runs
            if r.config.seed <= 3} <= full

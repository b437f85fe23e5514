"""What each error cost: selection rules by value on a hand-made history, the ablation grids'
pairing with the main grids, and intervals from predictions (none without them)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.grid.spec import load_grid
from helpers.grid.union import load_grids
from helpers.report import ablations, load
from helpers.run.store import RunStore

ROOT = Path(__file__).resolve().parents[2]
GRIDS = [("params/cpu.yaml", "params/cpu-ablations.yaml"),
         ("params/full.yaml", "params/full-ablations.yaml")]


def history_of(run_id: str, dataset: str, epochs: list[dict], seed: int = 1) -> pd.DataFrame:
    """Rows of load.load_runs for one run; ``epochs``: per epoch {split/metric: value}."""
    rows = []
    for epoch, values in enumerate(epochs, start=1):
        for name, value in values.items():
            split, metric = name.split("/")
            rows.append({"run_id": run_id, "model": "m", "dataset": dataset, "method": "full",
                         "seed": seed, "step": epoch * 10, "epoch": epoch, "split": split,
                         "metric": metric, "value": value})
    rows.append({**rows[0], "split": "train", "metric": "loss", "step": 5, "epoch": 0.5,
                 "value": 1.0})
    return pd.DataFrame(rows)


def epoch(val_f1, test_loss, test_f1, test_acc) -> dict:
    return {"validation/macro_f1": val_f1, "validation/loss": 0.5, "validation/accuracy": 0.5,
            "test/loss": test_loss, "test/macro_f1": test_f1, "test/accuracy": test_acc}


def test_selection_rules_by_value(tmp_path):
    # run A: ours epoch 2 (val 0.7), original epoch 1 (test loss 0.40), oracle epoch 3
    a = history_of("A", "d1", [epoch(0.6, 0.40, 0.50, 0.60), epoch(0.7, 0.45, 0.55, 0.62),
                               epoch(0.65, 0.50, 0.58, 0.70)])
    # run B: ties: val 0.8 twice (keep epoch 1), test loss 0.3 twice (keep epoch 1)
    b = history_of("B", "d1", [epoch(0.8, 0.3, 0.60, 0.7), epoch(0.8, 0.3, 0.62, 0.71)], seed=2)
    got = ablations.selected_epochs(pd.concat([a, b])).set_index("run_id")
    assert got.loc["A", ["ours_epoch", "original_epoch", "oracle_epoch"]].tolist() == [2, 1, 3]
    assert got.loc["B", ["ours_epoch", "original_epoch", "oracle_epoch"]].tolist() == [1, 1, 2]
    assert got.loc["A", "original_macro_f1"] == 0.50 and got.loc["A", "oracle_accuracy"] == 0.70
    s = ablations.rule_summary(got.reset_index(), "original")
    assert s.mean == pytest.approx(((0.50 - 0.55) + 0.0) / 2)
    assert (s.low, s.high, s.changed, s.runs) == (pytest.approx(-0.05), 0.0, 1, 2)
    o = ablations.rule_summary(got.reset_index(), "oracle")
    assert o.mean == pytest.approx((0.03 + 0.02) / 2) and o.changed == 2
    # without predictions: the effect of the recorded scores, and no interval
    summary = pd.DataFrame({"run_id": ["A", "B"], "num_test_samples": [20, 20]})
    (orig, oracle) = ablations.selection_effects(got.reset_index(), summary,
                                                 load.predictions(RunStore(tmp_path), []))
    assert orig.key == "selection" and orig.macro_f1.estimate == pytest.approx(-0.025)
    assert math.isnan(orig.macro_f1.low) and orig.macro_f1.covers == ablations.NO_PREDICTIONS
    assert (orig.runs, orig.changed, orig.macro_f1.n_examples) == (2, 1, 20)
    assert oracle.accuracy.estimate == pytest.approx((0.08 + 0.01) / 2) and oracle.nil


def predictions_of(run_id: str, epochs: dict[int, list[int]], labels: list[int]) -> pd.DataFrame:
    """A run's predictions as helpers.report.load.predictions returns them."""
    rows = [{"run_id": run_id, "split": s, "epoch": e, "example": i, "label": y, "prediction": p}
            for s in ("validation", "test") for e, preds in epochs.items()
            for i, (y, p) in enumerate(zip(labels, preds, strict=True))]
    return pd.DataFrame(rows)


def test_selection_interval_from_predictions(tmp_path):
    labels = [0, 1, 2, 0, 1, 2] * 5
    right, wrong = labels, [(y + 1) % 3 for y in labels]
    hist, rows, frames = [], [], []
    for i in range(3):
        rid = f"r{i}"
        # ours keeps epoch 2 (all right), the original's rule epoch 1 (all wrong)
        hist.append(history_of(rid, "d1", [epoch(0.1, 0.2, 0.0, 0.0),
                                            epoch(0.9, 0.5, 1.0, 1.0)], seed=i))
        frames.append(predictions_of(rid, {1: wrong, 2: right}, labels))
        rows.append({"run_id": rid, "num_test_samples": 30})
    epochs = ablations.selected_epochs(pd.concat(hist))
    preds = pd.concat(frames, ignore_index=True)
    orig, oracle = ablations.selection_effects(epochs, pd.DataFrame(rows), preds)
    assert orig.macro_f1.estimate == pytest.approx(-1.0) and orig.accuracy.high == -1.0
    assert orig.macro_f1.n_seeds == 3 and orig.macro_f1.n_examples == 30
    assert orig.macro_f1.covers == "seeds and test examples" and not orig.nil
    assert oracle.macro_f1.estimate == 0 and oracle.nil  # the oracle keeps our epoch here


@pytest.mark.parametrize("main_file,ablation_file", GRIDS)
def test_each_ablation_run_pairs_with_its_baseline(main_file, ablation_file):
    main, abl = load_grid(ROOT / main_file), load_grid(ROOT / ablation_file)
    configs = [pd.DataFrame([{**r.config.resolved().to_dict(), "run_id": r.run_id}
                             for r in g.runs]) for g in (main, abl)]
    pairs = ablations.pair_runs(*configs).set_index("treatment")
    assert set(pairs.index) == {r.run_id for r in abl.runs}  # every ablation run is paired
    by_id = {r.run_id: r.config.resolved() for r in (*main.runs, *abl.runs)}
    for treatment, p in pairs.iterrows():
        t, c = by_id[treatment], by_id[p["control"]]
        assert (t.model, t.dataset, t.method, t.seed) == (c.model, c.dataset, c.method, c.seed)
        field = p["key"]
        assert getattr(t, field) != getattr(c, field)
        assert {k for k, v in t.to_dict().items() if c.to_dict()[k] != v} == {field}
    assert set(pairs["key"]) == {"input_format", "num_labels", "learning_rate"}
    assert set(pairs.loc[pairs["key"] == "learning_rate", "original"]) == {"2e-5"}
    assert set(pairs.loc[pairs["key"] == "num_labels", "original"]) == {"6"}


@pytest.mark.parametrize("main_file,ablation_file", GRIDS)
def test_ablation_grid_trains_no_config_twice(main_file, ablation_file):
    main, abl = load_grid(ROOT / main_file), load_grid(ROOT / ablation_file)
    assert not {r.run_id for r in main.runs} & {r.run_id for r in abl.runs}
    both = load_grids([ROOT / main_file, ROOT / ablation_file])
    assert len(both.runs) == len(main.runs) + len(abl.runs)
    again = load_grids([ROOT / main_file, ROOT / ablation_file, ROOT / main_file])
    assert [r.run_id for r in again.runs] == [r.run_id for r in both.runs]  # each once


def test_ablation_effects_paired_by_seed(tmp_path):
    labels = list(np.arange(40) % 3)
    rows, frames, configs = [], [], {"main": [], "abl": []}
    for seed in (1, 2):
        for side, fmt in (("main", "pair"), ("abl", "sep_string")):
            rid = f"{side}{seed}"
            configs[side].append({"run_id": rid, "model": "minilm", "dataset": "restaurant_sup",
                                  "method": "full", "seed": seed, "input_format": fmt})
            # the ablation gets the first 10 examples wrong
            preds = [(y + 1) % 3 if side == "abl" and i < 10 else y
                     for i, y in enumerate(labels)]
            frames.append(predictions_of(rid, {1: preds}, labels))
            acc = sum(p == y for p, y in zip(preds, labels, strict=True)) / 40
            rows.append({"run_id": rid, "best_epoch": 1, "accuracy": acc, "macro_f1": acc,
                         "num_test_samples": 40})
    pairs = ablations.pair_runs(pd.DataFrame(configs["main"]), pd.DataFrame(configs["abl"]))
    assert pairs[["treatment", "control"]].values.tolist() == [["abl1", "main1"],
                                                              ["abl2", "main2"]]
    summary = pd.DataFrame(rows)
    preds = pd.concat(frames, ignore_index=True)
    (e,) = ablations.ablation_effects(pairs, summary, preds)
    assert e.key == "input_format" and (e.original, e.ours) == ("sep_string", "pair")
    assert e.accuracy.estimate == pytest.approx(-0.25) and e.accuracy.n_seeds == 2
    assert e.accuracy.covers == "test examples only" and e.accuracy.high < 0
    # the same pairs without predictions: the recorded scores' difference, no interval
    (bare,) = ablations.ablation_effects(pairs, summary, preds.iloc[0:0])
    assert bare.accuracy.estimate == pytest.approx(-0.25) and math.isnan(bare.accuracy.low)

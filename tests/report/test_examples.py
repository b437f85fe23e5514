"""Per-example results: the predictions loader, the reported epoch, the paired bootstrap behind
the tables' bold and the text's "better", per-class F1 and confusion matrices."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from helpers.report import bootstrap, examples, facts, load, tables
from helpers.run.store import RunStore
from helpers.testing import synthetic

CELLS = [("roberta-base", d, m) for d in ("restaurant_sup", "acl_sup")
         for m in ("full", "adapter", "lora")] + [("bert-base-uncased", "acl_sup", "full")]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> RunStore:
    store = RunStore(tmp_path_factory.mktemp("runs"))
    synthetic.write_synthetic_runs(store, CELLS, seeds=(1, 2))
    return store


@pytest.fixture(scope="module")
def summary(store):
    return load.run_summary(store)


def test_predictions_are_tidy_and_the_reported_epoch_is_metrics_json(store, summary):
    preds = load.predictions(store)
    assert list(preds.columns) == ["run_id", "split", "epoch", "example", "label", "prediction"]
    assert len(preds) == len(summary) * 2 * 3 * synthetic.EVAL_SAMPLES  # splits x epochs
    chosen = examples.reported(preds, summary)
    assert set(chosen["run_id"]) == set(summary["run_id"])
    for _, run in summary.iterrows():  # the test scores metrics.json reports, from the rows
        rows = chosen[chosen["run_id"] == run["run_id"]]
        assert len(rows) == synthetic.EVAL_SAMPLES
        assert f1_score(rows["label"], rows["prediction"], average="macro") == pytest.approx(
            run["macro_f1"])
        assert (rows["label"] == rows["prediction"]).mean() == pytest.approx(run["accuracy"])
    assert load.predictions(store, ["nothing"]).empty


def test_paired_table_has_bootstrap_intervals_at_two_seeds(store, summary):
    """At 2 seeds the t-interval does not exist; the bootstrap's does, over test examples
    only, the note says so, and a second build gives the same intervals."""
    plain = tables.paired_comparison(summary, "roberta-base")
    assert plain.data["ci_low"].isna().all()
    ex = examples.Examples.load(store, summary)
    assert ex.covers == bootstrap.COVERS_EXAMPLES
    table = tables.paired_comparison(summary, "roberta-base", examples=ex)
    assert table.data["ci_low"].notna().all()
    assert set(table.data["covers"]) == {bootstrap.COVERS_EXAMPLES}
    assert table.notes == ["95% interval over test examples only (paired bootstrap)"]
    again = tables.paired_comparison(summary, "roberta-base",
                                     examples=examples.Examples.load(store, summary))
    pd.testing.assert_frame_equal(table.data, again.data)
    # the interval is the bootstrap's of those runs' predictions, the estimate the summary's
    row = table.data.query("dataset == 'acl_sup' and method == 'lora' and metric == 'macro_f1'")
    cell = summary[(summary["dataset"] == "acl_sup") & (summary["model"] == "roberta-base")]
    frames = [ex.frame[ex.frame["run_id"].isin(cell.loc[cell["method"] == m, "run_id"])]
              for m in ("lora", "full")]
    iv = bootstrap.paired_difference(*frames, "macro_f1")
    assert (row["ci_low"].item(), row["ci_high"].item()) == (iv.low, iv.high)
    assert row["mean_difference"].item() == pytest.approx(iv.estimate)


def test_bold_and_better_follow_the_bootstrap(store, summary):
    """A lead is supported (bold, "better") exactly when every bootstrap interval against the
    other rows lies above zero."""
    ex = examples.Examples.load(store, summary)
    f = facts.peft(summary, "roberta-base", examples=ex)
    assert f.can_interval and f.test_noise_only and f.covers == bootstrap.COVERS_EXAMPLES
    for d in f.datasets:
        for r in d.rows:
            assert r.vs_full.covers == bootstrap.COVERS_EXAMPLES and r.vs_full.has_interval
    full = facts.full_ft(summary, examples=ex)
    acl = next(d for d in full.datasets if d.dataset == "acl_sup")
    assert acl.supported == all(v.paired.low > 0 for v in acl.versus)
    shown = tables.results_table(summary, "acl_sup", examples=ex).shown()
    leader = load.display_model(acl.leader.key)
    bolded = shown.loc[shown["model"] == leader, "macro-F1"].item().startswith("**")
    assert bolded == acl.supported


def test_per_class_f1_and_confusion(store, summary):
    ex = examples.Examples.load(store, summary)
    names = examples.label_names(store, summary)
    assert names["acl_sup"][0] == "Background" and len(names["acl_sup"]) == 6
    table = examples.per_class_f1(ex.frame, names)
    cell = ex.frame.query("dataset == 'acl_sup' and method == 'full' "
                          "and model == 'roberta-base'")
    got = table.query("dataset == 'acl_sup' and method == 'full' and model == 'roberta-base'")
    assert list(got["class"]) == names["acl_sup"]
    want = np.mean([f1_score(g["label"], g["prediction"], labels=range(6), average=None,
                             zero_division=0) for _, g in cell.groupby("seed")], axis=0)
    assert got["f1"].to_numpy() == pytest.approx(want)
    # row-normalised: each class with test rows sums to 1, a class without any is NaN
    m = examples.confusion(cell, 6)
    present = np.isin(range(6), cell["label"])
    assert m.shape == (6, 6) and np.allclose(m[present].sum(axis=1), 1)
    assert np.isnan(m[~present]).all()


def test_metrics_json_records_label_names(store, summary):
    run = summary["run_id"].iloc[0]
    assert json.loads((store.path(run) / "metrics.json").read_text())["label_names"]


def test_per_class_sentence_names_the_classes_below_the_mean(store, summary):
    from helpers.report import prose

    ex = examples.Examples.load(store, summary)
    per_class = examples.per_class_f1(ex.frame, examples.label_names(store, summary))
    f = examples.class_losses(per_class, "roberta-base")
    acl = next(d for d in f.datasets if d.dataset == "acl_sup")
    rows = per_class.query("model == 'roberta-base' and method == 'full' "
                           "and dataset == 'acl_sup' and support > 0")
    assert acl.macro_f1 == pytest.approx(rows["f1"].mean())
    assert [c.name for c in acl.weak] == list(
        rows[rows["f1"] < rows["f1"].mean()].sort_values("f1", kind="stable")["class"])
    text = prose.render("per_class", f)
    assert "**acl_sup**" in text and all(c.name in text for c in acl.weak)
    table = tables.per_class_table(per_class).shown()
    assert list(table.columns[:3]) == ["dataset", "class", "test rows"]
    assert len(table) == len(per_class.drop_duplicates(["dataset", "class_id"]))


def test_what_trains_states_counts_and_the_pooler(store, summary):
    from helpers.report import prose

    configs = load.load_configs(store)
    f = examples.what_trains(summary, configs, "roberta-base")
    assert [t.method for t in f.methods] == ["full", "adapter", "lora"]
    assert f.methods[2].trainable == synthetic.PARAMETERS["lora"][1]
    assert not f.lora_on_pooler  # query/value targets never reach the pooler
    text = prose.render("trains", f)
    assert f"{synthetic.PARAMETERS['lora'][1]:,} weights" in " ".join(text.split())
    pooled = configs.assign(lora_target_modules=[["query", "dense"]] * len(configs))
    assert examples.what_trains(summary, pooled, "roberta-base").lora_on_pooler
    frozen = pooled.assign(lora_pooler=False)
    f = examples.what_trains(summary, frozen, "roberta-base")
    assert f.lora_pooler_frozen and not f.lora_on_pooler
    assert "stays frozen" in prose.render("trains", f)


def test_appendix_shows_the_sweep_on_validation_when_its_runs_are_there(tmp_path):
    from helpers.grid.spec import load_grid
    from helpers.report import prose, sweep

    (tmp_path / "g.yaml").write_text("defaults: {model: minilm}\nmatrix: {dataset: acl_sup, "
                                     "method: full, learning_rate: 1e-4, seed: [1, 2]}\n")
    (tmp_path / "g-sweep.yaml").write_text(
        "defaults: {model: minilm}\nmatrix: {dataset: acl_sup, method: full, "
        "learning_rate: [1e-4, 3e-4], seed: [1, 2]}\n")
    runs = RunStore(tmp_path / "runs")
    before = sweep.sweep_facts(tmp_path / "g.yaml", runs)
    assert not before.shown and "not in this runs folder" in prose.render("selection", before)
    # only the grid's own runs (make report without make sweep): no table of empty rows
    synthetic.write_grid_runs(load_grid(tmp_path / "g.yaml"), runs)
    partial = sweep.sweep_facts(tmp_path / "g.yaml", runs)
    assert not partial.shown and (partial.complete, partial.planned) == (2, 4)
    assert "only 2 of its 4 runs" in " ".join(prose.render("selection", partial).split())
    synthetic.write_grid_runs(load_grid(tmp_path / "g-sweep.yaml"), runs)
    f = sweep.sweep_facts(tmp_path / "g.yaml", runs)
    assert f.shown and (f.complete, f.planned) == (4, 4)
    assert not any(c.startswith("test") or c in ("accuracy", "macro_f1")
                   for c in f.table.data.columns)
    chosen = f.table.data.loc[f.table.data["chosen"], "learning_rate"].item()
    assert f.mismatches == (0 if chosen == pytest.approx(1e-4) else 1)
    assert "highest mean validation macro-F1" in prose.render("selection", f)

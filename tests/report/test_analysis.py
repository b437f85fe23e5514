"""helpers.report.load, tables, original, narrative and plots on a synthetic runs folder.

Expected values are computed here from the metrics.json files with the statistics module,
independently of the pandas code under test.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import yaml

from helpers.report import facts, formats, load, narrative, original, plots, stats, tables
from helpers.run.store import RunStore
from helpers.testing import synthetic

matplotlib.use("Agg")

MODELS = ("roberta-base", "bert-base-uncased", "allenai/scibert_scivocab_uncased")
DATASETS = ("restaurant_sup", "acl_sup", "agnews_sup")
SEEDS = (1, 2, 3)


def synthetic_cells() -> list[tuple[str, str, str]]:
    """A partial paper grid: scibert never ran on agnews_sup; PEFT only for roberta-base."""
    cells = [(m, d, "full") for m in MODELS for d in DATASETS
             if not (m.startswith("allenai") and d == "agnews_sup")]
    return cells + [("roberta-base", d, meth) for d in DATASETS for meth in ("adapter", "lora")]


def make_runs(root: Path) -> RunStore:
    store = RunStore(root / "runs")
    synthetic.write_synthetic_runs(store, synthetic_cells(), seeds=SEEDS)
    # one more cell with a single seed: n=1 must show the mean alone
    synthetic.write_synthetic_runs(store, [("bert-base-uncased", "agnews_sup", "lora")],
                                  seeds=(1,), rng_seed=5)
    # debris that must never be read as a result
    (store.tmp_dir / "half.1.0").mkdir(parents=True)
    (store.root / "not_a_run").mkdir()
    return store


def expected_metrics(runs_dir: Path) -> dict[tuple[str, str, str], list[dict]]:
    """(model, dataset, method) -> list of metrics.json, read with json only."""
    cells: dict[tuple[str, str, str], list[dict]] = {}
    for folder in sorted(runs_dir.iterdir()):
        if not (folder / "metrics.json").is_file():
            continue
        cfg = json.loads((folder / "config.json").read_text())
        metrics = json.loads((folder / "metrics.json").read_text())
        cells.setdefault((cfg["model"], cfg["dataset"], cfg["method"]), []).append(metrics)
    return cells


def value(metrics: dict, name: str) -> float:
    return metrics["train_loss"] if name == "train_loss" else metrics["test"][name]


def mean_std(metrics: list[dict], name: str) -> str:
    values = [value(m, name) for m in metrics]
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f}{formats.PM}{statistics.stdev(values):.3f}"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> RunStore:
    return make_runs(tmp_path_factory.mktemp("analysis"))


@pytest.fixture(scope="module")
def runs_dir(store) -> Path:
    """The store's folder, for expected values read with json only."""
    return store.root


@pytest.fixture(scope="module")
def summary(store):
    return load.run_summary(store)


@pytest.fixture(scope="module")
def history(store):
    return load.load_runs(store)


def test_load_runs_is_tidy_and_complete(store, history):
    n_runs = len(store.complete_runs())
    assert n_runs == len(synthetic_cells()) * len(SEEDS) + 1
    assert history["run_id"].nunique() == n_runs
    assert list(history.columns) == ["run_id", "model", "dataset", "method", "seed", "step",
                                     "epoch", "split", "metric", "value"]
    one = store.complete_runs()[0]
    rows = (one / "history.csv").read_text().strip().splitlines()
    assert (history["run_id"] == one.name).sum() == len(rows) - 1
    assert set(history["split"]) == {"train", "validation", "test"}


def test_run_summary_reads_best_epoch_metrics(store, runs_dir, summary):
    assert len(summary) == len(store.complete_runs())
    for _, row in summary.iterrows():
        m = json.loads((runs_dir / row["run_id"] / "metrics.json").read_text())
        assert row["macro_f1"] == m["test"]["macro_f1"]
        assert row["val_macro_f1"] == m["validation"]["macro_f1"]
        assert row["train_loss"] == m["train_loss"]
        assert row["params_trainable"] == m["parameters"]["trainable"]
        assert row["trainable_share"] == pytest.approx(
            m["parameters"]["trainable"] / m["parameters"]["total"])


def test_results_table_values_n_best_and_missing(runs_dir, summary):
    cells = expected_metrics(runs_dir)
    for dataset in DATASETS:
        table = tables.results_table(summary, dataset)
        shown = table.shown().set_index("model")
        for model in MODELS:
            name = load.display_model(model)
            got = cells.get((model, dataset, "full"))
            if got is None:  # scibert on agnews: a visible hole, n = 0
                assert set(shown.loc[name, ["accuracy", "macro-F1"]]) == {formats.MISSING}
                assert shown.loc[name, "n"] == 0
                continue
            assert shown.loc[name, "n"] == len(SEEDS)
            for metric, label in (("train_loss", "train loss"), ("accuracy", "accuracy"),
                                  ("macro_f1", "macro-F1"), ("micro_f1", "micro-F1")):
                assert shown.loc[name, label].strip("*") == mean_std(got, metric)
        # bold: the best mean only where every paired interval excludes zero; never train loss
        means = {m: statistics.mean(value(x, "macro_f1") for x in cells[(m, dataset, "full")])
                 for m in MODELS if (m, dataset, "full") in cells}
        best = max(means, key=means.get)
        lead = all(_paired_low(cells, dataset, best, m) > 0 for m in means if m != best)
        bolded = [i for i, c in shown["macro-F1"].items() if c.startswith("**")]
        assert bolded == ([load.display_model(best)] if lead else [])
        assert not any(c.startswith("**") for c in shown["train loss"])
        assert "| model" in table.markdown()


def _paired_low(cells, dataset: str, a: str, b: str) -> float:
    """Lower end of the 95% t-interval of a - b in test macro-F1, paired by seed."""
    from scipy import stats as sps

    def by_seed(model):
        return {m["run_id"].split("__s")[1].split("__")[0]: m["test"]["macro_f1"]
                for m in cells[(model, dataset, "full")]}

    left, right = by_seed(a), by_seed(b)
    diffs = [left[k] - right[k] for k in sorted(set(left) & set(right))]
    if len(diffs) < 3:
        return float("nan")
    return sps.t.interval(0.95, len(diffs) - 1, loc=np.mean(diffs), scale=sps.sem(diffs))[0]


def test_single_seed_shows_mean_without_spread(runs_dir, summary):
    table = tables.peft_table(summary, "bert-base-uncased", datasets=["agnews_sup"])
    lora = table.shown()[table.shown()["method"] == "LoRA"].iloc[0]
    (m,) = expected_metrics(runs_dir)[("bert-base-uncased", "agnews_sup", "lora")]
    assert lora["n"] == 1
    assert lora["accuracy"].strip("*") == f"{m['test']['accuracy']:.3f}"
    full = table.shown()[table.shown()["method"] == "full"].iloc[0]
    assert full["n"] == len(SEEDS)


def test_peft_table_has_trainable_share(runs_dir, summary):
    assert load.peft_model(summary) == "roberta-base"
    table = tables.peft_table(summary)
    assert list(table.shown()["dataset"].unique()) == list(DATASETS)
    cells = expected_metrics(runs_dir)
    for _, row in table.shown().iterrows():
        method = {"full": "full", "adapter": "adapter", "LoRA": "lora"}[row["method"]]
        p = cells[("roberta-base", row["dataset"], method)][0]["parameters"]
        assert row["trained"] == formats.fmt_share(p["trainable"] / p["total"])
        assert row["n"] == len(SEEDS)
    assert set(table.shown().loc[table.shown()["method"] == "full", "trained"]) == {"100%"}


def test_table_headings_are_bold_as_markup_that_typst_keeps(summary):
    """Quarto < 1.8 drops CSS font-weight when it turns an HTML table into a Typst one, so the
    row-group headings and column labels carry <strong> (it becomes #strong in the PDF)."""
    html = tables.peft_table(summary).html()
    groups = re.findall(r'<th class="gt_group_heading"[^>]*>(.*?)</th>', html)
    assert groups == [f"<strong>{d}</strong>" for d in DATASETS]
    labels = re.findall(r'<th class="gt_col_heading[^"]*"[^>]*>(.*?)</th>', html)
    assert labels[:2] == ["<strong>method</strong>", "<strong>train loss</strong>"]
    assert all(re.fullmatch(r"<strong>[^<>]+</strong>", label) for label in labels)


def test_paired_comparison_matches_scipy_t_interval(runs_dir, summary):
    from scipy import stats

    cells = expected_metrics(runs_dir)
    table = tables.paired_comparison(summary, "roberta-base")
    row = table.data[(table.data["dataset"] == "acl_sup") & (table.data["method"] == "lora")
                     & (table.data["metric"] == "macro_f1")].iloc[0]
    full = {m["run_id"].split("__s")[1][0]: m["test"]["macro_f1"]
            for m in cells[("roberta-base", "acl_sup", "full")]}
    lora = {m["run_id"].split("__s")[1][0]: m["test"]["macro_f1"]
            for m in cells[("roberta-base", "acl_sup", "lora")]}
    diffs = [lora[s] - full[s] for s in sorted(full)]
    assert row["n"] == len(SEEDS)
    assert row["mean_difference"] == pytest.approx(statistics.mean(diffs))
    low, high = stats.t.interval(0.95, len(diffs) - 1, loc=np.mean(diffs),
                                 scale=statistics.stdev(diffs) / math.sqrt(len(diffs)))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))
    assert "PEFT − full" in {table.label(c) for c in table.shown().columns}
    shown = table.shown()[(table.shown()["dataset"] == "acl_sup")
                          & (table.shown()["method"] == "LoRA")].iloc[0]
    assert shown["macro_f1/ci"] == f"[{formats.signed(low)}, {formats.signed(high)}]"


def test_t_interval_needs_three_values_with_spread():
    """Two seeds give a 1-dof interval (or a zero-width one): both mislead, so none."""
    assert all(math.isnan(v) for v in stats.t_interval([0.5]))
    assert all(math.isnan(v) for v in stats.t_interval([0.1, 0.3]))
    assert all(math.isnan(v) for v in stats.t_interval([0.2, 0.2, 0.2]))
    low, high = stats.t_interval([0.1, 0.2, 0.3])
    assert low < 0.2 < high


def test_two_seeds_show_no_interval_and_say_why(runs_dir, summary):
    two = summary[summary["seed"].isin([1, 2])]
    table = tables.paired_comparison(two, "roberta-base")
    assert set(table.shown()["macro_f1/ci"]) == {"none (n < 3)"}
    peft = facts.peft(two)
    assert not peft.can_interval and peft.intervals == 0
    assert not any(r.vs_full.has_interval for d in peft.datasets for r in d.rows)
    assert not any(d.supported for d in facts.full_ft(two).datasets)


def test_facts_are_generated_from_the_runs(runs_dir, summary):
    cells = expected_metrics(runs_dir)
    acl = {m: statistics.mean(x["test"]["macro_f1"] for x in cells[(m, "acl_sup", "full")])
           for m in MODELS}
    f = facts.full_ft(summary)
    ranked = next(d for d in f.datasets if d.dataset == "acl_sup")
    assert [r.key for r in ranked.rows] == sorted(acl, key=acl.get, reverse=True)
    assert ranked.leader.mean == pytest.approx(max(acl.values()))
    agnews = next(d for d in f.datasets if d.dataset == "agnews_sup")
    assert {r.key for r in agnews.rows} == set(MODELS) - {"allenai/scibert_scivocab_uncased"}
    peft = facts.peft(summary)
    assert [d.dataset for d in peft.datasets] == list(DATASETS)
    assert [r.method for r in peft.datasets[0].rows] == ["adapter", "lora"]


def test_banner_names_grid_models_sizes_and_hardware(store, summary):
    text = narrative.banner(summary, "params/full.yaml", store)
    assert "`params/full.yaml`" in text
    assert "SciBERT" in text and "restaurant_sup (48 training" in text
    assert "cpu (x86_64)" in text and "small-scale results" in text


def test_hyperparameters_come_from_configs_and_grid(tmp_path, summary, store):
    appendix = original.appendix(original.load_original())
    table = tables.hyperparameter_table(load.load_configs(store), appendix)
    shown = table.shown().set_index("parameter")
    # bold = departs from the original's appendix (2e-5 for every method)
    assert shown.loc["learning_rate", "adapter"] == "**1e-4**"
    assert shown.loc["learning_rate", "full"] == "2e-5"
    assert shown.loc["learning_rate", "original"] == "2e-5"
    assert shown.loc["lora_r", "full"] == "n/a"
    assert shown.loc["seed", "LoRA"] == "1, 2, 3"
    assert shown.loc["load_best_model_at_end", "original"] == "true"
    assert "runs_dir" not in shown.index
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({
        "description": "test grid", "defaults": {"num_train_epochs": 3},
        "methods": {"adapter": {"learning_rate": 1e-4}},
        "matrix": [{"model": ["roberta-base"], "dataset": ["acl_sup"], "method": "full",
                    "seed": [1, 2]}]}))
    planned = load.planned_values(summary.iloc[0:0], grid, "model", method="full")
    assert planned == ["roberta-base"]


def test_roberta_base_encoder_has_124_6m_parameters():
    from helpers.memory import encoder_parameter_count

    assert formats.fmt_count(encoder_parameter_count("roberta-base")) == "124.6M"


def test_missing_runs_folder_error_names_the_fix(tmp_path):
    with pytest.raises(load.AnalysisError, match="grid run"):
        load.run_summary(RunStore(tmp_path / "nope"))
    empty = load.run_summary(RunStore(tmp_path))
    with pytest.raises(load.AnalysisError, match="no complete runs"):
        load.require_runs(empty, RunStore(tmp_path))


def test_curve_band_is_min_max_over_seeds(history, summary, tmp_path):
    model, dataset = plots.pick_curve_cell(summary)
    assert (model, dataset) == ("roberta-base", "restaurant_sup")
    fig = plots.learning_curves(history, model, dataset)
    ax = fig.axes[1]  # accuracy against epoch; first band = validation
    band = ax.collections[0].get_paths()[0].vertices
    rows = history[(history["model"] == model) & (history["dataset"] == dataset)
                   & (history["method"] == "full") & (history["split"] == "validation")
                   & (history["metric"] == "accuracy")]
    by_epoch = rows.groupby("epoch")["value"]
    for epoch, lo, hi in zip(by_epoch.min().index, by_epoch.min(), by_epoch.max(), strict=True):
        ys = band[np.isclose(band[:, 0], epoch), 1]
        assert min(ys) == pytest.approx(lo) and max(ys) == pytest.approx(hi)
    paths = plots.save_figure(fig, tmp_path, "fig1")
    assert [p.suffix for p in paths] == [".png", ".svg"] and all(p.stat().st_size for p in paths)
    for fig in (plots.peft_curves(history), plots.seed_points(summary)):
        assert fig.axes


def test_a_build_without_full_fine_tuning_still_has_its_figure_1(history, summary):
    """A grid of PEFT runs only (``--filter method=lora``) must not stop the report."""
    peft_only = summary[summary["method"] != "full"]
    assert plots.pick_curve_cell(peft_only) == (None, None)
    fig = plots.learning_curves(history[history["method"] != "full"], None, None)
    assert "No full fine-tuning runs" in fig._suptitle.get_text()

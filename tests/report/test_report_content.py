"""The report as a document, without Quarto: the original's numbers, the comparison with them,
majority-class baselines, the corrections, the memory answer, and table hygiene (widths, the
labels a phone needs). The sentences themselves: tests/report/test_prose.py."""

from __future__ import annotations

import csv
import json
import math
import re
from html import escape
from pathlib import Path

import pytest

from helpers import memory
from helpers.report import (
    corrections,
    facts,
    formats,
    gpu_memory,
    load,
    narrative,
    original,
    published,
    tables,
)
from helpers.run import baselines
from helpers.run.store import RunStore
from helpers.testing import synthetic

ROOT = Path(__file__).resolve().parents[2]
SHARED_TABLES = ROOT.parent / "shared" / "original-report" / "tables.csv"


def col_widths(html: str) -> list[float]:
    return [float(w) for w in re.findall(r'<col style="width:\s*([\d.]+)%', html)]


@pytest.fixture(scope="module")
def orig():
    return original.load_original()


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("content") / "runs")
    cells = [(m, d, "full") for m in ("roberta-base", "allenai/scibert_scivocab_uncased")
             for d in ("restaurant_sup", "acl_sup")]
    cells += [("roberta-base", "acl_sup", meth) for meth in ("adapter", "lora")]
    synthetic.write_synthetic_runs(store, cells, seeds=(1, 2, 3))
    return load.run_summary(store)


# ----------------------------------------------------------------------------- original
def test_original_numbers_equal_the_shared_copy(orig):
    if not SHARED_TABLES.is_file():
        pytest.skip(f"{SHARED_TABLES} not found (the team's copy of the original report)")
    with SHARED_TABLES.open(newline="") as f:
        shared = {(r["table"], r["dataset"], r["model"], r["method"], r["metric"]):
                  float(r["value"]) for r in csv.DictReader(f)}
    ours = orig[orig["table"].isin(original.RESULT_TABLES)]
    mine = {(r["table"], r["dataset"], r["model"], r["method"], r["metric"]): r["value"]
            for _, r in ours.iterrows()}
    assert mine == shared


def test_comparison_shows_the_originals_values_and_our_differences(orig, summary):
    table = original.comparison(summary, orig)
    d = table.data
    # every Table 1-3 value except micro-F1 (= accuracy) is there, as printed
    expected = orig[orig["table"].isin(original.RESULT_TABLES) & (orig["metric"] != "micro_f1")]
    assert len(d) == len(expected)
    assert list(d["original"]) == list(expected["value"])
    # ours = mean of the same model's runs; difference = ours - original
    row = d[(d["table"] == "Table 1") & (d["model"] == "roberta-base")
            & (d["dataset"] == "acl_sup") & (d["metric"] == "macro_f1")].iloc[0]
    runs = summary[(summary["model"] == "roberta-base") & (summary["dataset"] == "acl_sup")
                   & (summary["method"] == "full")]["macro_f1"]
    assert row["ours_mean"] == pytest.approx(runs.mean()) and row["n"] == 3
    assert row["difference"] == pytest.approx(runs.mean() - 0.5187)
    # compact on the page: a row per dataset x metric, the runs as column groups
    shown = table.shown()
    assert len(shown) == 9 and set(shown["dataset"]) == set(original.datasets(orig))
    acl = shown[(shown["dataset"] == "acl_sup") & (shown["metric"] == "macro-F1")].iloc[0]
    assert acl["roberta-base/full/original"] == "0.5187"
    assert acl["roberta-base/full/ours"] == formats.fmt(runs.mean())
    assert acl["roberta-base/full/diff"] == formats.signed(runs.mean() - 0.5187)
    assert set(table.spanners) == {"RoBERTa-base", "BERT-base", "SciBERT", "RoBERTa-base adapter"}
    # cells the grid lacks say so (no agnews, no bert here)
    agnews = shown[shown["dataset"] == "agnews_sup"]
    assert set(agnews["bert-base-uncased/full/ours"]) == {"not run"}


def test_table3_acl_values_are_flagged_as_sciberts(orig, summary):
    swaps = original.table3_swaps(orig).set_index("metric")
    assert swaps.loc["accuracy", "printed"] == 0.7884 and swaps.loc["macro_f1", "own"] == 0.5187
    assert set(swaps["source_model"]) == {"allenai/scibert_scivocab_uncased"}
    table = original.comparison(summary, orig)
    flagged = table.data[table.data["swapped"]]
    assert set(flagged["table"]) == {"Table 3"} and set(flagged["dataset"]) == {"acl_sup"}
    assert set(flagged["metric"]) == {"accuracy", "macro_f1"}
    assert original.SWAP_MARK in table.notes[-1] and "SciBERT" in table.notes[-1]
    assert "0.7884" in table.notes[-1]


def test_cpu_like_grid_compares_with_a_stand_in_and_says_so(orig, summary):
    minilm = summary.assign(model="minilm")
    table = original.comparison(minilm, orig)
    assert original.uses_stand_ins(table)
    assert any("MiniLM-L6" in n and "stand-in" in n for n in table.notes)
    f = narrative.comparison(minilm, table)
    assert f.stand_ins == ["MiniLM-L6"] and not f.replication
    same = narrative.comparison(summary, original.comparison(summary, orig))
    # 8 of Table 1 and Table 3's 2 adapter values; its full fine-tuning rows repeat Table 1's
    # (restaurant_sup) or are SciBERT's (acl_sup), so they are not counted again
    assert same.replication and same.compared == 10


def test_one_model_build_shows_its_value_once_and_counts_each_original_value_once(orig,
                                                                                   summary):
    minilm = summary[summary["model"] == "roberta-base"].assign(model="minilm")
    table = original.comparison(minilm, orig)
    assert original.one_model(table.data) == "minilm"
    shown = table.shown().set_index(["dataset", "metric"])
    # one "ours" column per method, no per-model copies of it
    assert [c for c in shown.columns if c.endswith("/ours")] == ["ours:full/ours",
                                                                 "ours:adapter/ours"]
    assert table.spanners["MiniLM-L6 (ours)"] == ["ours:full/ours"]
    runs = minilm[(minilm["dataset"] == "acl_sup") & (minilm["method"] == "full")]["macro_f1"]
    acl = shown.loc[("acl_sup", "macro-F1")]
    assert acl["ours:full/ours"] == formats.fmt(runs.mean())
    assert acl["bert-base-uncased/full/diff"] == formats.signed(runs.mean() - 0.4019)
    assert shown.loc[("agnews_sup", "macro-F1"), "ours:full/ours"] == "not run"
    # the mean |ours - original|: each of the original's values once (Tables 1-2 and Table
    # 3's adapters), with our mean on the same dataset and method
    vals = orig[orig["table"].isin(original.RESULT_TABLES)
                & orig["metric"].isin(("accuracy", "macro_f1"))
                & ~((orig["table"] == "Table 3") & (orig["method"] == "full"))]
    means = minilm.groupby(["dataset", "method"])[["accuracy", "macro_f1"]].mean()
    diffs = [abs(means.loc[(r["dataset"], r["method"]), r["metric"]] - r["value"])
             for _, r in vals.iterrows() if (r["dataset"], r["method"]) in means.index]
    assert len(diffs) == 14  # 3 models x 2 datasets x 2 metrics, and acl_sup's adapter
    mad, k = original.mean_abs_difference(table)
    assert k == 14 and mad == pytest.approx(sum(diffs) / len(diffs))
    f = narrative.comparison(minilm, table)
    assert f.compared == 14 and f.mean_abs_difference == pytest.approx(mad)
    several = original.comparison(summary, orig)
    assert original.one_model(several.data) == "" and "roberta-base/full/ours" in \
        several.shown().columns


def test_memory_vs_original_answers_70_gb_at_the_originals_settings(orig):
    fake = {"parameters": 124_647_939, "weights_bytes": 4 * 2**30,
            "optimizer_bytes": 8 * 2**30, "gradients_bytes": 4 * 2**30,
            "activations_bytes": 2 * 2**30, "predicted_peak_bytes": 16 * 2**30}
    peaks = {"original_full": (fake, 16.5), "report_full": (fake, float("nan")),
             "original_adapter": ({**fake, "predicted_peak_bytes": 2 * 2**30}, 2.1),
             "report_adapter": (fake, 1.0)}
    table = gpu_memory.memory_vs_original(orig, peaks)
    rows = table.shown().set_index("component")
    assert rows.loc["peak, full fine-tuning", "original"] == "70 GB = 65.2 GiB"
    assert rows.loc["peak, full fine-tuning", "predicted_o"] == "16.00"
    assert rows.loc["peak, full fine-tuning", "gpu_o"] == "16.50"
    assert rows.loc["peak, full fine-tuning", "gpu_r"] == formats.MISSING
    assert rows.loc["peak, adapters", "original"].startswith("13.17 GB")
    assert rows.loc["peak, adapters", "gpu_o"] == "2.10"
    assert rows.loc["weights + AdamW states", "original"].startswith("36 GB")
    assert set(table.csv_frame()["method"]) == {"full", "adapter"}


def test_memory_vs_original_reads_the_benchmark_at_the_originals_settings(orig):
    peaks = gpu_memory.settings_peaks(gpu_memory.DEFAULT_RESULTS)
    rows = gpu_memory.load_results(gpu_memory.DEFAULT_RESULTS)
    want = gpu_memory.find_result(rows, "roberta-base", "full", "fp32", 8, 512)
    assert peaks["original_full"][1] == pytest.approx(want["measured_peak_bytes"] / 2**30)
    adapter = gpu_memory.find_result(rows, "roberta-base", "adapter", "fp32", 8, 512)
    assert peaks["original_adapter"][1] == pytest.approx(adapter["measured_peak_bytes"] / 2**30)


# ----------------------------------------------------------------------------- baselines
def test_majority_class_on_acl_is_the_originals_adapter_result(real_data_dir):
    b = baselines.majority_class("acl_sup", data_dir=real_data_dir)
    assert b["label"] == "Background" and b["num_test_samples"] == 139
    assert b["accuracy"] == pytest.approx(71 / 139)
    assert b["macro_f1"] == pytest.approx(2 * (71 / 139) / (1 + 71 / 139) / 6)
    assert round(b["accuracy"], 3) == round(0.5107, 3) and round(b["macro_f1"], 3) == 0.113
    capped = baselines.majority_class("restaurant_sup", 400, 200, data_dir=real_data_dir)
    assert capped["num_test_samples"] == 200 and capped["label"] == "positive"


def test_results_tables_carry_the_baseline_row(summary):
    base = {"accuracy": 0.5, "macro_f1": 0.11, "micro_f1": 0.5, "label": "Background",
            "num_test_samples": 20}
    table = tables.results_table(summary, "acl_sup", baseline=base)
    last = table.shown().iloc[-1]
    assert last["model"] == tables.BASELINE_LABEL and last["macro-F1"] == "*0.110*"
    peft = tables.peft_table(summary, "roberta-base", baselines={"acl_sup": base})
    assert (peft.shown()["method"] == tables.BASELINE_LABEL).sum() == 1
    acl = next(d for d in facts.full_ft(summary, {"acl_sup": base}).datasets
               if d.dataset == "acl_sup")
    assert acl.floor == facts.Floor("Background", 0.11, 0.5, 20)


# ----------------------------------------------------------------------------- corrections
def _configs(summary, lr: dict[str, float]):
    import pandas as pd

    return pd.DataFrame([{"method": r["method"], "learning_rate": lr[r["method"]]}
                         for _, r in summary.iterrows()])


def test_corrections_state_the_learning_rates_the_runs_used(orig, summary):
    cpu = _configs(summary, {"full": 1e-4, "adapter": 3e-3, "lora": 1e-3})
    f = corrections.corrections(summary, cpu, orig)
    assert (f.adapter_lrs, f.lora_lrs) == (["3e-3"], ["1e-3"]) and f.departs_from_defaults
    default = _configs(summary, {"full": 2e-5, "adapter": 1e-4, "lora": 5e-4})
    assert not corrections.corrections(summary, default, orig).departs_from_defaults


def test_corrections_make_no_roberta_claim_without_roberta_runs(orig, summary):
    configs = _configs(summary, {"full": 2e-5, "adapter": 1e-4, "lora": 5e-4})
    assert corrections.corrections(summary, configs, orig).has_roberta_acl
    none = summary.assign(model="minilm")
    assert not corrections.corrections(none, configs, orig).has_roberta_acl


def test_corrections_use_the_baseline_against_the_incompatibility_story(orig, summary):
    configs = _configs(summary, {"full": 2e-5, "adapter": 1e-4, "lora": 5e-4})
    acl = {"accuracy": 71 / 139, "macro_f1": 0.1127, "num_test_samples": 139,
           "label": "Background"}
    f = corrections.corrections(summary, configs, orig, {"acl_sup": acl})
    assert f.acl_floor.n_test == 139 and f.original_adapter_acl == (0.5107, 0.1126)
    assert round(f.acl_floor.accuracy, 4) == 0.5108


# ----------------------------------------------------------------------------- memory labels
def test_memory_status_reads_corrected_or_raw_from_the_file(tmp_path):
    committed = ROOT / "benchmarks" / "results" / "memory_cuda.json"
    if committed.is_file():
        content = json.loads(committed.read_text())
        corrected = bool(content.get("correction")) or any(
            "measured_peak_raw_bytes" in r for r in content["rows"])
        assert memory.results_status(committed) == ("corrected" if corrected else "measured")
    raw = tmp_path / "raw.json"
    raw.write_text(json.dumps({"rows": [{"measured_peak_bytes": 2e9}]}))
    assert memory.results_status(raw) == "measured"
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps({"rows": [{"measured_peak_bytes": 2e9,
                                           "measured_peak_raw_bytes": 3e9}]}))
    assert memory.results_status(fixed) == "corrected"
    assert memory.results_status(tmp_path / "none.json") == "none"
    bench = gpu_memory.benchmark(fixed)
    assert bench.status == "corrected" and bench.gpu is None
    assert bench.rows == memory.load_results(fixed) == json.loads(fixed.read_text())["rows"]
    none = gpu_memory.benchmark(tmp_path / "none.json")
    assert none.found is False and none.rows == []


# ----------------------------------------------------------------------------- hygiene
def test_every_report_table_sets_column_widths(orig, summary):
    """Quarto turns these widths into Typst's ``columns: (x%, ...)``; auto widths overlapped."""
    configs = _configs(summary, {"full": 2e-5, "adapter": 1e-4, "lora": 5e-4})
    refs = published.reference_table(published.published(summary))
    built = [tables.results_table(summary, "acl_sup"), tables.peft_table(summary),
             tables.paired_comparison(summary), gpu_memory.memory_overview(summary),
             original.comparison(summary, orig), tables.hyperparameter_table(configs), refs]
    for table in built:
        html = table.html()
        widths = col_widths(html)
        shown = [c for c in table.shown().columns if c != table.group]
        assert len(widths) == len(shown), table.shown().columns
        assert math.isclose(sum(widths), 100, abs_tol=0.5)
        assert re.search(r"width:\s*100%", html)
        assert "font-family" not in html  # the page's / document's font, no web-font list
        # every body cell names its column, so a phone can stack a row (report/styles.css)
        body = html[html.index("<tbody"):html.index("</tbody>")]
        cells = re.findall(r"<td([^>]*)>", body)
        assert cells and all("data-label=" in c for c in cells), table.shown().columns
        spanned = {c: n for n, cols in (table.spanners or {}).items() for c in cols}
        assert set(re.findall(r'data-label="([^"]*)"', body)) <= {
            escape(f"{spanned[c]} {table.label(c)}" if c in spanned else table.label(c))
            for c in table.shown().columns}


def test_null_caps_read_all_in_the_hyperparameter_table(summary):
    import pandas as pd

    configs = pd.DataFrame([{"method": "full", "max_train_samples": None, "seed": 1,
                             "model": "roberta-base"}])
    shown = tables.hyperparameter_table(configs).shown().set_index("parameter")
    assert shown.loc["max_train_samples", "full"] == "all"


@pytest.mark.parametrize("loader, default", [
    (original.load_original, original.DEFAULT_ORIGINAL_CSV),
    (published.load_published, published.DEFAULT_CSV),
    (corrections.load_code, corrections.DEFAULT_CODE_CSV),
])
def test_the_reports_own_csv_inputs_fail_naming_the_file_and_its_columns(tmp_path, loader,
                                                                         default):
    with pytest.raises(load.AnalysisError, match=r"missing\.csv not found: it holds "):
        loader(tmp_path / "missing.csv")
    header = default.read_text().splitlines()[0].split(",")
    cut = tmp_path / "cut.csv"
    cut.write_text(",".join(header[1:]) + "\n" + ",".join("x" * (len(header) - 1)) + "\n")
    with pytest.raises(load.AnalysisError, match=rf"columns must be .*missing \['{header[0]}'\]"):
        loader(cut)

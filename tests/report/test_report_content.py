"""The report as a document, without Quarto: the original's numbers, the comparison with them,
majority-class baselines, the corrections list, the memory labels, and Markdown/Typst hygiene
(lists after a blank line, table widths)."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest

from helpers import memory
from helpers.report import (
    corrections,
    formats,
    gpu_memory,
    load,
    markdown,
    narrative,
    original,
    tables,
)
from helpers.run import baselines
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
    runs_dir = tmp_path_factory.mktemp("content") / "runs"
    cells = [(m, d, "full") for m in ("roberta-base", "allenai/scibert_scivocab_uncased")
             for d in ("restaurant_sup", "acl_sup")]
    cells += [("roberta-base", "acl_sup", meth) for meth in ("adapter", "lora")]
    synthetic.write_synthetic_runs(runs_dir, cells, seeds=(1, 2, 3))
    return load.run_summary(runs_dir)


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
    shown = table.display
    assert list(shown["original"].str.replace(f" {original.SWAP_MARK}", "").astype(float)) \
        == list(expected["value"])
    # ours = mean of the same model's runs; difference = ours - original
    row = d[(d["table"] == "Table 1") & (d["model"] == "roberta-base")
            & (d["dataset"] == "acl_sup") & (d["metric"] == "macro_f1")].iloc[0]
    runs = summary[(summary["model"] == "roberta-base") & (summary["dataset"] == "acl_sup")
                   & (summary["method"] == "full")]["macro_f1"]
    assert row["ours_mean"] == pytest.approx(runs.mean()) and row["n"] == 3
    assert row["difference"] == pytest.approx(runs.mean() - 0.5187)
    # cells the grid lacks say so (no agnews, no bert here)
    missing = shown[(shown["table"] == "Table 2: agnews_sup")]
    assert set(missing["ours"]) == {"not run"} and set(missing["n"]) == {0}
    assert "ours from" not in shown.columns  # no stand-in model: the column would repeat "run"


def test_table3_acl_values_are_flagged_as_sciberts(orig, summary):
    swaps = original.table3_swaps(orig).set_index("metric")
    assert swaps.loc["accuracy", "printed"] == 0.7884 and swaps.loc["macro_f1", "own"] == 0.5187
    assert set(swaps["source_model"]) == {"allenai/scibert_scivocab_uncased"}
    table = original.comparison(summary, orig)
    flagged = table.display[table.display["original"].str.endswith(original.SWAP_MARK)]
    assert set(flagged["table"]) == {"Table 3: acl_sup"}
    assert set(flagged["metric"]) == {"accuracy", "macro-F1"}
    assert "0.7338" in table.notes[-1] and "SciBERT" in table.notes[-1]


def test_cpu_like_grid_compares_with_a_stand_in_and_says_so(orig, summary):
    minilm = summary.assign(model="minilm")
    table = original.comparison(minilm, orig)
    assert original.uses_stand_ins(table)
    assert set(table.display["ours from"]) - {formats.MISSING} == {"MiniLM-L6"}
    assert "not a replication" in narrative.comparison_note(minilm, table)


def test_memory_claims_answer_70_gb_at_the_originals_settings(orig):
    fake = {"parameters": 124_647_939, "weights_bytes": 4 * 2**30,
            "optimizer_bytes": 8 * 2**30, "gradients_bytes": 4 * 2**30,
            "activations_bytes": 2 * 2**30, "predicted_peak_bytes": 16 * 2**30}
    table = original.memory_claims(orig, fake, fake)
    rows = table.display.set_index("component")
    assert rows.loc["total (peak)", "original (as printed)"] == "70 GB = 65.2 GiB"
    assert rows.loc["total (peak)", "ours, original's settings"] == "16.00 GiB"
    assert rows.loc["weights + AdamW states", "original (as printed)"].startswith("36 GB")
    assert all("GiB" in v for v in rows.iloc[1:]["ours, report's settings"])


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
    base = {"accuracy": 0.5, "macro_f1": 0.11, "micro_f1": 0.5, "label": "Background"}
    table = tables.results_table(summary, "acl_sup", baseline=base)
    last = table.display.iloc[-1]
    assert last["model"] == tables.BASELINE_LABEL and last["macro-F1"] == "*0.110*"
    peft = tables.peft_table(summary, "roberta-base", baselines={"acl_sup": base})
    assert (peft.display["method"] == tables.BASELINE_LABEL).sum() == 1
    assert "majority class (Background) scores 0.110" in narrative.facts_full_ft(
        summary, baselines={"acl_sup": base})


# ----------------------------------------------------------------------------- corrections
def _configs(summary, lr: dict[str, float]):
    rows = []
    for _, r in summary.iterrows():
        rows.append({"method": r["method"], "learning_rate": lr[r["method"]]})
    import pandas as pd

    return pd.DataFrame(rows)


def test_corrections_state_the_learning_rates_the_runs_used(orig, summary):
    cpu = _configs(summary, {"full": 1e-4, "adapter": 3e-3, "lora": 1e-3})
    text = corrections.corrections(summary, cpu, orig)
    assert "adapters 3e-3 and LoRA 1e-3" in text and "short training budget" in text
    default = _configs(summary, {"full": 2e-5, "adapter": 1e-4, "lora": 5e-4})
    assert "short training budget" not in corrections.corrections(summary, default, orig)


def test_corrections_make_no_roberta_claim_without_roberta_runs(orig, summary):
    configs = _configs(summary, {"full": 2e-5, "adapter": 1e-4, "lora": 5e-4})
    with_roberta = corrections.corrections(summary, configs, orig)
    assert "same roberta-base runs" in with_roberta
    none = summary.assign(model="minilm")
    text = corrections.corrections(none, configs, orig)
    assert "This build has no roberta-base runs" in text
    assert "same roberta-base runs" not in text
    for needle in ("SciBERT best on restaurant_sup", "after three epochs", "weights twice",
                   "13.17 GB"):
        assert needle in text


def test_corrections_use_the_baseline_against_the_incompatibility_story(orig, summary):
    configs = _configs(summary, {"full": 2e-5, "adapter": 1e-4, "lora": 5e-4})
    acl = {"accuracy": 71 / 139, "macro_f1": 0.1127, "num_test_samples": 139}
    text = corrections.corrections(summary, configs, orig, {"acl_sup": acl})
    assert "0.5107" in text and "0.5108" in text and "incompatibility" in text


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
    import pandas as pd

    note = gpu_memory.memory_settings_note(pd.DataFrame(), "corrected")
    assert "corrected, not raw measurements" in note


# ----------------------------------------------------------------------------- hygiene
def test_generated_markdown_has_blank_lines_before_lists(orig, summary):
    configs = _configs(summary, {"full": 2e-5, "adapter": 1e-4, "lora": 5e-4})
    base = {d: {"accuracy": 0.5, "macro_f1": 0.2, "micro_f1": 0.5, "label": "x",
                "val_macro_f1": 0.2, "num_validation_samples": 10, "num_test_samples": 10,
                "validation_counts": (("a", 5), ("b", 5)), "test_counts": (("a", 6), ("b", 4))}
            for d in ("restaurant_sup", "acl_sup")}
    texts = [narrative.findings(summary, base), narrative.facts_full_ft(summary, baselines=base),
             narrative.facts_peft(summary, baselines=base),
             narrative.validation_test_gap(summary, base),
             corrections.corrections(summary, configs, orig),
             narrative.model_sources(summary),
             markdown.paragraphs("A paragraph.", markdown.bullet_list(["one", "two"]))]
    for text in texts:
        assert re.search(r"^(?:- |\d+\. )", text, re.M), text
        assert markdown.items_without_blank_line(text) == [], text
    assert markdown.items_without_blank_line("Para\n- item") == ["- item"]


def test_generated_markdown_renders_lists_as_lists(orig, summary):
    import mistune

    configs = _configs(summary, {"full": 2e-5, "adapter": 1e-4, "lora": 5e-4})
    text = corrections.corrections(summary, configs, orig)
    html = mistune.html(text)
    assert html.count("<li>") == len(re.findall(r"^\d+\. ", text, re.M)) >= 8
    assert " - " not in re.sub(r"<[^>]+>", "", html).replace("PEFT − full", "")


def test_every_report_table_sets_column_widths(orig, summary):
    """Quarto turns these widths into Typst's ``columns: (x%, ...)``; auto widths overlapped."""
    configs = _configs(summary, {"full": 2e-5, "adapter": 1e-4, "lora": 5e-4})
    built = [tables.results_table(summary, "acl_sup"), tables.peft_table(summary),
             tables.paired_comparison(summary), gpu_memory.memory_overview(summary),
             original.comparison(summary, orig), tables.hyperparameter_table(configs)]
    for table in built:
        html = table.html()
        widths = col_widths(html)
        shown = [c for c in table.display.columns if c != table.group]
        assert len(widths) == len(shown), table.display.columns
        assert math.isclose(sum(widths), 100, abs_tol=0.5)
        assert re.search(r"width:\s*100%", html)
        assert "font-family" not in html  # the page's / document's font, no web-font list

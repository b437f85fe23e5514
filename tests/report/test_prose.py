"""The report's sentences: facts checked by value, every template rendered for an empty grid,
a CPU-like grid and the full grid, and the writing rules the templates must keep (lists that
render as lists, no "(s)" plurals, no sentence pattern more than twice in a section, bold
and "best" only where the ranking rule allows them). Wording itself is not tested."""

from __future__ import annotations

import re
from collections import Counter

import nbformat
import pandas as pd
import pytest
from scipy import stats as sps

from conftest import lists_render_as_lists
from helpers.report import (
    answers,
    corrections,
    error_cost,
    examples,
    experiment_setup,
    facts,
    formats,
    gpu_memory,
    load,
    narrative,
    original,
    prose,
    published,
    stats,
    sweep,
    tables,
)
from helpers.run.catalog import MODELS
from helpers.run.store import RunStore
from helpers.settings import PROJECT_ROOT
from helpers.testing import synthetic

ROBERTA, BERT, SCIBERT = "roberta-base", "bert-base-uncased", "allenai/scibert_scivocab_uncased"
DATASETS = ("restaurant_sup", "acl_sup", "agnews_sup")
LABELS = {"restaurant_sup": ("positive", "neutral", "negative"),
          "acl_sup": ("Background", "Uses", "CompareOrContrast", "Motivation", "Extends",
                      "Future"),
          "agnews_sup": ("World", "Sports", "Business", "Sci/Tech")}


def fake_baselines() -> dict[str, dict]:
    """Majority-class baselines as helpers.run.baselines writes them (no data needed)."""
    out = {}
    for d, names in LABELS.items():
        counts = tuple((n, 10 if i == 0 else 4) for i, n in enumerate(names))
        share = 10 / sum(c for _, c in counts)
        out[d] = {"label": names[0], "accuracy": share, "micro_f1": share,
                  "macro_f1": 2 * share / (1 + share) / len(names), "val_macro_f1": 0.1,
                  "num_test_samples": 20, "num_validation_samples": 20,
                  "num_train_samples": 48, "validation_counts": counts, "test_counts": counts}
    return out


def full_cells() -> list[tuple[str, str, str]]:
    cells = [(m, d, "full") for m in (ROBERTA, BERT, SCIBERT) for d in DATASETS]
    return cells + [(ROBERTA, d, m) for d in DATASETS for m in ("adapter", "lora")]


def cpu_cells() -> list[tuple[str, str, str]]:
    return [("minilm", d, m) for d in DATASETS for m in ("full", "adapter", "lora")]


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, dict]:
    """Three runs folders, as loaded by the analysis notebook: empty, CPU-like, full."""
    root = tmp_path_factory.mktemp("prose")
    synthetic.write_synthetic_runs(RunStore(root / "cpu"), cpu_cells(), seeds=(1, 2))
    synthetic.write_synthetic_runs(RunStore(root / "full"), full_cells(), seeds=(1, 2, 3, 4, 5))
    (root / "empty").mkdir()
    out = {}
    for name in ("empty", "cpu", "full"):
        store = RunStore(root / name)
        out[name] = {"summary": load.run_summary(store), "history": load.load_runs(store),
                     "configs": load.load_configs(store), "store": store}
    return out


@pytest.fixture(scope="module")
def orig():
    return original.load_original()


@pytest.fixture(scope="module")
def memory_facts(orig):
    """Memory facts from the committed GPU benchmark (activations from the file: no torch)."""
    path = gpu_memory.DEFAULT_RESULTS
    mem = gpu_memory.accounting_frame(results=path)
    peaks = gpu_memory.settings_peaks(path)
    return gpu_memory.memory_facts(orig, peaks, mem, gpu_memory.benchmark(path), pd.DataFrame())


def contexts(build: dict, orig, memory, base: dict | None = None) -> dict[str, tuple]:
    """Each template's facts (and keyword context) as the analysis notebook builds them
    (``base``: the majority-class baselines, :func:`fake_baselines` unless given)."""
    s, h, configs = build["summary"], build["history"], build["configs"]
    base = fake_baselines() if base is None else base
    model = load.peft_model(s)
    ex = examples.Examples.load(build["store"], s)
    full_ft = facts.full_ft(s, base, examples=ex)
    peft = facts.peft(s, model, base, examples=ex)
    per_class = examples.per_class_f1(ex.frame, examples.label_names(build["store"], s))
    first = next(iter(load.order_models(s.loc[s["method"] == "full", "model"])), None)
    banner = narrative.banner_facts(s, "params/full.yaml", build["store"])
    cost = error_cost.cost_facts(h, s, configs, s.iloc[0:0], pd.DataFrame(), build["store"])
    answered = {"full": full_ft, "peft": peft, "mem": memory, "banner": banner,
                "claims": answers.claims(s, h, base, model), "cost": cost}
    have = s[s["method"] == "full"]
    curve = (have["model"].iloc[0], have["dataset"].iloc[0]) if len(have) else (None, None)
    return {
        "banner": (banner, {}),
        "summary": (None, answered),
        "curves": (narrative.curves(h, *curve), {}),
        "task2": (full_ft, {}),
        "task2_tables": (tables.results_tables(s, s["dataset"], baselines=base), {}),
        "splits": (narrative.split_gaps(s, base), {}),
        "task3": (peft, {}),
        "published": (published.published(s, baselines_full=base),
                      {"paper_scale": banner.paper_scale}),
        "comparison": (narrative.comparison(s, original.comparison(s, orig)), {}),
        "memory_intro": (memory, {}),
        "memory_explanation": (memory, {}),
        "memory_original": (memory, {}),
        "corrections": (corrections.corrections(s, configs, orig, base), {"mem": memory}),
        "error_cost": (cost, {}),
        "setup": (experiment_setup.setup_facts(s, configs, base, {"learning_rate": "2e-5"},
                                               build["store"]), {}),
        "conclusion": (None, answered),
        "models": (narrative.model_sources(s), {}),
        "per_class": (examples.class_losses(per_class, first), {}),
        "trains": (examples.what_trains(s, configs, model), {}),
        "selection": (sweep.sweep_facts("params/cpu.yaml", build["store"]), {}),
    }


# ----------------------------------------------------------------------------- writing rules
_NAMES = sorted({*DATASETS, *(m.label for m in MODELS.values()), *(n for v in LABELS.values()
                                                                   for n in v)},
                key=len, reverse=True)


def sentences(markdown: str) -> list[str]:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown)  # links: their text
    text = re.sub(r"[*`]", "", text)
    text = re.sub(r"^\s*(?:[-+]|\d+\.)\s+", "", text, flags=re.M)
    text = re.sub(r"\s+", " ", text)
    return [p.strip() for p in re.split(r"(?<=[.:;])\s+(?=[A-Z(@])", text) if p.strip()]


def skeleton(sentence: str) -> str:
    """A sentence with its numbers and names blanked: what stays is its pattern."""
    for name in _NAMES:
        sentence = sentence.replace(name, "N")
    return re.sub(r"[−+]?\d[\d,.]*%?", "#", sentence).lower()


def repeated_patterns(markdown: str, limit: int = 2) -> dict[str, int]:
    counts = Counter(skeleton(s) for s in sentences(markdown) if len(s.split()) > 3)
    return {k: v for k, v in counts.items() if v > limit}


def list_items_render_as_lists(markdown: str) -> bool:
    return lists_render_as_lists(markdown)


@pytest.mark.parametrize("build_name", ["empty", "cpu", "full"])
def test_every_template_renders_for_every_build(builds, orig, memory_facts, build_name):
    ctx = contexts(builds[build_name], orig, memory_facts)
    assert set(ctx) == set(prose.template_names()), "a template without a test context"
    for name, (f, extra) in ctx.items():
        text = prose.render(name, f, **extra)
        assert text.strip(), name
        assert list_items_render_as_lists(text), (name, text)
        assert "(s)" not in text and " null" not in text, (name, text)
        assert not re.search(r"\w\.[A-Z]", re.sub(r"`[^`]*`|\]\([^)]*\)|\d\.\d", "", text)), \
            (name, "a sentence glued to the next")
        assert not repeated_patterns(text), (name, repeated_patterns(text))


def test_pattern_check_catches_a_repeated_sentence():
    text = " ".join(f"On {d} the floor is 0.{i}1 for {n[0]}." for i, (d, n) in
                    enumerate(LABELS.items()))
    assert repeated_patterns(text) == {"on n the floor is # for n.": 3}
    assert not list_items_render_as_lists("Some text\n- an item glued to it")


def test_cpu_build_words_its_single_model_and_untestable_claims(builds, orig, memory_facts):
    ctx = contexts(builds["cpu"], orig, memory_facts)
    claims = ctx["conclusion"][1]["claims"]
    assert not claims.roberta_bert.testable and claims.roberta_bert.missing == [
        "RoBERTa-base", "BERT-base"]
    assert not claims.scibert.testable and not claims.scibert.ran
    assert not claims.train_loss.testable
    full = ctx["task2"][0]
    # two seeds: the bootstrap interval exists, over the test examples only
    assert all(d.single for d in full.datasets) and full.can_interval and full.test_noise_only
    assert "**" not in tables.results_table(builds["cpu"]["summary"], "acl_sup").html() \
        .replace("<strong>", "")  # nothing bold with two seeds


def test_single_model_floor_sentences_say_where_it_beats_the_floor(builds, orig, memory_facts):
    def texts(build, base=None):
        ctx = contexts(build, orig, memory_facts, base)
        return " ".join(prose.render(n, ctx[n][0], **ctx[n][1]).replace("\n", " ")
                        for n in ("summary", "conclusion"))

    r = facts.full_ft(builds["cpu"]["summary"], fake_baselines()).reading
    assert (r.multi, r.beats, r.short, r.beats_every) == ([], list(DATASETS), [], True)
    every = texts(builds["cpu"])
    assert "beats the majority-class floor on every dataset" in every
    assert "It clears the majority-class floor on restaurant_sup (" in every
    assert "at or below" not in every
    s = builds["cpu"]["summary"].copy()
    s.loc[(s["dataset"] == "acl_sup") & (s["method"] == "full"), "macro_f1"] = 0.01
    r = facts.full_ft(s, fake_baselines()).reading
    assert (r.beats, r.short, r.beats_every) == (["restaurant_sup", "agnews_sup"], ["acl_sup"],
                                                 False)
    short = texts({**builds["cpu"], "summary": s})
    assert "every dataset" not in short
    assert "beats the majority-class floor on restaurant_sup and agnews_sup but not on " \
        "acl_sup;" in short
    assert "It stays at or below that floor on acl_sup (0.010 against" in short
    s.loc[s["method"] == "full", "macro_f1"] = 0.01
    ctx = contexts({**builds["cpu"], "summary": s}, orig, memory_facts)
    brief = prose.render("summary", None, **ctx["summary"][1])
    assert "stays at or below the majority-class floor on restaurant_sup, acl_sup and " \
        "agnews_sup;" in brief and "beats" not in brief
    end = prose.render("conclusion", None, **ctx["conclusion"][1])
    assert "encoder is best.\nIt stays at or below the majority-class floor on" in end
    none = texts(builds["cpu"], base={})
    assert "floor" not in none.split("In brief.")[1].split(";")[0]
    assert "without majority-class baselines" in none and "no majority-class baseline" in none


# ----------------------------------------------------------------------------- facts by value
def _runs(summary: pd.DataFrame, model: str, dataset: str, method: str = "full") -> pd.DataFrame:
    return summary[(summary["model"] == model) & (summary["dataset"] == dataset)
                   & (summary["method"] == method)].set_index("seed")


def test_full_ft_facts_rank_by_mean_and_pair_by_seed(builds):
    s = builds["full"]["summary"]
    f = facts.full_ft(s, fake_baselines())
    assert [d.dataset for d in f.datasets] == list(DATASETS) and f.can_interval
    acl = f.datasets[1]
    means = {m: _runs(s, m, "acl_sup")["macro_f1"].mean() for m in (ROBERTA, BERT, SCIBERT)}
    assert [r.key for r in acl.rows] == sorted(means, key=means.get, reverse=True)
    lead, other = acl.rows[0].key, acl.versus[0].other.key
    diffs = (_runs(s, lead, "acl_sup")["macro_f1"] - _runs(s, other, "acl_sup")["macro_f1"])
    p = acl.versus[0].paired
    assert p.n == 5 and p.mean == pytest.approx(diffs.mean())
    low, high = sps.t.interval(0.95, 4, loc=diffs.mean(), scale=sps.sem(diffs))
    assert (p.low, p.high) == pytest.approx((low, high))
    assert acl.supported == all(v.paired.low > 0 for v in acl.versus)
    assert acl.floor.label == "Background"


def test_a_clear_lead_is_supported_and_bold_and_nothing_else_is(builds):
    s = builds["full"]["summary"].copy()
    boost = (s["model"] == SCIBERT) & (s["dataset"] == "acl_sup")
    s.loc[boost, "macro_f1"] = s.loc[boost, "macro_f1"] + 0.5  # SciBERT far ahead on acl_sup
    f = facts.full_ft(s)
    acl = f.datasets[1]
    assert acl.leader.key == SCIBERT and acl.supported
    assert all(v.paired.excludes_zero and v.paired.wins == 5 for v in acl.versus)
    shown = tables.results_table(s, "acl_sup").shown().set_index("model")
    assert shown.loc["SciBERT", "macro-F1"].startswith("**")
    bold = [(m, c) for m in shown.index for c in shown.columns
            if str(shown.loc[m, c]).startswith("**")]
    # only where the rule holds: macro-F1 for sure; accuracy only if its own intervals allow
    for model, column in bold:
        metric = {"accuracy": "accuracy", "macro-F1": "macro_f1", "micro-F1": "micro_f1"}[column]
        assert model == "SciBERT" and stats.rank(s[(s["method"] == "full") & (
            s["dataset"] == "acl_sup")], "model", metric).supported
    assert "train loss" not in {c for _, c in bold}


def test_no_bold_where_the_rule_does_not_support_a_lead(builds):
    for name in ("cpu", "full"):
        s = builds[name]["summary"]
        for dataset in DATASETS:
            runs = s[(s["method"] == "full") & (s["dataset"] == dataset)]
            table = tables.results_table(s, dataset)
            for metric, column in (("accuracy", "accuracy"), ("macro_f1", "macro-F1")):
                bold = {m for m, c in zip(table.shown()["model"], table.shown()[column],
                                          strict=True) if str(c).startswith("**")}
                r = stats.rank(runs, "model", metric)
                assert bold == ({load.display_model(r.leader)} if r.supported else set())
        peft = tables.peft_table(s)
        for _, row in peft.shown().iterrows():
            assert not str(row["train loss"]).startswith("**")
    two = builds["full"]["summary"]
    two = two[two["seed"] <= 2].copy()
    two.loc[two["model"] == SCIBERT, "macro_f1"] += 0.5  # huge lead, but n = 2: no ranking
    assert "**" not in "".join(tables.results_table(two, "acl_sup").shown()["macro-F1"])
    assert not facts.full_ft(two).datasets[1].supported


def test_peft_facts_are_paired_differences(builds):
    s = builds["full"]["summary"]
    p = facts.peft(s)
    assert p.model == ROBERTA and p.intervals == 12 and p.can_interval
    row = next(r for d in p.datasets if d.dataset == "agnews_sup" for r in d.rows
               if r.method == "lora")
    diffs = _runs(s, ROBERTA, "agnews_sup", "lora")["macro_f1"] \
        - _runs(s, ROBERTA, "agnews_sup")["macro_f1"]
    assert row.vs_full.mean == pytest.approx(diffs.mean()) and row.vs_full.n == 5
    assert row.share == pytest.approx(synthetic.PARAMETERS["lora"][1]
                                      / synthetic.PARAMETERS["lora"][0])
    lo = min(r.vs_full.mean for d in p.datasets for r in d.rows if r.method == "lora")
    assert next(m for m in p.by_method if m.method == "lora").low == pytest.approx(lo)


def test_claims_facts(builds):
    s, h = builds["full"]["summary"], builds["full"]["history"]
    c = answers.claims(s, h, fake_baselines(), ROBERTA)
    counts = Counter(int(e) for e in s["best_epoch"])
    assert c.epochs.runs == 75 and c.epochs.epochs == 3
    assert c.epochs.best_counts == [(e, counts.get(e, 0)) for e in (1, 2, 3)]
    assert c.epochs.mostly_last == (2 * counts.get(3, 0) > 75)
    rb = c.roberta_bert
    assert rb.testable and [d.dataset for d in rb.datasets] == list(DATASETS)
    diffs = _runs(s, ROBERTA, "restaurant_sup")["macro_f1"] \
        - _runs(s, BERT, "restaurant_sup")["macro_f1"]
    assert rb.datasets[0].macro_f1.mean == pytest.approx(diffs.mean())
    assert rb.datasets[0].macro_f1.wins == int((diffs > 0).sum())
    tl = c.train_loss.datasets[0]
    runs = s[(s["method"] == "full") & (s["dataset"] == "restaurant_sup")]
    assert tl.rho == pytest.approx(sps.spearmanr(runs["train_loss"], runs["macro_f1"]).statistic)
    assert tl.runs == 15
    sci = {d.dataset: d for d in c.scibert.datasets}
    means = runs.groupby("model")["macro_f1"].mean().sort_values(ascending=False)
    assert sci["restaurant_sup"].place == list(means.index).index(SCIBERT) + 1
    assert c.adapters.runs == 5 and c.adapters.at_floor == 0


def test_adapters_at_the_floor_are_counted(builds):
    s = builds["full"]["summary"].copy()
    base = fake_baselines()
    acl = (s["model"] == ROBERTA) & (s["dataset"] == "acl_sup") & (s["method"] == "adapter")
    s.loc[acl, "accuracy"] = base["acl_sup"]["accuracy"]
    s.loc[acl, "macro_f1"] = base["acl_sup"]["macro_f1"]
    ad = answers.adapters_on(s, ROBERTA, base)
    assert ad.at_floor == 5 and not ad.some_learned and not ad.stand_in
    learned = answers.adapters_on(builds["full"]["summary"], ROBERTA, base)
    assert learned.some_learned and answers.adapters_on(
        builds["cpu"]["summary"], "minilm", base).stand_in
    p = facts.peft(s, ROBERTA, base)
    adapter = next(r for d in p.datasets if d.dataset == "acl_sup" for r in d.rows
                   if r.method == "adapter")
    assert adapter.at_floor == 5


def test_corrections_cite_the_originals_code(builds, orig):
    code = corrections.load_code()
    assert {"selection_on_test", "literal_sep", "six_labels", "adapter_lr"} <= set(code)
    first = code["selection_on_test"][0]
    assert first.where == "train.py:129" and first.excerpt == 'eval_dataset=dataset["test"]'
    assert first.url == ("https://github.com/nameistzzhang/2024Autumn-NLP-Assignment2/blob/"
                         "8cf678fe266c0b8a59ecdd5b754b5198c2e46169/train.py#L129")
    s = builds["full"]["summary"]
    f = corrections.corrections(s, builds["full"]["configs"], orig, fake_baselines())
    assert f.original_adapter_acl == (0.5107, 0.1126) and f.has_roberta_acl
    assert f.swap.printed == (0.7884, 0.6986) and f.swap.own == (0.7338, 0.5187)
    assert f.claims.parts == (12, 36, 12, 10) and f.restaurant_best == "RoBERTa-base"
    assert f.adapter_lrs == ["1e-4"] and not f.departs_from_defaults
    assert f.last_item == 10 and f.short_commit == "8cf678f"  # the swap and restaurant items
    assert f.cited("literal_sep", 2) == code["literal_sep"][:2]


def test_published_references_beside_ours(builds):
    refs = published.load_published()
    assert all(r.paper and r.table and r.checked for r in refs)
    # the like-for-like restaurant rows (Zhang et al. 2022, Table 2); no post-trained BERT-PT
    # labelled bert-base, and no unverified BERT-base 63.91 on acl_sup
    rest = {(r.method, r.metric): r.value for r in refs if r.dataset == "restaurant_sup"}
    assert rest == {("full", "accuracy"): 0.8240, ("full", "macro_f1"): 0.7317,
                    ("full, BERT-SPC: sentence pair", "accuracy"): 0.8446,
                    ("full, BERT-SPC: sentence pair", "macro_f1"): 0.7698}
    assert not [r for r in refs if r.comparable == "upper" or r.value == 0.6391]
    s = builds["full"]["summary"]
    f = published.published(s, refs, fake_baselines())
    rows = {(b.ref.dataset, b.ref.model, b.ref.metric): b for b in f.rows}
    sci = rows[("acl_sup", SCIBERT, "macro_f1")]
    assert sci.ref.value == 0.7098 and sci.ref.table == "Table 1"
    assert sci.ours.n == 5 and sci.ours.mean == pytest.approx(
        _runs(s, SCIBERT, "acl_sup")["macro_f1"].mean())
    assert sci.difference == pytest.approx(sci.ours.mean - 0.7098)
    assert f.agnews is not None and f.agnews.comparable == "no"
    assert {r.method for r in f.glue} == {"full", "adapter", "lora"}
    table = published.reference_table(f)
    assert len(table.shown()) == len(f.rows) and "Gururangan" in table.notes[0]
    assert "BERT-base (BERT-SPC: sentence pair)" in set(table.shown()["model"])
    assert [r.value for r in f.like_for_like] == [0.7317, 0.7698]
    cpu = published.published(builds["cpu"]["summary"], refs)
    assert not cpu.compared and set(published.reference_table(cpu).shown()["ours"]) == {
        "not run"}


def test_memory_facts_name_the_benchmark_and_answer_70_gb(memory_facts):
    b = memory_facts.bench
    assert (b.gpu, b.torch, b.date, b.status) == ("NVIDIA H200", "2.11.0", "2026-11-27",
                                                   "measured")
    full, adapter = memory_facts.original_full, memory_facts.original_adapter
    assert 3.9 < full.measured < 4.0 and 3.8 < full.predicted < 4.0
    assert 2.3 < adapter.measured < 2.5 and memory_facts.claims.adapter_gb == 13.17
    assert memory_facts.full_ratio == pytest.approx(70e9 / 2**30 / full.measured)
    assert memory_facts.parameters == 124_647_939
    assert memory_facts.models[0].complete
    assert memory_facts.complete_models == [m for m in memory_facts.models
                                            if {"full", "adapter", "lora"} <= set(m.by_method)]
    assert memory_facts.other_complete == memory_facts.complete_models[1:]
    a = memory_facts.complete_models[0]
    assert a.peak_saving("adapter") == pytest.approx(
        1 - a.by_method["adapter"]["predicted peak"] / a.by_method["full"]["predicted peak"])
    assert 0 < a.peak_saving("lora") < 1 and memory_facts.claims.billions == pytest.approx(
        memory_facts.claims.parameters / 1e9)


def test_split_gaps_and_curves_are_means_of_the_runs(builds):
    s, h = builds["full"]["summary"], builds["full"]["history"]
    gaps = narrative.split_gaps(s, fake_baselines())
    acl = next(g for g in gaps if g.dataset == "acl_sup")
    d = s[s["dataset"] == "acl_sup"]
    assert acl.gap == pytest.approx(d["val_macro_f1"].mean() - d["macro_f1"].mean())
    c = narrative.curves(h, ROBERTA, "acl_sup")
    runs = h[(h["model"] == ROBERTA) & (h["dataset"] == "acl_sup") & (h["method"] == "full")
             & (h["split"] == "validation") & (h["metric"] == "macro_f1")]
    assert c.seeds == 5 and c.validation == pytest.approx(
        tuple(runs.groupby("epoch")["value"].mean()))
    assert c.best_epoch == 1 + max(range(3), key=lambda i: c.validation[i])


def test_setup_facts_by_value(builds):
    s, configs = builds["cpu"]["summary"], builds["cpu"]["configs"]
    f = experiment_setup.setup_facts(s, configs, fake_baselines(), {"learning_rate": "2e-5"},
                                     builds["cpu"]["store"])
    rest, acl, agnews = f.datasets
    assert (rest.dataset, rest.train, rest.test, rest.validation) == ("restaurant_sup", "48",
                                                                       "20", "20")
    assert rest.pair and not acl.pair and (rest.classes, acl.classes, agnews.classes) == (3, 6, 4)
    assert rest.validation_from == "the dataset's own dev.json"
    assert agnews.validation_from.startswith("re-split from test.csv")
    assert rest.majority == "positive" and rest.majority_share == pytest.approx(10 / 18)
    settings = {d.setting: d for d in f.deviations}
    assert settings["models"].ours == "MiniLM-L6"
    assert settings["examples"].ours.startswith("at most 48 training")
    assert "precision" not in settings  # the synthetic runs are fp32, as the original
    assert f.runs == len(s) and f.hours == pytest.approx(10.0 * len(s) / 3600)
    assert f.devices == ["cpu (x86_64)"] and f.packages == []


# ----------------------------------------------------------------------------- captions
def test_floor_captions_and_notes_only_where_the_build_has_a_floor(builds, orig, memory_facts):
    s = builds["cpu"]["summary"]
    with_floor = tables.results_tables(s, s["dataset"], baselines=fake_baselines())
    assert all(t.has_floor for t in with_floor) and all(t.like_first for t in with_floor)
    captions = prose.render("task2_tables", with_floor)
    assert captions.count("last row: the majority-class floor") == 1
    without = tables.results_tables(s, s["dataset"], baselines={})
    assert not any(t.has_floor for t in without)
    assert "majority-class floor" not in prose.render("task2_tables", without)
    # one dataset without a baseline: its caption is its own, not "as in the table above"
    part = {d: b for d, b in fake_baselines().items() if d != "acl_sup"}
    mixed = tables.results_tables(s, s["dataset"], baselines=part)
    assert [t.like_first for t in mixed[1:]] == [False, True]
    text = prose.render("task2_tables", mixed)
    assert "on acl_sup (ACL-ARC citation intents): train loss" in text.replace("\n", " ")
    assert tables.peft_table(s, baselines=fake_baselines()).notes == [
        tables.FLOOR_NOTE.format(rows="Last row of each dataset")]
    assert tables.peft_table(s, baselines={}).notes == []


def test_the_reports_settings_are_named_where_the_text_uses_them(builds, orig, memory_facts):
    st = memory_facts.settings
    assert (st.model, st.batch, st.seq, st.precision) == (
        gpu_memory.REPORT_MEMORY_MODEL, *(gpu_memory.REPORT_SETTINGS[k]
                                          for k in ("batch", "seq", "precision")))
    ctx = contexts(builds["cpu"], orig, memory_facts)
    named = f"batch {st.batch}, sequence {st.seq}, {st.precision_label}"
    for name in ("memory_intro", "conclusion"):
        text = prose.render(name, ctx[name][0], **ctx[name][1]).replace("\n", " ")
        at = text.index("at the report's settings (")
        assert named in text[at:at + 120], (name, text[at:at + 120])
    assert f"({st.model}, {named})" in prose.render("conclusion", None, **ctx["conclusion"][1]) \
        .replace("\n", " ")
    # the fixed captions of the analysis notebook say the same settings
    cells = nbformat.read(PROJECT_ROOT / "notebooks" / "analysis.ipynb", 4).cells
    caps = [line for c in cells for line in c.source.splitlines()
            if line.startswith("#| tbl-cap:") and "at the report's" in line]
    assert len(caps) == 2
    for cap in caps:
        for part in (f"batch {st.batch}", f"sequence {st.seq}", st.precision_label):
            assert part in cap, (part, cap)
    assert st.model in caps[1]


def test_corrections_write_table_3s_with_its_apostrophe(builds, orig, memory_facts):
    ctx = contexts(builds["full"], orig, memory_facts)
    text = prose.render("corrections", ctx["corrections"][0], **ctx["corrections"][1])
    assert "Table 3's acl_sup" in text and "Table 3s" not in text


# ----------------------------------------------------------------------------- discussions
def test_task2_reading_by_value(builds):
    s = builds["full"]["summary"]
    f = facts.full_ft(s, fake_baselines())
    r = f.reading
    full = s[s["method"] == "full"]
    means = full.groupby(["dataset", "model"])["macro_f1"].mean()
    stds = full.groupby(["dataset", "model"])["macro_f1"].std()
    assert [d.dataset for d in r.multi] == list(DATASETS)
    assert r.gaps == pytest.approx(tuple(
        means[d].nlargest(2).iloc[0] - means[d].nlargest(2).iloc[1] for d in DATASETS))
    widths = [(v.paired.high - v.paired.low) / 2 for d in f.datasets for v in d.versus]
    assert r.half_width == pytest.approx(pd.Series(widths).median())
    assert r.hardest.dataset == means.groupby("dataset").max().idxmin()
    assert r.hardest.floor.classes == len(LABELS[r.hardest.dataset])
    floor = {d: b["macro_f1"] for d, b in fake_baselines().items()}
    margins = {d: means[d].min() - floor[d] for d in DATASETS}
    assert r.all_clear_floor and r.closest_to_floor.dataset == min(margins, key=margins.get)
    assert r.closest_to_floor.margin == pytest.approx(min(margins.values()))
    assert r.noisiest[0] == stds.idxmax()[0] and r.noisiest[1].std == pytest.approx(stds.max())
    assert r.seeds_outweigh_models == (stds.max() > max(r.gaps))
    text = prose.render("task2", f)
    assert "No encoder is separated" in text and text.count("±") <= 2  # not table by table
    boosted = s.copy()
    lead = (boosted["model"] == SCIBERT) & (boosted["dataset"] == "acl_sup")
    boosted.loc[lead, "macro_f1"] += 0.5
    b = facts.full_ft(boosted, fake_baselines())
    assert [d.dataset for d in b.reading.open] == ["restaurant_sup", "agnews_sup"]
    text = prose.render("task2", b).replace("\n", " ")
    assert "By the report's rule SciBERT is best on acl_sup (+" in text
    assert "on restaurant_sup and agnews_sup no encoder is separated" in text
    low = s.copy()
    low.loc[(low["model"] == BERT) & (low["dataset"] == "agnews_sup"), "macro_f1"] = 0.01
    short = facts.full_ft(low, fake_baselines())
    assert not short.reading.all_clear_floor and "On agnews_sup a mean does not clear" in \
        prose.render("task2", short).replace("\n", " ")


def test_task3_reading_by_value(builds):
    s = builds["cpu"]["summary"]
    ex = examples.Examples.load(builds["cpu"]["store"], s)
    p = facts.peft(s, "minilm", fake_baselines(), examples=ex)
    r = p.reading
    rows = [(d.dataset, row) for d in p.datasets for row in d.rows]
    lows = {(d, row.method): row.vs_full.low for d, row in rows}
    assert r.all_within == all(row.vs_full.low <= 0 <= row.vs_full.high for _, row in rows)
    assert (r.worst[0], r.worst[1].method) == min(lows, key=lows.get)
    assert r.worst_loss == pytest.approx(max(0.0, -min(lows.values())))
    assert r.max_share == pytest.approx(max(row.share for _, row in rows))
    shares = {m: pd.Series([row.share for _, row in rows if row.method == m]).median()
              for m in ("adapter", "lora")}
    assert r.min_share == pytest.approx(min(shares.values()))
    assert (r.low, r.high) == (min(row.vs_full.mean for _, row in rows),
                               max(row.vs_full.mean for _, row in rows))
    assert [x.method for x in r.differing_methods] == [
        m for m in ("adapter", "lora")
        if any(row.vs_full.excludes_zero for _, row in rows if row.method == m)]
    assert r.several_intervals == (p.intervals > 1)
    assert r.floor_runs == []
    text = prose.render("task3", p).replace("\n", " ")
    assert f"allow a loss of up to {formats.fmt(r.worst_loss)}" in text
    assert text.count("±") == 0  # the differences are in @tbl-paired, not restated
    base = fake_baselines()
    at = s.copy()
    acl = (at["dataset"] == "acl_sup") & (at["method"] == "adapter")
    at.loc[acl, "accuracy"] = base["acl_sup"]["accuracy"]
    at.loc[acl, "macro_f1"] = base["acl_sup"]["macro_f1"]
    floored = facts.peft(at, "minilm", base)
    assert [(d, row.method, row.at_floor) for d, row in floored.reading.floor_runs] == [
        ("acl_sup", "adapter", 2)]
    assert "Two Houlsby adapters runs of two on acl_sup predicted the majority class" in \
        prose.render("task3", floored).replace("\n", " ")


def test_the_two_seed_caveat_is_said_once(builds, orig, memory_facts):
    caveat = re.compile(r"(?:two|2) seeds[^.]*(?:interval|resampl|averaged|tested|ranking)",
                        re.I)

    def said(ctx):
        text = " ".join(prose.render(n, f, **extra) for n, (f, extra) in ctx.items()
                        if n != "task2_tables").replace("\n", " ")
        return caveat.findall(text)

    # bootstrap intervals, two seeds: index.qmd's reading guide is the one place
    assert said(contexts(builds["cpu"], orig, memory_facts)) == []
    qmd = (PROJECT_ROOT / "report" / "index.qmd").read_text().replace("\n", " ")
    assert len(caveat.findall(qmd)) == 1
    # no predictions (no bootstrap), two seeds: Task 2's discussion says it, nothing else
    ctx = contexts(builds["cpu"], orig, memory_facts)
    s = builds["cpu"]["summary"]
    plain_full, plain_peft = facts.full_ft(s, fake_baselines()), facts.peft(s, None,
                                                                            fake_baselines())
    assert not plain_full.can_interval and not plain_peft.can_interval
    ctx["task2"], ctx["task3"] = (plain_full, {}), (plain_peft, {})
    for name in ("summary", "conclusion"):
        ctx[name] = (None, {**ctx[name][1], "full": plain_full, "peft": plain_peft})
    found = said(ctx)
    assert len(found) == 1 and found[0].startswith("two seeds per cell"), found

"""The facts that the templates used to compute in Jinja, by value: what the banner names and
counts, the curve's ends, the published pairs, the prose filters that agree a word with a
count (the templates only render them: test_templates_render_only)."""

from __future__ import annotations

import math

from helpers.report import narrative, prose, published
from helpers.report.facts import Score


def test_the_banner_names_the_first_runs_and_counts_the_rest():
    others = [f"run-{i:02d}" for i in range(11)]
    failed = {"b-run": "E1", "A-run": "E2", "c-run": "E3", "e-run": "E4", "D-run": "E5",
              "f-run": "E6", "g-run": "E7"}
    f = narrative.BannerFacts(14, "params/cpu.yaml", "runs", other_runs=others, failed=failed,
                              models_missing=["BERT-base", "SciBERT"], cap="500", on_cpu=True,
                              epochs="1")
    assert (f.other_count, f.other_shown, f.other_more) == (11, others[:8], 3)
    assert [r for r, _ in f.failed_shown] == ["A-run", "b-run", "c-run", "D-run", "e-run"]
    assert (f.failed_count, f.failed_more) == (7, 2)
    assert f.gaps == ["BERT-base and SciBERT not run", "training sets capped at 500 examples",
                      "run on a CPU"]
    assert f.epoch_noun == "epoch" and narrative.BannerFacts(1, epochs="2-3").epoch_noun == "epochs"
    text = prose.render("banner", f).replace("\n", " ")
    assert "`run-07` and 3 more." in text and "(E2); `b-run`" in text
    assert "Eleven other" not in text and "11 other complete runs in that folder are" in text
    one = narrative.BannerFacts(1, "g.yaml", "runs", other_runs=["x"], failed={"y": "E"})
    assert (one.other_more, one.failed_more, one.gaps) == (0, 0, [])
    text = prose.render("banner", one).replace("\n", " ")
    assert "One other complete run in that folder is not of this grid and is left out" in text
    assert "One run of this grid failed and is not in it: `y` (E) (" in text


def test_the_curve_says_where_it_starts_ends_and_peaks():
    rising = narrative.CurveFacts("roberta-base", "acl_sup", 2, (0.1, 0.2, 0.3), (0.05, 0.1, 0.2))
    assert rising.several_epochs and rising.still_rising and rising.ends == (0.1, 0.3, 0.05, 0.2)
    peaked = narrative.CurveFacts("roberta-base", "acl_sup", 2, (0.1, 0.4, 0.3), (0.1, 0.3, 0.2))
    assert not peaked.still_rising and peaked.best_epoch == 2
    one = narrative.CurveFacts("roberta-base", "acl_sup", 2, (0.1,), (0.2,))
    assert not one.several_epochs
    assert all(math.isnan(x) for x in narrative.CurveFacts(None, None, 0, (), ()).ends)


def test_published_pairs_and_glue_points():
    refs = published.load_published()
    ours = Score("x", "x", math.nan, math.nan, 0)
    f = published.PublishedFacts(
        rows=[published.Beside(r, ours) for r in refs if r.comparable in ("yes", "upper")],
        glue=[r for r in refs if r.comparable == "context"])
    plain, spc = f.encoding_pair
    assert (plain.value, spc.value) == (0.7317, 0.7698)
    assert f.pair_gain == 100 * (0.7698 - 0.7317) and plain.points == 100 * 0.7317
    adapter, adapter_full, lora, lora_full = f.glue_context
    assert (adapter.method, adapter_full.method, lora.method, lora_full.method) == (
        "adapter", "full", "lora", "full")
    assert f.authors == list(dict.fromkeys(b.ref.author for b in f.rows))
    alone = published.PublishedFacts(rows=f.rows[:1], glue=[adapter, lora, adapter_full])
    assert alone.encoding_pair is None and math.isnan(alone.pair_gain)
    assert alone.glue_context is None


class _Loop:
    def __init__(self, i: int, n: int):
        self.revindex, self.last = n - i, i == n - 1


def test_the_prose_filters_agree_words_with_counts():
    assert [prose.sep(_Loop(i, 3)) for i in range(3)] == [", ", " and ", ""]
    assert prose.sep(_Loop(0, 1)) == ""
    assert prose.plural_span(2, 2, "seed") == "two seeds"
    assert prose.plural_span(1, 1, "seed") == "one seed"
    assert prose.plural_span(2, 5, "seed") == "2 to 5 seeds"
    assert [prose.noun(n, "table") for n in (0, 1, 2)] == ["tables", "table", "tables"]
    assert prose.noun(1, "follows", "follow") == "follows"
    assert prose.noun(3, "follows", "follow") == "follow"

"""Published results on the report's datasets (``report/published_results.csv``) beside ours.

Each row of the file is one published number with its source (paper, table, column, arXiv id),
how it was checked (``checked``: read in the paper, in the authors' README, in a record that
quotes it, or taken from the team's shared list) and whether it is ``comparable``: ``yes``
(same split, same model), ``upper`` (a stronger variant of the model: an upper reference),
``no`` (a different training set: AG News) or ``context`` (GLUE, for the PEFT comparison).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import pandas as pd

from helpers.settings import PROJECT_ROOT, project_path

from .facts import Score, score
from .formats import fmt_mean_std, signed
from .load import LABELS, display_model, read_csv_rows
from .table import Table

DEFAULT_CSV = PROJECT_ROOT / "report" / "published_results.csv"
COLUMNS = ("dataset", "split", "model", "method", "metric", "value", "std", "seeds", "paper",
           "table", "column", "arxiv", "source_kind", "checked", "comparable", "note")


@dataclass(frozen=True)
class Reference:
    """One published number and where it comes from."""

    dataset: str
    model: str
    method: str
    metric: str
    value: float
    std: float
    seeds: str
    paper: str
    table: str
    column: str
    arxiv: str
    checked: str
    comparable: str
    split: str = ""

    @property
    def author(self) -> str:
        """``Gururangan et al. 2020`` (the paper's short citation)."""
        return self.paper.split(",")[0]

    @property
    def source(self) -> str:
        return f"{self.author}, {self.table}"

    @property
    def points(self) -> float:
        """The value in percentage points, as papers print it."""
        return 100 * self.value

    @property
    def train_size(self) -> int:
        """Training examples of the published split (``train/dev/test`` sizes), 0 if unknown."""
        head = self.split.split("/")[0]
        return int(head) if head.isdigit() else 0


def load_published(path: str | os.PathLike | None = None) -> list[Reference]:
    rows = read_csv_rows(project_path(path) or DEFAULT_CSV, COLUMNS,
                         "the published reference results")
    return [Reference(r["dataset"], r["model"], r["method"], r["metric"], float(r["value"]),
                      float(r["std"]) if r["std"] else math.nan, r["seeds"], r["paper"],
                      r["table"], r["column"], r["arxiv"], r["checked"], r["comparable"],
                      r["split"]) for r in rows]


@dataclass(frozen=True)
class Beside:
    """A published value and our runs of the same model on the same dataset (full FT)."""

    ref: Reference
    ours: Score

    @property
    def difference(self) -> float:
        return self.ours.mean - self.ref.value if self.ours.n else math.nan


@dataclass
class PublishedFacts:
    rows: list[Beside] = field(default_factory=list)
    agnews: Reference | None = None
    agnews_train: int = 0  # our agnews_sup training rows (full data)
    agnews_total: int = 0  # the AG News test split they are re-split from
    glue: list[Reference] = field(default_factory=list)

    @property
    def compared(self) -> list[Beside]:
        return [b for b in self.rows if b.ours.n]

    @property
    def papers(self) -> list[Reference]:
        """The papers of the table's rows, once each."""
        return list({b.ref.paper: b.ref for b in reversed(self.rows)}.values())[::-1]

    @property
    def authors(self) -> list[str]:
        """The table's authors in row order, once each (case aside)."""
        seen = {}
        for b in self.rows:
            seen.setdefault(b.ref.author.lower(), b.ref.author)
        return list(seen.values())

    @property
    def like_for_like(self) -> list[Reference]:
        """The restaurant_sup rows: plain BERT-base and BERT-SPC, one model, two encodings."""
        return [b.ref for b in self.rows if b.ref.dataset == "restaurant_sup"
                and b.ref.metric == "macro_f1"]

    @property
    def encoding_pair(self) -> tuple[Reference, Reference] | None:
        """Plain BERT-base and BERT-SPC when both are there (the text compares the two)."""
        lfl = self.like_for_like
        return (lfl[0], lfl[1]) if len(lfl) == 2 else None

    @property
    def pair_gain(self) -> float:
        """What BERT-SPC's sentence pair adds over plain fine-tuning (points; NaN: no pair)."""
        pair = self.encoding_pair
        return 100 * (pair[1].value - pair[0].value) if pair else math.nan

    @property
    def glue_context(self) -> tuple[Reference, Reference, Reference, Reference] | None:
        """The GLUE reference points of the PEFT comparison: adapters and their full
        fine-tuning, LoRA and its full fine-tuning (None unless the file has all four)."""
        full = [r for r in self.glue if r.method == "full"]
        adapter = next((r for r in self.glue if r.method == "adapter"), None)
        lora = next((r for r in self.glue if r.method == "lora"), None)
        if adapter and lora and len(full) == 2:
            return adapter, full[0], lora, full[1]
        return None


def published(summary: pd.DataFrame, references: list[Reference] | None = None,
              baselines_full: dict[str, dict] | None = None) -> PublishedFacts:
    """The file's comparable and upper-reference rows beside our full fine-tuning runs, the
    AG News row that is not comparable, and the GLUE context for the PEFT comparison."""
    references = load_published() if references is None else references
    full = summary[summary["method"] == "full"]
    out = PublishedFacts()
    for ref in references:
        if ref.comparable in ("yes", "upper"):
            runs = full[full["dataset"] == ref.dataset]
            out.rows.append(Beside(ref, score(runs, "model", ref.model, ref.metric,
                                              display_model(ref.model))))
        elif ref.comparable == "no" and ref.dataset.startswith("agnews"):
            out.agnews = ref
        elif ref.comparable == "context":
            out.glue.append(ref)
    b = (baselines_full or {}).get("agnews_sup")
    if b:
        out.agnews_train = int(b.get("num_train_samples") or 0)
        out.agnews_total = out.agnews_train + int(b["num_validation_samples"]) \
            + int(b["num_test_samples"])
    return out


def reference_table(facts: PublishedFacts) -> Table:
    """Published test results on the same splits beside ours (mean ± std, n seeds)."""
    data = []
    for b in facts.rows:
        r = b.ref
        data.append({"dataset": r.dataset, "model": r.model, "metric": r.metric,
                     "published": r.value, "published_std": r.std, "paper": r.paper,
                     "table": r.table, "arxiv": r.arxiv, "checked": r.checked,
                     "comparable": r.comparable, "ours_mean": b.ours.mean,
                     "ours_std": b.ours.std, "n": b.ours.n, "difference": b.difference,
                     "_method": r.method, "_source": r.source})

    def model(r: dict) -> str:
        # the method column names a variant of full fine-tuning (BERT-SPC: a sentence pair)
        variant = r["_method"].split(", ", 1)[1] if ", " in r["_method"] else ""
        return display_model(r["model"]) \
            + (" (post-trained)" if r["comparable"] == "upper" else "") \
            + (f" ({variant})" if variant else "")

    notes = ["Sources: " + "; ".join(r.paper + (f" (arXiv:{r.arxiv})" if r.arxiv else "")
                                     for r in facts.papers) + "."]
    return Table(data=pd.DataFrame(data), group="dataset", notes=notes,
                 cells={"dataset": "dataset", "model": model,
                        "metric": lambda r: LABELS.get(r["metric"], r["metric"]),
                        "published": lambda r: fmt_mean_std(
                            r["published"], r["published_std"],
                            2 if not math.isnan(r["published_std"]) else 1),
                        "source": "_source",
                        "ours": lambda r: fmt_mean_std(r["ours_mean"], r["ours_std"], r["n"])
                        if r["n"] else "not run",
                        "n": "n", "ours − published": lambda r: signed(r["difference"])},
                 widths={"model": 15, "metric": 10, "published": 12, "source": 27, "ours": 12,
                         "n": 3, "ours − published": 10})

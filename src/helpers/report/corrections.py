"""What this report corrects in the original: the facts of each correction, true for the
build they sit in, and the lines of the original's public code they rest on.

``report/original_code.csv`` lists those lines (repository, commit, file, line, the code as
written): the test split as the Trainer's evaluation set, the literal ``"<SEP>"`` joining
aspect and sentence, the 6-way heads, the adapters' 2e-5. ``report/templates/corrections.md.j2``
words the list from :class:`CorrectionsFacts`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import pandas as pd

from helpers.run.config import short_model_name
from helpers.run.methods import METHODS
from helpers.settings import PROJECT_ROOT, project_path

from . import original as orig
from .facts import Floor, floor
from .formats import fmt_lr
from .load import display_model, read_csv_rows

DEFAULT_CODE_CSV = PROJECT_ROOT / "report" / "original_code.csv"
CODE_COLUMNS = ("claim", "repo", "commit", "path", "line", "excerpt", "note")


@dataclass(frozen=True)
class Citation:
    """One line of the original's code at one commit."""

    repo: str
    commit: str
    path: str
    line: int
    excerpt: str

    @property
    def url(self) -> str:
        return f"https://github.com/{self.repo}/blob/{self.commit}/{self.path}#L{self.line}"

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def load_code(path: str | os.PathLike | None = None) -> dict[str, list[Citation]]:
    """``report/original_code.csv``: claim -> the lines of code it rests on (file order)."""
    out: dict[str, list[Citation]] = {}
    for r in read_csv_rows(project_path(path) or DEFAULT_CODE_CSV, CODE_COLUMNS,
                           "the original's code lines"):
        out.setdefault(r["claim"], []).append(
            Citation(r["repo"], r["commit"], r["path"], int(r["line"]),
                     r["excerpt"].strip().rstrip(",")))
    return out


@dataclass(frozen=True)
class Swap:
    """Table 3 printing another model's Table 1 values (accuracy and macro-F1)."""

    dataset: str
    model: str
    source_model: str
    printed: tuple[float, float]
    own: tuple[float, float]


@dataclass
class CorrectionsFacts:
    code: dict[str, list[Citation]]
    original_lr: str
    adapter_lrs: list[str] = field(default_factory=list)
    lora_lrs: list[str] = field(default_factory=list)
    default_adapter_lr: str = ""
    default_lora_lr: str = ""
    acl_floor: Floor | None = None  # on the full test set, as the original evaluated
    original_adapter_acl: tuple[float, float] = (math.nan, math.nan)  # accuracy, macro-F1
    claims: orig.MemoryClaims | None = None  # the original's memory section
    swap: Swap | None = None
    has_roberta_acl: bool = False
    restaurant_best: str = ""  # the original's own Table 1 best on restaurant_sup
    restaurant_accuracy: tuple[float, float] = (math.nan, math.nan)  # that model, SciBERT

    @property
    def repo(self) -> str:
        first = next(iter(self.code.values()))[0]
        return first.repo

    @property
    def commit(self) -> str:
        return next(iter(self.code.values()))[0].commit

    @property
    def short_commit(self) -> str:
        return self.commit[:7]

    def cited(self, claim: str, n: int) -> list[Citation]:
        """The first ``n`` places in the original's code that ``claim`` rests on."""
        return self.code[claim][:n]

    @property
    def last_item(self) -> int:
        """The number of the list's last item (8, after the optional swap and restaurant
        items)."""
        return 8 + bool(self.swap) + bool(self.restaurant_best)

    @property
    def departs_from_defaults(self) -> bool:
        used = set(self.adapter_lrs) | set(self.lora_lrs)
        return bool(used - {self.default_adapter_lr, self.default_lora_lr})


def _lrs(configs: pd.DataFrame, method: str) -> list[str]:
    if configs.empty or "learning_rate" not in configs:
        return []
    lr = pd.to_numeric(configs.loc[configs["method"] == method, "learning_rate"],
                       errors="coerce").dropna()
    return [fmt_lr(float(v)) for v in sorted(lr.unique())]


def _swap(original: pd.DataFrame) -> Swap | None:
    swaps = orig.table3_swaps(original)
    if swaps.empty or not {"accuracy", "macro_f1"} <= set(swaps["metric"]):
        return None
    s = swaps.set_index("metric")
    acc, f1 = s.loc["accuracy"], s.loc["macro_f1"]
    return Swap(acc["dataset"], acc["model"], acc["source_model"],
                (acc["printed"], f1["printed"]), (acc["own"], f1["own"]))


def corrections(summary: pd.DataFrame, configs: pd.DataFrame, original: pd.DataFrame,
                baselines_full: dict[str, dict] | None = None,
                code: dict[str, list[Citation]] | None = None) -> CorrectionsFacts:
    """The facts of every correction (``baselines_full``: majority-class baselines on the
    full test sets, the rows the original evaluated)."""
    facts = CorrectionsFacts(
        code or load_code(), orig.appendix(original).get("learning_rate", "2e-5"),
        _lrs(configs, "adapter"), _lrs(configs, "lora"),
        fmt_lr(METHODS["adapter"].learning_rate), fmt_lr(METHODS["lora"].learning_rate),
        floor(baselines_full, "acl_sup"),
        tuple(orig.original_value(original, "Table 3", "roberta-base", "acl_sup", "adapter", m)
              for m in ("accuracy", "macro_f1")),
        orig.memory_claims(original), _swap(original))
    facts.has_roberta_acl = bool(((summary["model"].map(short_model_name) == "roberta-base")
                                  & (summary["method"] == "full")
                                  & (summary["dataset"] == "acl_sup")).any())
    best = orig.best_in_table1(original, "restaurant_sup")
    if best and "scibert" not in best:
        facts.restaurant_best = display_model(best)
        facts.restaurant_accuracy = tuple(
            orig.original_value(original, "Table 1", m, "restaurant_sup", "full", "accuracy")
            for m in (best, "allenai/scibert_scivocab_uncased"))
    return facts

"""The "What each error cost" table and the facts its sentences are written from
(``report/templates/error_cost.md.j2``); the measurements are :mod:`.ablations`'s."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from helpers.run.store import RunStore

from .ablations import ERRORS, NO_PREDICTIONS, Effect, RuleSummary, effects, rule_summary
from .ablations import selected_epochs as _selected_epochs
from .bootstrap import COVERS_BOTH, COVERS_EXAMPLES, MIN_SEEDS_TO_RESAMPLE, Interval
from .formats import signed
from .load import display_model
from .table import Cell, Table


def verdict(cell: Interval) -> str:
    """``lower`` / ``higher`` (the interval excludes zero), ``nil`` (it includes zero) or
    ``untested`` (no interval)."""
    if math.isnan(cell.low):
        return "untested"
    if cell.high < 0:
        return "lower"
    if cell.low > 0:
        return "higher"
    return "nil"


@dataclass(frozen=True)
class Row:
    """One row's facts for the template: the effect and its verdicts."""

    effect: Effect
    macro_f1: str
    accuracy: str

    @property
    def key(self) -> str:
        return self.effect.key

    @property
    def dataset(self) -> str:
        return self.effect.dataset


@dataclass
class CostFacts:
    """Everything the section says: the rows, the selection rules over all runs, and the
    adapters' 2e-5 on acl_sup (the original's claim about RoBERTa)."""

    rows: list[Row] = field(default_factory=list)
    selection: RuleSummary | None = None
    oracle: RuleSummary | None = None
    ablation_grid: str | None = None
    ablation_runs: int = 0
    adapter_model: str = ""

    def of(self, key: str) -> list[Row]:
        return [r for r in self.rows if r.key == key]

    @property
    def adapter_acl(self) -> Row | None:
        return next((r for r in self.of("learning_rate") if r.dataset == "acl_sup"), None)

    @property
    def has_intervals(self) -> bool:
        return any(not math.isnan(r.effect.macro_f1.low) for r in self.rows)

    @property
    def missing(self) -> list[str]:
        """Ablations with no row (their runs not in this build)."""
        return [ERRORS[k].error for k in ("input_format", "num_labels", "learning_rate")
                if not self.of(k)]


def cost_facts(history: pd.DataFrame, summary: pd.DataFrame, main_configs: pd.DataFrame,
               ablation_summary: pd.DataFrame, ablation_configs: pd.DataFrame,
               store: RunStore, ablation_grid: str | None = None) -> CostFacts:
    """The section's facts from both grids' runs (the ablation frames may be empty)."""
    rows = [Row(e, verdict(e.macro_f1), verdict(e.accuracy))
            for e in effects(history, summary, main_configs, ablation_summary,
                             ablation_configs, store)]
    epochs = _selected_epochs(history) if len(history) else None
    facts = CostFacts(rows, ablation_grid=ablation_grid, ablation_runs=len(ablation_summary))
    if epochs is not None and len(epochs):
        facts.selection = rule_summary(epochs, "original")
        facts.oracle = rule_summary(epochs, "oracle")
    adapter = ablation_summary[ablation_summary["method"] == "adapter"] \
        if len(ablation_summary) else ablation_summary
    if len(adapter):
        facts.adapter_model = display_model(adapter["model"].iloc[0])
    return facts


def _cell(m: str) -> Cell:
    """``−0.012 [−0.030, +0.004]``: the estimate and its interval (the estimate alone
    without one)."""
    def text(r: dict) -> str:
        estimate, low, high = (r[f"{m}_{k}"] for k in ("estimate", "low", "high"))
        if math.isnan(estimate):
            return "—"
        if math.isnan(low):
            return signed(estimate)
        return f"{signed(estimate)} [{signed(low)}, {signed(high)}]"
    return text


def _covers(covers: str) -> str:
    """Column-sized: "seeds, examples" or "examples" (the table's note says what they are)."""
    return {NO_PREDICTIONS: "none", COVERS_BOTH: "seeds, examples",
            COVERS_EXAMPLES: "examples"}.get(covers, covers)


def cost_table(facts: CostFacts) -> Table:
    """One row per error and dataset: the original's choice, ours, the original minus ours in
    test macro-F1 and accuracy with the 95% bootstrap interval, and n; what the intervals cover
    is a note when every row's is the same (a column otherwise), so the table fits a page."""
    data = pd.DataFrame([
        {"error": e.key, "dataset": e.dataset, "original": e.original, "ours": e.ours,
         "runs": e.runs, "changed": e.changed,
         **{f"{m}_{k}": getattr(getattr(e, m), k) for m in ("macro_f1", "accuracy")
            for k in ("estimate", "low", "high", "n_seeds", "n_examples")},
         "covers": e.macro_f1.covers} for e in (r.effect for r in facts.rows)])
    cells: dict[str, Cell] = {
        "error": lambda r: ERRORS[r["error"]].error, "dataset": "dataset",
        "original": "original", "ours": "ours", "macro_f1": _cell("macro_f1"),
        "accuracy": _cell("accuracy"), "covers": lambda r: _covers(r["covers"]),
        "n": lambda r: f"{r['runs']} × {r['macro_f1_n_examples']}"}
    covers = {_covers(c) for c in data["covers"]} if len(data) else set()
    notes = ["n: runs (selection rules) or seeds (ablations) × test examples."]
    if len(covers) == 1:
        del cells["covers"]
        notes.insert(0, f"Every interval covers {data['covers'].iloc[0]}.")
    else:  # the column's short words, said once in full
        notes.insert(0, f"covers: what an interval resamples ({COVERS_BOTH} from "
                        f"{MIN_SEEDS_TO_RESAMPLE} seeds on, {COVERS_EXAMPLES} with fewer).")
    return Table(data=data, cells=cells, group="error", notes=notes,
                 labels={"original": "the original", "macro_f1": "Δ macro-F1 [95% CI]",
                         "accuracy": "Δ accuracy [95% CI]", "covers": "covers"},
                 widths={"dataset": 15, "original": 15, "ours": 15, "macro_f1": 21,
                         "accuracy": 21, "covers": 10, "n": 8})

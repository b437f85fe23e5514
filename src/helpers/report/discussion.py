"""What the Task 2 and Task 3 discussions interpret: verdicts over all datasets (who is
separated, how close the leads are against the seeds' spread and the intervals' width, where
the floor is close, what PEFT's intervals leave possible), so that the text says what the
tables show and why instead of restating them dataset by dataset.

Computed from :class:`helpers.report.facts.FullFtFacts` and :class:`~.facts.PeftFacts` (their
``reading``); ``report/templates/task2.md.j2`` and ``task3.md.j2`` only render them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

#: The share of 95% intervals that exclude zero when nothing differs.
CHANCE = 0.05

if TYPE_CHECKING:
    from .facts import FullFtFacts, MethodSummary, PeftFacts, PeftRow, Ranked, Score


@dataclass(frozen=True)
class FullFtReading:
    """Task 2 across its datasets."""

    facts: FullFtFacts

    @property
    def multi(self) -> list[Ranked]:
        """Datasets with more than one model: the ones that pose a ranking question."""
        return [d for d in self.facts.datasets if not d.single]

    @property
    def open(self) -> list[Ranked]:
        """Datasets of several models where no lead is supported."""
        return [d for d in self.multi if not d.supported]

    @property
    def beats(self) -> list[str]:
        """Datasets with a majority-class floor that every model's mean beats."""
        return [d.dataset for d in self.facts.beats_floor]

    @property
    def short(self) -> list[str]:
        """Datasets with a floor that some model's mean does not beat."""
        return [d.dataset for d in self.facts.short_of_floor]

    @property
    def beats_every(self) -> bool:
        """The floor is beaten on every dataset, and there are several."""
        return len(self.facts.datasets) > 1 and len(self.beats) == len(self.facts.datasets)

    @property
    def gap_range(self) -> tuple[float, float]:
        """The smallest and the largest lead by mean (NaN without a ranking question)."""
        return (min(self.gaps), max(self.gaps)) if self.gaps else (math.nan, math.nan)

    @property
    def within_spread_names(self) -> list[str]:
        return [d.dataset for d in self.within_spread]

    @property
    def gaps(self) -> tuple[float, ...]:
        """Per dataset of several models, the leader's lead over the second by mean."""
        return tuple(d.versus[0].gap for d in self.multi)

    @property
    def within_spread(self) -> list[Ranked]:
        """Datasets whose lead is no larger than the spread across seeds."""
        return [d for d in self.multi if d.versus[0].within_spread]

    @property
    def all_within_spread(self) -> bool:
        return bool(self.multi) and len(self.within_spread) == len(self.multi)

    @property
    def half_width(self) -> float:
        """The median half-width of the leaders' paired intervals: roughly the smallest
        difference this grid resolves (NaN without intervals)."""
        widths = [(v.paired.high - v.paired.low) / 2 for d in self.multi for v in d.versus
                  if v.paired.has_interval]
        return float(pd.Series(widths).median()) if widths else math.nan

    @property
    def closest_to_floor(self) -> Ranked | None:
        """Of the datasets where every model clears the floor, the one with the least margin."""
        clear = self.facts.beats_floor
        return min(clear, key=lambda d: d.margin) if clear else None

    @property
    def all_clear_floor(self) -> bool:
        return bool(self.facts.beats_floor) and not self.facts.short_of_floor

    @property
    def hardest(self) -> Ranked | None:
        """The dataset with the lowest leading mean (of two datasets or more, with a floor:
        its classes and majority share say why)."""
        ds = [d for d in self.facts.datasets if d.floor]
        return min(ds, key=lambda d: d.leader.mean) if len(self.facts.datasets) > 1 and ds \
            else None

    @property
    def noisiest(self) -> tuple[str, Score] | None:
        """The dataset and row with the largest standard deviation over seeds."""
        rows = [(d.dataset, r) for d in self.facts.datasets for r in d.rows
                if not math.isnan(r.std)]
        return max(rows, key=lambda x: x[1].std) if rows else None

    @property
    def seeds_outweigh_models(self) -> bool:
        """One row's spread over seeds exceeds every lead between models."""
        nz = self.noisiest
        return bool(nz and self.gaps) and nz[1].std > max(self.gaps)


@dataclass(frozen=True)
class PeftReading:
    """Task 3 across its datasets and methods."""

    facts: PeftFacts

    @property
    def all_within(self) -> bool:
        """Every PEFT row has an interval, and every one includes zero."""
        rows = [r for d in self.facts.datasets for r in d.rows]
        return bool(rows) and all(r.vs_full.has_interval and not r.vs_full.excludes_zero
                                  for r in rows)

    @property
    def low(self) -> float:
        """The lowest difference to full fine-tuning of any method (NaN without one)."""
        return min((s.low for s in self.facts.by_method), default=math.nan)

    @property
    def high(self) -> float:
        return max((s.high for s in self.facts.by_method), default=math.nan)

    @property
    def min_share(self) -> float:
        """The smallest share of the weights a PEFT method trains."""
        return min((s.share for s in self.facts.by_method), default=math.nan)

    @property
    def worse_methods(self) -> list[MethodSummary]:
        """Methods worse than full fine-tuning on some dataset (an interval below zero)."""
        return [s for s in self.facts.by_method if s.worse]

    @property
    def better_methods(self) -> list[MethodSummary]:
        return [s for s in self.facts.by_method if s.better]

    @property
    def differing_methods(self) -> list[MethodSummary]:
        """Methods with an interval that excludes zero on some dataset, either way."""
        return [s for s in self.facts.by_method if s.worse or s.better]

    @property
    def max_share(self) -> float:
        """The largest share of the weights a PEFT method trains."""
        return max((s.share for s in self.facts.by_method), default=math.nan)

    @property
    def worst(self) -> tuple[str, PeftRow] | None:
        """The dataset and row whose interval reaches lowest: the largest loss against full
        fine-tuning that the intervals leave possible."""
        rows = [(d.dataset, r) for d in self.facts.datasets for r in d.rows
                if r.vs_full.has_interval]
        return min(rows, key=lambda x: x[1].vs_full.low) if rows else None

    @property
    def worst_loss(self) -> float:
        """That loss, as a positive number (NaN without intervals, 0 if none is below zero)."""
        w = self.worst
        return max(0.0, -w[1].vs_full.low) if w else math.nan

    @property
    def several_intervals(self) -> bool:
        """The paired table has intervals, more than one: multiplicity is worth a word."""
        return self.facts.can_interval and self.facts.intervals > 1

    @property
    def by_chance(self) -> float:
        """How many of the paired table's 95% intervals exclude zero by chance alone."""
        return CHANCE * self.facts.intervals

    @property
    def floor_runs(self) -> list[tuple[str, PeftRow]]:
        """Rows with runs that predicted the majority class for every test example."""
        return [(d.dataset, r) for d in self.facts.datasets for r in d.rows if r.at_floor]

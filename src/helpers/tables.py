"""The report's tables: numbers from :mod:`helpers.analysis`, formatted and laid out.

A :class:`Table` keeps two frames: ``data`` (numeric, what the CSV under ``build/tables``
holds) and ``display`` (formatted strings, Markdown ``**bold**`` / ``*italic*`` allowed). It is
shown through great_tables as HTML with explicit column widths: Quarto turns that HTML into a
Typst table with the same widths (``columns: (22%, ...)``), so the PDF never falls back to
auto-sized columns that overlap; the HTML is as wide as the page (it fits 1280 px).

Formats are compact on purpose (``0.856 ± 0.012`` with non-breaking spaces, ``124.6M``), model
names are short labels (RoBERTa-base; the Hub ids are in the appendix) and sizes are GiB.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from .analysis import (
    LABELS,
    METHOD_SHORT,
    MISSING,
    NOT_HYPERPARAMETERS,
    SCORES,
    TABLE_METRICS,
    aggregate,
    best_rows,
    display_model,
    order_models,
    paired_stats,
    peft_model,
)
from .methods import METHODS

GIB = 2**30
#: Non-breaking spaces keep ``mean ± std`` on one line in Typst and in HTML.
PM = "\u00a0±\u00a0"
#: The row that shows the majority-class baseline in a results table.
BASELINE_LABEL = "*majority class*"
#: Font size of every report table (great_tables px; Quarto writes 13px as 9.75pt in Typst).
FONT_SIZE = "13px"


# ----------------------------------------------------------------------------- formatting
def _nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt(value: Any, digits: int = 3) -> str:
    return MISSING if _nan(value) else f"{value:.{digits}f}"


def fmt_mean_std(mean: float, std: float, n: int, digits: int = 3) -> str:
    """``0.912 ± 0.010``; one seed has no spread, so it shows the mean alone (n says why)."""
    if not n or _nan(mean):
        return MISSING
    if n < 2 or _nan(std):
        return fmt(mean, digits)
    return f"{mean:.{digits}f}{PM}{std:.{digits}f}"


def fmt_count(n: Any) -> str:
    """Parameter counts as in the text: 124.6M, 894.7K."""
    if _nan(n):
        return MISSING
    n = float(n)
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def fmt_share(share: Any) -> str:
    if _nan(share):
        return MISSING
    pct = 100 * float(share)
    return f"{pct:.0f}%" if pct >= 99.95 else f"{pct:.2f}%"


def fmt_gib(n_bytes: Any, digits: int = 2) -> str:
    return MISSING if _nan(n_bytes) else f"{float(n_bytes) / GIB:.{digits}f}"


def fmt_value(value: Any) -> str:
    """A hyperparameter value as a person writes it (2e-05, [query, value])."""
    if _nan(value):
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(fmt_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {fmt_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def fmt_lr(value: float) -> str:
    """A learning rate as papers write it: 2e-5, 1e-3, 1.5e-3."""
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def signed(value: float, digits: int = 3) -> str:
    """``+0.012`` / ``−0.034`` (a real minus sign)."""
    if _nan(value):
        return MISSING
    return f"{value:+.{digits}f}".replace("-", "−")


def bold(text: str) -> str:
    return f"**{text}**" if text and text != MISSING else text


# ----------------------------------------------------------------------------- the table
@dataclass
class Table:
    """A report table: ``data`` (numeric, the CSV) and ``display`` (formatted strings).

    ``group`` names a display column shown as row-group headings instead of a column (saves
    a column on the page); ``widths`` are relative column widths (default: from the content);
    ``notes`` are printed under the table.
    """

    data: pd.DataFrame
    display: pd.DataFrame
    group: str | None = None
    widths: dict[str, float] | None = None
    notes: Sequence[str] = field(default_factory=tuple)

    def markdown(self) -> str:
        """A pipe table (notebooks, plain-text checks); the report uses :meth:`html`."""
        if self.display.empty:
            return "_No runs for this table yet._"
        return self.display.to_markdown(index=False)

    def column_widths(self) -> dict[str, str]:
        """Percent widths that sum to 100: given ``widths``, else from the longest cell."""
        shown = [c for c in self.display.columns if c != self.group]
        if self.widths:
            raw = {c: float(self.widths.get(c, 1.0)) for c in shown}
        else:
            raw = {}
            for c in shown:
                cells = [len(_plain(str(v))) for v in self.display[c]]
                head = max((len(w) for w in str(c).split()), default=1)
                raw[c] = float(min(max([head, *cells, 3]), 34))
        total = sum(raw.values())
        return {c: f"{100 * w / total:.1f}%" for c, w in raw.items()}

    def gt(self):
        """The great_tables object (HTML; Quarto converts it for Typst, widths included).

        Column labels and row-group headings are bold through ``<strong>`` in the cell, not
        through great_tables' ``*_font_weight`` options: those are CSS, and Quarto < 1.8
        drops ``font-weight`` when it turns an HTML table into a Typst one (Quarto 1.8 added
        it, quarto-cli#12554), while ``<strong>`` becomes ``#strong[...]`` in every version.
        """
        from great_tables import GT, html, loc

        frame = self.display.copy()
        for c in frame.columns:
            frame[c] = frame[c].map(lambda v: MISSING if _nan(v) else str(v))
        gt = GT(frame, groupname_col=self.group) if self.group else GT(frame)
        cols = [c for c in frame.columns if c != self.group]
        gt = gt.fmt_markdown(columns=cols).cols_width(self.column_widths())
        gt = gt.cols_label(cases={c: html(_strong(escape(str(c)))) for c in cols})
        if self.group:  # a row-group label reaches the transform as HTML already (escaped)
            gt = gt.text_transform(loc.row_groups(), _strong)
        gt = gt.tab_options(table_width="100%", table_font_size=FONT_SIZE,
                            data_row_padding="3px", row_group_padding="3px",
                            source_notes_font_size="12px")
        for note in self.notes:
            from great_tables import md

            gt = gt.tab_source_note(md(note))
        return gt

    def html(self) -> str:
        """great_tables HTML without its font list: the table then uses the page's font in
        HTML and the document's in Typst (which warns about every web font it lacks)."""
        if self.display.empty:
            return "<p><em>No runs for this table yet.</em></p>"
        return re.sub(r"font-family:[^;]*;", "", self.gt().as_raw_html(), count=1)

    def _repr_html_(self) -> str:
        return self.html()

    def save(self, output_dir: str | os.PathLike, name: str) -> Path:
        """Write ``<output_dir>/tables/<name>.csv`` (the numeric data) and return its path."""
        return save_csv(self.data, output_dir, name)


def _strong(label_html: str) -> str:
    return f"<strong>{label_html}</strong>"


def _plain(text: str) -> str:
    return text.replace("**", "").replace("*", "")


def save_csv(frame: pd.DataFrame, output_dir: str | os.PathLike, name: str) -> Path:
    """Write ``<output_dir>/tables/<name>.csv`` and return its path."""
    folder = Path(output_dir) / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    frame.to_csv(path, index=False)
    return path


# ----------------------------------------------------------------------------- results
def _stat_cells(stats: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Formatted ``mean ± std`` columns, the best per column in bold (only among 2+ rows)."""
    out = pd.DataFrame(index=stats.index)
    for m in metrics:
        cells = [fmt_mean_std(r[f"{m}_mean"], r[f"{m}_std"], r["n"]) for _, r in stats.iterrows()]
        ran = stats[f"{m}_mean"].where(stats["n"] > 0)
        best = best_rows(ran, m) if ran.notna().sum() > 1 else set()
        out[LABELS.get(m, m)] = [bold(c) if i in best else c
                                 for i, c in zip(stats.index, cells, strict=True)]
    return out


def _baseline_row(baseline: dict[str, Any] | None, metrics: Sequence[str],
                  first: str) -> dict[str, Any] | None:
    if not baseline:
        return None
    row: dict[str, Any] = {first: BASELINE_LABEL}
    for m in metrics:
        row[LABELS.get(m, m)] = MISSING if m not in SCORES else f"*{fmt(baseline[m])}*"
    return row


def results_table(summary: pd.DataFrame, dataset: str, method: str = "full",
                  models: Sequence[str] | None = None,
                  metrics: Sequence[str] = TABLE_METRICS,
                  baseline: dict[str, Any] | None = None) -> Table:
    """Tables 1-2: for one dataset, models x train loss / accuracy / macro-F1 / micro-F1.

    Test metrics at each run's best *validation* epoch; mean ± std over seeds with n; the
    best mean per column in bold. ``models`` defaults to every model run with ``method`` on any
    dataset, so a model missing here is a row of "—". ``baseline`` (a
    :func:`helpers.baselines.majority_class` result) adds the majority-class row.
    """
    sub = summary[summary["method"] == method]
    models = list(models) if models is not None else order_models(sub["model"])
    stats = aggregate(sub[sub["dataset"] == dataset], ["model"], metrics).set_index("model")
    stats = stats.reindex(models)
    stats["n"] = stats["n"].fillna(0).astype(int)
    shown = _stat_cells(stats, metrics)
    shown.insert(0, "model", [display_model(m) for m in models])
    shown["n"] = stats["n"].to_numpy()
    shown = shown.reset_index(drop=True)
    extra = _baseline_row(baseline, metrics, "model")
    if extra:
        shown = pd.concat([shown, pd.DataFrame([{**extra, "n": ""}])], ignore_index=True)
    data = stats.reset_index().rename(columns={"index": "model"})
    data.insert(0, "dataset", dataset)
    data.insert(2, "method", method)
    if baseline:
        data = pd.concat([data, pd.DataFrame([{
            "dataset": dataset, "model": "majority class", "method": "baseline", "n": 0,
            **{f"{m}_mean": baseline[m] for m in metrics if m in SCORES}}])],
            ignore_index=True)
    return Table(data=data, display=shown,
                 widths={"model": 13, "n": 3, **{LABELS[m]: 14 for m in metrics}})


def peft_table(summary: pd.DataFrame, model: str | None = None,
               datasets: Sequence[str] | None = None,
               metrics: Sequence[str] = TABLE_METRICS,
               baselines: dict[str, dict[str, Any]] | None = None) -> Table:
    """Table 3: full fine-tuning vs adapter vs LoRA for one model, one row group per dataset.

    Adds the trainable parameters' share of the model; the best mean per dataset and column
    is bold; ``baselines`` (per dataset) adds each dataset's majority-class row.
    """
    from .analysis import order_datasets

    model = model or peft_model(summary)
    sub = summary[summary["model"] == model]
    if datasets is None:
        datasets = order_datasets(sub.loc[sub["method"] != "full", "dataset"])
    data_parts, shown_parts = [], []
    for dataset in datasets:
        cell = sub[sub["dataset"] == dataset]
        stats = aggregate(cell, ["method"], metrics).set_index("method").reindex(list(METHODS))
        stats["n"] = stats["n"].fillna(0).astype(int)
        params = cell.groupby("method")[["params_trainable", "params_total"]].median()
        params = params.reindex(list(METHODS))
        stats["params_trainable"] = params["params_trainable"]
        stats["params_total"] = params["params_total"]
        stats["trainable_share"] = params["params_trainable"] / params["params_total"]
        shown = _stat_cells(stats, metrics)
        shown.insert(0, "method", [METHOD_SHORT[m] for m in METHODS])
        shown.insert(0, "dataset", dataset)
        shown["trained"] = [fmt_share(v) for v in stats["trainable_share"]]
        shown["n"] = stats["n"].to_numpy()
        shown = shown.reset_index(drop=True)
        extra = _baseline_row((baselines or {}).get(dataset), metrics, "method")
        if extra:
            shown = pd.concat([shown, pd.DataFrame([{**extra, "dataset": dataset,
                                                     "trained": "", "n": ""}])],
                              ignore_index=True)
        data = stats.reset_index().rename(columns={"index": "method"})
        data.insert(0, "dataset", dataset)
        data_parts.append(data)
        shown_parts.append(shown)
    data = pd.concat(data_parts, ignore_index=True) if data_parts else pd.DataFrame()
    if not data.empty:
        data.insert(0, "model", model)
    shown = pd.concat(shown_parts, ignore_index=True) if shown_parts else pd.DataFrame()
    return Table(data=data, display=shown, group="dataset" if not shown.empty else None,
                 widths={"method": 13, "n": 3, "trained": 7,
                         **{LABELS[m]: 14 for m in metrics}})


def paired_comparison(summary: pd.DataFrame, model: str | None = None,
                      metrics: Sequence[str] = ("accuracy", "macro_f1"),
                      confidence: float = 0.95) -> Table:
    """PEFT minus full fine-tuning of one model, paired by seed, with a t-interval.

    The interval needs at least :data:`helpers.analysis.MIN_SEEDS_FOR_INTERVAL` pairs with
    some spread; otherwise the cell says why there is none.
    """
    data = paired_stats(summary, model, metrics, confidence)
    pct = f"{confidence:.0%}"

    def interval(r: pd.Series) -> str:
        if not math.isnan(r["ci_low"]):
            return f"[{signed(r['ci_low'])}, {signed(r['ci_high'])}]"
        if r["n"] < 3:
            return f"none: n = {int(r['n'])} < 3"
        return "none: no spread"

    shown = pd.DataFrame({
        "dataset": data["dataset"],
        "method": [METHOD_SHORT.get(m, m) for m in data["method"]],
        "metric": [LABELS.get(m, m) for m in data["metric"]],
        "PEFT − full": [signed(v) for v in data["mean_difference"]],
        "std": [fmt(v) for v in data["std_difference"]],
        f"{pct} CI": [interval(r) for _, r in data.iterrows()],
        "n": data["n"],
    })
    return Table(data=data, display=shown, group="dataset",
                 widths={"method": 9, "metric": 10, "PEFT − full": 10, "std": 7,
                         f"{pct} CI": 18, "n": 3})


# ----------------------------------------------------------------------------- memory
def memory_overview(summary: pd.DataFrame) -> Table:
    """Peak memory per model and method as the runs recorded it (largest over datasets), GiB."""
    rows = []
    for (model, method, device), g in summary.groupby(["model", "method", "device"],
                                                      sort=False, dropna=False):
        rows.append({"model": model, "method": method, "device": device,
                     "device_name": ", ".join(sorted(set(map(str, g["device_name"].dropna())))),
                     "peak_cuda_allocated_bytes": g["peak_cuda_allocated_bytes"].max(),
                     "peak_rss_bytes": g["peak_rss_bytes"].max(),
                     "params_trainable": g["params_trainable"].median(), "n": len(g)})
    data = pd.DataFrame(rows, columns=["model", "method", "device", "device_name",
                                       "peak_cuda_allocated_bytes", "peak_rss_bytes",
                                       "params_trainable", "n"])
    if not data.empty:
        rank = {m: i for i, m in enumerate(METHODS)}
        data = data.assign(_m=data["method"].map(rank)).sort_values(["model", "_m"]) \
            .drop(columns="_m").reset_index(drop=True)
    shown = pd.DataFrame({
        "model": [display_model(m) for m in data["model"]],
        "method": [METHOD_SHORT.get(m, m) for m in data["method"]],
        "device": [str(d).upper() if d == "cuda" else str(d) for d in data["device"]],
        "trainable": [fmt_count(v) for v in data["params_trainable"]],
        "peak CUDA allocated (GiB)": [fmt_gib(v) for v in data["peak_cuda_allocated_bytes"]],
        "peak RSS (GiB)": [fmt_gib(v) for v in data["peak_rss_bytes"]],
        "n": data["n"],
    })
    names = sorted({n for n in data["device_name"] if n})
    notes = [f"Devices: {'; '.join(names)}."] if names else []
    return Table(data=data, display=shown, notes=notes,
                 widths={"model": 12, "method": 8, "device": 6, "trainable": 8,
                         "peak CUDA allocated (GiB)": 12, "peak RSS (GiB)": 10, "n": 3})


def memory_table(mem: pd.DataFrame, peak_label: str) -> Table:
    """helpers.memory.report_table (GiB) laid out for the page: one row group per model.

    ``peak_label`` names the GPU column: "measured" for raw benchmark rows, "corrected" when
    the benchmark file's peaks were corrected (see helpers.memory.results_status).
    """
    shown = pd.DataFrame({
        "model": [display_model(m) for m in mem["model"]],
        "method": [METHOD_SHORT.get(m, m) for m in mem["method"]],
        "trained": [f"{v:.2f}%" if v < 99.95 else "100%" for v in mem["trainable share (%)"]],
        "weights": [f"{v:.2f}" for v in mem["weights"]],
        "grads": [f"{v:.2f}" for v in mem["gradients"]],
        "AdamW": [f"{v:.2f}" for v in mem["optimizer states"]],
        "activ.": [f"{v:.2f}" for v in mem["activations"]],
        "other": [f"{v:.2f}" for v in mem["other"]],
        "predicted peak": [f"{v:.2f}" for v in mem["predicted peak"]],
        f"GPU peak ({peak_label})": [fmt(v, 2) for v in mem["measured peak"]],
    })
    return Table(data=mem, display=shown, group="model",
                 widths={"method": 9, "trained": 8, "weights": 8, "grads": 7, "AdamW": 7,
                         "activ.": 7, "other": 6, "predicted peak": 9,
                         f"GPU peak ({peak_label})": 11})


# ----------------------------------------------------------------------------- appendix
#: The original's appendix settings that are not TrainConfig fields, with what we do instead.
ORIGINAL_ONLY = {
    "eval_strategy": "every epoch, validation and test",
    "load_best_model_at_end": "best validation macro-F1 epoch (never the test set)",
    "report_to": "files in runs/<run_id>/ (no W&B)",
}


def hyperparameter_table(configs: pd.DataFrame,
                         original: dict[str, str] | None = None) -> Table:
    """The values the runs used (config.json) per method, beside the original's appendix.

    One row per parameter; several values (the grid's axes) are listed; a method's own fields
    (helpers.methods) show "n/a" for the other methods. A value that departs from the
    original's appendix is bold; ``original`` maps parameter -> the original's value.
    """
    original = original or {}
    methods = [m for m in METHODS if not configs.empty and m in set(configs["method"])]
    params = [c for c in configs.columns if c not in NOT_HYPERPARAMETERS]
    rows, data_rows = [], []
    owned = {f for m in METHODS.values() for f in m.fields}
    for p in params:
        row = {"parameter": p, "original": original.get(p, MISSING)}
        for method in methods:
            if p in owned and p not in METHODS[method].fields:
                row[method] = "n/a"
                continue
            values = configs.loc[configs["method"] == method, p].tolist()
            if p == "model":
                values = [display_model(v) for v in values]
            elif p == "learning_rate":  # as papers write it: 2e-5, 1e-3
                values = [fmt_lr(float(v)) for v in values]
            distinct = sorted({fmt_value(v) for v in values}, key=_natural)
            text = ", ".join(distinct)
            departs = p in original and not _same(original[p], distinct)
            row[method] = bold(text) if departs else text
            data_rows += [{"parameter": p, "method": method, "value": v,
                           "original": original.get(p), "departs": departs} for v in distinct]
        rows.append(row)
    for p, ours in ORIGINAL_ONLY.items():
        if p in original:
            rows.append({"parameter": p, "original": original[p],
                         **{m: bold(ours) for m in methods}})
    shown = pd.DataFrame(rows, columns=["parameter", "original", *methods])
    shown = shown.rename(columns={m: METHOD_SHORT[m] for m in methods})
    data = pd.DataFrame(data_rows, columns=["parameter", "method", "value", "original",
                                            "departs"])
    return Table(data=data, display=shown,
                 widths={"parameter": 24, "original": 11,
                         **{METHOD_SHORT[m]: 20 for m in methods}})


def _same(original: str, ours: list[str]) -> bool:
    try:
        return len(ours) == 1 and float(original) == float(ours[0])
    except ValueError:
        return len(ours) == 1 and original == ours[0]


def _natural(text: str) -> tuple:
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


__all__ = [
    "BASELINE_LABEL", "PM", "Table", "bold", "fmt", "fmt_count", "fmt_gib", "fmt_lr",
    "fmt_mean_std",
    "fmt_share", "fmt_value", "hyperparameter_table", "memory_overview", "memory_table",
    "paired_comparison", "peft_table", "results_table", "save_csv", "signed",
]

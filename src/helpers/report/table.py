"""The report's table object: one frame of numbers, formatted only when shown (great_tables).

A :class:`Table` keeps ``data``, the numbers (what the CSV under ``build/tables`` holds), and
how to show them: ``cells`` names each shown column and how it is written from a row
(a column of the row, or a function of it using :mod:`.formats`), ``bold`` and ``italic``
which cells carry emphasis, and, for a table whose page layout is not one row per CSV row,
``layout`` (numbers in, numbers out: a pivot, never formatting). Columns whose name starts
with ``_`` and rows whose ``_shown_only`` is true serve the page only and stay out of the CSV.

It is shown through great_tables as HTML with explicit column widths: Quarto turns that HTML
into a Typst table with the same widths (``columns: (22%, ...)``), so the PDF never falls back
to auto-sized columns that overlap; the HTML is as wide as the page (it fits 1280 px). Every
body cell carries its column's label (``data-label``, with the spanner above it if any), so on
a phone ``report/styles.css`` stacks a row's cells under each other with their labels instead
of hiding columns off-screen.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from .formats import MISSING, bold, is_missing

#: Font size of every report table (great_tables px; Quarto writes 13px as 9.75pt in Typst).
FONT_SIZE = "13px"
#: A row of ``data`` (or of its ``layout``) that the CSV leaves out: a row for the page only.
SHOWN_ONLY = "_shown_only"

#: How a shown column is written: the value of one column of the row as it is, or a function
#: of the row (its text, or an int a pipe table aligns as a number).
Cell = str | Callable[[dict[str, Any]], Any]


@dataclass
class Table:
    """A report table: ``data`` (the numbers) and how its cells are shown.

    ``cells``: each shown column, in order, and its :data:`Cell`; ``bold``: shown column ->
    boolean column (bold where true); ``italic``: a boolean column (that row's cells in
    italics); ``layout``: ``data`` -> the page's rows. ``group`` is a shown column printed as
    row-group headings; ``widths`` relative column widths (default: from the content);
    ``notes`` go under the table; ``labels`` rename columns (two may share one); ``spanners``
    head several columns.
    """

    data: pd.DataFrame
    cells: dict[str, Cell]
    layout: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    bold: dict[str, str] | None = None
    italic: str | None = None
    group: str | None = None
    widths: dict[str, float] | None = None
    notes: Sequence[str] = field(default_factory=tuple)
    labels: dict[str, str] | None = None
    spanners: dict[str, list[str]] | None = None

    def label(self, column: str) -> str:
        return (self.labels or {}).get(column, str(column))

    def shown(self) -> pd.DataFrame:
        """The cells as the page shows them (Markdown ``**bold**`` / ``*italic*``)."""
        rows = self.layout(self.data) if self.layout else self.data
        records = rows.to_dict("records")  # each value keeps its own type (n stays an int)
        out = pd.DataFrame({name: [_cell(cell, r) for r in records]
                            for name, cell in self.cells.items()}, columns=list(self.cells))
        for name, flag in (self.bold or {}).items() if records else ():
            out[name] = [bold(str(v)) if b else v
                         for v, b in zip(out[name], rows[flag].eq(True), strict=True)]
        if self.italic and records:  # the row's cells; its group heading stays upright
            for name in (c for c in out.columns if c != self.group):
                out[name] = [_italic(v) if f else v
                             for v, f in zip(out[name], rows[self.italic].eq(True), strict=True)]
        return out

    def markdown(self) -> str:
        """A pipe table (notebooks, plain-text checks); the report uses :meth:`html`."""
        shown = self.shown()
        if shown.empty:
            return "_No runs for this table yet._"
        return shown.to_markdown(index=False)

    def column_widths(self, shown: pd.DataFrame | None = None) -> dict[str, str]:
        """Percent widths that sum to 100: given ``widths``, else from the longest cell."""
        shown = self.shown() if shown is None else shown
        columns = [c for c in shown.columns if c != self.group]
        if self.widths:
            raw = {c: float(self.widths.get(c, 1.0)) for c in columns}
        else:
            raw = {}
            for c in columns:
                cells = [len(_plain(str(v))) for v in shown[c]]
                head = max((len(w) for w in str(c).split()), default=1)
                raw[c] = float(min(max([head, *cells, 3]), 34))
        total = sum(raw.values())
        return {c: f"{100 * w / total:.1f}%" for c, w in raw.items()}

    def gt(self, shown: pd.DataFrame | None = None):
        """The great_tables object (HTML; Quarto converts it for Typst, widths included).

        Column labels and row-group headings are bold through ``<strong>`` in the cell, not
        through great_tables' ``*_font_weight`` options: those are CSS, and Quarto < 1.8
        drops ``font-weight`` when it turns an HTML table into a Typst one (Quarto 1.8 added
        it, quarto-cli#12554), while ``<strong>`` becomes ``#strong[...]`` in every version.
        """
        # deferred: great_tables imports its HTML stack; tables are built without it
        from great_tables import GT, html, loc, md

        frame = (self.shown() if shown is None else shown).copy()
        for c in frame.columns:
            frame[c] = frame[c].map(lambda v: MISSING if is_missing(v) else str(v))
        gt = GT(frame, groupname_col=self.group) if self.group else GT(frame)
        cols = [c for c in frame.columns if c != self.group]
        gt = gt.fmt_markdown(columns=cols).cols_width(self.column_widths(frame))
        gt = gt.cols_label(cases={c: html(_strong(escape(self.label(c)))) for c in cols})
        for name, columns in (self.spanners or {}).items():
            gt = gt.tab_spanner(label=html(_strong(escape(name))), columns=columns)
        if self.group:  # a row-group label reaches the transform as HTML already (escaped)
            gt = gt.text_transform(loc.row_groups(), _strong)
        gt = gt.tab_options(table_width="100%", table_font_size=FONT_SIZE,
                            data_row_padding="3px", row_group_padding="3px",
                            source_notes_font_size="12px")
        for note in self.notes:
            gt = gt.tab_source_note(md(note))
        return gt

    def html(self) -> str:
        """great_tables HTML without its font list: the table then uses the page's font in
        HTML and the document's in Typst (which warns about every web font it lacks).

        great_tables (1.1) cannot leave the list out (``table_font_names=[]`` writes an empty
        ``font-family: ;``), so the declaration is removed from its CSS here.
        """
        shown = self.shown()
        if shown.empty:
            return "<p><em>No runs for this table yet.</em></p>"
        html = re.sub(r"font-family:[^;]*;", "", self.gt(shown).as_raw_html(), count=1)
        spanned = {c: name for name, cols in (self.spanners or {}).items() for c in cols}
        labels = [f"{spanned[c]} {self.label(c)}" if c in spanned else self.label(c)
                  for c in shown.columns if c != self.group]
        return _with_data_labels(html, labels)

    def _repr_html_(self) -> str:
        return self.html()

    def csv_frame(self) -> pd.DataFrame:
        """``data`` without the page's own rows and ``_`` columns: what :meth:`save` writes."""
        data = self.data
        if SHOWN_ONLY in data.columns:
            data = data[~data[SHOWN_ONLY].eq(True)]
        return data.drop(columns=[c for c in data.columns if str(c).startswith("_")])

    def save(self, output_dir: str | os.PathLike, name: str) -> Path:
        """Write ``<output_dir>/tables/<name>.csv`` (:meth:`csv_frame`) and return its path."""
        return save_csv(self.csv_frame(), output_dir, name)


def _cell(cell: Cell, row: dict[str, Any]) -> Any:
    return row[cell] if isinstance(cell, str) else cell(row)


def _with_data_labels(html: str, labels: Sequence[str]) -> str:
    """``data-label="<column>"`` on every body cell (``<td>``), in column order.

    great_tables (1.1) has no per-cell attributes (its styles are CSS only), so the labels are
    written into its HTML here.
    """
    def row(match: re.Match) -> str:
        cells = iter(labels)
        return re.sub(r"<td\b", lambda _: f'<td data-label="{escape(next(cells, ""))}"',
                      match.group(0))

    def body(match: re.Match) -> str:
        return re.sub(r"<tr\b[^>]*>(?:(?!</tr>).)*</tr>", row, match.group(0), flags=re.S)

    return re.sub(r"<tbody\b.*?</tbody>", body, html, flags=re.S)


def _strong(label_html: str) -> str:
    return f"<strong>{label_html}</strong>"


def _italic(value: Any) -> Any:
    """The floor row's cells: ``*0.500*``; an empty or missing cell stays as it is."""
    return f"*{value}*" if isinstance(value, str) and value and value != MISSING else value


def _plain(text: str) -> str:
    return text.replace("**", "").replace("*", "")


def save_csv(frame: pd.DataFrame, output_dir: str | os.PathLike, name: str) -> Path:
    """Write ``<output_dir>/tables/<name>.csv`` and return its path."""
    folder = Path(output_dir) / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    frame.to_csv(path, index=False)
    return path

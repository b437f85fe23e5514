"""The analysis notebook on a synthetic runs folder, and the Quarto report that embeds it.

The notebook really runs (papermill, kernel nlpdl-report); its tables are checked against
values computed here from the runs' metrics.json with the statistics module.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import shutil
import statistics
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml

from conftest import lists_render_as_lists
from helpers.grid.spec import load_grid
from helpers.report import bootstrap, formats, load
from helpers.report import build as reporting
from helpers.run.store import RunStore
from helpers.testing import synthetic

ROOT = reporting.PROJECT_ROOT
EMBED = re.compile(r"\{\{<\s*embed\s+([^#\s]+)#([^\s>]+)[^>]*>\}\}")
REF = re.compile(r"(?<![\w@])@((?:fig|tbl)-[A-Za-z0-9_-]+)")
LABEL = re.compile(r"^#\|\s*label:\s*(\S+)", re.M)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    store = RunStore(root / "runs")
    grid = root / "grid.yaml"
    grid.write_text(yaml.safe_dump({
        "description": "synthetic test grid",
        "defaults": {"num_train_epochs": 3},
        "matrix": [{"model": ["roberta-base", "bert-base-uncased"],
                    "dataset": ["restaurant_sup", "acl_sup", "agnews_sup"],
                    "method": "full", "seed": [1, 2, 3]},
                   {"model": "roberta-base", "dataset": "acl_sup", "method": "lora",
                    "seed": [1, 2, 3]}]}))
    # the grid's runs but agnews_sup (planned, not run), and a run of another grid
    synthetic.write_grid_runs(load_grid(grid).select(["dataset=restaurant_sup",
                                                      "dataset=acl_sup"]), store)
    synthetic.write_synthetic_runs(store, [("roberta-base", "acl_sup", "adapter")],
                                  seeds=(1,))
    stale = root / "build" / "tables" / "table9_gone.csv"  # of an older build: must go
    stale.parent.mkdir(parents=True)
    stale.write_text("a\n1\n")
    (root / "build" / "analysis.ipynb").write_text("{}")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = reporting.build(store, grid, root / "build", render=True)
    assert code == 0
    assert not stale.exists()
    assert sorted(p.name for p in root.iterdir()) == ["build", "grid.yaml", "runs"]
    executed = root / "build" / "analysis.ipynb"
    return {"root": root, "runs": store.root, "nb": nbformat.read(executed, as_version=4),
            "executed": executed, "stderr": err.getvalue()}


def labelled_cells(nb) -> dict[str, nbformat.NotebookNode]:
    cells = {}
    for cell in nb.cells:
        if cell.cell_type == "code":
            for label in LABEL.findall(cell.source):
                cells[label] = cell
    return cells


def markdown_output(cell) -> str:
    return "".join(o["data"]["text/markdown"] for o in cell.outputs
                   if "text/markdown" in o.get("data", {}))


def html_output(cell) -> str:
    return "".join(o["data"]["text/html"] for o in cell.outputs
                   if "text/html" in o.get("data", {}))


CROSSREF_DIV = re.compile(r"^::: \{#((?:tbl|fig)-[A-Za-z0-9_-]+)\}\n(.*?)^:::$", re.M | re.S)


def crossref_divs(nb) -> dict[str, str]:
    """``{#tbl-...}`` divs of the notebook's Markdown outputs (one cell's variable number of
    tables, e.g. Task 2's per dataset): id -> the div's content."""
    return {i: body for cell in nb.cells if cell.cell_type == "code"
            for i, body in CROSSREF_DIV.findall(markdown_output(cell))}


class _TableParser(HTMLParser):
    """Header cells and body rows of a great_tables table (bold/italic kept as ** / *)."""

    def __init__(self) -> None:
        super().__init__()
        self.header: list[str] = []
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self._in_head = False

    def handle_starttag(self, tag, attrs):
        if tag == "thead":
            self._in_head = True
        elif tag == "tr" and not self._in_head:
            self.rows.append([])
        elif tag in ("th", "td"):
            self._cell = []
        elif tag == "strong" and self._cell is not None and not self._in_head:
            self._cell.append("**")
        elif tag == "em" and self._cell is not None:
            self._cell.append("*")

    def handle_endtag(self, tag):
        if tag == "thead":
            self._in_head = False
        elif tag in ("th", "td") and self._cell is not None:
            text = "".join(self._cell).strip()
            (self.header if self._in_head else self.rows[-1]).append(text)
            self._cell = None
        elif tag == "strong" and self._cell is not None and not self._in_head:
            self._cell.append("**")
        elif tag == "em" and self._cell is not None:
            self._cell.append("*")

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse_table(html: str) -> list[dict[str, str]]:
    """Body rows as dicts keyed by header (row-group heading rows are left out)."""
    p = _TableParser()
    p.feed(html)
    return [dict(zip(p.header, (c.replace("\xa0", " ") for c in row), strict=True))
            for row in p.rows if len(row) == len(p.header)]


def expected(runs_dir: Path, model: str, dataset: str, metric: str) -> tuple[list[float], str]:
    values = []
    for folder in runs_dir.iterdir():
        if not (folder / "metrics.json").is_file():
            continue
        cfg = json.loads((folder / "config.json").read_text())
        if (cfg["model"], cfg["dataset"], cfg["method"]) == (model, dataset, "full"):
            m = json.loads((folder / "metrics.json").read_text())
            values.append(m["train_loss"] if metric == "train_loss" else m["test"][metric])
    return values, f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def reported_predictions(runs_dir: Path, model: str, dataset: str) -> pd.DataFrame:
    """Each seed's full fine-tuning test predictions at its best epoch (metrics.json)."""
    frames = []
    for folder in runs_dir.iterdir():
        if (folder / "metrics.json").is_file():
            cfg = json.loads((folder / "config.json").read_text())
            if (cfg["model"], cfg["dataset"], cfg["method"]) == (model, dataset, "full"):
                best = json.loads((folder / "metrics.json").read_text())["best_epoch"]
                p = pd.read_csv(folder / "predictions.csv.gz")
                frames.append(p[(p["split"] == "test") & (p["epoch"] == best)]
                              .assign(seed=cfg["seed"]))
    return pd.concat(frames, ignore_index=True)


def test_notebook_tables_match_independent_statistics(built):
    cells = labelled_cells(built["nb"])
    divs = crossref_divs(built["nb"])
    assert list(divs)[:3] == ["tbl-ft-restaurant", "tbl-ft-acl", "tbl-ft-agnews"]
    assert "ACL-ARC citation intents" in divs["tbl-ft-acl"]  # the registry's title
    assert "task2-tables" in cells
    rows = parse_table(divs["tbl-ft-acl"])
    by_model = {load.display_model(r["model"]): r for r in rows
                if r["model"] != "*majority class*"}
    assert set(by_model) == {"RoBERTa-base", "BERT-base"}
    assert rows[-1]["model"] == "*majority class*"  # the baseline row
    means = {}
    for model in ("RoBERTa-base", "BERT-base"):
        hub = {"RoBERTa-base": "roberta-base", "BERT-base": "bert-base-uncased"}[model]
        values, text = expected(built["runs"], hub, "acl_sup", "macro_f1")
        assert by_model[model]["macro-F1"].strip("*") == text
        assert by_model[model]["n"] == str(len(values)) == "3"
        _, loss = expected(built["runs"], hub, "acl_sup", "train_loss")
        assert by_model[model]["train loss"].strip("*") == loss
        means[model] = statistics.mean(values)
    # the stated rule: bold only the highest mean, and only when its 95% interval (the paired
    # bootstrap over the test predictions, read here from the run folders) excludes zero
    best = max(means, key=means.get)
    other = min(means, key=means.get)
    hub = {"RoBERTa-base": "roberta-base", "BERT-base": "bert-base-uncased"}
    a, b = (reported_predictions(built["runs"], hub[m], "acl_sup") for m in (best, other))
    iv = bootstrap.paired_difference(a, b, "macro_f1")
    assert by_model[best]["macro-F1"].startswith("**") == (iv.low > 0 or iv.high < 0)
    assert not by_model[other]["macro-F1"].startswith("**")
    # agnews_sup is planned by the grid but has no runs: every cell a dash, n = 0
    for row in parse_table(divs["tbl-ft-agnews"])[:-1]:
        assert row["accuracy"] == formats.MISSING and row["n"] == "0"


def test_notebook_writes_csvs_figures_and_banner(built):
    build = built["root"] / "build"
    for name in ("task2_restaurant_sup", "task2_acl_sup", "task2_agnews_sup", "table3_peft",
                 "per_seed", "paired_comparison", "hyperparameters", "original_comparison",
                 "memory_accounting", "memory_vs_original", "memory_overview",
                 "per_class_f1", "per_class_f1_table"):
        assert (build / "tables" / f"{name}.csv").stat().st_size > 0, name
    for name in ("figure1_learning_curves", "figure2_peft_curves", "figure3_per_seed",
                 "figure4_memory_components", "figure5_confusion"):
        for ext in ("png", "svg"):
            assert (build / "figures" / f"{name}.{ext}").stat().st_size > 0
    banner = markdown_output(labelled_cells(built["nb"])["banner"])
    assert "grid.yaml" in banner and "RoBERTa-base" in banner and "cpu" in banner
    # the run of another grid is named, and in no table
    assert "left out" in banner and "`roberta-base__acl_sup__adapter__s1__" in banner
    with open(build / "tables" / "table3_peft.csv", newline="") as fh:
        peft = {(r["dataset"], r["method"]): r["n"] for r in csv.DictReader(fh)}
    # the adapter run is of another grid: no row (the table lists the build's methods)
    assert ("acl_sup", "adapter") not in peft and peft[("acl_sup", "lora")] == "3"
    html = (build / "analysis.html").read_text()
    assert "Where these numbers come from" in html and "<table" in html


def test_source_notebook_is_committed_without_outputs():
    nb = nbformat.read(reporting.NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    for name in ("runs_dir", "grid", "output_dir"):
        assert re.search(rf"^{name} = ", params[0].source, re.M)
    assert nb.metadata["kernelspec"]["name"] == reporting.KERNEL


def qmd_files() -> list[Path]:
    return sorted((ROOT / "report").glob("**/*.qmd"))


def test_every_embed_resolves_to_a_labelled_cell_with_outputs(built):
    cells = labelled_cells(built["nb"])
    embeds = [(q, path, ids) for q in qmd_files() for path, ids in EMBED.findall(q.read_text())]
    assert len(embeds) >= 10
    for qmd, path, ids in embeds:
        assert (qmd.parent / path).resolve() == reporting.EXECUTED_NOTEBOOK.resolve(), path
        for label in ids.split(","):
            assert label in cells, f"{qmd.name}: embed #{label} has no labelled cell"
            outputs = cells[label].outputs
            assert outputs, f"cell {label} has no outputs in the executed notebook"
            kinds = {k for o in outputs for k in o.get("data", {})}
            if label.startswith("fig-"):
                assert "image/png" in kinds, label
            elif label.startswith("tbl-"):
                assert "<table" in html_output(cells[label]), label
            else:  # generated prose: lists must follow a blank line to render as lists
                text = markdown_output(cells[label])
                assert text.strip(), label
                assert lists_render_as_lists(text), label
            assert not any(o.get("output_type") == "error" for o in outputs)


def test_every_cross_reference_has_an_embedded_label(built):
    cells = labelled_cells(built["nb"])
    divs: dict[str, str] = {}
    for label, cell in cells.items():  # a cell's Markdown may hold several {#tbl-...} divs
        divs.update({i: label for i, _ in CROSSREF_DIV.findall(markdown_output(cell))})
    labels = set(cells) | set(divs)
    for qmd in qmd_files():
        text = qmd.read_text()
        embedded = {i for _, ids in EMBED.findall(text) for i in ids.split(",")}
        embedded |= {i for i, label in divs.items() if label in embedded}
        refs = set(REF.findall(text))
        assert refs, qmd
        assert refs <= labels, f"{qmd.name}: no label for {sorted(refs - labels)}"
        assert refs <= embedded, f"{qmd.name}: referenced but not embedded: " \
                                 f"{sorted(refs - embedded)}"


def test_quarto_project_config():
    config = yaml.safe_load((ROOT / "_quarto.yml").read_text())
    assert {"html", "typst"} <= set(config["format"])
    project = config["project"]
    assert project["render"] == ["report/index.qmd"]  # never runs/**/train.ipynb or notebooks/
    # Quarto empties output-dir on render: it must not hold the embedded notebook
    out = (ROOT / project["output-dir"]).resolve()
    assert out == reporting.QUARTO_OUTPUT_DIR.resolve()
    assert out not in reporting.EXECUTED_NOTEBOOK.resolve().parents
    assert config["execute"]["enabled"] is False


def test_missing_quarto_is_explained_else_any_output_dir_renders(built):
    """The render was skipped unless --output-dir was build/ (issue 21, item 7): index.qmd
    embeds ../build/analysis.ipynb."""
    report = built["root"] / "build" / "report" / "report"
    if reporting.quarto_path() is None:
        assert "pip install quarto-cli" in built["stderr"]
        assert "environment.yml" in built["stderr"]
        assert not report.exists()
    else:
        assert "<table" in (report / "index.html").read_text()
        assert (report / "index.pdf").read_bytes()[:4] == b"%PDF"


def test_quarto_renders_html_and_pdf(built, tmp_path):
    quarto = reporting.quarto_path()
    if quarto is None:
        pytest.skip("quarto is not on PATH (install: conda-forge quarto via environment.yml, "
                    "or pip install quarto-cli)")
    project = tmp_path / "project"
    shutil.copytree(ROOT / "report", project / "report")
    shutil.copy(ROOT / "_quarto.yml", project / "_quarto.yml")
    (project / "build").mkdir()
    shutil.copy(built["executed"], project / "build" / "analysis.ipynb")
    subprocess.run([quarto, "render", "-M", "keep-typ:true"], cwd=project, check=True)
    html = (project / "build" / "report" / "report" / "index.html").read_text()
    pdf = project / "build" / "report" / "report" / "index.pdf"
    assert "<table" in html and "<img" in html and "What this report corrects" in html
    assert "Where these numbers come from" in html and "In brief." in html
    assert "Conclusion" in html and "TOC-body" in html  # the table of contents on a phone too
    assert re.search(r'<a href="index\.pdf"[^>]*>.*?PDF</a>', html, re.S)  # "PDF", not "Typst"
    # the notebook preview's "Download Notebook" button links to a file that exists
    preview = project / "build" / "report" / "build" / "analysis-preview.html"
    if preview.is_file():
        for href in re.findall(r'href="([^"]+\.ipynb)"', preview.read_text()):
            assert (preview.parent / href).is_file(), href
    typ = list((project / "build").rglob("*.typ")) + list(project.rglob("index.typ"))
    assert typ
    for t in typ:  # every table has explicit widths (auto widths overlapped in the PDF)
        assert "columns: (" in t.read_text() and not re.search(r"columns: \d+,", t.read_text())
    report_typ = (project / "report" / "index.typ").read_text()
    # row-group headings (full-width cells) and column labels are bold in the PDF too
    groups = re.findall(r"table\.cell\([^()]*colspan: \d+, fill[^\n]*?\)\)\)\[(.*)\],\n",
                        report_typ)
    assert groups and all("#strong[" in g for g in groups), groups
    headers = re.findall(r"table\.header\((.*)\n", report_typ)
    assert headers and all(h.count("#strong[") == h.count("table.cell(") for h in headers)
    # figures float in the page's flow, not inside a #block[] they cannot leave (that left
    # the rest of a page blank whenever a figure moved on to the next page)
    assert 'kind: "quarto-float-fig"' in report_typ
    assert not re.search(r"#block\[\s*#figure\(", report_typ)
    assert pdf.read_bytes()[:4] == b"%PDF" and pdf.stat().st_size > 20_000
    # tables are kept whole and float (report/typst-show.typ), their notes printed once
    assert "table.footer(repeat: false)" in report_typ and "<float-anchor>" in report_typ

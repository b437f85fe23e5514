"""Done-when of issue 28: a grid with a fourth dataset (laptop_sup) and a fourth method (IA3)
builds the report's analysis with a Task 2 table per dataset, the datasets named by their
registry titles, every method named in the text and a memory section without errors."""

from __future__ import annotations

import re

import nbformat
import pytest
import yaml

from helpers.grid.spec import load_grid
from helpers.report import build as reporting
from helpers.run import methods, sources
from helpers.run.store import RunStore
from helpers.testing import synthetic

DATASETS = ("restaurant_sup", "laptop_sup", "acl_sup", "agnews_sup")
METHODS = ("full", "adapter", "lora", "ia3")
DIV = re.compile(r"^::: \{#(tbl-ft-[a-z-]+)\}\n(.*?)^:::$", re.M | re.S)


def markdown(cell) -> str:
    return "".join(o["data"]["text/markdown"] for o in cell.outputs
                   if "text/markdown" in o.get("data", {}))


@pytest.mark.slow
def test_four_datasets_and_four_methods_build(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"matrix": [
        {"model": ["roberta-base", "bert-base-uncased"], "dataset": list(DATASETS),
         "method": "full", "seed": [1, 2, 3]},
        {"model": "roberta-base", "dataset": list(DATASETS), "method": list(METHODS[1:]),
         "seed": [1, 2, 3]}]}))
    store = RunStore(tmp_path / "runs")
    synthetic.write_grid_runs(load_grid(grid), store)
    assert reporting.build(store, grid, tmp_path / "build", render=False) == 0

    nb = nbformat.read(tmp_path / "build" / "analysis.ipynb", as_version=4)
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
                if o.get("output_type") == "error"]
    text = "\n".join(markdown(c) for c in nb.cells if c.cell_type == "code")
    divs = dict(DIV.findall(text))
    # a Task 2 table per dataset, in the registry's order, each captioned with its title
    assert list(divs) == ["tbl-ft-restaurant", "tbl-ft-laptop", "tbl-ft-acl", "tbl-ft-agnews"]
    for dataset, body in zip(DATASETS, divs.values(), strict=True):
        assert sources.title(dataset) in body and "<table" in body
    assert "(laptop_sup;" not in text and sources.title("laptop_sup") in text
    # every method is named in the text (outside the tables)
    prose = DIV.sub("", text)
    for name in METHODS[1:]:
        assert methods.METHODS[name].in_prose in prose, name
    # the memory section rendered (IA3 is not accounted: not in the memory table)
    cells = {re.match(r"#\| label: (\S+)", c.source).group(1): c for c in nb.cells
             if c.cell_type == "code" and c.source.startswith("#| label:")}
    for label in ("memory-intro", "memory-explanation", "tbl-memory"):
        assert cells[label].outputs, label
    memory_csv = (tmp_path / "build" / "tables" / "memory_accounting.csv").read_text()
    assert "ia3" not in memory_csv and "lora" in memory_csv

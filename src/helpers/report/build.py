"""``python -m helpers report``: runs folder -> executed analysis notebook -> Quarto report.

``make report`` runs the grid first (``python -m helpers grid run``), then this:

1. papermill executes ``notebooks/analysis.ipynb`` into ``build/analysis.ipynb`` (kernel
   ``nlpdl-report``); the notebook writes its tables (CSV) and figures (PNG, SVG) under build/;
2. nbconvert writes ``build/analysis.html``, a readable copy that needs no Quarto;
3. when ``quarto`` is on PATH, ``quarto render`` builds the report (``report/index.qmd``,
   HTML and Typst PDF) into ``build/report/``. It embeds the labelled cells of
   ``build/analysis.ipynb`` as they are (Quarto does not execute .ipynb files), so the report
   shows exactly what step 1 computed. Quarto empties its output-dir on every render, which
   is why that is ``build/report`` and not ``build/`` itself, where the notebook lives.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from helpers.settings import (
    ANALYSIS_NOTEBOOK,
    KERNEL_NAME,
    PROJECT_ROOT,
    kernel_options,
    project_path,
)

NOTEBOOK = ANALYSIS_NOTEBOOK
#: Where the report's ``{{< embed >}}`` shortcodes look (report/index.qmd: ../build/...).
EXECUTED_NOTEBOOK = PROJECT_ROOT / "build" / "analysis.ipynb"
REPORT_SOURCE = PROJECT_ROOT / "report" / "index.qmd"
#: _quarto.yml's project.output-dir; a source keeps its folder below it.
QUARTO_OUTPUT_DIR = PROJECT_ROOT / "build" / "report"
REPORT_OUTPUTS = (QUARTO_OUTPUT_DIR / "report" / "index.html",
                  QUARTO_OUTPUT_DIR / "report" / "index.pdf")
KERNEL = KERNEL_NAME
QUARTO_INSTALL_HINT = (
    "quarto is not on PATH, so the Quarto report (HTML + PDF) was not rendered. Install "
    "Quarto >= 1.7: `conda env create -f environment.yml` (conda-forge `quarto`), or "
    "`pip install quarto-cli` into .venv, or https://quarto.org/docs/get-started/ ; then run "
    "`make report` again. The executed analysis notebook and its HTML are in {build}.")


def execute_analysis(runs_dir: str | os.PathLike = "runs",
                     grid: str | os.PathLike | None = "params/cpu.yaml",
                     output_dir: str | os.PathLike = "build", kernel: str = KERNEL,
                     progress: bool = True, grid_set: dict | None = None) -> Path:
    """Execute the analysis notebook with papermill; return the executed copy's path.
    ``grid_set``: the ``--set`` overrides the grid ran with (they change its run ids)."""
    import papermill  # deferred: papermill's import takes a second; --help needs none

    out = project_path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    executed = out / "analysis.ipynb"
    params = {"runs_dir": str(project_path(runs_dir)), "output_dir": str(out),
              "grid": str(project_path(grid)) if grid else None, "grid_set": grid_set or {}}
    papermill.execute_notebook(str(NOTEBOOK), str(executed), parameters=params,
                               kernel_name=kernel, cwd=str(PROJECT_ROOT),
                               progress_bar=progress, **kernel_options())
    return executed


def notebook_html(executed: str | os.PathLike) -> Path:
    """nbconvert HTML of the executed notebook (what to read when Quarto is missing)."""
    # deferred: nbconvert's import takes seconds
    import nbformat
    from nbconvert import HTMLExporter

    executed = Path(executed)
    nb = nbformat.read(executed, as_version=4)
    body, _ = HTMLExporter().from_notebook_node(nb)
    html = executed.with_suffix(".html")
    html.write_text(body, encoding="utf-8")
    return html


def quarto_path() -> str | None:
    return shutil.which("quarto")


def render_report() -> list[Path]:
    """``quarto render`` at the project root (formats and output-dir from _quarto.yml)."""
    quarto = quarto_path()
    if quarto is None:
        raise FileNotFoundError("quarto is not on PATH")
    if not EXECUTED_NOTEBOOK.is_file():
        raise FileNotFoundError(f"{EXECUTED_NOTEBOOK} is missing: the report embeds it; run "
                                f"`python -m helpers report` (or `make report`) first.")
    # Quarto's Jupyter support must use this project's Python (the kernel's environment).
    env = {**os.environ, "QUARTO_PYTHON": sys.executable}
    subprocess.run([quarto, "render"], cwd=PROJECT_ROOT, env=env, check=True)
    return [p for p in REPORT_OUTPUTS if p.is_file()]


def build(runs_dir: str | os.PathLike = "runs", grid: str | os.PathLike | None = None,
          output_dir: str | os.PathLike = "build", kernel: str = KERNEL,
          render: bool = True, grid_set: dict | None = None) -> int:
    """Steps 1-3 of the module docstring; returns a process exit code."""
    executed = execute_analysis(runs_dir, grid, output_dir, kernel, grid_set=grid_set)
    html = notebook_html(executed)
    print(f"executed analysis notebook: {executed}\nits HTML: {html}")
    if not render:
        return 0
    if quarto_path() is None:
        print(QUARTO_INSTALL_HINT.format(build=executed.parent), file=sys.stderr)
        return 0
    if executed.resolve() != EXECUTED_NOTEBOOK.resolve():
        print(f"not rendering the Quarto report: it embeds {EXECUTED_NOTEBOOK}, but this "
              f"notebook went to {executed} (use --output-dir build).", file=sys.stderr)
        return 0
    outputs = render_report()
    print("report: " + ", ".join(str(p) for p in outputs))
    return 0

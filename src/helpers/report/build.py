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

Any ``--output-dir DIR`` works the same way: Quarto renders a copy of the project
(``_quarto.yml`` and ``report/``) in a scratch folder, with the executed notebook where
``index.qmd`` embeds it (``../build/analysis.ipynb``), and its output goes to ``DIR/report/``.

All or nothing: the build is written to ``.DIR.building-<pid>/`` beside ``DIR`` and replaces
``DIR`` in one rename when every step succeeded. A failed build goes to ``DIR.failed/`` (its
executed notebook shows the failing cell) and leaves ``DIR`` as the last complete build was;
``DIR`` is replaced whole, so nothing of an older build (a table, the rendered report) stays
beside a newer one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from helpers.run import liveness
from helpers.run.store import RunStore
from helpers.settings import (
    ANALYSIS_NOTEBOOK,
    KERNEL_NAME,
    PROJECT_ROOT,
    REPORT_DIR,
    kernel_options,
    project_path,
)

NOTEBOOK = ANALYSIS_NOTEBOOK
#: Where the report's ``{{< embed >}}`` shortcodes look (report/index.qmd: ../build/...).
EXECUTED_NOTEBOOK = PROJECT_ROOT / "build" / "analysis.ipynb"
#: _quarto.yml's project.output-dir; a source keeps its folder below it.
QUARTO_OUTPUT_DIR = PROJECT_ROOT / "build" / "report"
REPORT_OUTPUTS = (QUARTO_OUTPUT_DIR / "report" / "index.html",
                  QUARTO_OUTPUT_DIR / "report" / "index.pdf")
KERNEL = KERNEL_NAME
#: What logs while a kernel is shut down under an interrupt (:func:`quiet_interrupt`).
QUIET_LOGGERS = ("asyncio", "tornado", "traitlets", "papermill", "nbclient", "jupyter_client",
                 "zmq")
QUARTO_INSTALL_HINT = (
    "quarto is not on PATH, so the Quarto report (HTML + PDF) was not rendered. Install "
    "Quarto >= 1.7: `conda env create -f environment.yml` (conda-forge `quarto`), or "
    "`pip install quarto-cli` into .venv, or https://quarto.org/docs/get-started/ ; then run "
    "`make report` again. The executed analysis notebook and its HTML are in {build}.")


class BuildError(RuntimeError):
    """The output folder cannot take a build; the message says why and what to do."""


class BuildInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped a build: the message says during which step, that the previous
    build is unchanged and where the stopped one is. The kernel and quarto are ended by then."""


def execute_analysis(store: RunStore,
                     grid: str | os.PathLike | None = "params/cpu.yaml",
                     output_dir: str | os.PathLike = "build", kernel: str = KERNEL,
                     progress: bool = True, grid_set: dict | None = None,
                     ablations: str | os.PathLike | None = None) -> Path:
    """Execute the analysis notebook with papermill; return the executed copy's path.
    ``grid_set``: the ``--set`` overrides the grid ran with (they change its run ids);
    ``ablations``: the ablation grid run beside it (None: none)."""
    import papermill  # deferred: papermill's import takes a second; --help needs none

    out = project_path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    executed = out / "analysis.ipynb"
    params = {"runs_dir": str(store.root), "output_dir": str(out),
              "grid": str(project_path(grid)) if grid else None, "grid_set": grid_set or {},
              "ablations": str(project_path(ablations)) if ablations else None}
    papermill.execute_notebook(str(NOTEBOOK), str(executed), parameters=params,
                               kernel_name=kernel, cwd=str(PROJECT_ROOT),
                               progress_bar=progress, **kernel_options(shutdown="immediate"))
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


def render_report(executed: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """``quarto render`` of a copy of the Quarto project in a scratch folder beside ``dest``,
    with ``executed`` where the report embeds it; Quarto's output becomes ``dest`` (the
    report itself in ``dest/report/index.{html,pdf}``). Returns the report's files."""
    quarto = quarto_path()
    if quarto is None:
        raise FileNotFoundError("quarto is not on PATH")
    executed, dest = Path(executed), Path(dest)
    if not executed.is_file():
        raise FileNotFoundError(f"{executed} is missing: the report embeds it; run "
                                f"`python -m helpers report` (or `make report`) first.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="quarto-render-", dir=dest.parent) as scratch:
        project = Path(scratch)
        shutil.copy(PROJECT_ROOT / "_quarto.yml", project / "_quarto.yml")
        shutil.copytree(REPORT_DIR, project / REPORT_DIR.name, ignore=shutil.ignore_patterns(
            "index_files", "index.typ", "*.html", "*.pdf", ".quarto"))  # earlier renders
        embedded = project / EXECUTED_NOTEBOOK.relative_to(PROJECT_ROOT)
        embedded.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(executed, embedded)
        # Quarto's Jupyter support must use this project's Python (the kernel's environment).
        env = {**os.environ, "QUARTO_PYTHON": sys.executable}
        _run_quarto([quarto, "render"], project, env)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.move(project / QUARTO_OUTPUT_DIR.relative_to(PROJECT_ROOT), dest)
    outputs = [dest / p.relative_to(QUARTO_OUTPUT_DIR) for p in REPORT_OUTPUTS]
    return [p for p in outputs if p.is_file()]


def _run_quarto(cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
    """``cmd`` in a session of its own, so that Ctrl-C reaches this process only, which ends
    quarto with everything it started (pandoc, typst), whether the signal came to this pid
    alone or to the terminal's process group."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, start_new_session=True)
    try:
        returncode = proc.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    if returncode:
        raise subprocess.CalledProcessError(returncode, cmd)


def build(store: RunStore, grid: str | os.PathLike | None = None,
          output_dir: str | os.PathLike = "build", kernel: str = KERNEL,
          render: bool = True, grid_set: dict | None = None,
          ablations: str | os.PathLike | None = None) -> int:
    """Steps 1-3 of the module docstring, into a folder swapped in on success; returns a
    process exit code."""
    final = project_path(output_dir)
    check_output_dir(final, store)
    stage = final.with_name(f".{final.name}.building-{os.getpid()}")
    failed = final.with_name(f"{final.name}.failed")
    _remove_debris(final)
    shutil.rmtree(stage, ignore_errors=True)
    quarto = quarto_path() if render else None
    step = "executing the analysis notebook"
    with quiet_interrupt():
        try:
            executed = execute_analysis(store, grid, stage, kernel, grid_set=grid_set,
                                        ablations=ablations)
            step = "writing the notebook's HTML"
            _rename_paths(executed, stage, final)
            notebook_html(executed)
            step = "rendering the report with quarto"
            outputs = render_report(executed, stage / "report") if quarto else []
        except KeyboardInterrupt:
            _keep_failed(stage, failed)
            kept = (f"{final} is unchanged (the previous build)" if final.exists()
                    else f"nothing was written to {final}")
            raise BuildInterrupted(f"stopped by Ctrl-C (SIGINT) while {step}: {kept}; the "
                                   f"stopped build is in {failed}.") from None
        except BaseException:
            _keep_failed(stage, failed)
            print(f"the failed build is in {failed} (its analysis.ipynb shows the failing "
                  f"cell); {final} is unchanged.", file=sys.stderr)
            raise
    _swap(stage, final)
    shutil.rmtree(failed, ignore_errors=True)
    print(f"executed analysis notebook: {final / 'analysis.ipynb'}\n"
          f"its HTML: {final / 'analysis.html'}")
    if render and quarto is None:
        print(QUARTO_INSTALL_HINT.format(build=final), file=sys.stderr)
    elif outputs:
        print("report: " + ", ".join(str(final / p.relative_to(stage)) for p in outputs))
    return 0


def _keep_failed(stage: Path, failed: Path) -> None:
    if stage.exists():
        shutil.rmtree(failed, ignore_errors=True)
        stage.rename(failed)


@contextlib.contextmanager
def quiet_interrupt() -> Iterator[None]:
    """Ctrl-C ends the build with one line (:class:`BuildInterrupted`), not the tracebacks
    of the kernel's and quarto's shutdown: from the first SIGINT on, further ones are ignored
    until the build has cleaned up, and jupyter's, zmq's and asyncio's loggers are silenced
    (papermill shuts the kernel down as the interrupt unwinds through it)."""
    def interrupt(signum: int, frame: object) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for name in QUIET_LOGGERS:
            logging.getLogger(name).disabled = True
        raise KeyboardInterrupt

    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGINT) if main else None
    if main and before is signal.default_int_handler:  # left alone: ignored or a caller's own
        signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        if main and before is signal.default_int_handler:
            signal.signal(signal.SIGINT, before)


def check_output_dir(final: Path, store: RunStore | None) -> None:
    """A BuildError unless ``final`` may be replaced by a build: new, empty, or a build."""
    resolved = final.resolve()
    if resolved == PROJECT_ROOT.resolve() or resolved in PROJECT_ROOT.resolve().parents:
        raise BuildError(f"--output-dir {final} holds the project; choose a folder of its "
                         f"own (default build).")
    if store is not None and (resolved == store.root.resolve()
                              or resolved in store.root.resolve().parents):
        raise BuildError(f"--output-dir {final} holds the runs folder {store}; a build "
                         f"replaces its folder whole: choose another.")
    if final.exists() and not final.is_dir():
        raise BuildError(f"--output-dir {final} is a file, not a folder.")
    if final.is_dir() and any(final.iterdir()) and not (final / "analysis.ipynb").exists():
        raise BuildError(f"--output-dir {final} is not a report build (no analysis.ipynb) "
                         f"and not empty; a build replaces its folder whole: choose a new or "
                         f"empty folder.")


def _rename_paths(executed: Path, stage: Path, final: Path) -> None:
    """The executed notebook's parameters name the folder it will be in, not the stage."""
    text = executed.read_text(encoding="utf-8")
    old, new = json.dumps(str(stage))[1:-1], json.dumps(str(final))[1:-1]
    executed.write_text(text.replace(old, new), encoding="utf-8")


def _swap(stage: Path, final: Path) -> None:
    """Put the complete build ``stage`` at ``final``, the previous build out of the way."""
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        stage.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        stage.rename(final)


def _remove_debris(final: Path) -> None:
    """Stages and old builds that a killed build left beside ``final``."""
    for d in final.parent.glob(f".{final.name}.*-*"):
        kind, _, pid = d.name[len(final.name) + 2:].rpartition("-")
        if kind in ("building", "old") and pid.isdigit() and not liveness.pid_alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)

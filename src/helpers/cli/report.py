"""``report`` (execute the analysis notebook, render the Quarto report) and ``rehearse-hub``
(an offline Hugging Face cache of random-initialised report models)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from helpers.run.catalog import REPORT_MODELS
from helpers.settings import KERNEL_NAME, cli_path, not_found, project_path

REPORT_DOC = """\
Runs folder -> executed analysis notebook -> Quarto report (see helpers.report.build):
papermill executes notebooks/analysis.ipynb into <output-dir>/analysis.ipynb (tables as CSV,
figures as PNG and SVG beside it), nbconvert writes its HTML, and when quarto is on PATH,
quarto render builds the report (HTML and Typst PDF) into <output-dir>/report/. The build is
made beside <output-dir> and replaces it only when every step succeeded; a failed one is left
in <output-dir>.failed/. Relative paths: from the current directory when they exist there,
else from the project root."""
HUB_DOC = ("A Hugging Face cache of random-initialised stand-ins for the report's three Hub "
           "models (helpers.testing.hub), laid out as a download leaves it. Then: HF_HOME=DIR "
           "HF_HUB_OFFLINE=1 make report GRID=params/full.yaml DEVICES=0")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    add_report_parser(sub)
    add_hub_parser(sub)


def _report(args: argparse.Namespace) -> int:
    """Ctrl-C (SIGINT) at any moment: one line saying what it stopped, exit 130."""
    try:
        return _build(args)
    except KeyboardInterrupt as e:  # helpers.report.build.BuildInterrupted says which step
        print(str(e) or "stopped by Ctrl-C (SIGINT) before the build began: nothing was "
              "changed.", file=sys.stderr)
        return 130


def _build(args: argparse.Namespace) -> int:
    # deferred, here and in _hub: pandas and torch load only for the command that needs them
    from helpers.grid.spec import GridError, check_fields, parse_overrides
    from helpers.report.build import BuildError, build
    from helpers.report.load import AnalysisError
    from helpers.run.store import RunStore

    try:
        store = RunStore.at(cli_path(args.runs_dir))
        grid = cli_path(args.grid) if args.grid else None
        if store.root.is_file():
            raise FileNotFoundError(f"Runs folder {store} is a file, not a "
                                    f"folder; pass the folder the runs are in (--runs-dir).")
        if not store.root.is_dir():
            raise FileNotFoundError(not_found("Runs folder", args.runs_dir))
        if grid is not None and not project_path(grid).is_file():
            raise FileNotFoundError(not_found("Grid file", args.grid))
        grid_set = check_fields("--set", parse_overrides(args.overrides))
        ablations = _ablations(args.ablations, grid)
        return build(store, grid, cli_path(args.output_dir), args.kernel,
                     render=not args.no_render, grid_set=grid_set, ablations=ablations)
    except (AnalysisError, BuildError, FileNotFoundError, GridError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as e:
        print(f"error: quarto render failed (exit {e.returncode}); see its output above.",
              file=sys.stderr)
        return e.returncode or 1
    except Exception as e:  # papermill's PapermillExecutionError names the failing cell
        if type(e).__name__ == "PapermillExecutionError":
            print(f"error: the analysis notebook failed: {e}", file=sys.stderr)
            return 1
        raise


def _ablations(arg: str | None, grid: Path | None) -> Path | None:
    """``--ablations``: the given file (it must exist), none for '', else the grid's
    ``-ablations.yaml`` sibling when there is one."""
    if arg is not None:
        if not arg.strip():
            return None
        path = cli_path(arg)
        if not project_path(path).is_file():
            raise FileNotFoundError(not_found("Ablation grid file", arg))
        return path
    if grid is None:
        return None
    sibling = project_path(grid).with_name(f"{project_path(grid).stem}-ablations.yaml")
    return sibling if sibling.is_file() else None


def add_report_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="execute the analysis notebook and render the report",
                       description=REPORT_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grid", default="params/cpu.yaml",
                   help="the grid the runs come from: the report reads its runs only, and names "
                        "the other runs of the folder (default %(default)s)")
    p.add_argument("--ablations", default=None,
                   help="the ablation grid run beside it, for \"What each error cost\" "
                        "(default: GRID's name with -ablations.yaml when that exists; '' for "
                        "none)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="the --set values the grid ran with (they change its run ids; "
                        "make report passes those of GRID_ARGS)")
    p.add_argument("--runs-dir", default="runs", help="runs folder (default %(default)s)")
    p.add_argument("--output-dir", default="build",
                   help="executed notebook, tables, figures (default %(default)s)")
    p.add_argument("--kernel", default=KERNEL_NAME, help="Jupyter kernel (default %(default)s)")
    p.add_argument("--no-render", action="store_true",
                   help="only execute the notebook and write its HTML")
    p.set_defaults(func=_report)


def add_hub_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rehearse-hub", help="write a HF cache of random-init stand-ins of the "
                       "report's models (offline GPU rehearsal)",
                       description=HUB_DOC)
    p.add_argument("dir", help="the cache folder to use as HF_HOME")
    p.add_argument("--model", dest="models", action="append", choices=REPORT_MODELS,
                   help="repeatable (default: all three)")
    p.add_argument("--tiny", action="store_true", help="tiny architectures (tests, CPU)")
    p.add_argument("--tokenizer", default=None, help="a saved uncased WordPiece tokenizer "
                   "folder (default: the packaged MiniLM's)")
    p.set_defaults(func=_hub)


def _hub(args: argparse.Namespace) -> int:
    # deferred: writing the cache loads torch and transformers
    from helpers.run.errors import ModelError
    from helpers.testing.hub import write_hub

    try:
        snaps = write_hub(args.dir, tuple(args.models or REPORT_MODELS), tiny=args.tiny,
                          tokenizer=args.tokenizer)
    except (ModelError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for s in snaps:
        print(s)
    print(f"use it with: HF_HOME={Path(args.dir).absolute()} HF_HUB_OFFLINE=1")
    return 0


"""``nlpdl-report ...`` (also ``python -m helpers ...``): one training run, data info and
downloads, the grid runner, the report, and the offline GPU rehearsal's model cache.

The argparse of every subcommand lives here, one module per stage; each calls into the stage
and turns its errors into one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from . import grid, report, train


def build_parser() -> argparse.ArgumentParser:
    # the console command and `python -m helpers` are one CLI; --help names the one typed
    prog = "nlpdl-report" if sys.argv[0].endswith("nlpdl-report") else "python -m helpers"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    train.add_parsers(sub)
    grid.add_parser(sub)
    grid.add_runs_parser(sub)
    report.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)

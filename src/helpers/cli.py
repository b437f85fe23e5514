"""``python -m helpers ...``: data info/fetch, the grid runner, the report and the offline
GPU rehearsal's model cache."""

from __future__ import annotations

import argparse
import sys


def _data(args: argparse.Namespace) -> int:
    from . import data

    try:
        if args.action == "info":
            print(data.info(args.name, args.data_dir))
        else:
            folder = data.fetch(args.name, args.data_dir)
            print(f"{args.name}: files in {folder}")
    except data.DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpers", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("data", help="dataset info and downloads")
    p.add_argument("action", choices=["info", "fetch"])
    p.add_argument("name", help="dataset name, e.g. restaurant_sup")
    p.add_argument("--data-dir", default=None, help="data folder (default: $NLPDL_DATA_DIR "
                   "or ./data)")
    p.set_defaults(func=_data)

    from .gridrun import add_parser as add_grid_parser

    add_grid_parser(sub)

    from .reporting import add_parser as add_report_parser

    add_report_parser(sub)

    from .rehearsal import add_parser as add_rehearsal_parser

    add_rehearsal_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)

"""``python -m helpers ...``: one training run, data info/fetch, the grid runner, the report
and the offline GPU rehearsal's model cache."""

from __future__ import annotations

import argparse
import dataclasses
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


def _train(args: argparse.Namespace) -> int:
    from .config import ConfigError, TrainConfig
    from .grid import check_fields, parse_value
    from .training import run

    names = [f.name for f in dataclasses.fields(TrainConfig)]
    values = {n: parse_value(getattr(args, n)) for n in names if hasattr(args, n)}
    try:
        # the grid's checks: each value's type and range, with the field's help on error
        cfg = TrainConfig.from_dict(check_fields("command line", values))
        print(run(cfg, progress=not args.no_progress))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    """``train``: one run of ``helpers.training.run``; one option per TrainConfig field."""
    from .config import TrainConfig, field_help

    p = sub.add_parser("train", help="train and evaluate one config (what train.ipynb runs)",
                       description="Train and evaluate one config into runs/<run_id>/. "
                                   "Values are read as YAML (null, [query, value], 1e-4); "
                                   "unset options keep the defaults shown.")
    defaults = TrainConfig().to_dict()
    for name, text in field_help().items():
        # SUPPRESS: only the options given reach TrainConfig, which fills in the rest
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, metavar="VALUE",
                       default=argparse.SUPPRESS, help=f"{text} (default: {defaults[name]})")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_train)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpers", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_parser(sub)

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

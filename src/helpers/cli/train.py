"""``train`` (one run of :func:`helpers.run.training.run`, one option per TrainConfig field)
and ``data`` (dataset info and downloads)."""

from __future__ import annotations

import argparse
import dataclasses
import sys


def _data(args: argparse.Namespace) -> int:
    from helpers.run import data  # deferred: datasets' import takes seconds

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
    # deferred: the training stack (torch, transformers) loads only for this command
    from helpers.grid.spec import check_fields, parse_value
    from helpers.run.config import ConfigError, TrainConfig
    from helpers.run.training import run

    names = [f.name for f in dataclasses.fields(TrainConfig)]
    try:
        values = {n: parse_value(getattr(args, n)) for n in names if hasattr(args, n)}
        # the grid's checks: each value's type and range, with the field's help on error
        cfg = TrainConfig.from_dict(check_fields("command line", values))
        print(run(cfg, progress=not args.no_progress))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    """``train``: one run of ``helpers.run.training.run``; one option per TrainConfig field."""
    from helpers.run.config import TrainConfig, field_help  # deferred with the others

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


def add_parsers(sub: argparse._SubParsersAction) -> None:
    add_train_parser(sub)
    p = sub.add_parser("data", help="dataset info and downloads")
    p.add_argument("action", choices=["info", "fetch"])
    p.add_argument("name", help="dataset name, e.g. restaurant_sup")
    p.add_argument("--data-dir", default=None, help="data folder (default: $NLPDL_DATA_DIR "
                   "or ./data)")
    p.set_defaults(func=_data)

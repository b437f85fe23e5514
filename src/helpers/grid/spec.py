"""Experiment grids (``params/*.yaml``): load, validate, expand into run configs, plan, status.

A grid file is meant to be read by a person::

    description: what the grid is for            # optional, free text
    defaults:                                    # TrainConfig fields shared by every run
      num_train_epochs: 3
    methods:                                     # optional per-method overrides
      adapter: {learning_rate: 1.0e-4}
    matrix:                                      # axes -> lists, cartesian product;
      model: [roberta-base, bert-base-uncased]   # or a list of such blocks, each
      method: [full]                             # expanded on its own (a scalar is a
      seed: [1, 2, 3]                            # one-value axis)
    exclude:                                     # optional: drop rows matching all keys
      - {model: bert-base-uncased, seed: 3}

A row's values are ``defaults`` < ``methods[<its method>]`` < its matrix block (< overrides
given on the command line with ``--set``). Everything is checked on load, before anything runs:
an unknown key names the file, the key path and the closest valid key; a bad value names the
allowed ones (through :meth:`TrainConfig.validate`, offline for the report's models).

Execution lives in :mod:`helpers.grid.runner`; this module never starts a kernel.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from helpers.run.config import METHODS, ConfigError, TrainConfig, check_type, field_help
from helpers.run.errors import did_you_mean
from helpers.run.store import RunStore
from helpers.settings import PARAMS_DIR, PROJECT_ROOT, project_path

from . import yamlread

TOP_LEVEL_KEYS = ("description", "defaults", "methods", "matrix", "exclude")
FIELD_NAMES = tuple(f.name for f in dataclasses.fields(TrainConfig))


class GridError(ConfigError):
    """A grid file is invalid; the message names the file, the key path and the fix."""


# ---------------------------------------------------------------------------------- YAML
def check_numbers(where: str, value: Any) -> None:
    """A GridError naming the first number YAML 1.1 and 1.2 read differently in ``value``."""
    problem = yamlread.ambiguous(value)
    if problem:
        raise GridError(f"{where}: {problem}")


def parse_value(text: str, key: str = "") -> Any:
    """A command-line value (``--set lr=1e-3``, ``--filter seed=1``) read as YAML."""
    try:
        value = yamlread.load(text)
    except yaml.YAMLError as e:
        raise GridError(f"{text!r} is not a value YAML can read: {e}") from None
    check_numbers(f"--set {key}={text}" if key else f"value {text}", value)
    return value


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``--set key=value`` items (repeatable) as a mapping, the values read as YAML."""
    overrides = {}
    for item in items:
        if "=" not in item:
            raise GridError(f"--set {item!r}: expected key=value, e.g. model=minilm.")
        k, v = item.split("=", 1)
        overrides[k.strip()] = parse_value(v.strip(), k.strip())
    return overrides


# ---------------------------------------------------------------------------------- model
@dataclass(frozen=True)
class GridRun:
    """One expanded config of a grid, with where in the file it came from."""

    config: TrainConfig
    run_id: str
    origin: str  # e.g. "matrix[1]"

    def params(self) -> dict[str, Any]:
        """The notebook parameters: every field, resolved, paths absolute (relative ones are
        taken from the project root, helpers.settings)."""
        d = self.config.resolved().to_dict()
        for key in ("runs_dir", "data_dir"):
            if d[key] is not None:
                d[key] = str(project_path(d[key]))
        return d


@dataclass
class Grid:
    path: Path
    runs: list[GridRun]
    description: str = ""
    #: where its runs go (a grid file's ``runs_dir``, or ``--runs-dir``)
    store: RunStore = field(default_factory=lambda: RunStore.at(TrainConfig.runs_dir))

    def __len__(self) -> int:
        return len(self.runs)

    def select(self, filters: Iterable[str] | Mapping[str, Any] | None) -> Grid:
        """Rows matching every ``key=value`` (repeat a key to allow several values)."""
        wanted = _parse_filters(filters)
        kept = [r for r in self.runs if all(_matches(r, k, vs) for k, vs in wanted.items())]
        return dataclasses.replace(self, runs=kept)

    def no_match(self, filters: Iterable[str], overrides: Iterable[str] = ()) -> str:
        """Why ``select(filters)`` keeps nothing: the filters, and the values the grid has for
        each filtered key (``overrides``: the keys that ``--set`` gave every config)."""
        wanted = _parse_filters(filters)
        alone = [k for k, vs in wanted.items() if not any(_matches(r, k, vs) for r in self.runs)]
        shown = " ".join(f"--filter {k}={v}" for k in (alone or wanted) for v in wanted[k])
        have = []
        for k in wanted:
            values = dict.fromkeys(str(r.run_id if k == "run_id" else
                                       getattr(r.config.resolved(), k)) for r in self.runs)
            have.append(f"{k}: {', '.join(values)}" + (" (after --set)" if k in overrides
                                                        else ""))
        one = len(alone or wanted) == 1 and len(wanted[(alone or list(wanted))[0]]) == 1
        head = (f"{shown} {'matches' if one else 'match'} no config" if alone or one
                else f"{shown} together match no config")
        return f"{head} of {self.path} ({len(self.runs)} configs). Values there: " + \
            "; ".join(have) + "."


# ---------------------------------------------------------------------------------- loading
def load_grid(path: str | os.PathLike, overrides: Mapping[str, Any] | None = None,
              runs_dir: str | os.PathLike | RunStore | None = None) -> Grid:
    """Read, validate and expand a grid file; raise :class:`GridError` on the first problem.

    ``overrides`` set fields on every row (``--set model=/path/to/model``): tests point the
    smoke grid at a tiny model this way. ``runs_dir`` (a folder or a store; default: the grid's
    ``runs_dir`` field, i.e. ``runs``) is where results go, the grid's :class:`RunStore`; it
    is not part of a run id.
    """
    path = Path(path)
    where = str(path)
    doc = _read(path)
    defaults = _fields(where, "defaults", doc.get("defaults") or {})
    rows = _expand(where, doc, defaults)
    extra = _fields("overrides (--set)", "", dict(overrides or {})) if overrides else {}
    seen: dict[str, str] = {}
    for label, row in rows:
        rid = _build(where, label, row).run_id()
        if rid in seen:
            raise GridError(f"{where}: {label} repeats the config of {seen[rid]} "
                            f"({_describe(row)}, run id {rid}); make the blocks disjoint or "
                            f"add an exclude.")
        seen[rid] = label
    # Overrides come last and may collapse rows (``--set seed=1``): keep each run once.
    store = RunStore.at(runs_dir if runs_dir is not None
                        else {**defaults, **extra}.get("runs_dir", TrainConfig.runs_dir))
    result: list[GridRun] = []
    ids: set[str] = set()
    for label, row in rows:
        cfg = _build(where, label, {**row, **extra, "runs_dir": str(store.root)})
        rid = cfg.run_id()
        if rid not in ids:
            ids.add(rid)
            result.append(GridRun(cfg, rid, label))
    return Grid(path=path, runs=result, description=str(doc.get("description") or "").strip(),
                store=store)


def _read(path: Path) -> dict[str, Any]:
    """The grid file as a mapping with known top-level keys and a matrix."""
    if not project_path(path).is_file():
        known = sorted(str(p.relative_to(PROJECT_ROOT))
                       for p in project_path(PARAMS_DIR).glob("*.yaml"))
        raise GridError(f"Grid file {path} does not exist."
                        + (f" Grids here: {', '.join(known)}." if known else ""))
    try:
        doc = yamlread.load(project_path(path).read_text())
    except yamlread.DuplicateKeyError as e:
        raise GridError(f"{path}: {e}") from None
    except yaml.YAMLError as e:
        raise GridError(f"{path}: not valid YAML: {e}") from None
    where = str(path)
    check_numbers(where, doc)
    if not isinstance(doc, dict):
        raise GridError(f"{where}: expected a mapping with keys {list(TOP_LEVEL_KEYS)}, "
                        f"got {type(doc).__name__}.")
    _check_keys(where, "", doc, TOP_LEVEL_KEYS)
    if "matrix" not in doc:
        raise GridError(f"{where}: missing 'matrix' (axes -> lists of values, e.g. "
                        f"matrix: {{seed: [1, 2, 3]}}).")
    return doc


def _expand(where: str, doc: dict[str, Any],
            defaults: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every row of the matrix blocks: ``defaults`` < ``methods[<method>]`` < the block's
    values, minus the rows an ``exclude`` entry matches; each with its block's label."""
    methods = doc.get("methods") or {}
    if not isinstance(methods, dict):
        raise GridError(f"{where}: methods: expected a mapping method -> fields.")
    _check_keys(where, "methods", methods, METHODS, what="method")
    method_fields = {m: _fields(where, f"methods.{m}", v or {}) for m, v in methods.items()}
    for m, values in method_fields.items():
        if "method" in values:
            raise GridError(f"{where}: methods.{m}.method: a method's overrides can't change "
                            f"its method.")
    blocks = doc["matrix"]
    if isinstance(blocks, dict):
        blocks = [blocks]
        labels = ["matrix"]
    elif isinstance(blocks, list) and blocks:
        labels = [f"matrix[{i}]" for i in range(len(blocks))]
    else:
        raise GridError(f"{where}: matrix: expected a mapping of axes -> lists, or a "
                        f"non-empty list of such mappings.")
    exclude = doc.get("exclude") or []
    if not isinstance(exclude, list):
        raise GridError(f"{where}: exclude: expected a list of mappings field -> value.")
    excludes = [_fields(where, f"exclude[{i}]", e) for i, e in enumerate(exclude)]
    rows: list[tuple[str, dict[str, Any]]] = []
    for label, block in zip(labels, blocks, strict=True):
        axes = _axes(where, label, block)
        for combo in itertools.product(*axes.values()):
            values = dict(zip(axes, combo, strict=True))
            method = values.get("method", defaults.get("method", TrainConfig.method))
            row = {**defaults, **method_fields.get(method, {}), **values}
            if any(all(row.get(k, _default(k)) == v for k, v in e.items()) for e in excludes):
                continue
            rows.append((label, row))
    if not rows:  # every row excluded: a grid that runs nothing is a mistake, not a success
        shown = "; ".join(f"exclude[{i}] " + ", ".join(f"{k}={v}" for k, v in e.items())
                          for i, e in enumerate(excludes))
        raise GridError(f"{where}: 0 configs: the exclude entries remove every row of the "
                        f"matrix ({shown}). Narrow an exclude entry (add a field) or remove "
                        f"it.")
    return rows


def _default(name: str) -> Any:
    return TrainConfig().to_dict()[name]


def _check_keys(where: str, prefix: str, mapping: Mapping, valid: Iterable[str],
                what: str = "key") -> None:
    valid = list(valid)
    for key in mapping:
        if key not in valid:
            hint = did_you_mean(key, valid, cutoff=0.5)
            at = f"{prefix}.{key}" if prefix else str(key)
            raise GridError(f"{where}: unknown {what} '{key}' at '{at}'.{hint} "
                            f"Valid: {', '.join(valid)}.")


def _fields(where: str, prefix: str, mapping: Any) -> dict[str, Any]:
    """Check a mapping of TrainConfig fields: known names, right types, valid single values."""
    if not isinstance(mapping, dict):
        raise GridError(f"{where}: {prefix}: expected a mapping of TrainConfig fields, got "
                        f"{mapping!r}.")
    _check_keys(where, prefix, mapping, FIELD_NAMES, what="field")
    for key, value in mapping.items():
        _check_value(where, f"{prefix}.{key}" if prefix else key, key, value)
    return dict(mapping)


def check_fields(where: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """TrainConfig fields from a command line: known names, right types, valid values."""
    return _fields(where, "", dict(values))


def _axes(where: str, label: str, block: Any) -> dict[str, list[Any]]:
    if not isinstance(block, dict) or not block:
        raise GridError(f"{where}: {label}: expected a mapping of axes -> lists of values.")
    _check_keys(where, label, block, FIELD_NAMES, what="field")
    axes = {}
    for key, values in block.items():
        # lora_target_modules is itself a list: only a list of lists is an axis over it.
        listy = isinstance(values, list) and (key != "lora_target_modules"
                                              or all(isinstance(v, list) for v in values))
        values = values if listy else [values]
        if not values:
            raise GridError(f"{where}: {label}.{key}: empty list; give at least one value.")
        for i, v in enumerate(values):
            _check_value(where, f"{label}.{key}[{i}]" if listy else f"{label}.{key}", key, v)
        axes[key] = values
    return axes


def _check_value(where: str, at: str, key: str, value: Any) -> None:
    """Type and range of one value, alone (combinations are checked per expanded row)."""
    try:
        check_type(key, value)  # the one type check (helpers.run.config)
    except ConfigError as e:
        raise GridError(f"{where}: {at}: {e}") from None
    try:
        TrainConfig(**{key: value}).validate(check_model_limit=key == "model")
    except ConfigError as e:
        raise GridError(f"{where}: {at}: {e} ({key}: {field_help()[key]})") from None


def _build(where: str, label: str, row: dict[str, Any]) -> TrainConfig:
    try:
        return TrainConfig.from_dict(row)
    except ConfigError as e:
        raise GridError(f"{where}: {label} ({_describe(row)}): {e}") from None


def _describe(row: Mapping[str, Any]) -> str:
    keys = [k for k in ("model", "dataset", "method", "seed") if k in row]
    return ", ".join(f"{k}={row[k]}" for k in keys) or "defaults"


# ---------------------------------------------------------------------------------- filters
def _parse_filters(filters: Iterable[str] | Mapping[str, Any] | None) -> dict[str, list[Any]]:
    if not filters:
        return {}
    if isinstance(filters, Mapping):
        items = [(k, v) for k, v in filters.items()]
    else:
        items = []
        for f in filters:
            if "=" not in f:
                raise GridError(f"--filter {f!r}: expected key=value, e.g. method=lora.")
            k, v = f.split("=", 1)
            items.append((k.strip(), v.strip()))
    wanted: dict[str, list[Any]] = {}
    valid = (*FIELD_NAMES, "run_id")
    for k, v in items:
        if k not in valid:
            hint = did_you_mean(k, valid, cutoff=0.5)
            raise GridError(f"--filter: unknown key '{k}'.{hint} Valid: {', '.join(valid)}.")
        wanted.setdefault(k, []).append(v)
    return wanted


def _matches(run: GridRun, key: str, values: list[Any]) -> bool:
    actual = run.run_id if key == "run_id" else getattr(run.config.resolved(), key)
    for v in values:
        if actual == v or str(actual) == str(v):
            return True
        if isinstance(v, str) and actual == parse_value(v):
            return True
    return False

"""Run folders named by the first run-id scheme, and the one command that renames them.

The first scheme hashed every field but :data:`~helpers.run.config.NON_IDENTITY_FIELDS`,
other methods' fields and the model's path as typed included; the current one
(:meth:`TrainConfig.identity`) hashes only what determines the run. A runs folder made by the
previous code keeps working through one migration, ``python -m helpers runs migrate --runs-dir
runs``: each complete folder whose name is its config's id under the first scheme is renamed to
its current id, and the ``run_id`` inside its JSON records is rewritten. ``grid plan``/``status``
and the report say so in one line (:func:`legacy_note`) when they meet such folders.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

from .config import ADDED_FIELDS, NON_IDENTITY_FIELDS, TrainConfig, field_default, format_run_id
from .records import read_json, write_json
from .store import RunStore

#: The JSON records of a run folder that name its run id.
RECORDS_WITH_ID = ("config.json", "metrics.json", "memory.json", "env.json")
#: The command that renames them (said by :func:`legacy_note`).
MIGRATE_COMMAND = "python -m helpers runs migrate --runs-dir {folder}"


def legacy_run_id(config: dict[str, Any]) -> str:
    """The id the first scheme gave the run recorded in ``config`` (a config.json): the sha1
    of every recorded field but the non-identity ones, as the run resolved them, and but an
    :data:`ADDED_FIELDS` entry at its default (that scheme's last code left those out too)."""
    defaults = {f.name: f for f in dataclasses.fields(TrainConfig)}
    ident = {k: v for k, v in config.items() if k != "run_id" and k not in NON_IDENTITY_FIELDS
             and not (k in ADDED_FIELDS and v == field_default(defaults[k]))}
    return format_run_id(config["model"], config["dataset"], config["method"], config["seed"],
                         ident)


def current_run_id(config: dict[str, Any]) -> str:
    """The id the current scheme gives the run recorded in ``config``."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in config.items() if k in fields}).run_id()


def legacy_folders(store: RunStore) -> dict[Path, str]:
    """Run folders named by the first scheme -> their current id."""
    out = {}
    # every run folder with a readable config, complete or not: a run recorded before runs kept
    # their predictions is renamed too, and then counts as incomplete (missing
    # predictions.csv.gz) rather than hiding under an id nothing asks for
    for folder in store.run_folders():
        if not (folder / "config.json").is_file():
            continue
        try:
            config = read_json(folder / "config.json")
            if folder.name != legacy_run_id(config):
                continue
            new = current_run_id(config)
        except (KeyError, TypeError, ValueError):  # not a config this code can read
            continue
        if new != folder.name:
            out[folder] = new
    return out


def legacy_note(store: RunStore) -> str:
    """One line for ``grid plan``/``status`` and the report, or "" without legacy folders."""
    found = legacy_folders(store)
    if not found:
        return ""
    return (f"{len(found)} run folder(s) in {store} are named by the previous "
            f"run-id scheme and are not counted: rename them once with "
            f"`{MIGRATE_COMMAND.format(folder=store)}`.")


def migrate(store: RunStore) -> dict[str, str]:
    """Rename every legacy folder to its current id and rewrite the ``run_id`` in its records;
    returns old id -> new id. Each folder is copied and rewritten under ``.tmp/`` and renamed
    into place before the old one is removed, so an interrupted migration leaves no half-renamed
    run (at worst both copies, and the old one still counts as legacy)."""
    done = {}
    for folder, new in legacy_folders(store).items():
        target = folder.with_name(new)
        if target.exists():
            raise FileExistsError(f"{folder.name}: its current id {new} is already a folder in "
                                  f"{folder.parent}; remove one of the two, then migrate again.")
        staged = store.tmp_dir / f"migrate-{new}"
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(folder, staged)
        for name in RECORDS_WITH_ID:
            path = staged / name
            doc = read_json(path) if path.is_file() else None
            if isinstance(doc, dict) and doc.get("run_id") == folder.name:
                write_json(path, {**doc, "run_id": new})
        staged.rename(target)
        shutil.rmtree(folder)
        done[folder.name] = new
    return done

"""What a run trained on: the sha256 of every data file it read and of every file in the model
folder its tokenizer and weights came from, recorded in its ``env.json``::

    "provenance": {"data_dir": "/data", "data_files": {"SemEval14-res/train.json": "<sha256>"},
                   "model_dir": "/models/minilm", "model_files": {"config.json": "<sha256>"}}

Names are relative to their folder, so a data folder that moves with the same content still
matches. The run id does not change (these are new keys in env.json, not TrainConfig fields).

Every digest is of the bytes as they are when it is taken: nothing is cached by path, size or
modification time, so a file edited to the same size with its time restored (``touch -r``) is
recorded, and shown ``stale``, like any other edit. Hashing is cheap next to a run: the
packaged MiniLM's 91 MB take about 0.1 s, the largest data folder (1.8 MB) a few ms.

:func:`changed_files` compares a run's record with the files as they are now (``grid plan``
shows such a run as ``stale``); runs written before provenance was recorded have none
(:func:`recorded` is None: unknown provenance, never stale).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .records import read_json

#: env.json's key for the record.
KEY = "provenance"
def file_digest(path: str | os.PathLike) -> str:
    """The sha256 of ``path``'s content now (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def data_files(dataset: str | Sequence[str], data_dir: str | os.PathLike | None
               ) -> tuple[Path, list[Path]]:
    """The resolved data folder and the files :func:`helpers.run.data.load` reads there."""
    from . import data  # deferred: datasets' import takes a second (validation pays it anyway)

    root = data.resolve_data_dir(data_dir)
    names = [dataset] if isinstance(dataset, str) else list(dataset)
    files = []
    for name in names:
        source = data.SOURCES[data.check_name(name)[0]]
        files += [root / source.folder / f for f in source.files.values()]
    return root, list(dict.fromkeys(files))


def digests(root: Path, files: Sequence[Path]) -> dict[str, str]:
    """``{name relative to root: sha256}`` of ``files``."""
    return {p.relative_to(root).as_posix(): file_digest(p) for p in files}


def model_folder(model: str) -> Path | None:
    """The folder the model's tokenizer and weights load from: the packaged MiniLM's, a
    local folder, or a Hub id's snapshot in the Hugging Face cache (None when not cached)."""
    from . import models  # deferred: helpers.run.models imports torch (a run has it already)

    resolved = models.resolve_model(model)
    if Path(resolved).is_dir():
        return Path(resolved)
    from huggingface_hub import try_to_load_from_cache  # deferred: only for Hub ids

    found = try_to_load_from_cache(resolved, "config.json")
    return Path(found).parent if isinstance(found, str) else None


def record(dataset: str | Sequence[str], data_dir: str | os.PathLike | None, model: str
           ) -> dict[str, Any]:
    """What a run records: the data folder and files, the model folder and files."""
    root, files = data_files(dataset, data_dir)
    folder = model_folder(model)
    model_files = sorted(p for p in folder.iterdir() if p.is_file()) if folder else []
    return {"data_dir": str(root), "data_files": digests(root, files),
            "model_dir": str(folder) if folder else None,
            "model_files": digests(folder, model_files) if folder else {}}


def recorded(env: dict[str, Any]) -> dict[str, Any] | None:
    """A run's record from its env.json, or None (written before runs recorded it)."""
    rec = env.get(KEY) if isinstance(env, dict) else None
    return rec if isinstance(rec, dict) and isinstance(rec.get("data_files"), dict) else None


def read(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """:func:`recorded` of the run folder's env.json (None when unreadable too)."""
    try:
        return recorded(read_json(Path(run_dir) / "env.json"))
    except (OSError, ValueError):
        return None


def changed_files(rec: dict[str, Any], data_dir: str | os.PathLike | None) -> list[str]:
    """The recorded data files whose content differs now in the data folder that
    ``data_dir`` resolves to (a file not there now can't be compared: not listed)."""
    from . import data  # deferred: datasets' import takes a second (validation pays it anyway)

    root = data.resolve_data_dir(data_dir)
    changed = []
    for name, digest in rec["data_files"].items():
        path = root / name
        if path.is_file() and file_digest(path) != digest:
            changed.append(name)
    return changed


def differing_files(records: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Per record (e.g. per run id), the files whose digest is not the same in all of them
    (model files as ``model <name>``), or {} when they agree. Only files every record has are
    compared: a Hub snapshot that gained a file (another format's weights) is not a change."""
    files = {key: {**rec["data_files"], **{f"model {name}": digest for name, digest
                                           in (rec.get("model_files") or {}).items()}}
             for key, rec in records.items()}
    shared = set.intersection(*(set(f) for f in files.values())) if files else set()
    differ = sorted(n for n in shared if len({f[n] for f in files.values()}) > 1)
    if not differ:
        return {}
    return {key: {n: f[n] for n in differ} for key, f in files.items()}

"""What a run trained on: the sha256 of every data file it read and of every file in the model
folder its tokenizer and weights came from, recorded in its ``env.json``::

    "provenance": {"data_dir": "/data", "data_files": {"SemEval14-res/train.json": "<sha256>"},
                   "model_dir": "/models/minilm", "model_files": {"config.json": "<sha256>"}}

Names are relative to their folder, so a data folder that moves with the same content still
matches. The run id does not change (these are new keys in env.json, not TrainConfig fields).

A digest is computed once per file, not once per run: it is kept per process and on disk in
``<runs_dir>/.cache/digests/`` under the file's path, size and modification time, so the
grid's data check (before any run starts) and each kernel's first run fill the cache and the
other runs of the grid read it (the packaged MiniLM's 91 MB take about 0.06 s to hash once).
A file rewritten with the same size and modification time is not noticed.

:func:`changed_files` compares a run's record with the files as they are now (``grid plan``
shows such a run as ``stale``); runs written before provenance was recorded have none
(:func:`recorded` is None: unknown provenance, never stale).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import store

#: env.json's key for the record.
KEY = "provenance"
#: Under ``<runs_dir>/.cache/``: one small JSON file per hashed file.
CACHE = "digests"

_memo: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> str:
    """The sha256 of ``path``'s content (hex), from the caches when its path, size and
    modification time are those it was hashed with."""
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key in _memo:
        return _memo[key]
    entry = Path(cache_dir) / CACHE / f"{hashlib.sha1(key[0].encode()).hexdigest()}.json" \
        if cache_dir is not None else None
    cached = _read_entry(entry)
    if cached and (cached.get("path"), cached.get("size"), cached.get("mtime_ns")) == key:
        _memo[key] = cached["sha256"]
        return _memo[key]
    _memo[key] = _sha256(path)
    if entry is not None:
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            store.write_json(entry, {"path": key[0], "size": key[1], "mtime_ns": key[2],
                                     "sha256": _memo[key]})
        except OSError:  # a cache that can't be written only costs the next run a rehash
            pass
    return _memo[key]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_entry(entry: Path | None) -> dict[str, Any] | None:
    if entry is None or not entry.is_file():
        return None
    try:
        doc = json.loads(entry.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("sha256"), str) else None


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


def digests(root: Path, files: Sequence[Path], cache_dir: str | os.PathLike | None
            ) -> dict[str, str]:
    """``{name relative to root: sha256}`` of ``files``."""
    return {p.relative_to(root).as_posix(): file_digest(p, cache_dir) for p in files}


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


def record(dataset: str | Sequence[str], data_dir: str | os.PathLike | None, model: str,
           cache_dir: str | os.PathLike | None) -> dict[str, Any]:
    """What a run records: the data folder and files, the model folder and files."""
    root, files = data_files(dataset, data_dir)
    folder = model_folder(model)
    model_files = sorted(p for p in folder.iterdir() if p.is_file()) if folder else []
    return {"data_dir": str(root), "data_files": digests(root, files, cache_dir),
            "model_dir": str(folder) if folder else None,
            "model_files": digests(folder, model_files, cache_dir) if folder else {}}


def recorded(env: dict[str, Any]) -> dict[str, Any] | None:
    """A run's record from its env.json, or None (written before runs recorded it)."""
    rec = env.get(KEY) if isinstance(env, dict) else None
    return rec if isinstance(rec, dict) and isinstance(rec.get("data_files"), dict) else None


def read(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """:func:`recorded` of the run folder's env.json (None when unreadable too)."""
    try:
        return recorded(store.read_json(Path(run_dir) / "env.json"))
    except (OSError, ValueError):
        return None


def changed_files(rec: dict[str, Any], data_dir: str | os.PathLike | None,
                  cache_dir: str | os.PathLike | None) -> list[str]:
    """The recorded data files whose content differs now in the data folder that
    ``data_dir`` resolves to (a file not there now can't be compared: not listed)."""
    from . import data  # deferred: datasets' import takes a second (validation pays it anyway)

    root = data.resolve_data_dir(data_dir)
    changed = []
    for name, digest in rec["data_files"].items():
        path = root / name
        if path.is_file() and file_digest(path, cache_dir) != digest:
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

"""Tokenized, cached, padded batches: the data side of a run.

Splits are subsampled with a fixed seed, tokenized once per tokenizer x dataset x max_length
(cached on disk, keyed by content, and reused by every seed and method) and served by a
DataLoader with dynamic padding and length grouping (HF's ``DataCollatorWithPadding`` and
``LengthGroupedSampler``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader, RandomSampler

from . import disk, provenance

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict
    from transformers import PreTrainedTokenizerBase

#: Subsamples (max_train_samples / max_eval_samples) use this fixed seed, not the run's seed:
#: every seed and method then sees the same examples (like the few-shot splits in data.py),
#: so differences between runs come from the method and the training randomness only.
SUBSAMPLE_SEED = 2022


def subsample(ds: Dataset, n: int | None, seed: int = SUBSAMPLE_SEED) -> Dataset:
    """A fixed random ``n``-row subset (the whole split when ``n`` is None or too large)."""
    if n is None or n >= len(ds):
        return ds
    # in memory: on a token-cache entry, datasets would write the shuffle's index file into the
    # entry's folder, which its digest does not list (and two runs would write it at once)
    return ds.shuffle(seed=seed, keep_in_memory=True).select(range(n), keep_in_memory=True)


def _data_fingerprint(dd: DatasetDict) -> str:
    """Content hash of the raw splits, so the cache notices edited data files."""
    h = hashlib.sha1()
    for split in sorted(dd):
        h.update(split.encode())
        table = dd[split].data.table
        for col in ("text", "text_pair", "label"):
            h.update(repr(table.column(col).to_pylist()).encode())
    return h.hexdigest()


def _tokenizer_fingerprint(tok: PreTrainedTokenizerBase) -> str:
    """Identity of a tokenizer by content (vocab, normalizer, specials), not by its path."""
    h = hashlib.sha1(type(tok).__name__.encode())
    if getattr(tok, "is_fast", False):  # less the truncation and padding a call last set
        state = {k: v for k, v in json.loads(tok.backend_tokenizer.to_str()).items()
                 if k not in ("truncation", "padding")}
        h.update(json.dumps(state, sort_keys=True).encode())
    else:
        h.update(json.dumps(sorted(tok.get_vocab().items())).encode())
    h.update(repr(sorted(tok.special_tokens_map.items())).encode())
    h.update(repr(list(tok.model_input_names)).encode())  # e.g. with/without token_type_ids
    return h.hexdigest()


def tokenize_function(tok: PreTrainedTokenizerBase, max_length: int):
    """Batched map function: pairs as (text, text_pair) with the tokenizer's own specials."""

    def encode(batch: dict[str, list]) -> dict[str, list]:
        pairs = batch["text_pair"]
        if all(p is None for p in pairs):
            enc = tok(batch["text"], truncation=True, max_length=max_length)
        elif all(p is not None for p in pairs):
            enc = tok(batch["text"], pairs, truncation=True, max_length=max_length)
        else:  # a concatenation of pair and single-text datasets
            rows = [tok(t, p, truncation=True, max_length=max_length)
                    for t, p in zip(batch["text"], pairs, strict=True)]
            enc = {k: [r[k] for r in rows] for k in rows[0]}
        out = dict(enc)
        out["labels"] = batch["label"]
        out["length"] = [len(ids) for ids in enc["input_ids"]]
        return out

    return encode


#: Written into each token cache entry: the sha256 of every other file in it. Arrow files carry
#: no checksum, so a flipped byte would otherwise be trained on without a word.
CACHE_DIGEST = "nlpdl-digest.json"


class TokenCacheWarning(UserWarning):
    """A token cache entry did not match its digest: it is rebuilt, never used."""


def _entry_digest(folder: Path) -> dict[str, str]:
    """``{path relative to folder: sha256}`` of every file in a cache entry but the digest."""
    return {path.relative_to(folder).as_posix(): provenance.file_digest(path)
            for path in sorted(p for p in folder.rglob("*")
                               if p.is_file() and p.name != CACHE_DIGEST)}


def _entry_problem(folder: Path) -> str | None:
    """What is wrong with the cache entry ``folder`` (its files against its digest), or None."""
    try:
        recorded = json.loads((folder / CACHE_DIGEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"it has no readable {CACHE_DIGEST}"
    now = _entry_digest(folder)
    # the files the entry was saved with must all be there and unchanged; a file it never had is
    # not read by load_from_disk (state.json, itself in the digest, names the data files)
    if not isinstance(recorded, dict) or not set(recorded) <= set(now):
        return f"files its {CACHE_DIGEST} lists are missing"
    changed = [name for name in recorded if now[name] != recorded[name]]
    return f"{', '.join(changed)} changed since it was written" if changed else None


def tokenize(dd: DatasetDict, tok: PreTrainedTokenizerBase, max_length: int,
             cache_root: Path | None = None, key_parts: tuple = ()) -> DatasetDict:
    """Tokenize all splits; with ``cache_root``, reuse an on-disk copy keyed by content."""
    # deferred: datasets' import takes seconds
    from datasets import load_from_disk

    from .data import quiet_progress

    key = hashlib.sha1(json.dumps(
        [_tokenizer_fingerprint(tok), _data_fingerprint(dd), max_length, *key_parts, 1],
        default=str).encode()).hexdigest()[:16]
    target = cache_root / key if cache_root is not None else None
    if target is not None and target.is_dir():
        problem = _entry_problem(target)
        if problem is None:
            try:
                return load_from_disk(str(target))
            except Exception as e:  # a corrupt cache entry is rebuilt, never trusted
                problem = f"it does not load ({type(e).__name__}: {e})"
        warnings.warn(f"token cache {target} is damaged ({problem}): rebuilt, not used.",
                      TokenCacheWarning, stacklevel=2)
        # renamed aside first: a run that loaded the entry keeps reading its open files, and
        # no reader ever sees a half-deleted folder
        aside = target.with_name(f".{key}.{os.getpid()}.damaged")
        try:
            target.rename(aside)
        except OSError:  # another run moved it first
            pass
        shutil.rmtree(aside, ignore_errors=True)
    with quiet_progress():
        out = dd.map(tokenize_function(tok, max_length), batched=True,
                     remove_columns=dd["train"].column_names)
        if target is None:
            return out
        tmp = target.with_name(f".{key}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            out.save_to_disk(str(tmp))
            (tmp / CACHE_DIGEST).write_text(json.dumps(_entry_digest(tmp), indent=1),
                                            encoding="utf-8")
        except BaseException as e:  # a partial entry is never left (nor read)
            shutil.rmtree(tmp, ignore_errors=True)
            if not disk.is_disk_full(e):
                raise
            needed = sum(ds.data.nbytes for ds in out.values())
            print(f"token cache not saved: disk full in {cache_root} "
                  f"({disk.size(disk.free_bytes(cache_root))} free, about {disk.size(needed)} "
                  f"needed); the run goes on without it.", file=sys.stderr)
            return out
    try:
        tmp.rename(target)  # atomic; a concurrent writer may have won, which is fine
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _rows(ds: Dataset) -> list[dict[str, Any]]:
    """Materialise a tokenized split as a list of dicts: cheap indexing in the DataLoader."""
    cols = [c for c in ds.column_names if c != "length"]
    data = ds.select_columns(cols).to_dict()
    return [dict(zip(cols, values, strict=True)) for values in zip(*data.values(), strict=True)]


def eval_order(ds: Dataset) -> list[int]:
    """The rows of an eval split in the order its loader yields them (longest first, ties in
    row order): position i of an eval pass is row ``eval_order(ds)[i]`` of the split."""
    lengths = list(ds["length"])
    return sorted(range(len(lengths)), key=lambda i: -lengths[i])


def make_loader(ds: Dataset, tok: PreTrainedTokenizerBase, batch_size: int, train: bool,
                group_by_length: bool = True, seed: int = 0, pad_to_multiple_of: int = 1,
                pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """Dynamic padding (``DataCollatorWithPadding``): batches pad to their longest example,
    rounded up to a multiple of ``pad_to_multiple_of`` tokens (1: not rounded).

    Training batches are shuffled (length-grouped when asked); eval batches go in order of
    length, which minimises padding and does not change any metric. ``pin_memory`` (CUDA)
    makes the host-to-device copies asynchronous.
    """
    # deferred: transformers' import takes seconds
    from transformers import DataCollatorWithPadding
    from transformers.trainer_pt_utils import LengthGroupedSampler

    lengths = list(ds["length"])
    rows = _rows(ds)
    collate = DataCollatorWithPadding(
        tok, padding="longest", pad_to_multiple_of=pad_to_multiple_of if pad_to_multiple_of > 1
        else None)
    if train:
        generator = torch.Generator().manual_seed(seed)
        sampler = (LengthGroupedSampler(batch_size, lengths=lengths, generator=generator)
                   if group_by_length else RandomSampler(rows, generator=generator))
        return DataLoader(rows, batch_size=batch_size, sampler=sampler, collate_fn=collate,
                          pin_memory=pin_memory)
    order = eval_order(ds)
    return DataLoader([rows[i] for i in order], batch_size=batch_size, shuffle=False,
                      collate_fn=collate, pin_memory=pin_memory)


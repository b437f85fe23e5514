"""A Hugging Face cache of random-initialised stand-ins for the report's three Hub models.

Why: a GPU machine without internet has no pretrained weights, yet the user's real path
(``make report GRID=params/full.yaml``: papermill -> ``from_pretrained("roberta-base")``) is
what must be timed there. ``python -m helpers rehearse-hub DIR`` writes DIR laid out exactly
as a download leaves it (``hub/models--org--name/{blobs,refs/main,snapshots/<commit>/}``),
so ``HF_HOME=DIR HF_HUB_OFFLINE=1`` runs the unchanged grid with no code path changed.
Speed and memory do not depend on weight values; the results of such runs mean nothing.

The weights are a pre-training checkpoint (``AutoModelForPreTraining``: encoder, pooler and
LM heads, as the real checkpoints hold) of the bundled architecture config, randomly
initialised. Tokenizers: the packaged MiniLM's uncased WordPiece
*is* bert-base-uncased's vocabulary; SciBERT's scivocab and RoBERTa's byte-level BPE are not
to be had offline, so both get that WordPiece as a stand-in (similar lengths; for RoBERTa
without segment ids, as its single token type needs).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from helpers.run.catalog import REPORT_MODELS
from helpers.run.models import BUNDLED_CONFIGS, load_model_config, minilm_path

from .tiny import TINY_SIZES

#: The report's models (params/full.yaml) and their real tokenizer, where one is at hand.
HUB_MODELS = REPORT_MODELS
REAL_WORDPIECE = ("bert-base-uncased",)
MARKER = "rehearsal.json"


def hub_cache_dir(home: str | os.PathLike) -> Path:
    """``$HF_HOME/hub``: where huggingface_hub looks when only HF_HOME is set."""
    return Path(home) / "hub"


def repo_folder(repo_id: str) -> str:
    """huggingface_hub's folder name for a model repo: ``models--org--name``."""
    return "models--" + repo_id.replace("/", "--")


def _wordpiece(source: str | os.PathLike | None):
    from transformers import AutoTokenizer  # deferred: transformers' import takes seconds

    return AutoTokenizer.from_pretrained(str(source or minilm_path()))


def _save_tokenizer(tok, repo_id: str, dest: Path) -> None:
    """Save the WordPiece tokenizer as ``repo_id``'s, fitted to its model's token types."""
    tok.save_pretrained(dest)
    path = dest / "tokenizer_config.json"
    cfg = json.loads(path.read_text())
    cfg.update(model_max_length=512, tokenizer_class="BertTokenizer", do_lower_case=True)
    if getattr(load_model_config(repo_id), "type_vocab_size", 2) < 2:
        cfg["model_input_names"] = ["input_ids", "attention_mask"]
    if repo_id not in REAL_WORDPIECE:
        cfg["stand_in"] = "bert-base-uncased WordPiece (helpers.testing.hub): not the real one"
    path.write_text(json.dumps(cfg, indent=2))


def _store(snapshot_files: Path, repo: Path, commit: str) -> None:
    """Move files into ``blobs/<sha256>`` and link them from ``snapshots/<commit>/``, with
    ``refs/main`` naming the commit: the layout huggingface_hub writes on download."""
    blobs, snap = repo / "blobs", repo / "snapshots" / commit
    blobs.mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True, exist_ok=True)
    for f in sorted(p for p in snapshot_files.rglob("*") if p.is_file()):
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        blob = blobs / digest
        if not blob.exists():
            shutil.move(str(f), blob)
        link = snap / f.relative_to(snapshot_files)
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        try:
            link.symlink_to(os.path.relpath(blob, link.parent))
        except OSError:  # no symlinks (Windows without developer mode): a copy, as hf does
            shutil.copyfile(blob, link)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)


def write_model(home: str | os.PathLike, repo_id: str, tiny: bool = False,
                tokenizer: str | os.PathLike | None = None, seed: int = 0) -> Path:
    """Write one random-init model + tokenizer into the cache; return its snapshot folder."""
    import torch  # deferred with transformers: the CLI imports this module for --help
    from transformers import AutoModelForPreTraining

    if repo_id not in BUNDLED_CONFIGS:
        raise ValueError(f"{repo_id!r}: rehearsal models are {list(HUB_MODELS)} (their "
                         "configs are bundled in helpers/configs).")
    config = load_model_config(repo_id, **(TINY_SIZES if tiny else {}))
    repo = hub_cache_dir(home) / repo_folder(repo_id)
    with tempfile.TemporaryDirectory(dir=hub_cache_dir(home)) as tmp:
        torch.manual_seed(seed)
        AutoModelForPreTraining.from_config(config).save_pretrained(tmp)
        _save_tokenizer(_wordpiece(tokenizer), repo_id, Path(tmp))
        listing = sorted((p.name, hashlib.sha256(p.read_bytes()).hexdigest())
                         for p in Path(tmp).iterdir() if p.is_file())
        commit = hashlib.sha1(json.dumps([repo_id, listing]).encode()).hexdigest()
        if (repo / "snapshots").is_dir():  # one snapshot per repo: rebuilding replaces it
            shutil.rmtree(repo)
        _store(Path(tmp), repo, commit)
    return repo / "snapshots" / commit


def write_hub(home: str | os.PathLike, models: tuple[str, ...] = HUB_MODELS,
              tiny: bool = False, tokenizer: str | os.PathLike | None = None) -> list[Path]:
    """Write every model; a ``rehearsal.json`` in ``home`` says what this cache is."""
    hub_cache_dir(home).mkdir(parents=True, exist_ok=True)
    snapshots = [write_model(home, m, tiny=tiny, tokenizer=tokenizer) for m in models]
    (Path(home) / MARKER).write_text(json.dumps({
        "what": "random-initialised stand-ins of the report's Hub models (helpers.testing.hub): "
                "for timing the real pipeline offline; results from them mean nothing",
        "models": list(models), "tiny": tiny,
        "tokenizers": {m: "bert-base-uncased WordPiece" + ("" if m in REAL_WORDPIECE
                                                           else " (stand-in)") for m in models},
    }, indent=2))
    return snapshots

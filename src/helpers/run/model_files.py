"""What a local model folder must hold before a run loads it: config, weights and tokenizer.

Checked by file names only (stat calls, no torch), so that ``grid plan``, the grid's pre-flight
and ``TrainConfig.validate`` reject an incomplete folder once, in milliseconds, with its full
path and what is missing -- instead of every run failing separately after loading the rest.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import ModelError

#: Weights transformers loads into a PyTorch model, single-file or sharded (an index whose
#: shards must all be there).
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
#: The tokenizer files of each kind: any one set complete is a tokenizer.
TOKENIZER_SETS = (("tokenizer.json",), ("vocab.txt",), ("vocab.json", "merges.txt"),
                  ("spiece.model",), ("sentencepiece.bpe.model",), ("tokenizer.model",))


def _present(path: Path) -> bool:
    # an empty file is what a killed copy leaves: as good as missing
    return path.is_file() and path.stat().st_size > 0


def _missing_shards(folder: Path, index: Path) -> list[str] | None:
    """The shards ``index`` names that are absent (None: the index itself is unreadable)."""
    try:
        shards = set(json.loads(index.read_text())["weight_map"].values())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return sorted(s for s in shards if not _present(folder / s))


def _weights_problem(folder: Path) -> str | None:
    if any(_present(folder / f) for f in WEIGHT_FILES):
        return None
    for name in WEIGHT_INDEXES:
        if _present(folder / name):
            missing = _missing_shards(folder, folder / name)
            if missing is None:
                return f"weights ({name} is not a readable shard index)"
            if missing:
                return f"weights (shards {', '.join(missing)} listed in {name})"
            return None
    return f"weights ({' or '.join(WEIGHT_FILES)})"


def missing_parts(folder: Path) -> list[str]:
    """What ``folder`` lacks to load as a model with its tokenizer, each with the files that
    would supply it; empty when complete."""
    missing = []
    if not _present(folder / "config.json"):
        missing.append("config (config.json)")
    weights = _weights_problem(folder)
    if weights:
        missing.append(weights)
    if not any(all(_present(folder / f) for f in files) for files in TOKENIZER_SETS):
        kinds = ", ".join(" + ".join(files) for files in TOKENIZER_SETS)
        missing.append(f"tokenizer (one of: {kinds})")
    return missing


def check_model_folder(folder: str | Path) -> None:
    """Raise :class:`ModelError` naming the folder's full path and every missing part."""
    path = Path(folder).resolve()
    missing = missing_parts(path)
    if missing:
        raise ModelError(
            f"Model folder {path} is incomplete: no {'; no '.join(missing)}. A run needs the "
            f"config, the weights and the tokenizer there: save them with "
            f"model.save_pretrained(dir) and tokenizer.save_pretrained(dir), or download the "
            f"whole model (huggingface-cli download <id> --local-dir dir).")

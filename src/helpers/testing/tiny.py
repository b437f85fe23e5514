"""Tiny random models of the real architectures (BERT, RoBERTa), saved as model folders.

Tests and benchmarks need a real tokenizer + model pair that loads through the same code path
as a Hub model, without a download: these are built from configs in about a second.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch

from helpers.run.models import minilm_path

ARCHITECTURES = ("bert", "roberta")
TINY_SIZES = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
              "intermediate_size": 64}


def _bert_tokenizer(path: Path) -> int:
    """The packaged MiniLM's uncased WordPiece tokenizer (a real BERT tokenizer)."""
    src = minilm_path()
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json"):
        shutil.copy(src / name, path / name)
    return sum(1 for _ in (src / "vocab.txt").open(encoding="utf-8"))


def _roberta_tokenizer(path: Path, vocab_size: int = 2000) -> int:
    """A byte-level BPE trained on the MiniLM vocabulary's words (RoBERTa's tokenizer type)."""
    # deferred, here and below: transformers' import takes seconds
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    words = [w.strip() for w in (minilm_path() / "vocab.txt").open(encoding="utf-8")
             if w.strip().isalpha()]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([" ".join(words[i:i + 50]) for i in range(0, len(words), 50)],
                            vocab_size=vocab_size, min_frequency=1, show_progress=False,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    with tempfile.TemporaryDirectory() as tmp:
        vocab, merges = bpe.save_model(tmp)
        tok = RobertaTokenizerFast(vocab_file=vocab, merges_file=merges, model_max_length=512)
        tok.save_pretrained(path)
    return len(tok)


def make_tiny_model(arch: str, path: str | Path, seed: int = 0) -> Path:
    """Save a randomly initialised tiny ``arch`` encoder plus tokenizer into ``path``."""
    # deferred: transformers' import takes seconds
    from transformers import (
        AutoModel,
        BertConfig,
        RobertaConfig,
    )

    if arch not in ARCHITECTURES:
        raise ValueError(f"arch={arch!r} is not one of {ARCHITECTURES}.")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if arch == "bert":
        vocab = _bert_tokenizer(path)
        config = BertConfig(vocab_size=vocab, max_position_embeddings=512, **TINY_SIZES)
    else:
        vocab = _roberta_tokenizer(path)
        config = RobertaConfig(vocab_size=vocab, max_position_embeddings=514, pad_token_id=1,
                               bos_token_id=0, eos_token_id=2, type_vocab_size=1, **TINY_SIZES)
    torch.manual_seed(seed)
    AutoModel.from_config(config).save_pretrained(path)
    return path

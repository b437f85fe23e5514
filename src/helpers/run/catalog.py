"""The encoders this project knows by name: one table for configs, run ids, tables and figures.

A config's ``model`` is any Hub id or local folder; the models listed here additionally get a
display label, a tick label for figures, a bundled config (offline parameter counts and memory
accounting) and a place in the report's order. Light on purpose (no torch import): the
report code reads it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelInfo:
    """One known encoder."""

    #: What a config's ``model`` says (and what run ids shorten): a Hub id or a short name.
    name: str
    #: Where the weights come from (the packaged MiniLM also has a Hub copy).
    hub_id: str
    #: How tables and text name it.
    label: str
    #: Tick-sized label for figures.
    short: str
    #: Bundled architecture config in src/helpers/configs/, or None.
    config_file: str | None = None
    #: Other spellings that mean the same model.
    aliases: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


MODELS: dict[str, ModelInfo] = {
    m.name: m for m in (
        ModelInfo("roberta-base", "roberta-base", "RoBERTa-base", "RoBERTa",
                  "roberta-base.json"),
        ModelInfo("bert-base-uncased", "bert-base-uncased", "BERT-base", "BERT",
                  "bert-base-uncased.json"),
        ModelInfo("allenai/scibert_scivocab_uncased", "allenai/scibert_scivocab_uncased",
                  "SciBERT", "SciBERT", "scibert_scivocab_uncased.json"),
        ModelInfo("minilm", "sentence-transformers/all-MiniLM-L6-v2", "MiniLM-L6",
                  "MiniLM", aliases=("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")),
    )
}

#: The report's models, in the report's order (tables, figures and the "paper scale" check).
REPORT_MODELS: tuple[str, ...] = ("roberta-base", "bert-base-uncased",
                                  "allenai/scibert_scivocab_uncased")


def lookup(name: str) -> ModelInfo | None:
    """The entry for a model name or alias, else None (any Hub id or folder is still valid)."""
    for info in MODELS.values():
        if name in info.names:
            return info
    return None

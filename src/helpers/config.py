"""One experiment's parameters: defaults, validation and the stable run id.

The fields are exactly the parameters of ``notebooks/train.ipynb`` (papermill injects them),
and a grid row of ``params/*.yaml`` is a partial ``TrainConfig``. Validation runs before any
model or data is loaded, so a typo costs milliseconds, not a model download.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from .methods import METHODS

#: Every precision a run accepts (helpers.memory accounts for a documented subset).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

#: The built-in methods' learning rates for a config that leaves ``learning_rate`` empty (the
#: values and their sources are in helpers.methods, which :meth:`TrainConfig.resolved` reads).
DEFAULT_LEARNING_RATES = {name: m.learning_rate for name, m in METHODS.items()}

#: Fields that change where a run lives or how fast it goes, but not its results; they are left
#: out of the run id so that moving the runs folder or the data keeps ids stable.
NON_IDENTITY_FIELDS = ("runs_dir", "data_dir", "torch_threads", "save_best_checkpoint",
                       "per_device_eval_batch_size")


class ConfigError(ValueError):
    """A parameter is invalid; the message names it and the allowed values."""


def _field(default: Any, text: str, factory: Any = None) -> Any:
    """A TrainConfig field with its help text (the train notebook's parameter comments, ``python
    -m helpers train --help`` and grid errors show it)."""
    if factory is not None:
        return field(default_factory=factory, metadata={"help": text})
    return field(default=default, metadata={"help": text})


@dataclass
class TrainConfig:
    """Parameters of one fine-tuning run (defaults: the report's appendix for ``full``)."""

    model: str = _field("minilm", 'Hub id, local model folder, or "minilm" (packaged '
                        'all-MiniLM-L6-v2)')
    dataset: str = _field("restaurant_sup", 'e.g. "acl_sup", or "acl_fs" (32 training examples); '
                          "see helpers.data")
    method: str = _field("full", "fine-tuning method: a name in helpers.methods.METHODS")
    seed: int = _field(42, "random seed (head init, dropout, batch order)")
    learning_rate: float | None = _field(None, "None -> the method's default (helpers.methods)")
    num_train_epochs: int = _field(3, "epochs; each ends with an eval on validation and test")
    per_device_train_batch_size: int = _field(8, "training examples per optimizer step")
    per_device_eval_batch_size: int = _field(8, "examples per eval batch (speed only)")
    weight_decay: float = _field(0.01, "AdamW weight decay (none on biases and norms)")
    warmup_ratio: float = _field(0.0, "share of steps with linear warmup (then linear decay)")
    max_length: int = _field(256, "tokens per example after truncation (<= the model's limit)")
    logging_steps: int = _field(10, "the training loss is logged every this many steps")
    max_train_samples: int | None = _field(None, "None: the whole training split")
    max_eval_samples: int | None = _field(
        None, "per evaluation split (validation and test); None: all")
    precision: str = _field("auto", '"auto" (bf16 where the hardware has it) | "fp32" | '
                            '"bf16" | "fp16"')
    group_by_length: bool = _field(True, "batch examples of similar length (less padding)")
    # Houlsby et al. (2019): a bottleneck adapter after both attention and FFN sublayers;
    # in the adapters library that is "double_seq_bn" (``DoubleSeqBnConfig``).
    adapter_config: str = _field("double_seq_bn", 'adapters config name; "double_seq_bn" is '
                                                     'Houlsby et al. (2019)')
    adapter_reduction_factor: int = _field(16, "hidden size / adapter bottleneck size")
    lora_r: int = _field(8, "rank of the LoRA matrices")
    lora_alpha: int = _field(16, "LoRA scaling: updates are scaled by lora_alpha / lora_r")
    lora_dropout: float = _field(0.1, "dropout on the LoRA path's input")
    lora_target_modules: list[str] = _field(
        None, "linear layers that get LoRA matrices", factory=lambda: ["query", "value"])
    save_best_checkpoint: bool = _field(
        False, "save the best epoch's trainable weights in the run folder")
    runs_dir: str = _field("runs", "relative paths are taken from the project root")
    data_dir: str | None = _field(None, "None -> $NLPDL_DATA_DIR, else <project>/data")
    torch_threads: int | None = _field(None, "CPU threads for torch; None: torch's default")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a dict (papermill parameters, a grid row), rejecting unknown keys."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in values if k not in names]
        if unknown:
            key = unknown[0]
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"Unknown parameter '{key}'.{hint} Valid: {', '.join(names)}.")
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def resolved(self) -> TrainConfig:
        """A copy with method defaults filled in (the values a run actually uses)."""
        cfg = dataclasses.replace(self)
        if cfg.learning_rate is None:
            method = METHODS.get(cfg.method)
            cfg.learning_rate = method.learning_rate if method else None
        cfg.lora_target_modules = list(cfg.lora_target_modules)
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # ------------------------------------------------------------------ validation
    def validate(self, check_model_limit: bool = True) -> None:
        """Raise ConfigError on the first invalid value; loads nothing heavy."""
        from . import data

        if self.method not in METHODS:
            raise ConfigError(f"method={self.method!r} is not one of {list(METHODS)}.")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision={self.precision!r} is not one of {list(PRECISIONS)}.")
        try:
            data.check_name(self.dataset)
        except data.DataError as e:
            raise ConfigError(f"dataset: {e}") from None
        _positive(self, "learning_rate", allow_none=True)
        _positive(self, "num_train_epochs")
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size",
                     "max_length", "logging_steps", "adapter_reduction_factor", "lora_r",
                     "lora_alpha"):
            _at_least_one(self, name)
        for name in ("max_train_samples", "max_eval_samples", "torch_threads"):
            if getattr(self, name) is not None:
                _at_least_one(self, name)
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"warmup_ratio={self.warmup_ratio} must be in [0, 1).")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay={self.weight_decay} must be >= 0.")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"lora_dropout={self.lora_dropout} must be in [0, 1).")
        if not self.lora_target_modules:
            raise ConfigError("lora_target_modules must name at least one module.")
        if check_model_limit:
            from .models import ModelError, max_sequence_length

            try:
                limit = max_sequence_length(self.model)
            except ModelError as e:
                raise ConfigError(str(e)) from None
            if limit is not None and self.max_length > limit:
                raise ConfigError(
                    f"max_length={self.max_length} is above the limit of model "
                    f"'{self.model}' ({limit} tokens). Use max_length <= {limit}."
                )

    # ------------------------------------------------------------------ identity
    def identity(self) -> dict[str, Any]:
        """The resolved values that define the experiment (hashed into the run id)."""
        d = self.resolved().to_dict()
        for name in NON_IDENTITY_FIELDS:
            d.pop(name, None)
        return d

    def run_id(self) -> str:
        """``<model>__<dataset>__<method>__s<seed>__<hash8>``: readable and stable."""
        blob = json.dumps(self.identity(), sort_keys=True, default=str)
        digest = hashlib.sha1(blob.encode()).hexdigest()[:8]
        name = short_model_name(self.model)
        return f"{name}__{self.dataset}__{self.method}__s{self.seed}__{digest}"


def short_model_name(model: str) -> str:
    """``allenai/scibert_scivocab_uncased`` -> ``scibert_scivocab_uncased``; safe for paths."""
    name = model.rstrip("/").split("/")[-1] or "model"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name)


def field_help() -> dict[str, str]:
    """Each TrainConfig field's one-line help, in field order."""
    return {f.name: f.metadata["help"] for f in dataclasses.fields(TrainConfig)}


def _positive(cfg: TrainConfig, name: str, allow_none: bool = False) -> None:
    value = getattr(cfg, name)
    if value is None and allow_none:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{name}={value!r} must be a positive number.")


def _at_least_one(cfg: TrainConfig, name: str) -> None:
    value = getattr(cfg, name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name}={value!r} must be an integer >= 1.")

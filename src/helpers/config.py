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

METHODS = ("full", "adapter", "lora")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

#: Learning rates used when a config leaves ``learning_rate`` empty. ``full`` is the report's
#: appendix. Adapters and LoRA need ~10x more: AdapterHub's docs say "1e-4 works well" for
#: bottleneck adapters, and the LoRA paper trained RoBERTa-base at 4e-4 to 5e-4. The original
#: report trained its adapters at 2e-5 and they failed to learn.
DEFAULT_LEARNING_RATES = {"full": 2e-5, "adapter": 1e-4, "lora": 5e-4}

#: Fields that change where a run lives or how fast it goes, but not its results; they are left
#: out of the run id so that moving the runs folder or the data keeps ids stable.
NON_IDENTITY_FIELDS = ("runs_dir", "data_dir", "torch_threads", "save_best_checkpoint",
                       "per_device_eval_batch_size", "pad_to_multiple_of", "torch_compile")
#: ``torch_compile`` modes: None (eager), or a ``torch.compile`` mode; "reduce-overhead"
#: replays CUDA graphs (fixed shapes: pad_to_multiple_of).
COMPILE_MODES = (None, "default", "reduce-overhead")


class ConfigError(ValueError):
    """A parameter is invalid; the message names it and the allowed values."""


@dataclass
class TrainConfig:
    """Parameters of one fine-tuning run (defaults: the report's appendix for ``full``)."""

    model: str = "minilm"
    dataset: str = "restaurant_sup"
    method: str = "full"
    seed: int = 42
    learning_rate: float | None = None  # None -> DEFAULT_LEARNING_RATES[method]
    num_train_epochs: int = 3
    per_device_train_batch_size: int = 8
    per_device_eval_batch_size: int = 8
    weight_decay: float = 0.01
    warmup_ratio: float = 0.0
    max_length: int = 256
    logging_steps: int = 10
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    precision: str = "auto"  # bf16 autocast where the GPU/CPU computes bf16 natively, else fp32
    group_by_length: bool = True
    # Batches are padded to a multiple of this many tokens: a GPU then meets at most
    # max_length / N shapes per run, each paying a first-use cost once (~0.3 s in bf16).
    # None = auto: 16 on CUDA, 1 (no extra padding) on the CPU, where padding costs compute.
    # Attention masks make padding inert: speed only, not part of the run id.
    pad_to_multiple_of: int | None = None
    # torch.compile mode for the model (None: eager); speed only, not part of the run id.
    torch_compile: str | None = None
    # Houlsby et al. (2019): a bottleneck adapter after both attention and FFN sublayers;
    # in the adapters library that is "double_seq_bn" (``DoubleSeqBnConfig``).
    adapter_config: str = "double_seq_bn"
    adapter_reduction_factor: int = 16
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lora_target_modules: list[str] = field(default_factory=lambda: ["query", "value"])
    save_best_checkpoint: bool = False
    runs_dir: str = "runs"
    data_dir: str | None = None
    torch_threads: int | None = None

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
            cfg.learning_rate = DEFAULT_LEARNING_RATES.get(cfg.method)
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
        if self.torch_compile not in COMPILE_MODES:
            raise ConfigError(f"torch_compile={self.torch_compile!r} is not one of "
                              f"{list(COMPILE_MODES)}.")
        for name in ("max_train_samples", "max_eval_samples", "torch_threads",
                     "pad_to_multiple_of"):
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

"""Sizes the accounting builds on: element sizes, the model as training builds it, parameter counts.

Every model here is built by the training code's own builder (``helpers.run.models``) on the
``meta`` device, so the counts are the run's, with nothing allocated or downloaded.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from helpers.run.config import PRECISIONS as RUN_PRECISIONS
from helpers.run.config import TrainConfig
from helpers.run.methods import METHODS
from helpers.run.models import build_model, count_parameters, load_model_config, max_sequence_length

ELEMENT_BYTES = {"fp32": 4, "bf16": 2}
#: The subset of :data:`helpers.run.config.PRECISIONS` the accounting knows: fp32, and autocast
#: mixed precision with fp32 master weights (``fp16`` has the same sizes as ``bf16``; ``auto``
#: is one of these two once resolved on a device).
PRECISIONS = tuple(p for p in RUN_PRECISIONS if p in ELEMENT_BYTES)
KERNELS = ("cuda", "native")
OPTIMIZERS = ("adamw_fused", "adamw_foreach")
#: cuBLAS workspace taken from the caching allocator (torch CublasHandlePool.cpp: 32 MiB on
#: Hopper and newer, 4096*1024*2 + 16*1024*8 bytes before). It shows in max_memory_allocated.
CUBLAS_WORKSPACE_BYTES = {"sm90+": 32 * 2**20, "older": 4096 * 1024 * 2 + 16 * 1024 * 8}
GIB = 2**30


class MemoryAccountingError(ValueError):
    """Bad input to the accounting; the message names the parameter and the allowed values."""


def check_inputs(method: str, precision: str | None = None) -> None:
    if method not in METHODS:
        raise MemoryAccountingError(f"method={method!r} is not one of {list(METHODS)}.")
    if precision is not None and precision not in PRECISIONS:
        raise MemoryAccountingError(f"precision={precision!r} is not one of {list(PRECISIONS)} "
                           "(fp16 mixed precision has the same sizes as bf16: pass 'bf16').")


def train_config(model: str, method: str, **overrides: Any) -> TrainConfig:
    """The TrainConfig the training code would use (method hyper-parameters via overrides)."""
    check_inputs(method)
    try:
        return TrainConfig(model=model, method=method, **overrides)
    except TypeError as e:
        raise MemoryAccountingError(f"Unknown TrainConfig override: {e}.") from None


def labels(num_labels: int) -> list[str]:
    if num_labels < 1:
        raise MemoryAccountingError(f"num_labels={num_labels} must be >= 1.")
    return [f"label_{i}" for i in range(num_labels)]


def build(model: str, method: str, num_labels: int = 2, device: str | torch.device = "meta",
          **overrides: Any) -> torch.nn.Module:
    """The training code's model (``helpers.run.models.build_model``, random init) on ``device``.

    On ``meta`` nothing is allocated or downloaded: the report's models use bundled configs.
    """
    cfg = train_config(model, method, **overrides)
    with torch.device(device):
        return build_model(cfg, labels(num_labels), random_init=True)


@functools.lru_cache(maxsize=256)
def counts(model: str, method: str, num_labels: int, overrides: tuple) -> tuple[int, int, int]:
    m = build(model, method, num_labels, "meta", **dict(overrides))
    c = count_parameters(m)
    buffers = sum(b.numel() * b.element_size() for b in m.buffers())
    return c["total"], c["trainable"], buffers


def parameter_counts(model: str, method: str = "full", num_labels: int = 2,
                     **overrides: Any) -> dict[str, int]:
    """Exact ``{"total", "trainable"}`` of the classifier exactly as the training code builds it."""
    total, trainable, _ = counts(model, method, num_labels, freeze(overrides))
    return {"total": total, "trainable": trainable}


def encoder_parameter_count(model: str) -> int:
    """Parameters of the bare encoder (``AutoModel``: embeddings, layers, pooler), no head."""
    from transformers import AutoModel  # deferred: transformers' import takes seconds

    with torch.device("meta"):
        return count_parameters(AutoModel.from_config(load_model_config(model)))["total"]


def freeze(overrides: dict[str, Any]) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                        for k, v in overrides.items()))


def check_shape(model: str, batch: int, seq: int) -> None:
    if batch < 1 or seq < 1:
        raise MemoryAccountingError(f"batch={batch} and seq={seq} must be >= 1.")
    limit = max_sequence_length(model)
    if limit is not None and seq > limit:
        raise MemoryAccountingError(
            f"seq={seq} is above model '{model}''s limit of {limit} tokens.")


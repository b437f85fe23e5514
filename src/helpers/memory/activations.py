"""Activations: the bytes a training forward pass saves for backward, measured, and the
published formula they are compared with.

Kernels: activation bytes depend on which kernels run. On CUDA, dropout is ``native_dropout``
(1-byte bool mask) and BERT/RoBERTa's SDPA attention uses the fused flash/memory-efficient
kernels, which save q, k, v, the output and a log-sum-exp instead of the s x s probabilities. On
CPU, dropout keeps a float mask and SDPA with dropout falls back to the math path (s x s
probabilities + mask). ``kernels="cuda"`` (the default) makes a CPU measurement save exactly
what the CUDA kernels save (``native_dropout``; SDPA through the CPU flash kernel, which saves the
same tensors); ``kernels="native"`` measures whatever the device really runs.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import torch

from helpers.run.device import autocast_context
from helpers.run.models import load_model_config

from .sizes import (
    ELEMENT_BYTES,
    KERNELS,
    MemoryAccountingError,
    build,
    check_inputs,
    check_shape,
    freeze,
)


class _CudaKernels(torch.overrides.TorchFunctionMode):
    """Make CPU ops save for backward what the CUDA kernels save (see the module docstring)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is torch.nn.functional.dropout:
            x, p = args[0], kwargs.get("p", args[1] if len(args) > 1 else 0.5)
            training = kwargs.get("training", args[2] if len(args) > 2 else True)
            if training and 0 < p < 1:
                return torch.native_dropout(x, p, True)[0]
        if func is torch.nn.functional.scaled_dot_product_attention:
            # The fused CUDA kernels apply dropout inside the kernel and save no mask; the CPU
            # flash kernel saves the same tensors but only runs without dropout.
            if len(args) > 4:
                args = (*args[:4], 0.0, *args[5:])
            else:
                kwargs["dropout_p"] = 0.0
        return func(*args, **kwargs)


def kernel_context(kernels: str, device: torch.device) -> contextlib.AbstractContextManager:
    if kernels not in KERNELS:
        raise MemoryAccountingError(f"kernels={kernels!r} is not one of {list(KERNELS)}.")
    if kernels == "cuda" and device.type != "cuda":
        return _CudaKernels()
    return contextlib.nullcontext()


# --------------------------------------------------------------------------- measured activations
def make_batch(model: torch.nn.Module, batch: int, seq: int, device: torch.device,
               seed: int = 0) -> dict[str, torch.Tensor]:
    """Random token ids (no padding: every position real) and labels; values don't matter."""
    config = model.config
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, config.vocab_size, (batch, seq), generator=g)
    lab = torch.randint(0, config.num_labels, (batch,), generator=g)
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device),
            "labels": lab.to(device)}


def _never_unpacked(_packed: None) -> torch.Tensor:
    raise RuntimeError("saved_tensor_bytes builds a graph for counting only; no backward")


def saved_tensor_bytes(model: torch.nn.Module, batch: int, seq: int, precision: str = "fp32",
                       kernels: str = "cuda") -> dict[str, Any]:
    """Bytes the training forward pass (with loss) saves for backward, on the model's device.

    Each storage counts once (views share storage); parameters and buffers are excluded.
    """
    check_inputs("full", precision)
    device = next(model.parameters()).device
    inputs = make_batch(model, batch, seq, device)
    persistent = {t.untyped_storage().data_ptr()
                  for t in [*model.parameters(), *model.buffers()]}
    seen: dict[int, tuple[int, torch.dtype]] = {}
    alive: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        ptr = st.data_ptr()
        if ptr not in persistent and ptr not in seen:
            seen[ptr] = (st.nbytes(), t.dtype)
        # Keep ``t`` alive here (so no storage is freed and reused under another tensor while
        # counting), but pack None: packing ``t`` itself would make a saved *output* hold its
        # own grad_fn, a cycle through C++ autograd nodes that gc cannot break, so every call
        # would leak its activations. This graph is never run backward, so the packed value is
        # never unpacked.
        alive.append(t)
        return None

    model.train()
    with (kernel_context(kernels, device), autocast_context(device, precision),
          torch.autograd.graph.saved_tensors_hooks(pack, _never_unpacked)):
        loss = model(**inputs).loss
    del loss
    alive.clear()
    by_dtype: dict[str, int] = {}
    for nbytes, dtype in seen.values():
        key = str(dtype).removeprefix("torch.")
        by_dtype[key] = by_dtype.get(key, 0) + nbytes
    return {"bytes": sum(by_dtype.values()), "by_dtype": by_dtype, "tensors": len(seen)}


_ACTIVATION_CACHE: dict[tuple, dict[str, Any]] = {}
_MODEL_CACHE: dict[tuple, torch.nn.Module] = {}


def _cached_build(model: str, method: str, num_labels: int, device: str,
                  overrides: tuple) -> torch.nn.Module:
    """The last model built for measuring (one kept: consecutive shapes reuse it)."""
    key = (model, method, num_labels, str(device), overrides)
    if key not in _MODEL_CACHE:
        _MODEL_CACHE.clear()
        torch.manual_seed(0)
        _MODEL_CACHE[key] = build(model, method, num_labels, device, **dict(overrides))
    return _MODEL_CACHE[key]


def clear_caches() -> None:
    """Drop the kept measuring model and cached measurements (frees the model's memory)."""
    _MODEL_CACHE.clear()
    _ACTIVATION_CACHE.clear()


def _architecture_key(model: str) -> str:
    """Config without the vocabulary size: vocabulary only changes the (int64) index saved."""
    d = load_model_config(model).to_dict()
    for k in ("vocab_size", "_name_or_path", "transformers_version", "architectures"):
        d.pop(k, None)
    return json.dumps(d, sort_keys=True, default=str)


def measure_activations(model: str, method: str, precision: str, batch: int, seq: int,
                        num_labels: int = 2, device: str = "cpu", kernels: str = "cuda",
                        extrapolate: bool = True, **overrides: Any) -> dict[str, Any]:
    """Measured saved-for-backward bytes at ``batch`` x ``seq`` (see :func:`saved_tensor_bytes`).

    With ``extrapolate`` and ``batch > 2`` it measures batches 1 and 2 and extends the line:
    saved bytes are exactly affine in batch size (per-example tensors plus batch-independent
    ones such as autocast's weight copies), which tests verify. Results are cached per
    architecture (bert-base-uncased and SciBERT share one).
    """
    check_inputs(method, precision)
    check_shape(model, batch, seq)
    key = (_architecture_key(model), method, precision, batch, seq, num_labels, device, kernels,
           extrapolate, freeze(overrides))
    if key in _ACTIVATION_CACHE:
        return dict(_ACTIVATION_CACHE[key])
    m = _cached_build(model, method, num_labels, device, freeze(overrides))
    if extrapolate and batch > 2:
        one = saved_tensor_bytes(m, 1, seq, precision, kernels)
        two = saved_tensor_bytes(m, 2, seq, precision, kernels)
        slope = two["bytes"] - one["bytes"]
        result = {"bytes": one["bytes"] + slope * (batch - 1), "per_example_bytes": slope,
                  "fixed_bytes": one["bytes"] - slope, "measured_batches": [1, 2]}
    else:
        direct = saved_tensor_bytes(m, batch, seq, precision, kernels)
        result = {"bytes": direct["bytes"], "by_dtype": direct["by_dtype"],
                  "measured_batches": [batch]}
    result.update(device=str(device), kernels=kernels)
    _ACTIVATION_CACHE[key] = result
    return dict(result)




# --------------------------------------------------------------------------- published formula
def formula_activation_bytes(model: str, batch: int, seq: int, precision: str = "fp32",
                             attention: str = "materialized") -> int:
    """Korthikanti et al. (2022), "Reducing Activation Recomputation in Large Transformer Models".

    Per layer, 16-bit: ``s*b*h*(34 + 5*a*s/h)`` bytes. Generalised here to element size ``e``
    (dropout masks stay 1 byte) and FFN width ``I`` (the paper assumes 4h):
    attention ``(5e+1)*sbh + (2e+1)*a*s^2*b``, FFN ``(e + 2e*I/h + 1)*sbh``, two LayerNorms
    ``2e*sbh``. e=2, I=4h gives the paper's 34 and 5. ``attention="fused"`` replaces the
    s x s terms by what flash/memory-efficient kernels save: the output (``e*sbh``) and a
    log-sum-exp (4 B per head and token). Layers only: the paper ignores embeddings, the
    pooler and the loss, and a precision of ``bf16`` here means *all* saved tensors in 16 bit,
    which autocast doesn't do (LayerNorm and residual adds stay fp32).
    """
    check_inputs("full", precision)
    if attention not in ("materialized", "fused"):
        raise MemoryAccountingError(f"attention={attention!r} is not 'materialized' or 'fused'.")
    cfg = load_model_config(model)
    e, s, b = ELEMENT_BYTES[precision], seq, batch
    h, a, n = cfg.hidden_size, cfg.num_attention_heads, cfg.num_hidden_layers
    ffn = getattr(cfg, "intermediate_size", 4 * h)
    sbh = s * b * h
    attn = (5 * e + 1) * sbh
    attn += (2 * e + 1) * a * s * s * b if attention == "materialized" else e * sbh + 4 * a * s * b
    mlp = e * sbh + 2 * e * s * b * ffn + sbh
    norms = 2 * e * sbh
    return n * (attn + mlp + norms)

"""Training memory of model x method x precision x batch x sequence length, offline.

Why this exists: the original report put roberta-base at "about 3 billion parameters" and full
fine-tuning at 70 GB. It has 124.6 million and needs a few GB. Everything here is exact or
measured, and is checked against ``torch.cuda.max_memory_allocated`` by ``benchmarks/memory.py``.

Accounting for one optimizer step (AdamW, fp32 master weights; ``bf16`` = autocast mixed
precision, as the training code runs on GPUs):

* weights: every parameter in fp32 (4 B) plus buffers. Frozen weights count too.
* gradients: trainable parameters only, fp32 (4 B each; autocast keeps fp32 grads).
* optimizer: AdamW keeps two fp32 tensors (exp_avg, exp_avg_sq) per trainable parameter (8 B).
  The fused implementation (Trainer's default from torch 2.8) needs no temporaries; the foreach
  implementation allocates one more fp32 copy of the trainable parameters during ``step``.
* activations: *measured*, not estimated: the bytes the forward pass saves for backward,
  captured with ``torch.autograd.graph.saved_tensors_hooks`` (each storage once; parameter and
  buffer storages excluded; autocast's bf16 weight copies are included, they are real memory).
* peak = weights + optimizer + max(activations + backward transient, gradients + step
  transient) + the cuBLAS workspace. Backward frees a layer's saved tensors as it allocates the
  layer's gradients, so live memory moves linearly between "all activations, no gradients" (the
  start of backward) and "all gradients, no activations" (its end); the transient is the
  largest pair of activation gradients alive at once (FFN width) plus the hidden-state gradient.
"""

from __future__ import annotations

from typing import Any

import torch

from .activations import formula_activation_bytes, measure_activations
from .sizes import (
    CUBLAS_WORKSPACE_BYTES,
    ELEMENT_BYTES,
    OPTIMIZERS,
    MemoryAccountingError,
    check_inputs,
    check_shape,
    counts,
    freeze,
    load_model_config,
)


def cuda_workspace_bytes(device: str | None = None) -> int:
    """The cuBLAS workspace for the current CUDA device, or the Hopper value without CUDA."""
    if device == "cpu":
        return 0
    if torch.cuda.is_available():
        major, _ = torch.cuda.get_device_capability()
        return CUBLAS_WORKSPACE_BYTES["sm90+" if major >= 9 else "older"]
    return CUBLAS_WORKSPACE_BYTES["sm90+"]


def account(model: str, method: str, precision: str = "bf16", batch: int = 8, seq: int = 256,
            num_labels: int = 2, activations: int | None = None, optimizer: str = "adamw_fused",
            workspace: int | None = None, measure_device: str = "cpu", kernels: str = "cuda",
            **overrides: Any) -> dict[str, Any]:
    """Components and predicted peak (bytes) of one training step; see the module docstring.

    ``activations`` (bytes) skips the measurement; ``workspace`` defaults to the CUDA cuBLAS
    workspace (pass 0 for a CPU prediction).
    """
    check_inputs(method, precision)
    if optimizer not in OPTIMIZERS:
        raise MemoryAccountingError(f"optimizer={optimizer!r} is not one of {list(OPTIMIZERS)}.")
    check_shape(model, batch, seq)
    total, trainable, buffers = counts(model, method, num_labels, freeze(overrides))
    if activations is None:
        activations = measure_activations(model, method, precision, batch, seq, num_labels,
                                          measure_device, kernels, **overrides)["bytes"]
    cfg = load_model_config(model)
    e = ELEMENT_BYTES[precision]
    ffn = getattr(cfg, "intermediate_size", 4 * cfg.hidden_size)
    weights = 4 * total + buffers
    gradients = 4 * trainable
    optimizer_states = 8 * trainable
    # Allowance, from live-tensor tracking of real steps (LiveTensorBytes): inside one layer's
    # backward, two FFN-width gradients and ~4 hidden-size fp32 tensors (gradients, dropout and
    # LayerNorm outputs) are alive on top of the saved activations. Exact for no method (full
    # FT frees more first, adapters less); it is <2% of the peak of a base-size model.
    backward_transient = 2 * e * batch * seq * ffn + 4 * 4 * batch * seq * cfg.hidden_size
    step_transient = 4 * trainable if optimizer == "adamw_foreach" else 0
    workspace = cuda_workspace_bytes() if workspace is None else workspace
    peak = (weights + optimizer_states + workspace
            + max(activations + backward_transient, gradients + step_transient))
    return {
        "model": model, "method": method, "precision": precision, "batch": batch, "seq": seq,
        "num_labels": num_labels, "parameters": total, "trainable": trainable,
        "trainable_share": trainable / total, "weights_bytes": weights,
        "gradients_bytes": gradients, "optimizer_bytes": optimizer_states,
        "activations_bytes": int(activations), "transient_bytes": backward_transient,
        "workspace_bytes": workspace, "predicted_peak_bytes": int(peak),
        "formula_activations_bytes": formula_activation_bytes(model, batch, seq, precision,
                                                              "fused"),
    }


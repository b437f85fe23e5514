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
import functools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .catalog import REPORT_MODELS
from .config import METHODS, TrainConfig
from .config import PRECISIONS as RUN_PRECISIONS
from .training import autocast_context, make_optimizer, train_step

ELEMENT_BYTES = {"fp32": 4, "bf16": 2}
#: The subset of :data:`helpers.config.PRECISIONS` the accounting knows: fp32, and autocast
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


def _check(method: str, precision: str | None = None) -> None:
    if method not in METHODS:
        raise MemoryAccountingError(f"method={method!r} is not one of {list(METHODS)}.")
    if precision is not None and precision not in PRECISIONS:
        raise MemoryAccountingError(f"precision={precision!r} is not one of {list(PRECISIONS)} "
                           "(fp16 mixed precision has the same sizes as bf16: pass 'bf16').")


def train_config(model: str, method: str, **overrides: Any) -> TrainConfig:
    """The TrainConfig the training code would use (method hyper-parameters via overrides)."""
    _check(method)
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
    """The training code's model (``helpers.models.build_model``, random init) on ``device``.

    On ``meta`` nothing is allocated or downloaded: the report's models use bundled configs.
    """
    from .models import build_model

    cfg = train_config(model, method, **overrides)
    with torch.device(device):
        return build_model(cfg, labels(num_labels), random_init=True)


@functools.lru_cache(maxsize=256)
def _counts(model: str, method: str, num_labels: int, overrides: tuple) -> tuple[int, int, int]:
    from .models import count_parameters

    m = build(model, method, num_labels, "meta", **dict(overrides))
    c = count_parameters(m)
    buffers = sum(b.numel() * b.element_size() for b in m.buffers())
    return c["total"], c["trainable"], buffers


def parameter_counts(model: str, method: str = "full", num_labels: int = 2,
                     **overrides: Any) -> dict[str, int]:
    """Exact ``{"total", "trainable"}`` of the classifier exactly as the training code builds it."""
    total, trainable, _ = _counts(model, method, num_labels, _freeze(overrides))
    return {"total": total, "trainable": trainable}


def encoder_parameter_count(model: str) -> int:
    """Parameters of the bare encoder (``AutoModel``: embeddings, layers, pooler), no head."""
    from transformers import AutoModel

    from .models import count_parameters, load_model_config

    with torch.device("meta"):
        return count_parameters(AutoModel.from_config(load_model_config(model)))["total"]


def _freeze(overrides: dict[str, Any]) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                        for k, v in overrides.items()))


# --------------------------------------------------------------------------- CUDA kernel emulation
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


def _kernel_context(kernels: str, device: torch.device) -> contextlib.AbstractContextManager:
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
    _check("full", precision)
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
        # counting), but pack None: packing ``t`` itself made a saved *output* hold its own
        # grad_fn, a cycle through C++ autograd nodes that gc cannot break, and every call
        # leaked its activations (on the GPU each row's peak held all earlier rows' graphs).
        # This graph is never run backward, so the packed value is never unpacked.
        alive.append(t)
        return None

    model.train()
    with (_kernel_context(kernels, device), autocast_context(device, precision),
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
    from .models import load_model_config

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
    _check(method, precision)
    _check_shape(model, batch, seq)
    key = (_architecture_key(model), method, precision, batch, seq, num_labels, device, kernels,
           extrapolate, _freeze(overrides))
    if key in _ACTIVATION_CACHE:
        return dict(_ACTIVATION_CACHE[key])
    m = _cached_build(model, method, num_labels, device, _freeze(overrides))
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


def _check_shape(model: str, batch: int, seq: int) -> None:
    from .models import max_sequence_length

    if batch < 1 or seq < 1:
        raise MemoryAccountingError(f"batch={batch} and seq={seq} must be >= 1.")
    limit = max_sequence_length(model)
    if limit is not None and seq > limit:
        raise MemoryAccountingError(
            f"seq={seq} is above model '{model}''s limit of {limit} tokens.")


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
    from .models import load_model_config

    _check("full", precision)
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


# --------------------------------------------------------------------------- accounting
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
    from .models import load_model_config

    _check(method, precision)
    if optimizer not in OPTIMIZERS:
        raise MemoryAccountingError(f"optimizer={optimizer!r} is not one of {list(OPTIMIZERS)}.")
    _check_shape(model, batch, seq)
    total, trainable, buffers = _counts(model, method, num_labels, _freeze(overrides))
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


# --------------------------------------------------------------------------- real training steps
def training_steps(model: torch.nn.Module, batch: int, seq: int, precision: str, steps: int = 3,
                   kernels: str = "cuda", lr: float = 1e-4) -> None:
    """``steps`` steps of the training code (:func:`helpers.training.train_step`: autocast,
    clipping, its fused AdamW with weight-decay groups, grads set to None) on a random batch."""
    device = next(model.parameters()).device
    opt = make_optimizer(model, TrainConfig(learning_rate=lr))
    inputs = make_batch(model, batch, seq, device)
    model.train()
    with _kernel_context(kernels, device):
        for _ in range(steps):
            train_step(model, inputs, opt, device, precision)
    del opt


class LiveTensorBytes(torch.utils._python_dispatch.TorchDispatchMode):
    """Peak of live tensor bytes over the ops run inside it: ``max_memory_allocated`` for CPU.

    Counts every storage an op creates until it is freed (weak references), rounded up to
    512 B like the CUDA caching allocator, on top of ``persistent`` tensors alive at entry
    (parameters, buffers: views of them are not new memory). Used to check the peak model on
    CPU; the CUDA benchmark is the ground truth.
    """

    def __init__(self, persistent: Sequence[torch.Tensor] = ()) -> None:
        super().__init__()
        storages = {t.untyped_storage().data_ptr(): _rounded(t) for t in persistent}
        self._persistent = set(storages)
        self.current = self.peak = sum(storages.values())
        self._live: dict[int, tuple[int, int]] = {}

    def _free(self, ptr: int, token: int) -> None:
        if ptr in self._live and self._live[ptr][1] == token:
            self.current -= self._live.pop(ptr)[0]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        import weakref

        out = func(*args, **(kwargs or {}))
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor) and not t.is_meta:
                st = t.untyped_storage()
                ptr = st.data_ptr()
                if ptr and ptr not in self._persistent and ptr not in self._live:
                    self._live[ptr] = (_rounded(t), id(st))
                    self.current += self._live[ptr][0]
                    weakref.finalize(st, self._free, ptr, id(st))
        self.peak = max(self.peak, self.current)
        return out


def _rounded(t: torch.Tensor) -> int:
    return -(-t.untyped_storage().nbytes() // 512) * 512


def measure_peak(model: torch.nn.Module, batch: int, seq: int, precision: str, steps: int = 3,
                 kernels: str = "cuda") -> int:
    """Peak bytes allocated over ``steps`` training steps, on the model's device.

    CUDA: ``torch.cuda.max_memory_allocated`` after a reset (weights already resident).
    CPU: :class:`LiveTensorBytes` (same quantity, tracked per storage).
    """
    device = next(model.parameters()).device
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        training_steps(model, batch, seq, precision, steps, kernels)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated()
    tracker = LiveTensorBytes([*model.parameters(), *model.buffers()])
    with tracker:
        training_steps(model, batch, seq, precision, steps, kernels)
    return tracker.peak


# --------------------------------------------------------------------------- runs
def compare_run(run_dir: str | Path, activations: int | None = None) -> dict[str, Any]:
    """Predicted vs measured peak for a finished run (``config.json`` + ``memory.json``).

    Runs pad each batch dynamically, so the longest padded batch sets the peak: its length is
    used when ``memory.json`` records it (``max_padded_length``/``max_seq_len``), else the
    configured ``max_length`` (an upper bound); ``seq_source`` says which.
    """
    run_dir = Path(run_dir)
    try:
        config = json.loads((run_dir / "config.json").read_text())
        mem = json.loads((run_dir / "memory.json").read_text())
    except FileNotFoundError as e:
        raise MemoryAccountingError(
            f"{run_dir} is not a complete run folder ({e.filename} missing).") from None
    precision = mem.get("precision") or config.get("precision")
    precision = "bf16" if precision in ("bf16", "fp16") else "fp32"
    seq, source = config["max_length"], "config max_length"
    for k in ("max_padded_length", "max_seq_len", "max_batch_length"):
        if mem.get(k):
            seq, source = int(mem[k]), f"memory.json {k}"
            break
    num_labels = _run_num_labels(config, mem)
    owned = [f for m in METHODS.values() for f in m.fields]  # method hyper-parameters
    overrides = {k: config[k] for k in owned if k in config}
    on_cuda = mem.get("device") == "cuda"
    # helpers.training uses torch.optim.AdamW() defaults: the foreach implementation on CUDA.
    pred = account(config["model"], config["method"], precision,
                   config["per_device_train_batch_size"], seq, num_labels, activations,
                   optimizer="adamw_foreach", workspace=None if on_cuda else 0, **overrides)
    measured = mem.get("peak_cuda_allocated_bytes")
    pred.update(run_id=config.get("run_id", run_dir.name), seq_source=source,
                device=mem.get("device"), device_name=mem.get("device_name"),
                measured_peak_bytes=measured,
                ratio=(pred["predicted_peak_bytes"] / measured) if measured else None)
    return pred


def _run_num_labels(config: dict, mem: dict) -> int:
    params = mem.get("parameters") or {}
    for n in range(2, 64):  # the label count is the one whose parameter count matches the run
        if parameter_counts(config["model"], config["method"], n) == \
                {"total": params.get("total"), "trainable": params.get("trainable")}:
            return n
    from . import data

    dataset = config.get("dataset")
    if dataset in data.dataset_names():
        return len(data.SOURCES[dataset.rsplit("_", 1)[0]].labels)
    return 2


# --------------------------------------------------------------------------- report pieces
def results_status(path: str | Path | None) -> str:
    """``"measured"`` when the benchmark file holds raw peaks, ``"corrected"`` when its peaks
    were corrected after the run (a ``correction`` note or ``measured_peak_raw_bytes`` rows),
    ``"none"`` when there is no file. The report's GPU column is labelled with this."""
    if path is None or not Path(path).is_file():
        return "none"
    content = json.loads(Path(path).read_text())
    rows = content.get("rows", [])
    if content.get("correction") or any("measured_peak_raw_bytes" in r for r in rows):
        return "corrected"
    return "measured" if any(r.get("measured_peak_bytes") for r in rows) else "none"


def load_results(path: str | Path | None) -> list[dict[str, Any]]:
    """Rows of a ``benchmarks/results/memory_<device>.json`` (empty when there is none)."""
    if path is None or not Path(path).is_file():
        return []
    return json.loads(Path(path).read_text()).get("rows", [])


def report_table(models: Sequence[str] = REPORT_MODELS, methods: Sequence[str] = METHODS,
                 precision: str = "bf16", batch: int = 8, seq: int = 256, num_labels: int = 3,
                 results: str | Path | list | None = None):
    """Per model and method: parameters, trainable share, components, predicted/measured peak.

    Sizes in GiB. Activations come from ``results`` (a CUDA benchmark file) when it has the
    configuration, else they are measured on this CPU with CUDA kernels emulated.
    """
    import pandas as pd

    rows = results if isinstance(results, list) else load_results(results)
    out = []
    for model in models:
        for method in methods:
            match = _find(rows, model, method, precision, batch, seq)
            acts = match.get("activations_bytes") if match else None
            a = account(model, method, precision, batch, seq, num_labels, acts)
            measured = match.get("measured_peak_bytes") if match else None
            out.append({
                "model": model, "method": method,
                "parameters (M)": a["parameters"] / 1e6,
                "trainable (M)": a["trainable"] / 1e6,
                "trainable share (%)": 100 * a["trainable_share"],
                "weights": a["weights_bytes"] / GIB, "gradients": a["gradients_bytes"] / GIB,
                "optimizer states": a["optimizer_bytes"] / GIB,
                "activations": a["activations_bytes"] / GIB,
                "other": (a["transient_bytes"] + a["workspace_bytes"]) / GIB,
                "predicted peak": a["predicted_peak_bytes"] / GIB,
                "measured peak": measured / GIB if measured else math.nan,
            })
    return pd.DataFrame(out)


def _find(rows: list[dict], model: str, method: str, precision: str, batch: int,
          seq: int) -> dict | None:
    for r in rows:
        if (r.get("model"), r.get("method"), r.get("precision"), r.get("batch"),
                r.get("seq")) == (model, method, precision, batch, seq):
            return r
    return None

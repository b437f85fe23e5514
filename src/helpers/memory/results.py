"""The GPU benchmark's results file, and a finished run's recorded peak beside the accounting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from helpers.run.methods import METHODS

from .accounting import account
from .sizes import MemoryAccountingError, parameter_counts


def compare_run(run_dir: str | Path, activations: int | None = None) -> dict[str, Any]:
    """Predicted vs measured peak for a finished run (``config.json`` + ``memory.json``).

    The sequence length is the configured ``max_length``: runs pad each batch dynamically, so
    it is an upper bound of the longest padded batch, which sets the peak.
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
    seq = config["max_length"]
    num_labels = _run_num_labels(config, mem)
    owned = [f for m in METHODS.values() for f in m.fields]  # method hyper-parameters
    overrides = {k: config[k] for k in owned if k in config}
    on_cuda = mem.get("device") == "cuda"
    # helpers.run.training uses torch.optim.AdamW() defaults: the foreach implementation on CUDA.
    pred = account(config["model"], config["method"], precision,
                   config["per_device_train_batch_size"], seq, num_labels, activations,
                   optimizer="adamw_foreach", workspace=None if on_cuda else 0, **overrides)
    measured = mem.get("peak_cuda_allocated_bytes")
    pred.update(run_id=config.get("run_id", run_dir.name),
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
    # deferred: helpers.run.data imports datasets (seconds), needed only for runs whose label
    # count the parameter counts don't give
    from helpers.run import data

    dataset = config.get("dataset")
    if dataset in data.dataset_names():
        return len(data.SOURCES[dataset.rsplit("_", 1)[0]].labels)
    return 2


def read_results(path: str | Path | None) -> dict[str, Any]:
    """A ``benchmarks/results/memory_<device>.json`` whole (``{}`` when there is none): read
    once, its status (:func:`status_of`) and rows come from the one parse."""
    if path is None or not Path(path).is_file():
        return {}
    return json.loads(Path(path).read_text())


def status_of(content: dict[str, Any]) -> str:
    """``"measured"`` when the benchmark file holds raw peaks, ``"corrected"`` when its peaks
    were corrected after the run (a ``correction`` note or ``measured_peak_raw_bytes`` rows),
    ``"none"`` when there is no file. The report's GPU column is labelled with this."""
    rows = content.get("rows", [])
    if content.get("correction") or any("measured_peak_raw_bytes" in r for r in rows):
        return "corrected"
    return "measured" if any(r.get("measured_peak_bytes") for r in rows) else "none"


def results_status(path: str | Path | None) -> str:
    """:func:`status_of` the file at ``path``."""
    return status_of(read_results(path))


def load_results(path: str | Path | None) -> list[dict[str, Any]]:
    """Rows of a ``benchmarks/results/memory_<device>.json`` (empty when there is none)."""
    return read_results(path).get("rows", [])


def find_result(rows: list[dict], model: str, method: str, precision: str, batch: int,
          seq: int) -> dict | None:
    for r in rows:
        if (r.get("model"), r.get("method"), r.get("precision"), r.get("batch"),
                r.get("seq")) == (model, method, precision, batch, seq):
            return r
    return None
"""Synthetic runs: complete run folders with the metrics contract's files and fixed values.

For tests and for trying the analysis notebook without training anything. Each run's
predictions (:mod:`helpers.run.predictions`) are drawn first and its scores computed from them,
so the records agree as a trained run's do; the labels of a dataset's eval examples are the
same in every run (runs pair by example, as real ones do).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from helpers.grid.spec import Grid
from helpers.run import predictions, provenance, store
from helpers.run.config import TrainConfig

#: (total, trainable) parameters of roberta-base with a 3-class head per method, as the synthetic
#: runs record them; a method not listed (a test's throwaway one) gets full fine-tuning's.
PARAMETERS = {
    "full": (124_647_939, 124_647_939),
    "adapter": (126_442_563, 1_794_624 + 592_899),
    "lora": (125_535_747, 294_912 + 592_899),
}
#: Eval rows per split of every synthetic run.
EVAL_SAMPLES = 20


def label_names(dataset: str) -> list[str]:
    """The dataset's class names (helpers.run.sources), or three made-up ones."""
    from helpers.run import sources  # deferred: sources imports datasets (seconds)

    source = sources.SOURCES.get(dataset.rsplit("_", 1)[0])
    return list(source.labels) if source else ["class 0", "class 1", "class 2"]


def eval_labels(dataset: str, split: str, classes: int) -> np.ndarray:
    """Fixed labels of one dataset's synthetic eval split, imbalanced like ACL-ARC's."""
    rng = np.random.default_rng([sum(map(ord, dataset)), len(split)])
    weights = 0.6 ** np.arange(classes)
    return rng.choice(classes, size=EVAL_SAMPLES, p=weights / weights.sum())


def write_synthetic_runs(runs_dir: str | os.PathLike,
                         cells: Iterable[tuple[str, str, str]],
                         seeds: Sequence[int] = (1, 2, 3), epochs: int = 3,
                         steps_per_epoch: int = 6, logging_steps: int = 2,
                         device: str = "cpu", max_train_samples: int | None = 48,
                         rng_seed: int = 0) -> list[str]:
    """Write complete runs with the metrics contract's files and random but fixed values.

    For tests and for trying the analysis notebook without training anything: each
    ``(model, dataset, method)`` cell gets one run per seed of a config with TrainConfig's
    defaults (so not the run ids of a grid: see :func:`write_grid_runs`), written through
    :func:`helpers.run.store.staging` exactly as training does. Returns the run ids.
    """
    rng = np.random.default_rng(rng_seed)
    configs = [TrainConfig(model=model, dataset=dataset, method=method, seed=int(seed),
                           num_train_epochs=epochs, logging_steps=logging_steps,
                           max_train_samples=max_train_samples).resolved()
               for model, dataset, method in cells for seed in seeds]
    return [_write_run(runs_dir, cfg, rng, steps_per_epoch, logging_steps, device)
            for cfg in configs]


def write_grid_runs(grid: Grid, runs_dir: str | os.PathLike | None = None,
                    steps_per_epoch: int = 6, device: str = "cpu",
                    rng_seed: int = 0) -> list[str]:
    """Synthetic runs of exactly the grid's configs (its run ids: the report reads a grid's
    runs only), e.g. a 75-run build of params/full.yaml; into ``runs_dir`` (default: the
    grid's). Returns the run ids, in the grid's order."""
    rng = np.random.default_rng(rng_seed)
    return [_write_run(runs_dir if runs_dir is not None else grid.store.root,
                       r.config.resolved(), rng, steps_per_epoch, 2, device)
            for r in grid.runs]


def _write_run(runs_dir: str | os.PathLike, cfg: TrainConfig, rng: np.random.Generator,
               steps_per_epoch: int, logging_steps: int, device: str) -> str:
    """One synthetic run of ``cfg``: ``logging_steps`` is the synthetic history's (train loss
    rows), so that a short synthetic epoch still logs some."""
    run_id, epochs = cfg.run_id(), cfg.num_train_epochs
    level = rng.uniform(0.4, 0.85)
    names = label_names(cfg.dataset)
    labels = {s: eval_labels(cfg.dataset, s, len(names)) for s in predictions.SPLITS}
    history, scores, blocks = [], [], []
    for epoch in range(1, epochs + 1):
        for step in range((epoch - 1) * steps_per_epoch + 1, epoch * steps_per_epoch + 1):
            if step % logging_steps == 0:
                history.append((step, step / steps_per_epoch, "train", "loss",
                                float(1.2 * np.exp(-step / 8) + rng.uniform(0, 0.1))))
        end = epoch * steps_per_epoch
        history.append((end, epoch, "train", "epoch_loss", float(rng.uniform(0.2, 1))))
        per_split = {}
        for split in predictions.SPLITS:
            right = float(np.clip(level + 0.03 * epoch + rng.normal(0, 0.03), 0, 1))
            y = labels[split]
            wrong = (y + rng.integers(1, len(names), size=len(y))) % len(names)
            pred = np.where(rng.random(len(y)) < right, y, wrong)
            values = {**predictions.scores(y.tolist(), pred.tolist()),
                      "loss": float(rng.uniform(0.3, 1.0))}
            per_split[split] = values
            history += [(end, epoch, split, m, v) for m, v in values.items()]
            blocks.append((split, epoch, range(len(y)), y.tolist(), pred.tolist(), None))
        scores.append(per_split)
    best = int(np.argmax([s["validation"]["macro_f1"] for s in scores])) + 1
    train_losses = [h[4] for h in history if h[2] == "train" and h[3] == "loss"]
    entry = PARAMETERS.get(cfg.method, PARAMETERS["full"])
    params = {"total": entry[0], "trainable": entry[1]}
    cuda = device == "cuda"
    name = "NVIDIA H100 80GB HBM3" if cuda else "x86_64"
    with store.staging(runs_dir, run_id) as out:
        pd.DataFrame(history, columns=list(store.HISTORY_COLUMNS)).to_csv(
            out / "history.csv", index=False)
        predictions.write(out / predictions.FILE, blocks)
        store.write_json(out / "config.json", {**cfg.to_dict(), "run_id": run_id})
        store.write_json(out / "metrics.json", {
            "run_id": run_id, "best_epoch": best, "selection": "validation_macro_f1",
            "validation": scores[best - 1]["validation"], "test": scores[best - 1]["test"],
            "train_loss": float(np.mean(train_losses)),
            "final_train_loss": float(train_losses[-1]),
            "wall_time_s": 10.0, "train_time_s": 8.0, "train_samples_per_s": 6.0,
            "train_tokens_per_s": 300.0, "num_train_samples": cfg.max_train_samples or 100,
            "num_eval_samples": {s: EVAL_SAMPLES for s in predictions.SPLITS},
            "num_epochs": epochs, "parameters": params, "label_names": names})
        store.write_json(out / "memory.json", {
            "parameters": params, "device": device, "device_name": name,
            "precision": "bf16" if cuda else "fp32",
            "peak_cuda_allocated_bytes": int(rng.uniform(2e9, 6e9)) if cuda else None,
            "peak_cuda_reserved_bytes": int(rng.uniform(6e9, 8e9)) if cuda else None,
            "peak_rss_bytes": int(rng.uniform(1e9, 3e9))})
        store.write_json(out / "env.json", {
            "python": "3.11", "platform": "synthetic", "packages": {},
            "device": device, "device_name": name, "cuda": None,
            "cuda_device_count": int(cuda), "precision": "bf16" if cuda else "fp32",
            "torch_threads": 2, "cpu_count": 2,
            # it read no files: an empty record, not an unknown one (helpers.run.provenance)
            provenance.KEY: {"data_dir": None, "data_files": {}, "model_dir": None,
                             "model_files": {}}})
    return run_id

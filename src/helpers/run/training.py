"""One fine-tuning run, from a validated config to a complete folder in the runs store.

:func:`run` validates the config (before loading anything), loads and subsamples the data,
tokenizes it once per tokenizer x dataset x max_length (cached on disk and reused by every
seed and method), builds the model for the method, trains, evaluates on validation *and* test
after every epoch, picks the epoch with the best validation macro-F1 (never test), and writes
the artifacts of :mod:`helpers.run.store` through ``RunStore.staging`` so a run appears atomically.

Why a plain PyTorch loop rather than ``transformers.Trainer``: the protocol needs an eval on
two splits after every epoch with a tidy history, and the throughput/memory analysis needs
control of per-step overhead (no per-step host syncs, no callbacks, exact timing of the
training part alone). The pieces HF Trainer would use are reused: ``DataCollatorWithPadding``
(dynamic padding), ``LengthGroupedSampler``, ``get_linear_schedule_with_warmup``, its weight
decay grouping and its gradient clipping default (max norm 1.0).
"""

from __future__ import annotations

import gc
import math
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import models, predictions, provenance
from .batches import eval_order, make_loader, subsample, tokenize
from .config import TrainConfig
from .device import (
    compile_model,
    keep_freed_memory,
    pick_device,
    resolve_pad_multiple,
    resolve_precision,
    sync,
)
from .environment import environment, memory_report
from .errors import ConfigError
from .failures import FAILURE_OWNER_ENV, FailureRecord
from .progress import progress as progress_bar
from .records import HISTORY_COLUMNS, write_json
from .step import make_optimizer, metric_scores, predict, train_step
from .store import RunStore

METRIC_NAMES = ("accuracy", "macro_f1", "micro_f1", "loss")
EVAL_SPLITS = ("validation", "test")
CHECKPOINT_FILE = "best_checkpoint.safetensors"


# --------------------------------------------------------------------------- config checks


class DivergedError(RuntimeError):
    """The loss became non-finite: the run stops and is recorded as failed, never complete."""

    def __init__(self, step: int, what: str, value: float) -> None:
        self.step = step
        super().__init__(f"{what} became {value} at step {step}: training diverged, so the run "
                         f"is recorded as failed, not complete. Lower learning_rate (or train "
                         f"in precision='fp32').")


def check_finite(values: list[float], first_step: int, what: str = "training loss") -> None:
    """Raise :class:`DivergedError` at the first non-finite value (``first_step`` is the
    step of ``values[0]``)."""
    for i, value in enumerate(values):
        if not math.isfinite(value):
            raise DivergedError(first_step + i, what, value)


def check_config(cfg: TrainConfig, device: str | torch.device | None = None) -> TrainConfig:
    """Validate (incl. the model's max_length limit) and fill method defaults; loads nothing
    heavy (at most the model's config.json)."""
    if not isinstance(cfg, TrainConfig):
        raise ConfigError(f"expected a TrainConfig, got {type(cfg).__name__}; build one with "
                          "TrainConfig.from_dict(...).")
    cfg.validate()
    cfg = cfg.resolved()
    resolve_precision(cfg.precision, pick_device(device))
    return cfg


# --------------------------------------------------------------------------- train / eval


@dataclass
class TrainState:
    """What the loop carries across epochs (and what the metrics are computed from)."""

    global_step: int = 0
    step_losses: list[float] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    train_time_s: float = 0.0
    samples: int = 0
    tokens: int = 0


def train_one_epoch(model, loader, optimizer, scheduler, state: TrainState, epoch: int,
                    device: torch.device, precision: str, logging_steps: int,
                    scaler: torch.amp.GradScaler | None = None, progress: bool = True) -> None:
    """One pass over ``loader``; appends train-loss rows to ``state.history``.

    Losses stay on the device and are read once per logging window, so the loop has no
    per-step host synchronisation; a non-finite loss stops the run at the next logging step
    (a NaN or inf in the window makes its mean non-finite) or at the end of the epoch.
    """
    model.train()
    steps = len(loader)
    window: list[torch.Tensor] = []
    epoch_losses: list[torch.Tensor] = []
    sync(device)
    start = time.perf_counter()
    bar = progress_bar(loader, inner=True, total=steps, desc=f"epoch {epoch}", leave=False,
                       disable=not progress)
    for i, batch in enumerate(bar):
        state.samples += batch["input_ids"].shape[0]
        state.tokens += int(batch["attention_mask"].sum())
        loss = train_step(model, batch, optimizer, device, precision, scheduler, scaler)
        state.global_step += 1
        window.append(loss)
        epoch_losses.append(loss)
        if state.global_step % logging_steps == 0:
            value = torch.stack(window).mean().item()
            if not math.isfinite(value):  # read anyway for the log: the check costs nothing
                check_finite(torch.stack(window).tolist(), state.global_step - len(window) + 1)
            window = []
            state.history.append(_row(state.global_step, epoch - 1 + (i + 1) / steps,
                                      "train", "loss", value))
            bar.set_postfix(loss=f"{value:.4f}")
    sync(device)
    state.train_time_s += time.perf_counter() - start
    losses = torch.stack(epoch_losses).cpu().tolist() if epoch_losses else []
    check_finite(losses, state.global_step - len(losses) + 1)
    state.step_losses.extend(losses)
    state.history.append(_row(state.global_step, epoch, "train", "epoch_loss",
                              sum(losses) / max(len(losses), 1)))


# --------------------------------------------------------------------------- the run


def run(cfg: TrainConfig, *, progress: bool = True,
        device: str | torch.device | None = None) -> Path:
    """Train and evaluate one config; return its complete run folder in the runs store.

    Raises ConfigError before loading anything when a parameter is invalid. On any failure
    the partial folder is removed and the error is recorded in the store's ``.failed/``.
    ``device`` defaults to the GPU when there is one (tests pin "cpu" for determinism).
    """
    wall_start = time.perf_counter()
    cfg = check_config(cfg, device)
    run_id = cfg.run_id()
    # cfg.runs_dir is the folder a person named (relative: from the project root, so the
    # notebook writes to the same runs/ from notebooks/ or the root); checked before loading
    runs = RunStore.at(cfg.runs_dir).check_writable()
    threads = torch.get_num_threads()
    try:
        if cfg.torch_threads is not None:
            torch.set_num_threads(cfg.torch_threads)
        if pick_device(device).type == "cpu":
            keep_freed_memory()
        with runs.staging(run_id) as tmp:
            _run_into(cfg, run_id, runs, tmp, wall_start, progress, pick_device(device))
    except BaseException as e:
        if not isinstance(e, KeyboardInterrupt) and not os.environ.get(FAILURE_OWNER_ENV):
            runs.record_failure(run_id, FailureRecord(
                type(e).__name__, str(e), traceback=traceback.format_exc().splitlines(),
                context={"source": "helpers.run.training.run",
                         **({"diverged_at_step": e.step} if isinstance(e, DivergedError)
                            else {})}))
        raise
    finally:
        torch.set_num_threads(threads)  # a run in a long-lived process leaves it as it was
    return runs.path(run_id)


class _Phases:
    """Seconds per phase of a run, summed by name: metrics.json's ``timings`` (where the wall
    time went). Each call closes the phase that started at the previous one."""

    def __init__(self, device: torch.device, wall_start: float) -> None:
        self.device = device
        self.timings: dict[str, float] = {"startup_s": time.perf_counter() - wall_start}
        self.mark = time.perf_counter()

    def __call__(self, name: str) -> None:
        sync(self.device)
        now = time.perf_counter()
        self.timings[name] = self.timings.get(name, 0.0) + now - self.mark
        self.mark = now


@dataclass
class _Setup:
    """Everything a run trains with, built in :func:`_prepare`."""

    precision: str
    pad_multiple: int
    train_size: int
    eval_sizes: dict[str, int]
    model: torch.nn.Module  # keeps the weight names (checkpoint)
    net: torch.nn.Module  # what runs: the model, or its torch.compile wrapper
    params: dict[str, int]
    train_loader: Any
    eval_loaders: dict[str, Any]
    eval_examples: dict[str, list[int]]  # per split: row index of each position of a pass
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler | None
    provenance: dict[str, Any]  # env.json's record of the data and model files (sha256)
    label_names: list[str]  # class id -> name, as the head numbers them


def _run_into(cfg: TrainConfig, run_id: str, runs: RunStore, out: Path, wall_start: float,
              progress: bool, device: torch.device) -> None:
    phase = _Phases(device, wall_start)
    if device.type == "cuda":  # peaks of this run only, also when runs share a process
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    setup = _prepare(cfg, runs, device, phase)
    state, per_epoch, best_epoch = _train_and_select(cfg, run_id, setup, device, phase,
                                                     progress, out)
    _write_run(cfg, run_id, out, setup, state, per_epoch[best_epoch - 1], best_epoch, device,
               phase, wall_start)


def _prepare(cfg: TrainConfig, runs: RunStore, device: torch.device, phase: _Phases) -> _Setup:
    """Data, tokenizer, model, loaders, optimizer and schedule, in the order that fixes the
    random stream (seed, then the head's init, then the batch order)."""
    # deferred: transformers' import takes seconds, and check_config runs without it
    from transformers import get_linear_schedule_with_warmup, set_seed

    from . import data  # deferred: datasets' import takes seconds, check_config needs none

    precision = resolve_precision(cfg.precision, device)
    pad_multiple = resolve_pad_multiple(cfg.pad_to_multiple_of, device)
    dd = data.apply_input_format(data.load(cfg.dataset, cfg.data_dir), cfg.input_format)
    names = data.head_labels(data.label_names(dd), cfg.num_labels)
    phase("data_load_s")
    tok = models.load_tokenizer(cfg.model)
    phase("tokenizer_load_s")  # mostly the first transformers import in a fresh kernel
    encoded = tokenize(dd, tok, cfg.max_length, runs.token_cache,
                       key_parts=(cfg.dataset,))
    train_ds = subsample(encoded["train"], cfg.max_train_samples)
    eval_ds = {s: subsample(encoded[s], cfg.max_eval_samples) for s in EVAL_SPLITS}
    phase("tokenize_s")

    set_seed(cfg.seed)
    model = models.build_model(cfg, names, device=device)
    params = models.count_parameters(model)
    net = compile_model(model, cfg.torch_compile, runs.cache_dir)
    phase("model_build_s")
    # after the model: a Hub model's weights are in its cached snapshot only once loaded
    files = provenance.record(cfg.dataset, cfg.data_dir, cfg.model)
    phase("provenance_s")  # the digests of the bytes as they are now: ~0.1 s for MiniLM

    pin = device.type == "cuda"
    train_loader = make_loader(train_ds, tok, cfg.per_device_train_batch_size, train=True,
                               group_by_length=cfg.group_by_length, seed=cfg.seed,
                               pad_to_multiple_of=pad_multiple, pin_memory=pin)
    eval_loaders = {s: make_loader(ds, tok, cfg.per_device_eval_batch_size, train=False,
                                   pad_to_multiple_of=pad_multiple, pin_memory=pin)
                    for s, ds in eval_ds.items()}
    optimizer = make_optimizer(model, cfg)
    total_steps = len(train_loader) * cfg.num_train_epochs
    scheduler = get_linear_schedule_with_warmup(
        optimizer, math.ceil(cfg.warmup_ratio * total_steps), total_steps)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    phase("setup_s")
    return _Setup(precision, pad_multiple, len(train_ds), {s: len(ds) for s, ds in eval_ds.items()},
                  model, net, params, train_loader, eval_loaders,
                  {s: eval_order(ds) for s, ds in eval_ds.items()}, optimizer, scheduler, scaler,
                  files, names)


def _train_and_select(cfg: TrainConfig, run_id: str, setup: _Setup, device: torch.device,
                      phase: _Phases, progress: bool,
                      out: Path) -> tuple[TrainState, list[dict[str, dict[str, float]]], int]:
    """Train every epoch, evaluate on validation and test after each, and pick the epoch with
    the best *validation* macro-F1 (ties keep the earlier epoch); returns the state, every
    epoch's scores and the best epoch (1-based)."""
    state = TrainState()
    per_epoch: list[dict[str, dict[str, float]]] = []
    blocks = []  # predictions.write's (split, epoch, examples, labels, predictions, probs)
    best_epoch, best_f1, best_weights = 0, -1.0, None
    epochs = progress_bar(range(1, cfg.num_train_epochs + 1), desc=run_id, disable=not progress)
    for epoch in epochs:
        train_one_epoch(setup.net, setup.train_loader, setup.optimizer, setup.scheduler, state,
                        epoch, device, setup.precision, cfg.logging_steps, scaler=setup.scaler,
                        progress=progress)
        phase("train_s")
        scores = {}
        for split, loader in setup.eval_loaders.items():
            y_true, y_pred, prob, loss = predict(setup.net, loader, device, setup.precision)
            scores[split] = metric_scores(y_true.numpy(), y_pred.numpy(), loss)
            blocks.append((split, epoch, setup.eval_examples[split], y_true.tolist(),
                           y_pred.tolist(), prob.numpy()))
        phase("eval_s")
        for split, values in scores.items():  # finite training losses, then NaN weights
            check_finite([values["loss"]], state.global_step, f"{split} loss after epoch {epoch}")
        per_epoch.append(scores)
        for split, values in scores.items():
            for metric in METRIC_NAMES:
                state.history.append(_row(state.global_step, epoch, split, metric,
                                          values[metric]))
        if scores["validation"]["macro_f1"] > best_f1:
            best_epoch, best_f1 = epoch, scores["validation"]["macro_f1"]
            if cfg.save_best_checkpoint:
                best_weights = {n: p.detach().to("cpu", copy=True)
                                for n, p in setup.model.named_parameters() if p.requires_grad}
        epochs.set_postfix(val_macro_f1=f"{scores['validation']['macro_f1']:.3f}", refresh=False)
        phase("select_s")

    if best_weights is not None:
        from safetensors.torch import save_file  # deferred: only for save_best_checkpoint

        save_file({n: t.contiguous() for n, t in best_weights.items()}, out / CHECKPOINT_FILE)
    predictions.write(out / predictions.FILE, blocks)
    phase("predictions_s")
    return state, per_epoch, best_epoch


def _write_run(cfg: TrainConfig, run_id: str, out: Path, setup: _Setup, state: TrainState,
               best: dict[str, dict[str, float]], best_epoch: int, device: torch.device,
               phase: _Phases, wall_start: float) -> None:
    """The run's records (helpers.run.store's layout); metrics.json last, with the timings."""
    import pandas as pd  # deferred: pandas' import is a second a kernel start need not pay

    window = state.step_losses[-min(cfg.logging_steps, len(state.step_losses)):]
    metrics = {
        "run_id": run_id,
        "best_epoch": best_epoch,
        "selection": "validation_macro_f1",
        "validation": best["validation"],
        "test": best["test"],
        "train_loss": sum(state.step_losses) / len(state.step_losses),
        "final_train_loss": sum(window) / len(window),
        "wall_time_s": time.perf_counter() - wall_start,
        "train_time_s": state.train_time_s,
        "train_samples_per_s": state.samples / state.train_time_s,
        "train_tokens_per_s": state.tokens / state.train_time_s,
        "num_train_samples": setup.train_size,
        "num_eval_samples": setup.eval_sizes,
        "num_epochs": cfg.num_train_epochs,
        "parameters": setup.params,
        "label_names": setup.label_names,  # what predictions.csv.gz's class ids mean
    }
    pd.DataFrame(state.history, columns=list(HISTORY_COLUMNS)).to_csv(
        out / "history.csv", index=False)
    # the resolved speed settings too: what "auto" meant on this device
    write_json(out / "config.json", {**cfg.to_dict(),
                                           "pad_to_multiple_of": setup.pad_multiple,
                                           "run_id": run_id})
    write_json(out / "memory.json", memory_report(setup.params, device, setup.precision))
    write_json(out / "env.json", {**environment(device, setup.precision),
                                        provenance.KEY: setup.provenance})
    phase("write_s")
    metrics["timings"] = phase.timings
    metrics["wall_time_s"] = time.perf_counter() - wall_start
    write_json(out / "metrics.json", metrics)


def _row(step: int, epoch: float, split: str, metric: str, value: float) -> dict[str, Any]:
    return {"step": step, "epoch": epoch, "split": split, "metric": metric, "value": value}

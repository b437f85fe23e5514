"""One fine-tuning run, from a validated config to a complete folder in the runs store.

:func:`run` validates the config (before loading anything), loads and subsamples the data,
tokenizes it once per tokenizer x dataset x max_length (cached on disk and reused by every
seed and method), builds the model for the method, trains, evaluates on validation *and* test
after every epoch, picks the epoch with the best validation macro-F1 (never test), and writes
the artifacts of :mod:`helpers.runs` through ``runs.staging`` so a run appears atomically.

Why a plain PyTorch loop rather than ``transformers.Trainer``: the protocol needs an eval on
two splits after every epoch with a tidy history, and the throughput/memory analysis needs
control of per-step overhead (no per-step host syncs, no callbacks, exact timing of the
training part alone). The pieces HF Trainer would use are reused: ``DataCollatorWithPadding``
(dynamic padding), ``LengthGroupedSampler``, ``get_linear_schedule_with_warmup``, its weight
decay grouping and its gradient clipping default (max norm 1.0).
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import platform
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import runs
from .batches import (
    make_loader,
    subsample,
    tokenize,
)
from .config import ConfigError, TrainConfig
from .environment import (
    environment,
    memory_report,
)
from .progress import progress as progress_bar
from .settings import project_path

#: HF Trainer's default ``max_grad_norm`` (the report's appendix used Trainer defaults).
MAX_GRAD_NORM = 1.0
METRIC_NAMES = ("accuracy", "macro_f1", "micro_f1", "loss")
EVAL_SPLITS = ("validation", "test")
CACHE_DIR = ".cache"
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


def resolve_runs_dir(runs_dir: str | os.PathLike) -> Path:
    """Relative runs dirs are taken from the project root, so the notebook writes to the same
    ``runs/`` whether it is started from ``notebooks/`` (JupyterLab) or the root (papermill)."""
    return project_path(runs_dir)


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
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # from <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, threshold)
                    and libc.mallopt(m_trim_threshold, threshold))
    except (OSError, AttributeError):
        return False


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


def autocast_context(device: torch.device, precision: str):
    """Mixed precision as in training: autocast to bf16/fp16 (fp32 weights and gradients);
    ``fp32`` runs as is. The project's one autocast helper (helpers.memory uses it too)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over the trainable weights; no decay on biases and norms (as HF Trainer)."""
    from torch import nn
    from transformers.trainer_pt_utils import get_parameter_names

    patterns = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]
    decay = set(get_parameter_names(model, [nn.LayerNorm], patterns))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if n in decay], "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0},
    ]
    # fused: one kernel per step instead of a chain of multi-tensor ops; on a 2-core CPU the
    # MiniLM AdamW step went from ~57 to ~14 ms (22.7 M params; benchmarks/throughput.py). Same
    # math up to rounding, deterministic; foreach where fused has no kernel for the device.
    params = [p for g in groups for p in g["params"]]
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.learning_rate,
                             fused=fused, foreach=None if fused else True)


@dataclass
class TrainState:
    """What the loop carries across epochs (and what the metrics are computed from)."""

    global_step: int = 0
    step_losses: list[float] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    train_time_s: float = 0.0
    samples: int = 0
    tokens: int = 0


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def train_step(model, batch: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
               device: torch.device, precision: str, scheduler=None,
               scaler: torch.amp.GradScaler | None = None) -> torch.Tensor:
    """One optimizer step on ``batch``: autocast forward, backward, gradient clipping, AdamW
    step, scheduler step, gradients set to None. Returns the loss (fp32, still on the device).

    The one training step of the project: :func:`train_one_epoch` loops over it and
    :mod:`helpers.memory` measures its peak memory.
    """
    batch = _to_device(batch, device)
    with autocast_context(device, precision):
        loss = model(**batch).loss
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    torch.nn.utils.clip_grad_norm_(
        [p for g in optimizer.param_groups for p in g["params"]], MAX_GRAD_NORM)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    if scheduler is not None:
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach().float()


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
    _sync(device)
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
    _sync(device)
    state.train_time_s += time.perf_counter() - start
    losses = torch.stack(epoch_losses).cpu().tolist() if epoch_losses else []
    check_finite(losses, state.global_step - len(losses) + 1)
    state.step_losses.extend(losses)
    state.history.append(_row(state.global_step, epoch, "train", "epoch_loss",
                              sum(losses) / max(len(losses), 1)))


@torch.no_grad()
def evaluate(model, loader, device: torch.device, precision: str) -> dict[str, float]:
    """Accuracy, macro-/micro-F1 (scikit-learn) and mean per-example cross-entropy."""
    from sklearn.metrics import accuracy_score, f1_score

    model.eval()
    preds, labels = [], []
    loss_sum = torch.zeros((), device=device)
    for batch in loader:
        batch = _to_device(batch, device)
        with autocast_context(device, precision):
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        logits = logits.float()
        loss_sum += torch.nn.functional.cross_entropy(logits, batch["labels"], reduction="sum")
        preds.append(logits.argmax(-1))
        labels.append(batch["labels"])
    y_pred = torch.cat(preds).cpu().numpy()
    y_true = torch.cat(labels).cpu().numpy()
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "loss": float(loss_sum.item() / max(len(y_true), 1)),
    }


# --------------------------------------------------------------------------- the run


def run(cfg: TrainConfig, *, progress: bool = True,
        device: str | torch.device | None = None) -> Path:
    """Train and evaluate one config; return its complete run folder ``runs_dir/run_id``.

    Raises ConfigError before loading anything when a parameter is invalid. On any failure
    the partial folder is removed and the error is recorded in ``runs_dir/.failed/``.
    ``device`` defaults to the GPU when there is one (tests pin "cpu" for determinism).
    """
    wall_start = time.perf_counter()
    cfg = check_config(cfg, device)
    run_id = cfg.run_id()
    runs_dir = runs.check_writable(resolve_runs_dir(cfg.runs_dir))  # before loading anything
    threads = torch.get_num_threads()
    try:
        if cfg.torch_threads is not None:
            torch.set_num_threads(cfg.torch_threads)
        if pick_device(device).type == "cpu":
            keep_freed_memory()
        with runs.staging(runs_dir, run_id) as tmp:
            _run_into(cfg, run_id, runs_dir, tmp, wall_start, progress, pick_device(device))
    except BaseException as e:
        if not isinstance(e, KeyboardInterrupt):
            runs.record_failure(runs_dir, run_id, {
                "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc(),
                "source": "helpers.training.run",
                **({"diverged_at_step": e.step} if isinstance(e, DivergedError) else {}),
            })
        raise
    finally:
        torch.set_num_threads(threads)  # a run in a long-lived process leaves it as it was
    return runs.run_path(runs_dir, run_id)


def _run_into(cfg: TrainConfig, run_id: str, runs_dir: Path, out: Path, wall_start: float,
              progress: bool, device: torch.device) -> None:
    import pandas as pd
    from transformers import get_linear_schedule_with_warmup, set_seed

    from . import data, models

    precision = resolve_precision(cfg.precision, device)
    pad_multiple = resolve_pad_multiple(cfg.pad_to_multiple_of, device)
    timings: dict[str, float] = {"startup_s": time.perf_counter() - wall_start}
    mark = time.perf_counter()

    def phase(name: str) -> None:
        """Seconds since the previous mark, added to ``timings[name]`` (where wall time goes)."""
        nonlocal mark
        _sync(device)
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - mark
        mark = now

    if device.type == "cuda":  # peaks of this run only, also when runs share a process
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)

    dd = data.load(cfg.dataset, cfg.data_dir)
    names = data.label_names(dd)
    phase("data_load_s")
    tok = models.load_tokenizer(cfg.model)
    phase("tokenizer_load_s")  # mostly the first transformers import in a fresh kernel
    encoded = tokenize(dd, tok, cfg.max_length, runs_dir / CACHE_DIR / "tokenized",
                       key_parts=(cfg.dataset,))
    train_ds = subsample(encoded["train"], cfg.max_train_samples)
    eval_ds = {s: subsample(encoded[s], cfg.max_eval_samples) for s in EVAL_SPLITS}
    phase("tokenize_s")

    set_seed(cfg.seed)
    model = models.build_model(cfg, names, device=device)
    params = models.count_parameters(model)
    net = compile_model(model, cfg.torch_compile, runs_dir)  # `model` keeps the weight names
    phase("model_build_s")

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

    state = TrainState()
    per_epoch: list[dict[str, dict[str, float]]] = []
    best_epoch, best_f1, best_weights = 0, -1.0, None
    epochs = progress_bar(range(1, cfg.num_train_epochs + 1), desc=run_id, disable=not progress)
    for epoch in epochs:
        train_one_epoch(net, train_loader, optimizer, scheduler, state, epoch, device,
                        precision, cfg.logging_steps, scaler=scaler, progress=progress)
        phase("train_s")
        scores = {s: evaluate(net, loader, device, precision)
                  for s, loader in eval_loaders.items()}
        phase("eval_s")
        for split, values in scores.items():  # finite training losses, then NaN weights
            check_finite([values["loss"]], state.global_step, f"{split} loss after epoch {epoch}")
        per_epoch.append(scores)
        for split, values in scores.items():
            for metric in METRIC_NAMES:
                state.history.append(_row(state.global_step, epoch, split, metric,
                                          values[metric]))
        # strictly greater: ties keep the earlier epoch
        if scores["validation"]["macro_f1"] > best_f1:
            best_epoch, best_f1 = epoch, scores["validation"]["macro_f1"]
            if cfg.save_best_checkpoint:
                best_weights = {n: p.detach().to("cpu", copy=True)
                                for n, p in model.named_parameters() if p.requires_grad}
        epochs.set_postfix(val_macro_f1=f"{scores['validation']['macro_f1']:.3f}", refresh=False)
        phase("select_s")

    if best_weights is not None:
        from safetensors.torch import save_file

        save_file({n: t.contiguous() for n, t in best_weights.items()}, out / CHECKPOINT_FILE)

    best = per_epoch[best_epoch - 1]
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
        "num_train_samples": len(train_ds),
        "num_eval_samples": {s: len(ds) for s, ds in eval_ds.items()},
        "num_epochs": cfg.num_train_epochs,
        "parameters": params,
    }
    pd.DataFrame(state.history, columns=list(runs.HISTORY_COLUMNS)).to_csv(
        out / "history.csv", index=False)
    # the resolved speed settings too: what "auto" meant on this device
    runs.write_json(out / "config.json", {**cfg.to_dict(), "pad_to_multiple_of": pad_multiple,
                                          "run_id": run_id})
    runs.write_json(out / "memory.json", memory_report(params, device, precision))
    runs.write_json(out / "env.json", environment(device, precision))
    phase("write_s")
    metrics["timings"] = timings
    metrics["wall_time_s"] = time.perf_counter() - wall_start
    runs.write_json(out / "metrics.json", metrics)


def compile_model(model: torch.nn.Module, mode: str | None, runs_dir: Path) -> torch.nn.Module:
    """``torch.compile(model, mode)`` (None: the model itself), with Inductor's cache on disk
    under ``runs/.cache/inductor`` so runs after the first of a model x shape reuse its kernels.

    Opt-in (``torch_compile``): "reduce-overhead" replays CUDA graphs, one per shape, which
    removes the host overhead of eager steps but compiles for tens of seconds per process.
    """
    if mode is None:
        return model
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(runs_dir / CACHE_DIR / "inductor"))
    return torch.compile(model, mode=mode, dynamic=False)


def _row(step: int, epoch: float, split: str, metric: str, value: float) -> dict[str, Any]:
    return {"step": step, "epoch": epoch, "split": split, "metric": metric, "value": value}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)

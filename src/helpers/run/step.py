"""One optimizer step and one evaluation pass: what a run loops over, and what
``helpers.memory`` measures the peak of (so the measured step is the trained one).
"""

from __future__ import annotations

import torch
from torch import nn

from .config import TrainConfig
from .device import autocast_context

#: HF Trainer's default ``max_grad_norm`` (the report's appendix used Trainer defaults).
MAX_GRAD_NORM = 1.0


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over the trainable weights; no decay on biases and norms (as HF Trainer)."""
    # deferred: transformers' import takes seconds; check_config and the grid need none of it
    from transformers.trainer_pt_utils import get_parameter_names

    patterns = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]
    decay = set(get_parameter_names(model, [nn.LayerNorm], patterns))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if n in decay], "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0},
    ]
    # fused: one kernel per step instead of a chain of multi-tensor ops, about 4x faster for
    # MiniLM's AdamW step on a 2-core CPU (benchmarks/throughput.py). Same math up to rounding,
    # deterministic; foreach where fused has no kernel for the device.
    params = [p for g in groups for p in g["params"]]
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.learning_rate,
                             fused=fused, foreach=None if fused else True)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def train_step(model, batch: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
               device: torch.device, precision: str, scheduler=None,
               scaler: torch.amp.GradScaler | None = None) -> torch.Tensor:
    """One optimizer step on ``batch``: autocast forward, backward, gradient clipping, AdamW
    step, scheduler step, gradients set to None. Returns the loss (fp32, still on the device).

    The one training step of the project: :func:`train_one_epoch` loops over it and
    :mod:`helpers.memory` measures its peak memory.
    """
    batch = to_device(batch, device)
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


@torch.no_grad()
def predict(model, loader, device: torch.device,
            precision: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Labels, predicted classes and softmax probabilities (on the CPU, in the loader's order)
    and the mean per-example cross-entropy of one pass over ``loader``."""
    model.eval()
    probs, labels = [], []
    loss_sum = torch.zeros((), device=device)
    for batch in loader:
        batch = to_device(batch, device)
        with autocast_context(device, precision):
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        logits = logits.float()
        loss_sum += torch.nn.functional.cross_entropy(logits, batch["labels"], reduction="sum")
        probs.append(logits.softmax(-1))
        labels.append(batch["labels"])
    prob = torch.cat(probs).cpu()
    y_true = torch.cat(labels).cpu()
    return y_true, prob.argmax(-1), prob, float(loss_sum.item() / max(len(y_true), 1))


def metric_scores(y_true, y_pred, loss: float) -> dict[str, float]:
    """Accuracy, macro-/micro-F1 (scikit-learn) and the given mean loss."""
    from sklearn.metrics import accuracy_score, f1_score  # deferred: sklearn's import is slow

    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "loss": loss,
    }



def evaluate(model, loader, device: torch.device, precision: str) -> dict[str, float]:
    """Accuracy, macro-/micro-F1 (scikit-learn) and mean per-example cross-entropy."""
    y_true, y_pred, _, loss = predict(model, loader, device, precision)
    return metric_scores(y_true.numpy(), y_pred.numpy(), loss)

"""The fine-tuning methods: one :class:`Method` entry each, read by every other module.

Config validation, the default learning rate, the model builder, the grid's ``methods:`` block,
the report's labels and its hyper-parameter appendix, the memory accounting and the synthetic
runs all look a method up here. Adding a method (IA3, prefix tuning, BitFit) is one function
that prepares the model and one :func:`register` call; a test registers a throwaway method and
trains with it. A method's own hyper-parameters are ``TrainConfig`` fields (``lora_r`` ...) that
its entry lists in ``fields``.

Trainable share: every method marks what trains with ``requires_grad``; the run records
:func:`helpers.run.models.count_parameters` (trainable = parameters with ``requires_grad``, each
tensor once; total = all parameters, frozen ones and PEFT additions included), and the report
divides the two.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import ModelError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

    from .config import TrainConfig


@dataclass(frozen=True)
class Method:
    """One way to fine-tune a pretrained classifier."""

    name: str
    #: How tables and text name it.
    label: str
    #: Used when a config leaves ``learning_rate`` empty (recorded in each run's config.json).
    learning_rate: float
    #: ``apply(model, cfg)`` freezes/augments a classifier in place or wraps it; returns the
    #: module to train. It must leave exactly the weights it trains with ``requires_grad``.
    apply: Callable[[PreTrainedModel, TrainConfig], torch.nn.Module]
    #: What trains, in words (how its trainable share comes about).
    trains: str
    #: TrainConfig fields only this method reads (shown "n/a" for the others in the appendix).
    fields: tuple[str, ...] = ()
    #: Column-sized label for tables and figure ticks (default: ``label``).
    short: str = ""
    #: How sentences name it ("Houlsby adapters", "LoRA"; default: ``label``).
    prose: str = ""
    #: Whether the memory accounting (helpers.memory) covers it: the report's memory table
    #: lists only these, so registering a method it cannot account breaks no build.
    memory: bool = False

    @property
    def in_prose(self) -> str:
        return self.prose or self.label


class MethodError(ValueError):
    """An unknown method name; the message lists the registered ones."""


# --------------------------------------------------------------------------- apply functions
def head_module_names(model: torch.nn.Module) -> list[str]:
    """Top-level names of the classification head (``classifier`` for BERT and RoBERTa)."""
    names = [n for n in ("classifier", "score") if hasattr(model, n)]
    if not names:
        raise ModelError(f"{type(model).__name__} has no 'classifier' or 'score' head.")
    return names


def apply_full(model: PreTrainedModel, cfg: TrainConfig) -> torch.nn.Module:
    """Every weight trains."""
    for p in model.parameters():
        p.requires_grad_(True)
    return model


@contextlib.contextmanager
def _without_activation_warning() -> Iterator[None]:
    """Drop adapters' "none are activated" warning while an adapter is being activated.

    ``set_active_adapters`` opens a forward context before it records the new adapter as
    active, so the library warns about the very adapter it is activating (adapters 1.3.0);
    tests/test_models.py checks that the adapter does take part in the forward pass.
    """
    logger = logging.getLogger("adapters.model_mixin")

    def keep(record: logging.LogRecord) -> bool:
        return "none are activated" not in record.getMessage()

    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def apply_adapter(model: PreTrainedModel, cfg: TrainConfig) -> torch.nn.Module:
    """Houlsby bottleneck adapters (``adapters`` library); encoder frozen, head trained."""
    # deferred: adapters and peft import transformers' model zoo (seconds)
    import adapters
    from adapters import AdapterConfig

    adapters.init(model)
    adapter_cfg = AdapterConfig.load(cfg.adapter_config,
                                     reduction_factor=cfg.adapter_reduction_factor)
    with _without_activation_warning():
        model.add_adapter("task", config=adapter_cfg, set_active=True)
        # train_adapter freezes the encoder and unfreezes the adapter; the static head
        # (model.classifier) lies outside the frozen base model and stays trainable.
        model.train_adapter("task")
    for name in head_module_names(model):
        for p in getattr(model, name).parameters():
            p.requires_grad_(True)
    return model


def apply_lora(model: PreTrainedModel, cfg: TrainConfig) -> torch.nn.Module:
    """``peft`` LoRA, task type SEQ_CLS: the head is trained and saved with it."""
    from peft import LoraConfig, TaskType, get_peft_model  # deferred, as adapters above

    lora = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.lora_target_modules),
        # a suffix: BERT's bert.pooler.dense (models without a pooler have nothing to exclude)
        exclude_modules=None if cfg.lora_pooler else ["pooler.dense"],
        modules_to_save=head_module_names(model),
    )
    return get_peft_model(model, lora)


def apply_ia3(model: PreTrainedModel, cfg: TrainConfig) -> torch.nn.Module:
    """``peft`` IA3 (Liu et al. 2022): learned scaling vectors on keys, values and the
    feed-forward output, at peft's defaults for the architecture; the head trains too."""
    from peft import IA3Config, TaskType, get_peft_model  # deferred, as adapters above

    ia3 = IA3Config(task_type=TaskType.SEQ_CLS, modules_to_save=head_module_names(model))
    return get_peft_model(model, ia3)


# --------------------------------------------------------------------------- the registry
#: name -> Method, in the report's order. Read it at call time (tests add entries).
METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add (or replace) a method; every module that lists methods sees it from then on."""
    METHODS[method.name] = method
    return method


def get(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise MethodError(f"method={name!r} is not one of {list(METHODS)}.") from None


class _Labels(Mapping[str, str]):
    """A live name -> label view of :data:`METHODS` (``METHOD_LABELS`` in the report code)."""

    def __getitem__(self, name: str) -> str:
        return METHODS[name].label

    def __iter__(self) -> Iterator[str]:
        return iter(METHODS)

    def __len__(self) -> int:
        return len(METHODS)


LABELS: Mapping[str, str] = _Labels()

# ``full`` is the report's appendix. Adapters and LoRA need ~10x more: AdapterHub's docs say
# "1e-4 works well" for bottleneck adapters, and the LoRA paper trained RoBERTa-base at 4e-4 to
# 5e-4. The original report trained its adapters at 2e-5 and they failed to learn.
register(Method("full", "full fine-tuning", 2e-5, apply_full, trains="every weight", short="full",
                memory=True))
register(Method("adapter", "adapter (Houlsby)", 1e-4, apply_adapter, short="adapter",
                trains="the adapter weights and the classification head (encoder frozen)",
                fields=("adapter_config", "adapter_reduction_factor"),
                prose="Houlsby adapters", memory=True))
register(Method("lora", "LoRA", 5e-4, apply_lora,
                trains="the LoRA matrices and a trainable copy of the classification head",
                fields=("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules",
                        "lora_pooler"),
                memory=True))
# For users, in no report grid: IA3 trains ~10x fewer weights than LoRA; its paper (T-Few)
# used 3e-3, and peft's examples use 1e-3 to 1e-2.
register(Method("ia3", "IA3", 3e-3, apply_ia3, short="IA3",
                trains="the IA3 scaling vectors and a trainable copy of the classification head"))

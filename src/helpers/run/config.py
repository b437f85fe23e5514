"""One experiment's parameters: defaults, validation and the stable run id.

The fields are exactly the parameters of ``notebooks/train.ipynb`` (papermill injects them),
and a grid row of ``params/*.yaml`` is a partial ``TrainConfig``. Validation runs before any
model or data is loaded, so a typo costs milliseconds, not a model download.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import json
import math
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.settings import project_path

from . import provenance
from .catalog import lookup
from .errors import ConfigError, ModelError, did_you_mean
from .methods import METHODS
from .model_files import check_model_folder

#: Every precision a run accepts (helpers.memory accounts for a documented subset).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

#: Fields that change where a run lives or how fast it goes, but not its results; they are left
#: out of the run id so that moving the runs folder or the data keeps ids stable.
NON_IDENTITY_FIELDS = ("runs_dir", "data_dir", "torch_threads", "save_best_checkpoint",
                       "per_device_eval_batch_size", "pad_to_multiple_of", "torch_compile")
#: Fields added after run ids were first published, each defaulting to the behaviour of the runs
#: made before it: they enter the run id only when a config sets another value, so adding one
#: leaves every existing run id unchanged (tests/run/test_config.py adds one to check).
ADDED_FIELDS: tuple[str, ...] = ("input_format", "num_labels", "lora_pooler")
#: Seeds numpy, torch and Python's random all accept (numpy's ``Generator`` takes 32 bits).
MAX_SEED = 2**32 - 1
#: Fields that may name a folder as a ``pathlib.Path`` too (a Python caller's runs_dir).
PATH_FIELDS = ("runs_dir", "data_dir")
#: ``torch_compile`` modes: None (eager), or a ``torch.compile`` mode; "reduce-overhead"
#: replays CUDA graphs (fixed shapes: pad_to_multiple_of).
COMPILE_MODES = (None, "default", "reduce-overhead")


def _field(default: Any, text: str, factory: Any = None) -> Any:
    """A TrainConfig field with its help text (the train notebook's parameter comments, ``python
    -m helpers train --help`` and grid errors show it)."""
    if factory is not None:
        return field(default_factory=factory, metadata={"help": text})
    return field(default=default, metadata={"help": text})


@dataclass
class TrainConfig:
    """Parameters of one fine-tuning run (defaults: the report's appendix for ``full``)."""

    model: str = _field("minilm", 'Hub id, local model folder, or "minilm" (packaged '
                        'all-MiniLM-L6-v2)')
    dataset: str = _field("restaurant_sup", 'e.g. "acl_sup", or "acl_fs" (32 training examples); '
                          "see helpers.run.data")
    method: str = _field("full", "fine-tuning method: a name in helpers.run.methods.METHODS")
    seed: int = _field(42, "random seed (head init, dropout, batch order)")
    learning_rate: float | None = _field(
        None, "None -> the method's default (helpers.run.methods)")
    num_train_epochs: int = _field(3, "epochs; each ends with an eval on validation and test")
    per_device_train_batch_size: int = _field(8, "training examples per optimizer step")
    per_device_eval_batch_size: int = _field(8, "examples per eval batch (speed only)")
    weight_decay: float = _field(0.01, "AdamW weight decay (none on biases and norms)")
    warmup_ratio: float = _field(0.0, "share of steps with linear warmup (then linear decay)")
    max_length: int = _field(256, "tokens per example after truncation (at most the model's limit)")
    logging_steps: int = _field(10, "the training loss is logged every this many steps")
    max_train_samples: int | None = _field(None, "None: the whole training split")
    max_eval_samples: int | None = _field(
        None, "per evaluation split (validation and test); None: all")
    precision: str = _field("auto", '"auto" (bf16 where the hardware has it) | "fp32" | '
                            '"bf16" | "fp16"')
    group_by_length: bool = _field(True, "batch examples of similar length (less padding)")
    # The original's two input choices, kept to measure what they cost (the report's "What
    # each error cost"): its dataHelper.py joined aspect and sentence into one text with a
    # literal "<SEP>", and its train.py gave every dataset a 6-way head.
    input_format: str = _field(
        "pair", '"pair": aspect and sentence as a sentence pair | "sep_string": one text '
                '"{aspect} <SEP> {sentence}", as the original did (pair datasets only)')
    num_labels: int | None = _field(
        None, "outputs of the classification head; None: the dataset's number of classes "
              "(the original used 6 everywhere)")
    # A GPU pays a first-use cost per tensor shape (~0.3 s in bf16); padded to a multiple of
    # 16 a run meets at most max_length / 16 shapes. Attention masks make padding inert.
    pad_to_multiple_of: int | None = _field(
        None, "pad batches to a multiple of this many tokens (speed only); None: 16 on CUDA, "
              "1 (none) on the CPU")
    torch_compile: str | None = _field(
        None, 'None (eager) | "default" | "reduce-overhead" (CUDA graphs): torch.compile mode '
              "(speed only)")
    # Houlsby et al. (2019): a bottleneck adapter after both attention and FFN sublayers;
    # in the adapters library that is "double_seq_bn" (``DoubleSeqBnConfig``).
    adapter_config: str = _field("double_seq_bn", 'adapters config name; "double_seq_bn" is '
                                                     'Houlsby et al. (2019)')
    adapter_reduction_factor: int = _field(16, "hidden size / adapter bottleneck size")
    lora_r: int = _field(8, "rank of the LoRA matrices")
    lora_alpha: int = _field(16, "LoRA scaling: updates are scaled by lora_alpha / lora_r")
    lora_dropout: float = _field(0.1, "dropout on the LoRA path's input")
    lora_target_modules: list[str] = _field(
        None, "linear layers that get LoRA matrices", factory=lambda: ["query", "value"])
    # A target "dense" also matches BERT's pooler.dense, which adapters leave frozen.
    lora_pooler: bool = _field(True, "LoRA on the pooler's dense layer too where a target "
                                     "matches it; false: the pooler stays frozen, as adapters "
                                     "leave it")
    save_best_checkpoint: bool = _field(
        False, "save the best epoch's trainable weights in the run folder")
    runs_dir: str = _field("runs", "relative paths are taken from the project root")
    data_dir: str | None = _field(None, "None -> $NLPDL_DATA_DIR, else <project>/data")
    torch_threads: int | None = _field(None, "CPU threads for torch; None: torch's default")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a dict (papermill parameters, a grid row), rejecting unknown keys."""
        check_names(values)
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def resolved(self) -> TrainConfig:
        """A copy with method defaults filled in (the values a run actually uses)."""
        cfg = dataclasses.replace(self)
        if cfg.learning_rate is None:
            method = METHODS.get(cfg.method)
            cfg.learning_rate = method.learning_rate if method else None
        cfg.lora_target_modules = list(cfg.lora_target_modules)
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # ------------------------------------------------------------------ validation
    def validate(self, check_model_limit: bool = True) -> None:
        """Raise ConfigError on the first invalid value; loads nothing heavy."""
        # deferred: helpers.run.data imports datasets (seconds); only the name is checked here
        from . import data

        _check_types(self)
        if not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"seed={self.seed!r} must be an integer in [0, {MAX_SEED}], "
                              f"the seeds numpy and torch accept.")
        if self.method not in METHODS:
            raise ConfigError(f"method={self.method!r} is not one of {list(METHODS)}.")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision={self.precision!r} is not one of {list(PRECISIONS)}.")
        try:
            data.check_name(self.dataset)
            data.check_input(self.dataset, self.input_format, self.num_labels)
        except data.DataError as e:
            raise ConfigError(f"dataset: {e}") from None
        _positive(self, "learning_rate", allow_none=True)
        _at_least_one(self, "num_train_epochs")  # a whole number of epochs: each ends in an eval
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size",
                     "max_length", "logging_steps", "adapter_reduction_factor", "lora_r",
                     "lora_alpha"):
            _at_least_one(self, name)
        if self.torch_compile not in COMPILE_MODES:
            raise ConfigError(f"torch_compile={self.torch_compile!r} is not one of "
                              f"{list(COMPILE_MODES)}.")
        for name in ("max_train_samples", "max_eval_samples", "torch_threads",
                     "pad_to_multiple_of"):
            if getattr(self, name) is not None:
                _at_least_one(self, name)
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"warmup_ratio={self.warmup_ratio} must be in [0, 1).")
        _finite(self, "weight_decay")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay={self.weight_decay} must be >= 0.")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"lora_dropout={self.lora_dropout} must be in [0, 1).")
        if not self.lora_target_modules:
            raise ConfigError("lora_target_modules must name at least one module.")
        folder = local_model_folder(self.model)
        if folder is not None:
            try:
                check_model_folder(folder)  # config, weights, tokenizer, before any loading
            except ModelError as e:
                raise ConfigError(str(e)) from None
        if check_model_limit:
            # deferred: helpers.run.models imports torch (seconds); a grid plan needs none
            from .models import max_sequence_length

            try:
                limit = max_sequence_length(self.model)
            except ModelError as e:
                raise ConfigError(str(e)) from None
            if limit is not None and self.max_length > limit:
                raise ConfigError(
                    f"max_length={self.max_length} is above the limit of model "
                    f"'{self.model}' ({limit} tokens). Use max_length <= {limit}."
                )

    # ------------------------------------------------------------------ identity
    def identity(self) -> dict[str, Any]:
        """The resolved values that define the experiment (hashed into the run id): the common
        fields and the fields of this run's own method (:attr:`Method.fields`), the model as
        :func:`model_identity` names it. Another method's fields do not enter (a full run's id
        does not move with ``lora_r``), nor do :data:`NON_IDENTITY_FIELDS`, nor an
        :data:`ADDED_FIELDS` entry at its default."""
        d = self.resolved().to_dict()
        method = METHODS.get(self.method)
        own = set(method.fields) if method else set()
        others = {f for m in METHODS.values() for f in m.fields} - own
        defaults = {f.name: f for f in dataclasses.fields(type(self))}
        for name in list(d):
            if name in NON_IDENTITY_FIELDS or name in others or (
                    name in ADDED_FIELDS and d[name] == field_default(defaults[name])):
                d.pop(name)
        d["model"] = model_identity(self.model)
        return d

    def run_id(self) -> str:
        """``<model>__<dataset>__<method>__s<seed>__<hash8>``: readable and stable."""
        return format_run_id(self.model, self.dataset, self.method, self.seed, self.identity())


def format_run_id(model: str, dataset: str, method: str, seed: int,
                  identity: Mapping[str, Any]) -> str:
    """The run id of an identity dict: readable fields, then 8 hex digits of its sha1."""
    blob = json.dumps(dict(identity), sort_keys=True, default=str)
    digest = hashlib.sha1(blob.encode()).hexdigest()[:8]
    return f"{short_model_name(model)}__{dataset}__{method}__s{seed}__{digest}"


#: What a local model folder's identity starts with (then the sha256 of its files' digests).
LOCAL_MODEL_PREFIX = "files:"


def local_model_folder(model: str) -> Path | None:
    """``model`` as a local folder (relative ones from the project root, as every path), or
    None for a Hub id or a catalog name."""
    if lookup(model) is not None:
        return None
    path = project_path(model)
    return path.resolve() if path is not None and path.is_dir() else None


def model_identity(model: str) -> str:
    """How the run id names a model: a Hub id or catalog name as written; a local folder by
    the digest of its files (names and contents), never its path, so the same folder moved or
    reached by another path keeps its runs' ids and an edited one gets new ids."""
    folder = local_model_folder(model)
    if folder is None:
        return model
    files = sorted(p for p in folder.iterdir() if p.is_file())
    stats = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _folder_identity(folder, stats)


@functools.lru_cache(maxsize=64)
def _folder_identity(folder: Path, stats: tuple[tuple[str, int, int], ...]) -> str:
    """Hashed once per process and state of the folder: a 75-run plan of a local roberta-base
    would otherwise read its 500 MB 75 times. Only the id is memoised; what a run records as
    its provenance is hashed from the bytes it read (helpers.run.provenance)."""
    h = hashlib.sha256()
    for name, _, _ in stats:
        h.update(f"{name}\0{provenance.file_digest(folder / name)}\n".encode())
    return LOCAL_MODEL_PREFIX + h.hexdigest()


def field_default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def config_family(values: Mapping[str, Any]) -> dict[str, Any]:
    """What the seeds of one configuration share: every field that enters the run id but the
    seed, from a recorded config (a run's config.json; keys that are not fields are ignored)."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    ident = TrainConfig(**{k: v for k, v in values.items() if k in fields}).identity()
    ident.pop("seed")
    return ident


def check_names(names: Iterable[str], where: str = "") -> None:
    """Raise ConfigError naming the first name that is not a TrainConfig field, with the
    closest field as a hint (the grid files' errors give the same)."""
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    unknown = [k for k in names if k not in fields]
    if unknown:
        key = unknown[0]
        hint = did_you_mean(key, fields)
        raise ConfigError(f"Unknown parameter '{key}'{where}.{hint} Valid: {', '.join(fields)}.")


#: The first line of the cell papermill injects after the ``parameters`` cell (its Python
#: translator writes ``# Parameters`` then one ``name = value`` line per parameter).
PAPERMILL_HEADER = "# Parameters"


def check_injected_parameters(cells: Iterable[str]) -> None:
    """Reject a papermill parameter that is not a TrainConfig field (``-p lerning_rate 0.1``).

    Papermill only warns about an unknown name and injects it as one more variable, so the
    run used the default. The train notebook passes IPython's input history (``In``): the
    cells papermill injected are those starting with its header, and every name they assign
    must be a field. Cells typed by hand are not checked (a plain JupyterLab run has none).
    """
    for source in cells:
        if not isinstance(source, str) or source.split("\n", 1)[0].strip() != PAPERMILL_HEADER:
            continue
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue  # papermill's own cell always parses; this one is not it
        names = [t.id for node in tree.body if isinstance(node, ast.Assign)
                 for t in node.targets if isinstance(t, ast.Name)]
        check_names(names, where=" (passed to the notebook, e.g. papermill -p)")


def short_model_name(model: str) -> str:
    """``allenai/scibert_scivocab_uncased`` -> ``scibert_scivocab_uncased``; safe for paths."""
    name = model.rstrip("/").split("/")[-1] or "model"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name)


def field_help() -> dict[str, str]:
    """Each TrainConfig field's one-line help, in field order."""
    return {f.name: f.metadata["help"] for f in dataclasses.fields(TrainConfig)}


# One module checks types, for a config (validate) and for one grid value (grid.spec) alike:
# the checks are a dozen lines over the dataclass's own annotations, and pydantic would add a
# second definition of the fields (or a dependency for the runs) and its own error wording.
def check_type(name: str, value: Any) -> None:
    """Raise ConfigError unless ``value`` is of the type field ``name``'s annotation says
    (``-p seed abc`` through papermill passes a string): ints are not bools, floats may be
    ints, paths may be ``os.PathLike``."""
    allowed = _allowed_types(name)
    if any(_is(value, t) for t in allowed) or (
            name in PATH_FIELDS and isinstance(value, os.PathLike)):
        return
    expected = (f"an integer in [0, {MAX_SEED}]" if name == "seed"
                else " or ".join(_TYPE_NAMES.get(t, "a list of strings") for t in allowed))
    raise ConfigError(f"{name}={value!r} must be {expected} ({name}: {field_help()[name]}).")


def _check_types(cfg: TrainConfig) -> None:
    for f in dataclasses.fields(cfg):
        check_type(f.name, getattr(cfg, f.name))


#: How an error message says each annotated type.
_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
               type(None): "None"}


@functools.cache
def _allowed_types(name: str) -> tuple[Any, ...]:
    hint = typing.get_type_hints(TrainConfig)[name]
    return typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)


def _is(value: Any, kind: Any) -> bool:
    if kind in (int, bool):  # a bool is an int to Python, not to a config
        return isinstance(value, kind) and isinstance(value, bool) == (kind is bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if typing.get_origin(kind) is list:
        return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
    return isinstance(value, kind)


def _finite(cfg: TrainConfig, name: str) -> None:
    """A real number, not nan/inf (an infinite learning rate trains to NaN)."""
    value = getattr(cfg, name)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ConfigError(f"{name}={value!r} must be a finite number.")


def _positive(cfg: TrainConfig, name: str, allow_none: bool = False) -> None:
    value = getattr(cfg, name)
    if value is None and allow_none:
        return
    _finite(cfg, name)
    if value <= 0:
        raise ConfigError(f"{name}={value!r} must be a positive, finite number.")


def _at_least_one(cfg: TrainConfig, name: str) -> None:
    value = getattr(cfg, name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name}={value!r} must be an integer >= 1.")

"""The Setup section's facts: the data each dataset's runs used, the build's departures from
the original's settings (stated once), compute and package versions (``report/templates/
setup.md.j2``). Everything is read from the runs (summary, config.json, env.json) and the
baselines computed on the rows they evaluated."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd

from helpers.run.methods import METHODS
from helpers.run.sources import SOURCES
from helpers.run.store import RunStore

from .formats import fmt_lr
from .load import display_model, order_datasets

#: Packages whose versions the section names (env.json's ``packages``), in this order.
PACKAGES = ("torch", "transformers", "adapters", "peft", "datasets", "scikit-learn")


@dataclass(frozen=True)
class DataSetup:
    """One dataset as the runs used it."""

    dataset: str
    description: str
    train: str
    validation: str
    test: str
    validation_from: str
    classes: int
    majority: str
    majority_share: float | None
    pair: bool


@dataclass(frozen=True)
class Deviation:
    setting: str
    original: str
    ours: str


@dataclass
class SetupFacts:
    datasets: list[DataSetup] = field(default_factory=list)
    deviations: list[Deviation] = field(default_factory=list)
    runs: int = 0
    hours: float = 0.0
    devices: list[str] = field(default_factory=list)
    packages: list[tuple[str, str]] = field(default_factory=list)


def _span(values: pd.Series) -> str:
    v = sorted({int(x) for x in pd.to_numeric(values, errors="coerce").dropna()})
    if not v:
        return "—"
    return f"{v[0]:,}" if len(v) == 1 else f"{v[0]:,}–{v[-1]:,}"


def _validation_from(base: str) -> str:
    source = SOURCES[base]
    if source.split is None:
        return f"the dataset's own {source.files['validation']}"
    return f"re-split from {', '.join(source.files.values())} with a fixed seed"


def datasets(summary: pd.DataFrame, baselines: dict[str, dict]) -> list[DataSetup]:
    out = []
    for d in order_datasets(summary["dataset"]):
        runs, b = summary[summary["dataset"] == d], baselines.get(d) or {}
        base = d.rsplit("_", 1)[0]
        source = SOURCES.get(base)
        if source is None:
            continue
        out.append(DataSetup(
            d, source.description, _span(runs["num_train_samples"]),
            f"{int(b['num_validation_samples']):,}" if b.get("num_validation_samples") else "—",
            _span(runs["num_test_samples"]), _validation_from(base), len(source.labels),
            str(b.get("label", "—")), b.get("accuracy"), source.reader.pairs))
    return out


def _values(configs: pd.DataFrame, column: str) -> list:
    if configs.empty or column not in configs:
        return []
    return sorted({v for v in configs[column] if v is not None and v == v}, key=str)


def deviations(summary: pd.DataFrame, configs: pd.DataFrame,
               appendix: dict[str, str]) -> list[Deviation]:
    """The settings where this build departs from the original's (its appendix, and the
    Trainer's defaults it did not change), each once."""
    out = []
    models = [display_model(m) for m in _values(summary, "model")]
    theirs = ["RoBERTa-base", "BERT-base", "SciBERT"]
    if set(models) != set(theirs):
        out.append(Deviation("models", ", ".join(theirs), ", ".join(models)))
    caps = _values(configs, "max_train_samples")
    if caps:
        evals = _values(configs, "max_eval_samples")
        out.append(Deviation("examples", "every training and test example",
                             f"at most {int(caps[0]):,} training"
                             + (f" and {int(evals[0]):,} validation and test" if evals else "")
                             + " per run (a fixed sample)"))
    lrs = []
    ran = set(configs["method"]) if "method" in configs else set()
    for method in (m for m in METHODS if m in ran):  # the registry's order
        v = _values(configs[configs["method"] == method], "learning_rate")
        if v:
            lrs.append(f"{method} {', '.join(fmt_lr(float(x)) for x in sorted(map(float, v)))}")
    original_lr = appendix.get("learning_rate", "2e-5")
    if lrs and lrs != [f"full {original_lr}"]:
        out.append(Deviation("learning rates", f"{original_lr} for every method", "; ".join(lrs)))
    precision = sorted(set(map(str, summary["precision"].dropna())))
    if precision and precision != ["fp32"]:
        out.append(Deviation("precision", "fp32, the Trainer's default", ", ".join(precision)))
    lengths = _values(configs, "max_length")
    if lengths:
        out.append(Deviation("sequence length", "not stated",
                             ", ".join(f"{int(x)} tokens" for x in lengths)))
    warmup = _values(configs, "warmup_ratio")
    if any(float(w) > 0 for w in warmup):
        out.append(Deviation("warmup", "none, the Trainer's default",
                             ", ".join(f"{float(w):.0%} of the steps" for w in warmup)))
    return out


def _packages(store: RunStore, run_ids: list[str]) -> list[tuple[str, str]]:
    found: dict[str, set[str]] = {}
    for rid in run_ids:
        try:
            env = json.loads((store.path(rid) / "env.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        for name, version in (env.get("packages") or {}).items():
            if version:
                found.setdefault(name, set()).add(str(version))
    return [(p, " / ".join(sorted(found[p]))) for p in PACKAGES if p in found]


def setup_facts(summary: pd.DataFrame, configs: pd.DataFrame, baselines: dict[str, dict],
                appendix: dict[str, str], store: RunStore,
                extra: pd.DataFrame | None = None) -> SetupFacts:
    """``extra``: other runs of the build (the ablation grid's), counted in the compute."""
    if summary.empty:
        return SetupFacts()
    every = pd.concat([summary, extra], ignore_index=True) if extra is not None and len(extra) \
        else summary
    devices = [f"{dev.upper() if dev == 'cuda' else dev} ({name})" if name else str(dev)
               for dev, name in every[["device", "device_name"]].drop_duplicates()
               .itertuples(index=False)]
    return SetupFacts(datasets(summary, baselines), deviations(summary, configs, appendix),
                      len(every), float(pd.to_numeric(every["wall_time_s"]).sum()) / 3600,
                      devices, _packages(store, list(every["run_id"])))

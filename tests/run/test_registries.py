"""Adding a method or a dataset is one registry entry: throwaway ones, registered only here."""

from __future__ import annotations

import json

import pytest

from helpers.grid.spec import load_grid
from helpers.report import load, tables
from helpers.run import data, methods, models, sources, training
from helpers.run.config import ConfigError, TrainConfig
from helpers.run.store import RunStore


def apply_bitfit(model, cfg):
    """BitFit-like: only the biases and the classification head train."""
    head = methods.head_module_names(model)
    for name, p in model.named_parameters():
        p.requires_grad_(name.endswith(".bias") or name.split(".")[0] in head)
    return model


@pytest.fixture
def bitfit(monkeypatch):
    method = methods.Method("bitfit", "BitFit", 3e-4, apply_bitfit, trains="biases and head")
    monkeypatch.setitem(methods.METHODS, "bitfit", method)
    return method


def test_registered_method_trains_without_editing_other_modules(bitfit, tiny_bert,
                                                                real_data_dir, tmp_path):
    values = {"model": str(tiny_bert), "dataset": "restaurant_sup", "method": "bitfit",
              "data_dir": str(real_data_dir), "runs_dir": str(tmp_path / "runs"),
              "max_train_samples": 16, "max_eval_samples": 8, "num_train_epochs": 1,
              "logging_steps": 1, "torch_threads": 1}
    cfg = TrainConfig.from_dict(values)
    run_dir = training.run(cfg, progress=False, device="cpu")

    config = json.loads((run_dir / "config.json").read_text())
    assert config["method"] == "bitfit" and config["learning_rate"] == 3e-4
    # the trainable count is exactly the biases plus the head of the same architecture
    labels = data.label_names(data.load("restaurant_sup", real_data_dir))
    plain = models.build_model(TrainConfig(model=str(tiny_bert)), labels, random_init=True)
    expected = sum(p.numel() for n, p in plain.named_parameters()
                   if n.endswith(".bias") or n.startswith("classifier."))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["parameters"]["trainable"] == expected
    assert 0 < expected < metrics["parameters"]["total"]

    # the report code lists it with its label (the build's methods only: it alone ran)
    summary = load.run_summary(RunStore(tmp_path / "runs"))
    table = tables.peft_table(summary, model=str(tiny_bert)).shown()
    assert list(table["method"]) == ["BitFit"] and table["n"].iloc[-1] == 1


def test_ia3_trains_on_a_tiny_model(tiny_bert, real_data_dir, tmp_path):
    """IA3 (peft) is registered for users: it trains only its scaling vectors and the head."""
    cfg = TrainConfig.from_dict({
        "model": str(tiny_bert), "dataset": "restaurant_sup", "method": "ia3",
        "data_dir": str(real_data_dir), "runs_dir": str(tmp_path / "runs"),
        "max_train_samples": 16, "max_eval_samples": 8, "num_train_epochs": 1,
        "logging_steps": 1, "torch_threads": 1})
    run_dir = training.run(cfg, progress=False, device="cpu")
    config = json.loads((run_dir / "config.json").read_text())
    params = json.loads((run_dir / "metrics.json").read_text())["parameters"]
    assert config["method"] == "ia3" and config["learning_rate"] == methods.METHODS[
        "ia3"].learning_rate
    labels = data.label_names(data.load("restaurant_sup", real_data_dir))
    plain = models.build_model(TrainConfig(model=str(tiny_bert)), labels, random_init=True)
    head = sum(p.numel() for n, p in plain.named_parameters() if n.startswith("classifier."))
    assert head < params["trainable"] < params["total"] // 10


def test_a_method_the_memory_accounting_cannot_cover_breaks_no_build(monkeypatch):
    """Registering a method whose model the accounting cannot build (prefix tuning crashed
    every report build) leaves the memory table as it was: it lists Method.memory ones."""
    from helpers.report import gpu_memory

    def broken(model, cfg):
        raise TypeError("no memory accounting for this one")

    before = gpu_memory.accounting_frame(models=["roberta-base"],
                                         results=gpu_memory.DEFAULT_RESULTS)
    monkeypatch.setitem(methods.METHODS, "prefix", methods.Method(
        "prefix", "prefix tuning", 1e-2, broken, trains="virtual tokens"))
    after = gpu_memory.accounting_frame(models=["roberta-base"],
                                        results=gpu_memory.DEFAULT_RESULTS)
    assert list(after["method"]) == ["full", "adapter", "lora"]
    assert after.equals(before)


def test_registered_method_in_grids_and_errors(bitfit, tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("methods: {bitfit: {learning_rate: 0.001}}\n"
                    "matrix: {method: [full, bitfit], seed: [1]}\n")
    runs = load_grid(grid, runs_dir=tmp_path / "runs").runs
    assert [r.config.resolved().learning_rate for r in runs] == [2e-5, 1e-3]
    with pytest.raises(ConfigError, match="bitfit"):  # the error lists the registered names
        TrainConfig(method="bitfti").validate(check_model_limit=False)


def test_unregistered_method_is_gone_after_the_test():
    assert "bitfit" not in methods.METHODS
    with pytest.raises(ConfigError):
        TrainConfig(method="bitfit").validate(check_model_limit=False)


@pytest.fixture
def toy_source(monkeypatch, tmp_path):
    """A SemEval-format dataset with its own folder and classes, in a temporary data dir."""
    folder = tmp_path / "data" / "toy-reviews"
    folder.mkdir(parents=True)
    for split, n in (("train", 6), ("dev", 2), ("test", 3)):
        rows = {f"{split}{i}": {"id": f"{split}{i}", "term": "service",
                                "sentence": f"The service {i} was {'good' if i % 2 else 'bad'}.",
                                "polarity": "good" if i % 2 else "bad"} for i in range(n)}
        (folder / f"{split}.json").write_text(json.dumps(rows))
    source = sources.Source("toy-reviews", sources.SEMEVAL, ("good", "bad"), "toy reviews")
    monkeypatch.setitem(sources.SOURCES, "toy", source)
    return tmp_path / "data"


def test_registered_dataset_loads_without_editing_other_modules(toy_source):
    dd = data.load("toy_sup", toy_source)
    assert {s: len(ds) for s, ds in dd.items()} == {"train": 6, "validation": 2, "test": 3}
    assert data.label_names(dd) == ["good", "bad"]
    row = dd["test"][1]
    assert row["text"] == "service" and row["text_pair"] == "The service 1 was good."
    assert dd["test"].features["label"].int2str(row["label"]) == "good"
    TrainConfig(dataset="toy_sup").validate(check_model_limit=False)
    with pytest.raises(data.DataError, match=r"no public download\. Place train\.json"):
        data.fetch("toy_sup", toy_source)
    with pytest.raises(data.DataError, match="toy-reviews"):  # missing files name the folder
        data.load("toy_sup", toy_source / "elsewhere")


def test_model_table_feeds_labels_and_offline_configs():
    from helpers.run import catalog

    for name in catalog.REPORT_MODELS:
        info = catalog.MODELS[name]
        assert load.display_model(name) == info.label
        assert models.load_model_config(name).model_type in ("roberta", "bert")
    assert load.display_model("sentence-transformers/all-MiniLM-L6-v2") == "MiniLM-L6"
    assert load.display_model("allenai/scibert_scivocab_uncased") == "SciBERT"
    assert load.display_model("org/other-model") == "other-model"

"""TrainConfig: the notebook's parameters, validated cheaply, with a stable run id."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from helpers.grid.spec import load_grid
from helpers.run import legacy, records
from helpers.run.config import (
    ConfigError,
    TrainConfig,
    check_injected_parameters,
)
from helpers.run.methods import METHODS
from helpers.run.store import RunStore


def test_defaults_are_the_appendix_values():
    cfg = TrainConfig()
    assert (cfg.num_train_epochs, cfg.per_device_train_batch_size,
            cfg.per_device_eval_batch_size, cfg.weight_decay, cfg.logging_steps) == (
        3, 8, 8, 0.01, 10)
    assert cfg.resolved().learning_rate == 2e-5


@pytest.mark.parametrize("method", ["full", "adapter", "lora"])
def test_method_default_learning_rates(method):
    assert TrainConfig(method=method).resolved().learning_rate == METHODS[method].learning_rate
    assert TrainConfig(method=method, learning_rate=3e-4).resolved().learning_rate == 3e-4
    assert METHODS["adapter"].learning_rate >= 1e-4 and METHODS["lora"].learning_rate >= 1e-4


def test_unknown_key_is_named_with_a_hint():
    with pytest.raises(ConfigError, match="'learning_rte'.*'learning_rate'"):
        TrainConfig.from_dict({"learning_rte": 1e-5})


def test_injected_notebook_parameters_are_checked():
    """The notebook passes IPython's ``In``: only papermill's injected cells are checked."""
    declared = "# Parameters (papermill injects overrides after this cell).\nmodel = 'x'\n"
    injected = "# Parameters\nseed = 3\nlerning_rate = 0.1\n"
    with pytest.raises(ConfigError, match="'lerning_rate'.*Did you mean 'learning_rate'"):
        check_injected_parameters(["", declared, injected, "cfg = 1"])
    check_injected_parameters(["", declared, "# Parameters\nseed = 3\nlearning_rate = 0.1\n",
                               "run_dir = 1", "x = 2"])  # hand-typed cells are not checked


@pytest.mark.parametrize("field,value", [
    ("method", "bitfit"), ("dataset", "imdb"), ("precision", "fp64"),
    ("learning_rate", 0), ("learning_rate", -1.0), ("num_train_epochs", 0),
    ("per_device_train_batch_size", 0), ("per_device_eval_batch_size", -2),
    ("max_length", 0), ("max_length", 100_000), ("logging_steps", 0),
    ("max_train_samples", 0), ("warmup_ratio", 1.0), ("weight_decay", -0.1),
    ("lora_target_modules", []), ("num_train_epochs", True),
    ("pad_to_multiple_of", 0), ("pad_to_multiple_of", 2.5), ("torch_compile", "max-speed"),
    # issue 12: caught late (after the model was built) or not at all before
    ("num_train_epochs", 0.5), ("num_train_epochs", 2.0), ("learning_rate", float("nan")),
    ("learning_rate", float("inf")), ("weight_decay", float("nan")),
    ("weight_decay", float("inf")), ("learning_rate", "1e-5"),
])
def test_invalid_values_raise(field, value):
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict({field: value})
    assert field.split("_")[0] in str(info.value) or str(value) in str(info.value)


@pytest.mark.parametrize("field,value", [
    ("num_train_epochs", 0.5), ("learning_rate", float("nan")), ("learning_rate", float("inf")),
])
def test_late_failures_are_named_in_validation(field, value):
    """These passed validation and failed after the model was built (or trained to NaN)."""
    with pytest.raises(ConfigError, match=rf"^{field}="):
        TrainConfig.from_dict({field: value})


def test_max_length_limit_names_the_model():
    with pytest.raises(ConfigError, match="roberta-base.*512"):
        TrainConfig.from_dict({"model": "roberta-base", "max_length": 514})
    TrainConfig.from_dict({"model": "roberta-base", "max_length": 512})


def test_run_id_is_readable_and_stable():
    a = TrainConfig(model="allenai/scibert_scivocab_uncased", dataset="acl_sup",
                    method="adapter", seed=3)
    assert a.run_id().startswith("scibert_scivocab_uncased__acl_sup__adapter__s3__")
    assert a.run_id() == TrainConfig(**a.to_dict()).run_id()
    # resolving the default learning rate does not change the identity
    assert a.run_id() == TrainConfig(**{**a.to_dict(), "learning_rate": 1e-4}).run_id()
    # where results go or how fast they come does not change it either
    moved = TrainConfig(**{**a.to_dict(), "runs_dir": "/elsewhere", "torch_threads": 1,
                           "per_device_eval_batch_size": 256, "pad_to_multiple_of": 16,
                           "torch_compile": "reduce-overhead"})
    assert moved.run_id() == a.run_id()
    for change in ({"seed": 4}, {"learning_rate": 5e-4}, {"max_train_samples": 10}):
        assert TrainConfig(**{**a.to_dict(), **change}).run_id() != a.run_id()


def test_speed_fields_keep_existing_run_ids():
    """pad_to_multiple_of / torch_compile came after runs existed: the id of a config is the
    one computed before they did (value from the code of that time, under the current scheme:
    helpers.run.legacy), whatever they are set to."""
    cfg = TrainConfig(model="roberta-base", dataset="agnews_sup", method="lora", seed=5)
    assert cfg.run_id() == "roberta-base__agnews_sup__lora__s5__ea2409f0"
    fast = TrainConfig(**{**cfg.to_dict(), "pad_to_multiple_of": 32,
                          "torch_compile": "reduce-overhead"})
    assert fast.run_id() == cfg.run_id()


# ------------------------------------------------------------------ issue 20: seeds
@pytest.mark.parametrize("seed", ["abc", "1", -1, -2, 2**32, 1.0, 1.5, True, False, None])
def test_bad_seeds_are_named_before_anything_loads(seed):
    """A seed numpy and torch can use: an integer in [0, 2**32 - 1]. "abc" failed after the
    data was tokenized, -1 inside numpy, and both left a failure record."""
    with pytest.raises(ConfigError, match=r"^seed=.*integer in \[0, 4294967295\]"):
        TrainConfig.from_dict({"seed": seed})


@pytest.mark.parametrize("seed", [0, 1, 42, 2**32 - 1])
def test_seed_range_ends_are_valid(seed):
    TrainConfig.from_dict({"seed": seed})


LEGACY = Path(__file__).parents[1] / "fixtures" / "legacy_runs"


def _migrated_legacy(tmp_path: Path) -> Path:
    """A copy of the committed legacy runs folder, migrated to the current run-id scheme."""
    runs_dir = tmp_path / "runs"
    shutil.copytree(LEGACY, runs_dir)
    assert legacy.migrate(RunStore(runs_dir))
    return runs_dir


def test_an_added_field_at_its_default_keeps_every_run_id(monkeypatch, tmp_path):
    """A field added with a default that reproduces today's runs changes no run id (the
    committed grids' ids and the migrated legacy runs'), and a config that sets it to another
    value gets a new id."""
    from helpers.grid import spec
    from helpers.run import config

    fixture = Path(__file__).parents[1] / "fixtures" / "grid_run_ids.json"
    expected = json.loads(fixture.read_text())
    runs_dir = _migrated_legacy(tmp_path)
    legacy_ids = [p.name for p in runs_dir.iterdir() if not p.name.startswith(".")]
    base = TrainConfig(model="roberta-base", dataset="restaurant_sup", method="full", seed=1)
    before = base.run_id()
    extended = dataclasses.make_dataclass(
        "TrainConfig", [("text_join", str, dataclasses.field(default="pair"))],
        bases=(TrainConfig,))
    monkeypatch.setattr(config, "TrainConfig", extended)
    monkeypatch.setattr(spec, "TrainConfig", extended)
    monkeypatch.setattr(legacy, "TrainConfig", extended)
    monkeypatch.setattr(config, "ADDED_FIELDS", (*config.ADDED_FIELDS, "text_join"))
    cfg = extended(**base.to_dict())
    assert cfg.run_id() == before
    assert extended(**{**base.to_dict(), "text_join": "sep_string"}).run_id() != before
    for grid_file, ids in expected.items():
        planned = [r.run_id for r in spec.load_grid(Path(__file__).parents[2] / grid_file).runs]
        assert planned == ids, grid_file
    for rid in legacy_ids:
        recorded = records.read_json(runs_dir / rid / "config.json")
        assert legacy.current_run_id(recorded) == rid
    assert legacy.legacy_folders(RunStore(runs_dir)) == {}


def test_legacy_runs_are_migrated_once(tmp_path):
    """A runs folder of the previous scheme: named in one line with the command, renamed by
    it (records rewritten), and a second migration finds nothing. The fixture was recorded
    before runs kept predictions, so it is then incomplete for that one reason (and rerun)."""
    runs_dir = tmp_path / "runs"
    shutil.copytree(LEGACY, runs_dir)
    (old,) = [p.name for p in runs_dir.iterdir()]
    note = legacy.legacy_note(RunStore(runs_dir))
    assert "1 run folder(s)" in note and "runs migrate --runs-dir" in note
    renamed = legacy.migrate(RunStore(runs_dir))
    new = renamed[old]
    assert new != old and new.rsplit("__", 1)[0] == old.rsplit("__", 1)[0]
    assert records.check_records(runs_dir / new) == "missing predictions.csv.gz"
    assert records.read_json(runs_dir / new / "metrics.json")["run_id"] == new
    assert legacy.migrate(RunStore(runs_dir)) == {} and legacy.legacy_note(RunStore(runs_dir)) == ""
    # the migrated id is the one the grid plans for that config
    cpu = [r.run_id for r in load_grid(Path(__file__).parents[2] / "params" / "cpu.yaml").runs]
    assert new in cpu


def test_runs_migrate_command(tmp_path, capsys):
    from helpers.cli import main

    runs_dir = tmp_path / "runs"
    shutil.copytree(LEGACY, runs_dir)
    assert main(["runs", "migrate", "--runs-dir", str(runs_dir)]) == 0
    assert "1 run folder(s) renamed" in capsys.readouterr().out


def test_a_full_runs_id_ignores_other_methods_fields():
    full = TrainConfig(method="full")
    assert TrainConfig(method="full", lora_r=4, adapter_reduction_factor=2).run_id() == \
        full.run_id()
    assert TrainConfig(method="lora", lora_r=4).run_id() != TrainConfig(method="lora").run_id()
    assert "lora_r" not in full.identity() and "lora_r" in TrainConfig(method="lora").identity()


def test_one_model_folder_at_two_paths_has_one_id(tmp_path, monkeypatch):
    """A local model is identified by its files, not its path: a copy elsewhere, an absolute
    or a project-relative path give one id; different files give another."""
    from helpers import settings
    from helpers.run import config

    first = tmp_path / "a" / "encoder"
    first.mkdir(parents=True)
    (first / "config.json").write_text('{"model_type": "bert"}')
    (first / "model.safetensors").write_bytes(b"weights")
    second = tmp_path / "b" / "encoder"
    shutil.copytree(first, second)
    monkeypatch.setattr(settings, "PROJECT_ROOT", tmp_path)
    ids = {TrainConfig(model=str(p)).run_id() for p in (first, second)}
    ids.add(TrainConfig(model="a/encoder").run_id())
    assert len(ids) == 1
    assert config.model_identity("a/encoder").startswith(config.LOCAL_MODEL_PREFIX)
    (second / "model.safetensors").write_bytes(b"other weights")
    assert TrainConfig(model=str(second)).run_id() not in ids
    assert config.model_identity("roberta-base") == "roberta-base"



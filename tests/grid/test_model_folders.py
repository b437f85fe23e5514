"""A local model folder is checked once before any run (issue 31.5): one without weights
passed `grid plan` and then failed every run separately, after 42 s each, its message cut off
mid-path. Now plan, run and train reject it at once with the full path and what is missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers.cli import main
from helpers.grid.runner import RunOptions, run_grid
from helpers.grid.spec import GridError, load_grid
from helpers.run.config import ConfigError, TrainConfig
from helpers.run.errors import ModelError
from helpers.run.model_files import check_model_folder, missing_parts

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "params" / "smoke.yaml"
WEIGHTS = ("model.safetensors", "pytorch_model.bin")


@pytest.fixture
def model_copy(tiny_bert, tmp_path) -> Path:
    """A complete tiny model in a folder whose path is long (the old message cut it)."""
    folder = tmp_path / ("a-rather-long-folder-name-" * 4) / "tiny-bert"
    shutil.copytree(tiny_bert, folder)
    return folder


def _drop(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).unlink(missing_ok=True)


def test_complete_folders_pass(tiny_bert, tiny_roberta):
    from helpers.run.models import minilm_path

    for folder in (tiny_bert, tiny_roberta, minilm_path()):
        assert missing_parts(folder) == [], folder
        check_model_folder(folder)


def test_each_missing_part_is_named(model_copy):
    _drop(model_copy, *WEIGHTS)
    assert missing_parts(model_copy) == ["weights (model.safetensors or pytorch_model.bin)"]
    _drop(model_copy, "tokenizer.json", "vocab.txt", "config.json")
    parts = missing_parts(model_copy)
    assert [p.split(" ")[0] for p in parts] == ["config", "weights", "tokenizer"], parts
    with pytest.raises(ModelError) as e:
        check_model_folder(model_copy)
    assert f"Model folder {model_copy.resolve()} is incomplete" in str(e.value)
    assert "no config (config.json); no weights" in str(e.value)


def test_an_empty_weights_file_or_a_missing_shard_is_missing(model_copy):
    weights = next(model_copy / n for n in WEIGHTS if (model_copy / n).is_file())
    weights.write_bytes(b"")  # what a killed copy leaves
    assert missing_parts(model_copy)[0].startswith("weights")
    weights.unlink()
    (model_copy / "model.safetensors.index.json").write_text(
        '{"weight_map": {"a": "model-00001-of-00002.safetensors",'
        ' "b": "model-00002-of-00002.safetensors"}}')
    (model_copy / "model-00001-of-00002.safetensors").write_bytes(b"x")
    assert missing_parts(model_copy) == [
        "weights (shards model-00002-of-00002.safetensors listed in "
        "model.safetensors.index.json)"]


def test_plan_and_run_reject_a_folder_without_weights_once(model_copy, tmp_path, capsys):
    _drop(model_copy, *WEIGHTS)
    runs = tmp_path / "runs"
    for action in ("plan", "run"):
        assert main(["grid", action, str(SMOKE), "--runs-dir", str(runs),
                     "--set", f"model={model_copy}"]) == 2
        err = capsys.readouterr().err
        assert err.count("error:") == 1 and err.count("is incomplete") == 1, err
        assert str(model_copy.resolve()) in err and "no weights" in err, err
    assert not runs.exists()  # no run started, no failure record


def test_the_runner_checks_again_before_any_run(model_copy, tmp_path):
    """A folder emptied between loading the grid and running it: one error, nothing run."""
    grid = load_grid(SMOKE, overrides={"model": str(model_copy)}, runs_dir=tmp_path / "runs")
    _drop(model_copy, "tokenizer.json", "vocab.txt")
    with pytest.raises(GridError, match=r"no tokenizer .*\n3 pending run\(s\) load it"):
        run_grid(grid, RunOptions())
    assert not list((tmp_path / "runs").glob(".failed/*"))
    assert not list((tmp_path / "runs").glob(".logs/*"))


def test_train_and_validate_reject_it(model_copy, capsys):
    _drop(model_copy, *WEIGHTS)
    for limit in (True, False):  # the check needs no model loading
        with pytest.raises(ConfigError, match="no weights"):
            TrainConfig(model=str(model_copy)).validate(check_model_limit=limit)
    assert main(["train", "--model", str(model_copy), "--max-train-samples", "8"]) == 2
    err = capsys.readouterr().err
    assert str(model_copy.resolve()) in err and "no weights" in err, err

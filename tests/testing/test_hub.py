"""The offline GPU rehearsal: a Hugging Face cache of random-init stand-ins of the report's
models that the unchanged full grid loads by Hub id, and several runs sharing one device."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest

from helpers.cli import main
from helpers.grid import execution, workers
from helpers.grid import runner as gridrun
from helpers.grid.spec import GridError, load_grid
from helpers.run.models import load_model_config
from helpers.run.records import read_json
from helpers.run.store import RunStore
from helpers.testing.hub import HUB_MODELS, MARKER, hub_cache_dir, repo_folder
from helpers.testing.tiny import TINY_SIZES

ROOT = Path(__file__).resolve().parents[2]
FULL = ROOT / "params" / "full.yaml"


@pytest.fixture(scope="module")
def tiny_hub(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("hf_home")
    assert main(["rehearse-hub", str(home), "--tiny"]) == 0
    return home


def test_cache_is_laid_out_as_a_download(tiny_hub):
    marker = json.loads((tiny_hub / MARKER).read_text())
    assert marker["models"] == list(HUB_MODELS) and marker["tiny"] is True
    for repo_id in HUB_MODELS:
        repo = hub_cache_dir(tiny_hub) / repo_folder(repo_id)
        commit = (repo / "refs" / "main").read_text()
        snapshot = repo / "snapshots" / commit
        assert sorted(p.name for p in (repo / "snapshots").iterdir()) == [commit]
        names = {p.name for p in snapshot.iterdir()}
        assert {"config.json", "model.safetensors", "tokenizer.json",
                "tokenizer_config.json"} <= names
        for p in snapshot.iterdir():  # links into blobs/<sha256>, as huggingface_hub writes
            assert p.is_symlink() and p.resolve().parent == (repo / "blobs").resolve()
    assert repo_folder("allenai/scibert_scivocab_uncased") == (
        "models--allenai--scibert_scivocab_uncased")


def test_hub_ids_load_offline_from_the_cache(tiny_hub, tmp_path):
    """Through huggingface_hub's own cache lookup, in a fresh process (its settings are read
    at import): the ids of params/full.yaml resolve with HF_HUB_OFFLINE=1."""
    import subprocess
    import sys

    code = (
        "import json\n"
        "from helpers.run import models\n"
        "out = {}\n"
        f"for m in {list(HUB_MODELS)!r}:\n"
        "    tok = models.load_tokenizer(m)\n"
        "    model = models.build_model(models_cfg(m), ['a', 'b', 'c'])\n"
        "    out[m] = [model.config.hidden_size, sorted(tok('a b', 'c'))]\n"
        "print(json.dumps(out))\n")
    prelude = ("from helpers.run.config import TrainConfig\n"
               "def models_cfg(m):\n"
               "    return TrainConfig(model=m).resolved()\n")
    env = {**os.environ, "HF_HOME": str(tiny_hub), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", prelude + code], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for m in HUB_MODELS:
        assert out[m][0] == TINY_SIZES["hidden_size"]
    # RoBERTa has one token type: its stand-in tokenizer emits no segment ids
    assert out["roberta-base"][1] == ["attention_mask", "input_ids"]
    assert "token_type_ids" in out["bert-base-uncased"][1]
    # and without the cache the same ids fail offline with the how-to message
    env["HF_HOME"] = str(tmp_path / "empty")
    proc = subprocess.run([sys.executable, "-c", "from helpers.run import models\n"
                           "models.load_tokenizer('roberta-base')"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "huggingface-cli download roberta-base" in proc.stderr


def test_runs_per_device_default_and_checks(monkeypatch):
    monkeypatch.setattr(workers, "cpu_count", lambda: 16)
    monkeypatch.setattr(workers, "gpu_memory_gib", lambda d: 79.6)
    assert workers.default_runs_per_device(["0"]) == 16  # H100: cores and memory allow 16
    assert workers.default_runs_per_device(["0", "1"]) == 8  # the cores are shared
    monkeypatch.setattr(workers, "gpu_memory_gib", lambda d: 24.0)
    assert workers.default_runs_per_device(["0"]) == int(24 // workers.RUN_GPU_MEMORY_GIB)
    monkeypatch.setattr(workers, "gpu_memory_gib", lambda d: None)
    assert workers.default_runs_per_device(["0"]) == 4
    monkeypatch.setattr(workers, "cpu_count", lambda: 2)
    assert workers.default_runs_per_device(["0"]) == 2
    grid = load_grid(FULL)
    with pytest.raises(GridError, match="needs devices"):
        gridrun.run_grid(grid, runs_per_device=2)
    with pytest.raises(GridError, match="either workers or runs_per_device"):
        gridrun.run_grid(grid, devices=["0"], runs_per_device=2, workers=3)
    with pytest.raises(GridError, match="must be >= 1"):
        gridrun.run_grid(grid, devices=["0"], runs_per_device=0)


@pytest.mark.slow
def test_full_grid_runs_offline_from_the_rehearsal_cache(tiny_hub, real_data_dir, tmp_path,
                                                         monkeypatch, stub_gpus):
    """params/full.yaml, unchanged but for a shorter budget, through the real grid runner and
    papermill, loading its Hub ids from the cache; two runs share one device."""
    monkeypatch.setenv("HF_HOME", str(tiny_hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("NLPDL_DATA_DIR", str(real_data_dir))
    budget = {"max_train_samples": 16, "max_eval_samples": 16, "num_train_epochs": 1}
    grid = load_grid(FULL, overrides=budget, runs_dir=tmp_path).select(
        ["seed=1", "dataset=acl_sup", "method=full", "model=roberta-base",
         "model=allenai/scibert_scivocab_uncased"])
    assert len(grid.runs) == 2
    out = io.StringIO()
    summary = gridrun.run_grid(grid, devices=["0"], runs_per_device=2, out=out)
    log = out.getvalue()
    assert summary.ok, log
    assert "2 worker(s) on GPU 0, 2 per GPU" in log
    # in a log (not a terminal) each finished run's line counts the runs still in flight
    assert "[1/2, running=gpu0:1]" in log and "[2/2, running=gpu0:0]" in log
    for r in grid.runs:
        folder = RunStore(tmp_path).path(r.run_id)
        config = read_json(folder / "config.json")
        metrics = read_json(folder / "metrics.json")
        assert config["model"] == r.config.model
        expected = _tiny_parameters(r.config.model, 6)  # ACL-ARC has 6 classes
        assert metrics["parameters"]["total"] == expected  # the cached tiny weights were used

    # benchmarks/gpu_grid.sh's summary of such a grid: what completed and what it took
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import grid_timing
    finally:
        sys.path.pop(0)
    args = ["--grid", str(FULL), "--runs-dir", str(tmp_path), "--grid-seconds", "100",
            "--device", "cpu", "--out", str(tmp_path / "out"),
            *[x for k, v in budget.items() for x in ("--set", f"{k}={v}")],
            *[x for f in ("seed=1", "dataset=acl_sup", "method=full", "model=roberta-base",
                          "model=allenai/scibert_scivocab_uncased") for x in ("--filter", f)]]
    assert grid_timing.main(args) == 0
    result = json.loads((tmp_path / "out" / "grid_cpu.json").read_text())
    assert (result["runs"], result["completed"], result["failed"]) == (2, 2, 0)
    assert result["train_samples"] == 2 * 16
    assert result["aggregate_train_samples_per_s"] == pytest.approx(32 / 100)
    assert all(r["papermill_s"] > 0 and r["train_samples_per_s"] > 0
               for r in result["per_run"])


def _tiny_parameters(model: str, num_labels: int) -> int:
    from transformers import AutoModelForSequenceClassification

    m = AutoModelForSequenceClassification.from_config(
        load_model_config(model, num_labels=num_labels, **TINY_SIZES))
    return sum(p.numel() for p in m.parameters())


def test_longest_runs_go_first(real_data_dir, monkeypatch):
    """Many runs at once: the grid starts the longest (AG News, full fine-tuning) first, so it
    does not end waiting on a long run that started last."""
    monkeypatch.setenv("NLPDL_DATA_DIR", str(real_data_dir))
    grid = load_grid(FULL)
    tasks = [execution.make_task(r, grid.store, Path("nb"), "k", 1) for r in grid.runs]
    order = [(t["params"]["dataset"], t["params"]["method"]) for t in
             gridrun.longest_first(tasks)]
    assert order[:15] == [("agnews_sup", "full")] * 15
    assert order[-5:] == [("acl_sup", "lora")] * 5
    assert sorted(order) == sorted((t["params"]["dataset"], t["params"]["method"])
                                   for t in tasks)

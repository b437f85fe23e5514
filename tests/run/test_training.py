"""One experiment end to end: the train notebook under papermill, the training helpers, and
the guarantees of a run (validation before loading, atomic folders, determinism, learning)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from helpers.run import batches, data, models, records, training
from helpers.run.config import ConfigError, TrainConfig, field_help
from helpers.run.device import cpu_has_native_bf16, resolve_pad_multiple, resolve_precision
from helpers.run.store import RunStore

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = PROJECT_ROOT / "notebooks" / "train.ipynb"
KERNEL = "nlpdl-report"
METRICS = {"accuracy", "macro_f1", "micro_f1", "loss"}
TINY = {"max_train_samples": 32, "max_eval_samples": 16, "num_train_epochs": 2,
        "per_device_train_batch_size": 8, "logging_steps": 2, "torch_threads": 1}


@pytest.fixture(scope="module")
def shared_runs(tmp_path_factory) -> Path:
    """One runs dir per module, so the tokenization cache is shared like in a real grid."""
    return tmp_path_factory.mktemp("runs")


def tiny_config(model: Path, data_dir: Path, runs_dir: Path, **overrides) -> TrainConfig:
    values = {"model": str(model), "dataset": "restaurant_sup", "data_dir": str(data_dir),
              "runs_dir": str(runs_dir), **TINY, **overrides}
    return TrainConfig.from_dict(values)


def execute_notebook(output: Path, **parameters) -> None:
    import papermill as pm

    pm.execute_notebook(str(NOTEBOOK), str(output), parameters=parameters, kernel_name=KERNEL,
                        cwd=str(PROJECT_ROOT), progress_bar=False)


# --------------------------------------------------------------------------- artifacts


def check_run(run_dir: Path, cfg: TrainConfig) -> dict:
    """Validate a complete run folder against its config; return metrics.json."""
    assert records.is_complete(run_dir)
    resolved = cfg.resolved()
    config = json.loads((run_dir / "config.json").read_text())
    # pad_to_multiple_of is recorded as resolved for the device (None = auto)
    device = torch.device(json.loads((run_dir / "memory.json").read_text())["device"])
    pad = resolve_pad_multiple(cfg.pad_to_multiple_of, device)
    assert config == {**json.loads(json.dumps(resolved.to_dict())), "run_id": cfg.run_id(),
                      "pad_to_multiple_of": pad}
    assert run_dir.name == cfg.run_id()

    history = pd.read_csv(run_dir / "history.csv")
    assert tuple(history.columns) == records.HISTORY_COLUMNS
    epochs = resolved.num_train_epochs
    n_train = len(data.load(cfg.dataset, cfg.data_dir)["train"])
    n_train = min(n_train, cfg.max_train_samples or n_train)
    steps_per_epoch = -(-n_train // cfg.per_device_train_batch_size)
    total = steps_per_epoch * epochs

    loss = history.query("split == 'train' and metric == 'loss'")
    assert list(loss["step"]) == list(range(cfg.logging_steps, total + 1, cfg.logging_steps))
    assert loss["epoch"].tolist() == pytest.approx([s / steps_per_epoch for s in loss["step"]])
    epoch_loss = history.query("metric == 'epoch_loss'")
    assert list(epoch_loss["epoch"]) == list(range(1, epochs + 1))
    for split in ("validation", "test"):
        part = history[history["split"] == split]
        assert set(part["metric"]) == METRICS
        assert len(part) == 4 * epochs
        assert sorted(set(part["step"])) == [steps_per_epoch * e for e in range(1, epochs + 1)]
    assert history["value"].notna().all()

    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("run_id", "best_epoch", "selection", "validation", "test", "train_loss",
                "final_train_loss", "wall_time_s", "train_time_s", "train_samples_per_s",
                "train_tokens_per_s", "num_train_samples", "num_epochs", "parameters"):
        assert key in metrics, key
    assert metrics["run_id"] == cfg.run_id()
    assert metrics["selection"] == "validation_macro_f1"
    assert metrics["num_train_samples"] == n_train
    assert metrics["num_epochs"] == epochs
    assert metrics["train_samples_per_s"] > 0 and metrics["train_tokens_per_s"] > 0

    # best epoch = first epoch with the highest validation macro-F1, recomputed from history
    wide = history.query("split != 'train'").pivot_table(
        index="epoch", columns=["split", "metric"], values="value")
    best = int(wide[("validation", "macro_f1")].idxmax())
    assert metrics["best_epoch"] == best
    for split in ("validation", "test"):
        assert set(metrics[split]) == METRICS
        for metric in METRICS:
            assert metrics[split][metric] == pytest.approx(wide.loc[best, (split, metric)])
    # train_loss is the mean over all steps: the step-weighted mean of the epoch losses
    assert metrics["train_loss"] == pytest.approx(epoch_loss["value"].mean())

    memory = json.loads((run_dir / "memory.json").read_text())
    assert memory["parameters"] == metrics["parameters"]
    assert memory["device"] in ("cpu", "cuda")
    if memory["device"] == "cpu":
        assert memory["peak_rss_bytes"] > 0 and memory["peak_cuda_allocated_bytes"] is None
    env = json.loads((run_dir / "env.json").read_text())
    assert env["packages"]["torch"] and env["torch_threads"] >= 1
    check_predictions(run_dir, cfg, metrics)
    return metrics


def check_predictions(run_dir: Path, cfg: TrainConfig, metrics: dict) -> None:
    """predictions.csv.gz: every epoch x eval split x example once, labels those of the
    subsampled split's rows (so ``example`` is its row index), probabilities that sum to 1
    and argmax to the prediction, and at the best epoch metrics.json's scores (sklearn)."""
    from sklearn.metrics import f1_score

    preds = pd.read_csv(run_dir / "predictions.csv.gz")
    names = metrics["label_names"]
    probs = [f"prob_{i}" for i in range(len(names))]
    assert list(preds.columns) == ["split", "epoch", "example", "label", "prediction", *probs]
    dd = data.load(cfg.dataset, cfg.data_dir)
    for split in ("validation", "test"):
        rows = batches.subsample(dd[split], cfg.max_eval_samples)
        for epoch in range(1, cfg.num_train_epochs + 1):
            part = preds[(preds["split"] == split) & (preds["epoch"] == epoch)]
            assert part["example"].tolist() == list(range(len(rows)))
            assert part["label"].tolist() == list(rows["label"])
            assert part[probs].sum(axis=1).to_numpy() == pytest.approx(1, abs=1e-3)
            p = part[probs].to_numpy()  # the prediction's probability is the largest
            assert (p[range(len(p)), part["prediction"]] == p.max(axis=1)).all()
        best = preds[(preds["split"] == split) & (preds["epoch"] == metrics["best_epoch"])]
        assert metrics[split]["macro_f1"] == pytest.approx(
            f1_score(best["label"], best["prediction"], average="macro", zero_division=0))
        assert metrics[split]["accuracy"] == pytest.approx(
            (best["label"] == best["prediction"]).mean())


def expected_parameters(cfg: TrainConfig, label_names: list[str]) -> dict[str, int]:
    model = models.build_model(cfg.resolved(), label_names)
    return models.count_parameters(model)


# --------------------------------------------------------------------------- papermill


@pytest.mark.slow
@pytest.mark.parametrize("method", ["full", "adapter", "lora"])
@pytest.mark.parametrize("arch,dataset", [("bert", "restaurant_sup"), ("roberta", "acl_sup")])
def test_notebook_runs_each_method(request, arch, dataset, method, real_data_dir, shared_runs,
                                   tmp_path):
    model = request.getfixturevalue(f"tiny_{arch}")
    cfg = tiny_config(model, real_data_dir, shared_runs, dataset=dataset, method=method)
    params = {k: v for k, v in cfg.to_dict().items()}
    execute_notebook(tmp_path / "out.ipynb", **params)

    run_dir = shared_runs / cfg.run_id()
    metrics = check_run(run_dir, cfg)
    names = data.label_names(data.load(dataset, real_data_dir))
    counts = expected_parameters(cfg, names)
    assert metrics["parameters"] == counts
    if method == "full":
        assert counts["trainable"] == counts["total"]
    else:
        assert 0 < counts["trainable"] < counts["total"] // 5
    config = json.loads((run_dir / "config.json").read_text())
    assert config["learning_rate"] == {"full": 2e-5, "adapter": 1e-4, "lora": 5e-4}[method]
    # the executed notebook shows the run's metrics
    executed = (tmp_path / "out.ipynb").read_text()
    assert cfg.run_id() in executed and "macro_f1" in executed


def test_notebook_rejects_invalid_parameters(tmp_path, real_data_dir):
    import papermill as pm

    with pytest.raises(pm.PapermillExecutionError) as info:
        execute_notebook(tmp_path / "out.ipynb", method="prefix_tuning",
                         runs_dir=str(tmp_path / "runs"), data_dir=str(real_data_dir))
    assert info.value.ename == "ConfigError"
    assert "prefix_tuning" in info.value.evalue
    assert not (tmp_path / "runs").exists()


def test_notebook_rejects_unknown_parameters(tmp_path, real_data_dir, tiny_bert):
    """papermill only warns about ``-p lerning_rate 0.1``; the run used the default lr."""
    import papermill as pm

    with pytest.raises(pm.PapermillExecutionError) as info:
        execute_notebook(tmp_path / "out.ipynb", lerning_rate=0.1, model=str(tiny_bert),
                         runs_dir=str(tmp_path / "runs"), data_dir=str(real_data_dir),
                         max_train_samples=8, max_eval_samples=8)
    assert info.value.ename == "ConfigError"
    assert "'lerning_rate'" in info.value.evalue and "'learning_rate'" in info.value.evalue
    assert not (tmp_path / "runs").exists()


def test_notebook_parameters_cell_matches_config():
    """Every TrainConfig field is a parameter of the notebook, and nothing else is."""
    import ast

    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    source = tagged[0].source
    assert "#|" not in source
    names = [t.id for node in ast.parse(source).body if isinstance(node, ast.Assign)
             for t in node.targets]
    assert names == [f.name for f in dataclasses.fields(TrainConfig)]
    # papermill reads the same parameters (a second "=" on a line, even in its comment, makes
    # it skip the line and warn "unknown parameter" in every run's log)
    from papermill.translators import PythonTranslator

    assert [p.name for p in PythonTranslator.inspect(tagged[0])] == names
    # each parameter's comment is its help text, declared once in TrainConfig's field metadata
    helps = field_help()
    for line in source.splitlines():
        if line and not line.startswith("#"):
            code, _, comment = line.partition("  # ")
            assert comment == helps[code.split("=")[0].strip()], line
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    assert nb.metadata["kernelspec"]["name"] == KERNEL
    # the defaults are a valid config (which one: tests/test_notebooks.py)
    values: dict = {}
    exec(source, {}, values)
    TrainConfig.from_dict(values)


# --------------------------------------------------------------------------- learning


@pytest.mark.slow
def test_minilm_learns_restaurant(real_data_dir, shared_runs):
    """Packaged MiniLM on real restaurant_sup beats the majority baseline (macro-F1 ~0.26)."""
    cfg = TrainConfig.from_dict({
        "model": "minilm", "dataset": "restaurant_sup", "method": "full",
        "learning_rate": 1e-4, "num_train_epochs": 2, "max_train_samples": 600,
        "max_eval_samples": 300, "per_device_train_batch_size": 16,
        "per_device_eval_batch_size": 64, "max_length": 128, "data_dir": str(real_data_dir),
        "runs_dir": str(shared_runs)})
    metrics = check_run(training.run(cfg, progress=False), cfg)
    assert metrics["test"]["macro_f1"] > 0.40
    assert metrics["test"]["accuracy"] > 0.65


# --------------------------------------------------------------------------- validation


@pytest.fixture
def broken_model(tiny_bert, tmp_path) -> Path:
    """A model folder whose weights are garbage: loading it would fail loudly."""
    path = tmp_path / "broken"
    shutil.copytree(tiny_bert, path)
    for weights in path.glob("*.safetensors"):
        weights.write_bytes(b"not a model")
    return path


@pytest.mark.parametrize("field,value", [
    ("method", "prefix"), ("dataset", "restaurant"), ("learning_rate", 0.0),
    ("learning_rate", -1e-5), ("num_train_epochs", 0), ("per_device_train_batch_size", 0),
    ("per_device_eval_batch_size", 0), ("max_length", 513), ("precision", "fp8"),
])
def test_invalid_parameters_rejected_before_loading(broken_model, tmp_path, field, value):
    runs_dir = tmp_path / "runs"
    values = {"model": str(broken_model), "runs_dir": str(runs_dir), field: value}
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict(values)
    assert field in str(info.value) or str(value) in str(info.value)
    # a config mutated after construction is re-validated by run() itself
    cfg = TrainConfig(model=str(broken_model), runs_dir=str(runs_dir))
    setattr(cfg, field, value)
    with pytest.raises(ConfigError):
        training.run(cfg, progress=False)
    assert not runs_dir.exists()  # nothing was staged, loaded or cached


def test_fp16_needs_cuda(tiny_bert, tmp_path):
    cfg = TrainConfig(model=str(tiny_bert), precision="fp16", runs_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="fp16"):
        training.run(cfg, progress=False, device="cpu")
    native = cpu_has_native_bf16()  # auto follows the hardware: bf16 only if native
    assert resolve_precision("auto", torch.device("cpu")) == ("bf16" if native else "fp32")
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"


def test_failed_run_records_error_and_leaves_nothing(broken_model, real_data_dir, tmp_path):
    cfg = tiny_config(broken_model, real_data_dir, tmp_path / "runs")
    with pytest.raises(Exception):  # noqa: B017 - whatever loading a corrupt file raises
        training.run(cfg, progress=False)
    assert RunStore(tmp_path / "runs").complete_runs() == []
    assert not (tmp_path / "runs" / cfg.run_id()).exists()
    assert list(RunStore(tmp_path / "runs").tmp_dir.iterdir()) == []
    failure = RunStore(tmp_path / "runs").read_failure(cfg.run_id())
    assert failure["run_id"] == cfg.run_id()
    assert any("Traceback" in line for line in failure["traceback"]) and failure["error"]


def test_diverged_run_is_failed_never_complete(tiny_bert, real_data_dir, tmp_path):
    """A learning rate this large trains to NaN loss within a few steps: the run stops, is
    recorded as failed with the step, and never becomes a complete run (issue 12)."""
    cfg = tiny_config(tiny_bert, real_data_dir, tmp_path / "runs", learning_rate=1e30)
    with pytest.raises(training.DivergedError) as info:
        training.run(cfg, progress=False, device="cpu")
    steps_per_epoch = TINY["max_train_samples"] // TINY["per_device_train_batch_size"]
    assert 1 <= info.value.step <= steps_per_epoch  # stopped in the first epoch
    assert f"step {info.value.step}" in str(info.value) and "learning_rate" in str(info.value)
    assert RunStore(tmp_path / "runs").complete_runs() == []
    assert not (tmp_path / "runs" / cfg.run_id()).exists()
    failure = RunStore(tmp_path / "runs").read_failure(cfg.run_id())
    assert failure["diverged_at_step"] == info.value.step
    assert failure["error"].startswith("DivergedError")


# --------------------------------------------------------------------------- kill, determinism


KILL_SCRIPT = """
import sys
from helpers.run import training
from helpers.run.config import TrainConfig
cfg = TrainConfig(model=sys.argv[1], data_dir=sys.argv[2], runs_dir=sys.argv[3],
                  num_train_epochs=50, logging_steps=1, torch_threads=1)
training.run(cfg)
"""


def test_killed_run_leaves_no_complete_folder(tiny_bert, real_data_dir, tmp_path):
    runs_dir = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(tiny_bert), str(real_data_dir), str(runs_dir)],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        seen = ""
        while "0/50 [" not in seen:  # the epoch bar is up: training starts now (to a pipe,
            # helpers.run.progress shows only the epoch bar, no per-step bar)
            char = proc.stderr.read(1)  # tqdm ends its lines with \r, not \n
            assert char, f"training process ended early:\n{seen}"
            seen += char
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert RunStore(runs_dir).complete_runs() == []
    assert [p.name for p in runs_dir.iterdir() if not p.name.startswith(".")] == []
    debris = list((RunStore(runs_dir).tmp_dir).iterdir())
    assert debris  # the half-written run is only in .tmp
    assert sorted(RunStore(runs_dir).clean_stale()) == sorted(debris)
    assert list((RunStore(runs_dir).tmp_dir).iterdir()) == []


def test_same_config_gives_identical_metrics(tiny_bert, real_data_dir, tmp_path):
    results = []
    for name in ("a", "b"):
        cfg = tiny_config(tiny_bert, real_data_dir, tmp_path / name)
        run_dir = training.run(cfg, progress=False, device="cpu")
        metrics = json.loads((run_dir / "metrics.json").read_text())
        history = pd.read_csv(run_dir / "history.csv")
        results.append((metrics, history))
    (m1, h1), (m2, h2) = results
    for key in ("validation", "test", "train_loss", "final_train_loss", "best_epoch"):
        assert m1[key] == m2[key], key
    pd.testing.assert_frame_equal(h1, h2)
    assert ((tmp_path / "a" / m1["run_id"] / "predictions.csv.gz").read_bytes()
            == (tmp_path / "b" / m2["run_id"] / "predictions.csv.gz").read_bytes())
    # and the seed matters
    other = training.run(tiny_config(tiny_bert, real_data_dir, tmp_path / "c", seed=7),
                         progress=False, device="cpu")
    assert pd.read_csv(other / "history.csv")["value"].tolist() != h1["value"].tolist()


def test_best_checkpoint_holds_trainable_weights(tiny_roberta, real_data_dir, tmp_path):
    from safetensors.torch import load_file

    cfg = tiny_config(tiny_roberta, real_data_dir, tmp_path, method="lora",
                      save_best_checkpoint=True, num_train_epochs=1)
    run_dir = training.run(cfg, progress=False)
    saved = load_file(run_dir / training.CHECKPOINT_FILE)
    model = models.build_model(cfg.resolved(), ["positive", "neutral", "negative"])
    assert set(saved) == set(models.trainable_parameter_names(model))
    # off by default
    default = training.run(tiny_config(tiny_roberta, real_data_dir, tmp_path / "d",
                                       num_train_epochs=1), progress=False)
    assert not (default / training.CHECKPOINT_FILE).exists()


# --------------------------------------------------------------------------- data pieces


def test_pairs_are_encoded_with_the_tokenizers_own_specials(tiny_bert, tiny_roberta,
                                                            real_data_dir):
    dd = data.load("restaurant_sup", real_data_dir)
    row = dd["train"][0]
    for path in (tiny_bert, tiny_roberta):
        tok = models.load_tokenizer(str(path))
        enc = batches.tokenize_function(tok, 64)(
            {"text": [row["text"]], "text_pair": [row["text_pair"]], "label": [row["label"]]})
        assert enc["input_ids"][0] == tok(row["text"], row["text_pair"], truncation=True,
                                          max_length=64)["input_ids"]
        ids = enc["input_ids"][0]
        assert ids.count(tok.sep_token_id) >= 2  # [SEP] a [SEP] b / <s> a </s></s> b </s>
        assert enc["labels"] == [row["label"]] and enc["length"] == [len(ids)]
    single = batches.tokenize_function(models.load_tokenizer(str(tiny_bert)), 8)(
        {"text": ["a long sentence " * 10], "text_pair": [None], "label": [0]})
    assert single["length"] == [8]  # truncated to max_length


def test_tokenization_cache_is_reused(tiny_bert, tiny_roberta, real_data_dir, tmp_path):
    dd = data.load("restaurant_sup", real_data_dir)
    cache = tmp_path / "cache"
    tok = models.load_tokenizer(str(tiny_bert))
    first = batches.tokenize(dd, tok, 64, cache)
    assert len(list(cache.iterdir())) == 1
    # a copy of the same tokenizer in another folder hits the same entry
    copy = shutil.copytree(tiny_bert, tmp_path / "copy")
    again = batches.tokenize(dd, models.load_tokenizer(str(copy)), 64, cache)
    assert len(list(cache.iterdir())) == 1
    assert again["train"]["input_ids"] == first["train"]["input_ids"]
    batches.tokenize(dd, tok, 32, cache)
    batches.tokenize(dd, models.load_tokenizer(str(tiny_roberta)), 64, cache)
    assert len(list(cache.iterdir())) == 3
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]


def test_subsample_is_fixed_and_dynamic_padding(tiny_bert, real_data_dir):
    dd = data.load("restaurant_sup", real_data_dir)
    a = batches.subsample(dd["train"], 50)
    b = batches.subsample(dd["train"], 50)
    assert a["id"] == b["id"] and len(a) == 50 and len(set(a["id"])) == 50
    assert batches.subsample(dd["train"], None) is dd["train"]
    tok = models.load_tokenizer(str(tiny_bert))
    encoded = batches.tokenize(dd, tok, 128)
    loader = batches.make_loader(batches.subsample(encoded["train"], 64), tok, 8, train=True)
    widths = [batch["input_ids"].shape[1] for batch in loader]
    assert len(widths) == 8 and max(widths) < 128  # padded per batch, never to max_length
    for batch in loader:
        assert batch["attention_mask"].sum(1).max() == batch["input_ids"].shape[1]


def test_bf16_autocast_on_cpu_when_asked(tiny_roberta, real_data_dir, tmp_path):
    cfg = tiny_config(tiny_roberta, real_data_dir, tmp_path, method="lora", precision="bf16",
                      num_train_epochs=1)
    run_dir = training.run(cfg, progress=False, device="cpu")
    memory = json.loads((run_dir / "memory.json").read_text())
    assert memory["precision"] == "bf16" and memory["device"] == "cpu"
    metrics = check_run(run_dir, cfg)
    assert 0 <= metrics["test"]["macro_f1"] <= 1 and metrics["train_loss"] > 0


def _without_dropout(model: Path, dest: Path) -> Path:
    """A copy of a tiny model with every dropout off: training is then deterministic in the
    values, not only in the random stream (dropout masks are drawn per padded position)."""
    shutil.copytree(model, dest)
    cfg = json.loads((dest / "config.json").read_text())
    cfg.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (dest / "config.json").write_text(json.dumps(cfg))
    return dest


def test_pad_to_multiple_of_changes_shapes_not_results(tiny_bert, tiny_roberta, real_data_dir,
                                                       tmp_path):
    """Padding to a multiple of 16 tokens (the CUDA default) is inert: attention masks hide
    the extra positions, so a tiny model trains to the same metrics."""
    dd = data.load("restaurant_sup", real_data_dir)
    tok = models.load_tokenizer(str(tiny_bert))
    encoded = batches.subsample(batches.tokenize(dd, tok, 128)["train"], 64)
    for train in (True, False):
        loader = batches.make_loader(encoded, tok, 8, train=train, pad_to_multiple_of=16)
        widths = [b["input_ids"].shape[1] for b in loader]
        assert all(w % 16 == 0 for w in widths) and len(set(widths)) <= 128 // 16
        plain = [b["input_ids"].shape[1] for b in batches.make_loader(encoded, tok, 8, train)]
        assert [w - p for w, p in zip(widths, plain, strict=True)] == [
            -p % 16 for p in plain]  # each batch rounded up, no further
    assert resolve_pad_multiple(None, torch.device("cpu")) == 1
    assert resolve_pad_multiple(None, torch.device("cuda")) == 16
    assert resolve_pad_multiple(8, torch.device("cuda")) == 8

    for arch, path in (("bert", tiny_bert), ("roberta", tiny_roberta)):
        model = _without_dropout(path, tmp_path / f"{arch}-nodrop")
        out = {}
        for pad in (None, 16):
            cfg = tiny_config(model, real_data_dir, tmp_path / f"{arch}-{pad}",
                              pad_to_multiple_of=pad, precision="fp32")
            run_dir = training.run(cfg, progress=False, device="cpu")
            config = json.loads((run_dir / "config.json").read_text())
            assert config["pad_to_multiple_of"] == (pad or 1)
            out[pad] = (run_dir.name, json.loads((run_dir / "metrics.json").read_text()),
                        pd.read_csv(run_dir / "history.csv"))
        (id1, m1, h1), (id2, m2, h2) = out[None], out[16]
        assert id1 == id2  # a speed setting: the same experiment
        for split in ("validation", "test"):
            for metric in ("accuracy", "macro_f1", "micro_f1"):
                assert m1[split][metric] == m2[split][metric], (arch, split, metric)
            assert m1[split]["loss"] == pytest.approx(m2[split]["loss"], rel=1e-4)
        assert m1["best_epoch"] == m2["best_epoch"]
        assert h1["value"].to_numpy() == pytest.approx(h2["value"].to_numpy(), rel=1e-4,
                                                       abs=1e-6)


def _tokenize_into(model: str, data_dir: str, cache: str) -> list[int]:
    """One process of the concurrent-cache test: tokenize restaurant into ``cache``."""
    dd = data.load("restaurant_sup", data_dir)
    out = batches.tokenize(dd, models.load_tokenizer(model), 64, Path(cache))
    return out["train"]["length"]


def test_tokenization_cache_is_safe_under_concurrency(tiny_bert, real_data_dir, tmp_path):
    """Runs sharing a GPU start together and all miss the cache: each writes a private
    temporary folder renamed into place, so all succeed and one complete entry remains."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    cache = tmp_path / "cache"
    with ProcessPoolExecutor(3, mp_context=mp.get_context("spawn")) as pool:
        results = list(pool.map(_tokenize_into, *zip(*[(str(tiny_bert), str(real_data_dir),
                                                        str(cache))] * 3, strict=True)))
    assert results[0] == results[1] == results[2]
    assert [p.name.startswith(".") for p in cache.iterdir()] == [False]  # no debris
    again = _tokenize_into(str(tiny_bert), str(real_data_dir), str(cache))
    assert again == results[0]

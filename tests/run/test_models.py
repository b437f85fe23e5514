"""Models and methods: name resolution offline, heads with the true labels, and exactly the
right weights trainable for full fine-tuning, Houlsby adapters and LoRA."""

from __future__ import annotations

import shutil

import pytest
import torch

from helpers.run import models
from helpers.run.config import TrainConfig

LABELS = ["positive", "neutral", "negative"]


def build(path, method: str, **overrides):
    cfg = TrainConfig(model=str(path), method=method, **overrides).resolved()
    return models.build_model(cfg, LABELS)


def test_minilm_resolves_offline():
    path = models.resolve_model("minilm")
    assert (models.minilm_path() / "config.json").is_file()
    assert models.resolve_model("sentence-transformers/all-MiniLM-L6-v2") == path
    assert models.max_sequence_length("minilm") == 512


def test_bundled_configs_and_limits():
    assert models.max_sequence_length("roberta-base") == 512  # 514 positions, 2 reserved
    assert models.max_sequence_length("bert-base-uncased") == 512
    cfg = models.load_model_config("allenai/scibert_scivocab_uncased")
    assert cfg.model_type == "bert" and cfg.vocab_size == 31090


def test_bad_model_folders(tmp_path):
    with pytest.raises(models.ModelError, match="does not exist"):
        models.resolve_model(str(tmp_path / "missing"))
    with pytest.raises(models.ModelError, match="config.json"):
        models.resolve_model(str(tmp_path))


def test_relative_model_folder_is_taken_from_the_project_root(tmp_path, tiny_bert,
                                                               monkeypatch):
    """From notebooks/ (where JupyterLab and papermill run the train notebook),
    model="models/my-encoder" is the project's folder, never a Hub id."""
    from helpers import settings
    from helpers.run import config, provenance

    folder = tmp_path / "models" / "my-encoder"
    shutil.copytree(tiny_bert, folder)
    (tmp_path / "notebooks").mkdir()
    monkeypatch.setattr(settings, "PROJECT_ROOT", tmp_path)
    monkeypatch.chdir(tmp_path / "notebooks")
    assert models.resolve_model("models/my-encoder") == str(folder.resolve())
    assert provenance.model_folder("models/my-encoder") == folder.resolve()
    assert config.local_model_folder("models/my-encoder") == folder.resolve()
    assert models.load_model_config("models/my-encoder").vocab_size == \
        models.load_model_config(str(tiny_bert)).vocab_size
    assert len(models.load_tokenizer("models/my-encoder")) == len(
        models.load_tokenizer(str(tiny_bert)))


@pytest.mark.parametrize("arch", ["bert", "roberta"])
def test_head_has_true_labels(request, arch):
    model = build(request.getfixturevalue(f"tiny_{arch}"), "full")
    assert model.config.num_labels == 3
    assert model.config.id2label == dict(enumerate(LABELS))
    counts = models.count_parameters(model)
    assert counts["trainable"] == counts["total"] > 0


def _is_head(name: str) -> bool:
    return name.startswith("classifier.") or ".modules_to_save." in name


@pytest.mark.parametrize("arch", ["bert", "roberta"])
def test_adapter_trains_only_adapters_and_head(request, arch):
    model = build(request.getfixturevalue(f"tiny_{arch}"), "adapter")
    names = models.trainable_parameter_names(model)
    assert all(".adapters.task." in n or _is_head(n) for n in names), names
    # Houlsby: one bottleneck after attention and one after the FFN, in every layer
    layers = model.config.num_hidden_layers
    assert sum(n.endswith("adapter_up.weight") for n in names) == 2 * layers
    assert any(_is_head(n) for n in names)
    hidden = model.config.hidden_size
    down = next(p for n, p in model.named_parameters() if n.endswith("adapter_down.0.weight"))
    assert down.shape == (hidden // 16, hidden)  # reduction factor 16


@pytest.mark.parametrize("arch", ["bert", "roberta"])
def test_lora_trains_only_lora_and_head(request, arch):
    model = build(request.getfixturevalue(f"tiny_{arch}"), "lora", lora_r=4)
    names = models.trainable_parameter_names(model)
    assert all("lora_" in n or _is_head(n) for n in names), names
    lora = [n for n in names if "lora_A" in n]
    assert lora and all(".query." in n or ".value." in n for n in lora)
    assert len(lora) == 2 * model.config.num_hidden_layers
    assert any(_is_head(n) for n in names)
    a = next(p for n, p in model.named_parameters() if "lora_A" in n)
    assert a.shape[0] == 4


def test_random_init_from_bundled_config():
    cfg = TrainConfig(model="bert-base-uncased", method="lora").resolved()
    model = models.build_model(cfg, LABELS, random_init=True)
    counts = models.count_parameters(model)
    assert 105e6 < counts["total"] < 115e6  # BERT-base, no download
    assert counts["trainable"] < 0.01 * counts["total"]


def test_unreachable_hub_id_says_how_to_predownload(tmp_path):
    """No internet (or HF_HUB_OFFLINE) and no cache: a clear ModelError, not a traceback."""
    import os
    import subprocess
    import sys

    code = ("from helpers.run.models import ModelError, load_tokenizer\n"
            "try:\n    load_tokenizer('roberta-base')\n"
            "except ModelError as e:\n    print('MODELERROR', e)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    assert "MODELERROR" in out.stdout, out.stderr[-2000:]
    assert "huggingface-cli download roberta-base" in out.stdout
    assert "minilm" in out.stdout


def test_adapter_is_active_in_the_forward_pass(tiny_bert):
    """The adapters library logs 'none are activated' at build time; the adapter is used."""
    model = models.build_model(TrainConfig(model=str(tiny_bert), method="adapter"),
                               ["a", "b"]).eval()
    batch = {"input_ids": torch.tensor([[101, 1996, 2833, 102]]),
             "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    before = model(**batch).logits
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "adapter" in name:
                p.add_(torch.randn_like(p))
    assert not torch.allclose(before, model(**batch).logits)

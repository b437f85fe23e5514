"""The original's two input choices as config fields (``input_format``, ``num_labels``): off
by default without touching a run id, checked before loading, and really applied."""

from __future__ import annotations

import json

import pytest
import torch

from helpers.run import batches, data, models, training
from helpers.run.config import ConfigError, TrainConfig

TINY = {"max_train_samples": 24, "max_eval_samples": 12, "num_train_epochs": 1,
        "per_device_train_batch_size": 8, "logging_steps": 2, "torch_threads": 1}


def test_defaults_leave_the_run_id_and_each_field_changes_it():
    base = TrainConfig()
    assert TrainConfig(input_format="pair", num_labels=None).run_id() == base.run_id()
    assert "input_format" not in base.identity() and "num_labels" not in base.identity()
    ids = {base.run_id(), TrainConfig(input_format="sep_string").run_id(),
           TrainConfig(num_labels=6).run_id(), TrainConfig(num_labels=3).run_id()}
    assert len(ids) == 4  # num_labels=3 equals the data's 3 classes, but says so explicitly


@pytest.mark.parametrize("values,needle", [
    ({"dataset": "acl_sup", "input_format": "sep_string"}, "single-text dataset"),
    ({"input_format": "sep"}, "is not one of"),
    ({"num_labels": 2}, "must be an integer >= 3"),
    ({"dataset": "agnews_sup", "num_labels": 3}, "must be an integer >= 4"),
    ({"num_labels": "6"}, "num_labels='6'"),
])
def test_bad_values_are_rejected_before_loading(values, needle):
    with pytest.raises(ConfigError, match=needle):
        TrainConfig.from_dict(values)


def test_original_settings_are_valid():
    TrainConfig.from_dict({"input_format": "sep_string", "num_labels": 6})
    TrainConfig.from_dict({"dataset": "agnews_sup", "num_labels": 6})


def test_sep_string_reaches_the_tokenizer_as_text(tiny_bert, real_data_dir):
    dd = data.load("restaurant_sup", real_data_dir)
    joined = data.apply_input_format(dd, "sep_string")
    row, orig = joined["train"][0], dd["train"][0]
    assert row["text"] == f"{orig['text']} <SEP> {orig['text_pair']}"
    assert row["text_pair"] is None and row["label"] == orig["label"]
    assert data.apply_input_format(dd, "pair") is dd
    tok = models.load_tokenizer(str(tiny_bert))
    encoded = batches.tokenize(joined, tok, 128)
    loader = batches.make_loader(batches.subsample(encoded["train"], 8), tok, 8, train=False)
    batch = next(iter(loader))
    for ids, mask in zip(batch["input_ids"], batch["attention_mask"], strict=True):
        ids = ids[mask.bool()].tolist()
        # one text: the tokenizer's own separator only at the end, the "<SEP>" as characters
        assert ids.count(tok.sep_token_id) == 1 and ids[-1] == tok.sep_token_id
        assert "< sep >" in tok.decode(ids)
    assert int(batch["token_type_ids"].sum()) == 0  # a single segment


def test_head_labels_pad_to_num_labels():
    names = ["positive", "neutral", "negative"]
    assert data.head_labels(names) == names
    assert data.head_labels(names, 6) == [*names, "unused_3", "unused_4", "unused_5"]
    with pytest.raises(data.DataError, match="below the 3 classes"):
        data.head_labels(names, 2)


def test_six_way_head_trains(tiny_bert, real_data_dir, tmp_path):
    cfg = TrainConfig.from_dict({"model": str(tiny_bert), "data_dir": str(real_data_dir),
                                 "runs_dir": str(tmp_path), "num_labels": 6, **TINY})
    model = models.build_model(cfg.resolved(), data.head_labels(["a", "b", "c"], 6),
                               random_init=True)
    assert model.classifier.out_features == 6
    logits = model(input_ids=torch.tensor([[101, 102]])).logits
    assert logits.shape == (1, 6)
    run_dir = training.run(cfg, progress=False, device="cpu")
    config = json.loads((run_dir / "config.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert config["num_labels"] == 6 and run_dir.name == cfg.run_id()
    assert 0 <= metrics["test"]["accuracy"] <= 1 and metrics["train_loss"] > 0

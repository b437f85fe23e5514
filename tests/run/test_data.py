"""The data layer on the real files in ../shared/data, and its errors on files we write."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter

import pytest

from helpers.run import data, sources

# Row and per-class counts from ../shared/data/README.md (train, validation, test).
EXPECTED = {
    "restaurant_sup": {
        "train": {"positive": 2094, "neutral": 579, "negative": 779},
        "validation": {"positive": 70, "neutral": 54, "negative": 26},
        "test": {"positive": 728, "neutral": 196, "negative": 196},
    },
    "laptop_sup": {
        "train": {"positive": 930, "neutral": 433, "negative": 800},
        "validation": {"positive": 57, "neutral": 27, "negative": 66},
        "test": {"positive": 341, "neutral": 169, "negative": 128},
    },
    "acl_sup": {
        "train": {"Background": 867, "Uses": 317, "CompareOrContrast": 305, "Motivation": 76,
                  "Extends": 63, "Future": 60},
        "validation": {"Background": 59, "Uses": 21, "CompareOrContrast": 21, "Motivation": 5,
                       "Extends": 4, "Future": 4},
        "test": {"Background": 71, "Uses": 26, "CompareOrContrast": 25, "Motivation": 7,
                 "Extends": 5, "Future": 5},
    },
}
ROWS = {"restaurant_sup": (3452, 150, 1120), "laptop_sup": (2163, 150, 638),
        "acl_sup": (1688, 114, 139)}


def counts(ds) -> dict[str, int]:
    names = ds.features["label"].names
    return {names[i]: n for i, n in Counter(ds["label"]).items()}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_splits_match_readme(real_data_dir, name):
    dd = data.load(name, real_data_dir)
    assert list(dd) == ["train", "validation", "test"]
    assert tuple(len(dd[s]) for s in dd) == ROWS[name]
    for split, expected in EXPECTED[name].items():
        assert counts(dd[split]) == expected
    assert dd["train"].features["label"].num_classes == len(EXPECTED[name]["train"])


def test_label_names_are_the_real_classes(real_data_dir):
    assert data.label_names(data.load("restaurant_sup", real_data_dir)) == [
        "positive", "neutral", "negative"]
    assert data.label_names(data.load("acl_sup", real_data_dir)) == [
        "Background", "Uses", "CompareOrContrast", "Motivation", "Extends", "Future"]
    assert data.label_names(data.load("agnews_sup", real_data_dir)) == [
        "World", "Sports", "Business", "Sci/Tech"]


def test_aspect_examples_keep_term_and_sentence_apart(real_data_dir):
    raw = json.loads((real_data_dir / "SemEval14-res" / "train.json").read_text())
    first_id, first = next(iter(raw.items()))
    row = data.load("restaurant_sup", real_data_dir)["train"][0]
    assert row["id"] == first_id
    assert row["text"] == first["term"]
    assert row["text_pair"] == first["sentence"]
    assert "<SEP>" not in row["text"] + row["text_pair"]
    acl = data.load("acl_sup", real_data_dir)["train"]
    assert acl[0]["text_pair"] is None


def test_agnews_assignment_split(real_data_dir):
    dd = data.load("agnews_sup", real_data_dir)
    n_train, n_val, n_test = (len(dd[s]) for s in ("train", "validation", "test"))
    assert n_test == 760
    assert n_train + n_val == 6840
    assert n_val == round(6840 * sources.AGNEWS_VALIDATION_FRACTION)
    ids = [set(dd[s]["id"]) for s in dd]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert sum(map(len, ids)) == 7600
    # Same call twice -> identical splits.
    again = data.load("agnews_sup", real_data_dir)
    for split in dd:
        assert again[split]["id"] == dd[split]["id"]
        assert again[split]["label"] == dd[split]["label"]


def test_agnews_test_split_is_the_seeded_datasets_split(real_data_dir):
    """The 9:1 split is datasets' train_test_split(test_size=0.1, seed=2022) of the 7600 rows."""
    import datasets

    test_csv = real_data_dir / "ag_news_csv" / "test.csv"
    rows = sources.read_agnews_csv(test_csv, sources.AGNEWS_LABELS)
    ref = datasets.Dataset.from_list(rows, features=sources.FEATURES).train_test_split(
        test_size=0.1, seed=2022)
    assert data.load("agnews_sup", real_data_dir)["test"]["id"] == ref["test"]["id"]


@pytest.mark.parametrize("name", ["restaurant_fs", "laptop_fs", "acl_fs", "agnews_fs"])
def test_few_shot_sizes(real_data_dir, name):
    fs = data.load(name, real_data_dir)
    sup = data.load(name.replace("_fs", "_sup"), real_data_dir)
    assert len(fs["train"]) == data.FEW_SHOT_SIZE
    assert set(fs["train"]["id"]) <= set(sup["train"]["id"])
    assert fs["validation"]["id"] == sup["validation"]["id"]
    assert fs["test"]["id"] == sup["test"]["id"]
    assert data.load(name, real_data_dir)["train"]["id"] == fs["train"]["id"]


def test_concatenation_offsets_labels_and_keeps_names(real_data_dir):
    both = data.load(["restaurant_sup", "acl_sup"], real_data_dir)
    names = data.label_names(both)
    assert names[:3] == ["restaurant_sup:positive", "restaurant_sup:neutral",
                         "restaurant_sup:negative"]
    assert names[3:] == [f"acl_sup:{n}" for n in sources.ACL_LABELS]
    assert len(both["test"]) == 1120 + 139
    c = counts(both["test"])
    assert c["restaurant_sup:negative"] == 196
    assert c["acl_sup:Background"] == 71
    assert c["acl_sup:Future"] == 5


def test_get_dataset_joins_with_the_given_separator(real_data_dir):
    dd = data.get_dataset("restaurant_sup", "</s>", real_data_dir)
    raw = json.loads((real_data_dir / "SemEval14-res" / "train.json").read_text())
    first = next(iter(raw.values()))
    assert dd["train"].column_names == ["text", "label"]
    assert dd["train"][0]["text"] == f"{first['term']}</s>{first['sentence']}"
    acl = data.get_dataset("acl_sup", "[SEP]", real_data_dir)
    assert "[SEP]" not in acl["train"][0]["text"]


def test_cli_info_prints_sizes(real_data_dir):
    out = subprocess.run([sys.executable, "-m", "helpers", "data", "info", "acl_sup",
                          "--data-dir", str(real_data_dir)], capture_output=True, text=True,
                         check=True).stdout
    assert "train" in out and "1688" in out and "Background" in out


# --------------------------------------------------------------------------- bad input
# These write their own files, so they always run.


def write_semeval(folder, rows_by_split):
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in rows_by_split.items():
        obj = {r["id"]: r for r in rows}
        (folder / f"{split}.json").write_text(json.dumps(obj))


def example(i, polarity="positive"):
    return {"id": f"{i}_0", "term": "food", "sentence": f"The food {i} was fine.",
            "polarity": polarity}


def test_unknown_name_lists_valid_names_and_suggests():
    with pytest.raises(data.DataError, match="Did you mean 'restaurant_sup'") as e:
        data.load("restaurant_sub")
    assert "acl_sup" in str(e.value)


def test_missing_file_names_path_and_layout(tmp_path):
    with pytest.raises(data.DataError) as e:
        data.load("acl_sup", tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "acl_sup" / "train.json") in msg
    assert "JSON Lines" in msg and "NLPDL_DATA_DIR" in msg


def test_a_directory_in_place_of_a_data_file_is_named_as_such(tmp_path, real_data_dir):
    """It was reported as a missing file."""
    shutil.copytree(real_data_dir / "acl_sup", tmp_path / "acl_sup")
    (tmp_path / "acl_sup" / "dev.json").unlink()
    (tmp_path / "acl_sup" / "dev.json").mkdir()
    with pytest.raises(data.DataError) as e:
        data.read_rows("acl_sup", tmp_path)
    assert f"{tmp_path / 'acl_sup' / 'dev.json'} is a directory" in str(e.value)
    assert "Missing" not in str(e.value)


def test_env_var_points_at_the_data(tmp_path, monkeypatch):
    write_semeval(tmp_path / "SemEval14-res",
                  {s: [example(1), example(2, "negative")] for s in ("train", "dev", "test")})
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    assert len(data.load("restaurant_sup")["test"]) == 2
    assert data.resolve_data_dir("/elsewhere") != tmp_path  # explicit argument wins


_GOOD_ACL = json.dumps({"text": "a", "label": "Uses", "metadata": {}})


@pytest.mark.parametrize("dataset, path, content, error", [
    ("acl_sup", "acl_sup/train.json", f"{_GOOD_ACL}\n{_GOOD_ACL}\n{{not json\n",
     r"train\.json: malformed JSON at line 3"),
    ("restaurant_sup", "SemEval14-res/train.json", '{"1_0": {"term": "x",\n "sentence": }',
     r"malformed JSON at line 2"),
    ("agnews_sup", "ag_news_csv/test.csv", '"1","title","desc"\n"2","only two"\n',
     r"test\.csv: line 2 has 2 fields"),
    ("agnews_sup", "ag_news_csv/test.csv", '"1","t","d"\n"7","t","d"\n',
     r"agnews-2.*'7'"),
    # issue 12: a raw UnicodeDecodeError / csv.Error without the file, or a late failure
    ("acl_sup", "acl_sup/train.json", f"{_GOOD_ACL}\n".encode() + b'{"text": "caf\xe9"}\n',
     r"train\.json: line 2, column 14: not UTF-8 \(byte 0xe9\).*as UTF-8"),
    ("restaurant_sup", "SemEval14-res/train.json", b'{"1_0": {"term": "\xff"}}',
     r"train\.json: line 1, column 19: not UTF-8 \(byte 0xff\)"),
    ("agnews_sup", "ag_news_csv/test.csv", b'"1","t","d"\n"2","\x80","d"\n',
     r"test\.csv: line 2, column 6: not UTF-8"),
    ("agnews_sup", "ag_news_csv/test.csv",
     '"1","t","d"\n"2","t","' + "x" * 131_073 + '"\n"3","t","d"\n',
     r"test\.csv: line 2: a field is longer than 131,072 characters.*quote"),
    ("restaurant_sup", "SemEval14-res/train.json",
     '{"1_0": {"term": "food", "sentence": "ok", "polarity": "positive"},'
     ' "7_1": {"term": null, "sentence": "ok", "polarity": "positive"}}',
     r"train\.json: example '7_1' has term None.*non-empty string"),
    ("acl_sup", "acl_sup/train.json", '{"text": null, "label": "Uses"}\n',
     r"train\.json: line 1 has text None.*non-empty string"),
], ids=["malformed-jsonl", "malformed-semeval-json", "malformed-csv", "agnews-class-range",
        "jsonl-not-utf8", "semeval-not-utf8", "csv-not-utf8", "csv-field-too-long",
        "semeval-term-null", "jsonl-text-null"])
def test_bad_file_names_file_line_and_value(tmp_path, dataset, path, content, error):
    target = tmp_path / path
    target.parent.mkdir(parents=True)
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content, encoding="utf-8")
    with pytest.raises(data.DataError, match=error):
        data.load(dataset, tmp_path)


def test_label_outside_label_set_is_an_error_not_minus_one(tmp_path):
    write_semeval(tmp_path / "SemEval14-res", {
        "train": [example(1), example(2, "conflict")],
        "dev": [example(3)], "test": [example(4)]})
    with pytest.raises(data.DataError) as e:
        data.load("restaurant_sup", tmp_path)
    msg = str(e.value)
    assert "train.json" in msg and "'2_0'" in msg and "'conflict'" in msg


def test_empty_split_is_an_error(tmp_path):
    write_semeval(tmp_path / "SemEval14-laptop",
                  {"train": [example(1)], "dev": [], "test": [example(2)]})
    with pytest.raises(data.DataError, match="split 'validation' is empty"):
        data.load("laptop_sup", tmp_path)


def test_fetch_semeval_says_where_to_place_files(tmp_path):
    with pytest.raises(data.DataError, match="Place train.json, dev.json and test.json"):
        data.fetch("restaurant_sup", tmp_path)


def test_fetch_offline_fails_with_a_message(tmp_path, monkeypatch):
    """No internet here: the download fails with a DataError, not a traceback."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = subprocess.run([sys.executable, "-m", "helpers", "data", "fetch", "acl_sup",
                          "--data-dir", str(tmp_path)], capture_output=True, text=True,
                         timeout=120)
    if out.returncode == 0:  # a machine with internet: the files must then be real
        assert data.load("acl_sup", tmp_path)["train"].num_rows > 0
        return
    assert out.returncode == 2
    assert "Could not download 'acl_sup'" in out.stderr
    assert "Traceback" not in out.stderr
    shutil.rmtree(tmp_path / "acl_sup", ignore_errors=True)

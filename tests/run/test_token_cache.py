"""The token cache is verified by content on every read (issue 31.1): Arrow files carry no
checksum, so each entry holds the sha256 of its files; a damaged entry is rebuilt with one
warning naming it, never trained on."""

from __future__ import annotations

import json
import warnings

import pytest

from helpers.run import batches, data, models


def _flip_middle_byte(path):
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))


def test_a_flipped_byte_in_the_cache_is_rebuilt_with_one_warning(tiny_bert, real_data_dir,
                                                                 tmp_path):
    dd = data.load("restaurant_sup", real_data_dir)
    tok = models.load_tokenizer(str(tiny_bert))
    cache = tmp_path / "cache"
    first = batches.tokenize(dd, tok, 64, cache)
    assert batches.tokenize(dd, tok, 64, cache)  # a tokenizer once used keys the same entry
    assert len(list(cache.iterdir())) == 1
    (entry,) = cache.iterdir()
    digest = json.loads((entry / batches.CACHE_DIGEST).read_text())
    arrow = sorted((entry / "train").glob("*.arrow"))[0]
    assert digest[arrow.relative_to(entry).as_posix()]
    _flip_middle_byte(arrow)
    with pytest.warns(batches.TokenCacheWarning) as caught:
        again = batches.tokenize(dd, tok, 64, cache)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert str(entry) in message and "train/" in message and "rebuilt" in message
    assert again["train"]["input_ids"] == first["train"]["input_ids"]
    assert again["train"]["labels"] == first["train"]["labels"]
    with warnings.catch_warnings():  # the rebuilt entry verifies: no second warning
        warnings.simplefilter("error", batches.TokenCacheWarning)
        batches.tokenize(dd, tok, 64, cache)


def test_an_entry_without_its_digest_is_not_trusted(tiny_bert, real_data_dir, tmp_path):
    dd = data.load("restaurant_sup", real_data_dir)
    tok = models.load_tokenizer(str(tiny_bert))
    cache = tmp_path / "cache"
    batches.tokenize(dd, tok, 64, cache)
    (entry,) = cache.iterdir()
    (entry / batches.CACHE_DIGEST).unlink()
    with pytest.warns(batches.TokenCacheWarning, match="no readable"):
        batches.tokenize(dd, tok, 64, cache)
    assert (entry / batches.CACHE_DIGEST).is_file()


def test_subsampling_a_cached_entry_leaves_it_as_saved(tiny_bert, real_data_dir, tmp_path):
    """The grid's runs subsample the cached splits: datasets wrote the shuffle's index file into
    the entry, whose digest did not list it, so every later run rebuilt the entry and deleted
    it under the runs reading it (a FileNotFoundError in a parallel sweep)."""
    dd = data.load("restaurant_sup", real_data_dir)
    tok = models.load_tokenizer(str(tiny_bert))
    cache = tmp_path / "cache"
    batches.tokenize(dd, tok, 64, cache)
    (entry,) = cache.iterdir()
    files = sorted(p.relative_to(entry) for p in entry.rglob("*"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", batches.TokenCacheWarning)
        loaded = batches.tokenize(dd, tok, 64, cache)
        first = batches.subsample(loaded["test"], 50)
        again = batches.subsample(batches.tokenize(dd, tok, 64, cache)["test"], 50)
    assert sorted(p.relative_to(entry) for p in entry.rglob("*")) == files
    assert first["input_ids"] == again["input_ids"] and len(first) == 50

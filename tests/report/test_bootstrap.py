"""The paired bootstrap: scores equal sklearn's on every replicate, intervals that are known
by hand, and the same interval from the same build twice."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from helpers.report import bootstrap


def _frame(labels, preds, seeds=(1,)):
    rows = [{"seed": s, "example": i, "label": y, "prediction": p}
            for s, (ys, ps) in zip(seeds, zip(labels, preds, strict=True), strict=True)
            for i, (y, p) in enumerate(zip(ys, ps, strict=True))]
    return pd.DataFrame(rows)


def _macro_f1(y, p):
    return f1_score(y, p, average="macro")


@pytest.mark.parametrize("metric,score", [("accuracy", accuracy_score), ("macro_f1", _macro_f1)])
def test_weighted_scores_equal_sklearn_on_the_resampled_rows(metric, score):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, size=30)
    p = np.where(rng.random(30) < 0.6, y, rng.integers(0, 4, size=30))
    classes = np.unique(np.concatenate([y, p]))
    truth = (y[None, :, None] == classes).astype(float)
    pred = (p[None, :, None] == classes).astype(float)
    weights = rng.multinomial(30, np.full(30, 1 / 30), size=50).astype(float)
    got = bootstrap._scores(weights, truth, pred, metric)[:, 0]
    want = [score(np.repeat(y, w.astype(int)), np.repeat(p, w.astype(int))) for w in weights]
    np.testing.assert_allclose(got, want)


def test_identical_configurations_differ_by_exactly_zero():
    f = _frame([[0, 1, 2, 1]], [[0, 1, 1, 1]])
    iv = bootstrap.paired_difference(f, f.copy(), "macro_f1")
    assert (iv.estimate, iv.low, iv.high) == (0.0, 0.0, 0.0)
    assert not iv.excludes_zero


def test_always_right_against_always_wrong_is_one_on_every_replicate():
    truth = [[0, 1, 0, 1, 1]]
    right, wrong = _frame(truth, truth), _frame(truth, [[1, 0, 1, 0, 0]])
    iv = bootstrap.paired_difference(right, wrong, "accuracy")
    assert (iv.estimate, iv.low, iv.high) == (1.0, 1.0, 1.0)
    assert iv.excludes_zero and iv.n_examples == 5 and iv.n_seeds == 1


def test_two_examples_by_hand():
    # One right, one wrong: a replicate draws (2,0), (1,1) or (0,2) with p 1/4, 1/2, 1/4,
    # so accuracy is 1, 0.5 or 0: the 95% interval is [0, 1] and the replicates average 0.5.
    f = _frame([[0, 1]], [[0, 0]])
    iv = bootstrap.paired_difference(f, None, "accuracy", resamples=4000)
    assert (iv.estimate, iv.low, iv.high) == (0.5, 0.0, 1.0)


def test_two_seeds_cover_examples_only_and_five_seeds_cover_both():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, size=(5, 40))
    a = np.where(rng.random((5, 40)) < 0.8, y, (y + 1) % 3)
    b = np.where(rng.random((5, 40)) < 0.6, y, (y + 1) % 3)
    y = np.tile(y[:1], (5, 1))  # one test set, seen by every seed
    two = bootstrap.paired_difference(_frame(y[:2], a[:2], (1, 2)), _frame(y[:2], b[:2], (1, 2)))
    five = bootstrap.paired_difference(_frame(y, a, range(5)), _frame(y, b, range(5)))
    assert two.covers == bootstrap.COVERS_EXAMPLES and two.n_seeds == 2
    assert five.covers == bootstrap.COVERS_BOTH and five.n_seeds == 5
    assert five.low < five.estimate < five.high


def test_the_same_build_gives_the_same_interval_twice():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 6, size=(3, 200))
    y = np.tile(y[:1], (3, 1))
    a = np.where(rng.random((3, 200)) < 0.7, y, 0)
    b = np.where(rng.random((3, 200)) < 0.7, y, 0)
    first = bootstrap.paired_difference(_frame(y, a, (1, 2, 3)), _frame(y, b, (1, 2, 3)))
    again = bootstrap.paired_difference(_frame(y, a, (1, 2, 3)), _frame(y, b, (1, 2, 3)))
    assert first == again


def test_unpaired_or_ambiguous_predictions_are_refused():
    f = _frame([[0, 1, 1]], [[0, 1, 0]])
    with pytest.raises(ValueError, match="one epoch per run"):
        bootstrap.paired_difference(pd.concat([f, f]), None)
    with pytest.raises(ValueError, match="lacks column"):
        bootstrap.paired_difference(f.drop(columns="prediction"), None)

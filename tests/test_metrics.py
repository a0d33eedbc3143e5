"""Stage-1 metrics against values worked out by hand (and sklearn as an independent AUC reference)."""

import json
import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from xaiquest.errors import DataError
from xaiquest.metrics import classification_metrics, top_confident_mistakes

CLASSES = ["a", "b", "c"]

# Predictions (argmax): 0, 1, 1, 2, 2, 1 for true labels 0, 0, 1, 1, 2, 2.
PROBS = torch.tensor(
    [
        [0.7, 0.2, 0.1],  # true a, pred a
        [0.3, 0.6, 0.1],  # true a, pred b  (mistake, confidence 0.6)
        [0.1, 0.8, 0.1],  # true b, pred b
        [0.2, 0.3, 0.5],  # true b, pred c  (mistake, confidence 0.5)
        [0.1, 0.1, 0.8],  # true c, pred c
        [0.1, 0.6, 0.3],  # true c, pred b  (mistake, confidence 0.6)
    ]
)
LABELS = torch.tensor([0, 0, 1, 1, 2, 2])


def test_hand_computed_three_class_example():
    m = classification_metrics(PROBS, LABELS, CLASSES)

    # rows = true, cols = predicted
    np.testing.assert_array_equal(m.confusion, [[1, 1, 0], [0, 1, 1], [0, 1, 1]])
    assert m.confusion.dtype == np.int64
    assert m.accuracy == pytest.approx(3 / 6)
    # precision: a 1/1, b 1/3 (samples 1, 2, 5 predicted b), c 1/2; recall: 1/2 each
    np.testing.assert_allclose(m.per_class["precision"], [1, 1 / 3, 1 / 2], rtol=1e-6)
    np.testing.assert_allclose(m.per_class["recall"], [1 / 2, 1 / 2, 1 / 2], rtol=1e-6)
    np.testing.assert_allclose(m.per_class["f1"], [2 / 3, 2 / 5, 1 / 2], rtol=1e-6)
    np.testing.assert_array_equal(m.per_class["support"], [2, 2, 2])
    assert m.macro_precision == pytest.approx(11 / 18)
    assert m.macro_recall == pytest.approx(1 / 2)
    assert m.macro_f1 == pytest.approx(47 / 90)
    # one-vs-rest AUC by counting positive/negative pairs ranked correctly:
    # a: both positives (0.7, 0.3) above all negatives -> 1; b: (4 + 2) / 8; c: (4 + 3) / 8
    np.testing.assert_allclose(m.per_class["auc"], [1.0, 0.75, 0.875], rtol=1e-6)
    assert m.macro_auc == pytest.approx(0.875)
    assert list(m.per_class.index) == CLASSES == m.classes
    assert m.num_samples == 6


def test_auc_matches_sklearn_with_ties():
    generator = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(200, 4, generator=generator), dim=1)
    probs = torch.round(probs, decimals=1)  # coarse scores force many ties
    labels = torch.randint(0, 4, (200,), generator=generator)
    m = classification_metrics(probs, labels, list("wxyz"))
    reference = [roc_auc_score(labels.numpy() == c, probs[:, c].numpy()) for c in range(4)]
    np.testing.assert_allclose(m.per_class["auc"], reference, rtol=1e-5)


def test_perfectly_separable_auc_is_one():
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    probs = torch.nn.functional.one_hot(labels, 3).float() * 0.8 + 0.2 / 3
    m = classification_metrics(probs, labels, CLASSES)
    np.testing.assert_allclose(m.per_class["auc"], 1.0)
    assert m.macro_auc == pytest.approx(1.0)
    assert m.accuracy == 1.0


def test_class_absent_from_labels():
    probs = torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.2, 0.6], [0.1, 0.7, 0.2], [0.3, 0.6, 0.1]])
    labels = torch.tensor([0, 0, 1, 1])  # class c never occurs but is predicted once
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = classification_metrics(probs, labels, CLASSES)

    c = m.per_class.loc["c"]
    assert (c["support"], c["precision"], c["recall"]) == (0, 0.0, 0.0)
    assert math.isnan(c["auc"])
    # a: positives 0.8, 0.2 vs negatives 0.1, 0.3 -> 3/4; b: separable -> 1; c excluded
    np.testing.assert_allclose(m.per_class["auc"][:2], [0.75, 1.0])
    assert m.macro_auc == pytest.approx(0.875)
    json.dumps(m.to_dict(), allow_nan=False)


def test_auc_undefined_everywhere_is_null_in_dict():
    m = classification_metrics(torch.tensor([[0.9, 0.1], [0.4, 0.6]]), torch.tensor([0, 0]), ["a", "b"])
    assert math.isnan(m.macro_auc)
    assert m.to_dict()["macro_auc"] is None
    assert m.to_dict()["accuracy"] == 0.5


def test_accepts_numpy_inputs():
    m = classification_metrics(PROBS.numpy(), LABELS.numpy(), CLASSES)
    assert m.accuracy == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("probs", "labels", "classes"),
    [
        (PROBS, LABELS[:-1], CLASSES),  # length mismatch
        (PROBS, LABELS, ["a", "b"]),  # wrong number of class names
        (PROBS, LABELS.float(), CLASSES),  # float labels
        (PROBS, LABELS + 1, CLASSES),  # label out of range
    ],
)
def test_invalid_inputs_raise_data_error(probs, labels, classes):
    with pytest.raises(DataError):
        classification_metrics(probs, labels, classes)


def test_top_confident_mistakes_order_and_content():
    mistakes = top_confident_mistakes(PROBS, LABELS, k=10)
    assert list(mistakes.columns) == ["index", "true", "predicted", "confidence", "true_class_prob"]
    # confidences 0.6 (sample 1), 0.6 (sample 5), 0.5 (sample 3); the tie keeps split order
    assert mistakes["index"].tolist() == [1, 5, 3]
    assert mistakes["true"].tolist() == [0, 2, 1]
    assert mistakes["predicted"].tolist() == [1, 1, 2]
    np.testing.assert_allclose(mistakes["confidence"], [0.6, 0.6, 0.5], rtol=1e-6)
    np.testing.assert_allclose(mistakes["true_class_prob"], [0.3, 0.3, 0.3], rtol=1e-6)


def test_top_confident_mistakes_truncates_to_k():
    assert top_confident_mistakes(PROBS, LABELS, k=2)["index"].tolist() == [1, 5]
    assert top_confident_mistakes(PROBS, LABELS, k=0).empty
    with pytest.raises(DataError):
        top_confident_mistakes(PROBS, LABELS, k=-1)

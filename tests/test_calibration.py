"""Calibration metrics against torchmetrics, hand-computed cases and synthetic ground truth."""

import math

import pytest
import torch
from torchmetrics.functional.classification import multiclass_calibration_error

from xaiquest.errors import DataError
from xaiquest.metrics.calibration import (
    RELIABILITY_COLUMNS,
    adaptive_calibration_error,
    brier_score,
    calibration_report,
    classwise_ece,
    expected_calibration_error,
    fit_temperature,
    maximum_calibration_error,
    negative_log_likelihood,
    reliability_bins,
)


def _binary(confidences, correct):
    """Two-class probs whose top-class confidence and correctness are given (class 0 is predicted)."""
    p = torch.tensor(confidences, dtype=torch.float64)
    probs = torch.stack([p, 1 - p], dim=1)
    labels = torch.tensor([0 if ok else 1 for ok in correct])
    return probs, labels


def _sampled(logits, generator):
    """Labels drawn from softmax(logits): probabilities that are calibrated by construction."""
    return torch.multinomial(logits.softmax(1), 1, generator=generator).squeeze(1)


@pytest.mark.parametrize(("norm", "ours"), [("l1", expected_calibration_error), ("max", maximum_calibration_error)])
def test_ece_and_mce_match_torchmetrics(norm, ours):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(5000, 10, generator=generator) * 3
    labels = _sampled(logits / 2, generator)  # over-confident logits: a sizeable, non-trivial ECE
    probs = logits.softmax(1)
    expected = multiclass_calibration_error(probs, labels, num_classes=10, n_bins=15, norm=norm).item()
    assert expected > 0.05
    assert ours(probs, labels) == pytest.approx(expected, abs=1e-6)


def test_ece_and_mce_hand_case_uses_guo_bins():
    # 4 bins with edges 0, .25, .5, .75, 1 (exact in binary); 0.75 belongs to (0.5, 0.75], 1.0 to (0.75, 1].
    probs, labels = _binary([0.6, 0.75, 1.0, 0.9], [True, False, True, False])
    # bin (.5,.75]: conf .675, acc .5; bin (.75,1]: conf .95, acc .5; each holds half the samples
    assert expected_calibration_error(probs, labels, n_bins=4) == pytest.approx(0.5 * 0.175 + 0.5 * 0.45)
    assert maximum_calibration_error(probs, labels, n_bins=4) == pytest.approx(0.45)


def test_reliability_bins_table():
    probs, labels = _binary([0.6, 0.75, 1.0, 0.9], [True, False, True, False])
    bins = reliability_bins(probs, labels, n_bins=4)
    assert list(bins.columns) == list(RELIABILITY_COLUMNS)
    assert bins["count"].tolist() == [0, 0, 2, 2]
    assert bins["lo"].tolist() == [0.0, 0.25, 0.5, 0.75]
    assert bins["hi"].tolist() == [0.25, 0.5, 0.75, 1.0]
    assert bins[["confidence", "accuracy", "gap"]].iloc[:2].isna().all().all()
    assert bins["confidence"].iloc[2:].tolist() == pytest.approx([0.675, 0.95])
    assert bins["accuracy"].iloc[2:].tolist() == pytest.approx([0.5, 0.5])
    assert bins["gap"].iloc[2:].tolist() == pytest.approx([0.175, 0.45])


def test_adaptive_ece_hand_case():
    # 6 samples, 3 equal-mass bins of 2 by confidence rank (input order shuffled on purpose).
    probs, labels = _binary([0.99, 0.55, 0.95, 0.6, 0.97, 0.62], [False, True, True, False, True, True])
    # {.55 ok, .6 wrong}: |.575 - .5|; {.62 ok, .95 ok}: |.785 - 1|; {.97 ok, .99 wrong}: |.98 - .5|
    expected = (0.075 + 0.215 + 0.48) / 3
    assert adaptive_calibration_error(probs, labels, n_bins=3) == pytest.approx(expected)


def test_brier_and_nll_hand_cases():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    labels = torch.tensor([0, 1])
    assert brier_score(probs, labels) == pytest.approx((0.09 + 0.04 + 0.01 + 0.01 + 0.49 + 0.36) / 2)

    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])  # p(true) = 1/2 and 1/4
    assert negative_log_likelihood(logits, torch.tensor([0, 1])) == pytest.approx(1.5 * math.log(2.0))


def test_classwise_ece_hand_case():
    probs = torch.tensor([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7], [0.5, 0.5]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 1, 0])
    # class 0, bins [0,.5] / (.5,1]: {.3, .5 | freq .5}: .1 ; {.8, .6 | freq .5}: .2  -> .5*.1 + .5*.2 = .15
    # class 1: {.2, .4, .5 | freq 1/3}: 1/30 (weight 3/4) ; {.7 | freq 1}: .3 (weight 1/4) -> .1
    result = classwise_ece(probs, labels, n_bins=2)
    assert result.per_class.tolist() == pytest.approx([0.15, 0.1])
    assert result.mean == pytest.approx(0.125)


def test_calibrated_probabilities_have_near_zero_error():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(200_000, 10, generator=generator) * 2
    labels = _sampled(logits, generator)
    probs = logits.softmax(1)
    assert expected_calibration_error(probs, labels) < 0.01
    assert adaptive_calibration_error(probs, labels) < 0.01
    assert classwise_ece(probs, labels).mean < 0.01


def test_temperature_scaling_recovers_known_temperature():
    generator = torch.Generator().manual_seed(2)
    true_temperature = 2.5
    logits = torch.randn(20_000, 10, generator=generator) * 4
    labels = _sampled(logits / true_temperature, generator)
    assert fit_temperature(logits, labels) == pytest.approx(true_temperature, rel=0.05)


def test_temperature_scaling_fixes_over_confidence_on_held_out_data():
    generator = torch.Generator().manual_seed(3)
    true_logits = torch.randn(20_000, 10, generator=generator) * 2
    labels = _sampled(true_logits, generator)
    model_logits = true_logits * 3  # an over-confident model
    val, test = slice(0, 10_000), slice(10_000, None)

    temperature = fit_temperature(model_logits[val], labels[val])
    assert temperature > 1.0
    before = calibration_report(model_logits[test], labels[test])
    after = calibration_report(model_logits[test] / temperature, labels[test])
    assert after["ece"] < before["ece"] / 3
    assert after["nll"] < before["nll"]
    assert after["accuracy"] == before["accuracy"]  # scaling never changes the argmax


def test_calibration_report_keys_and_consistency():
    generator = torch.Generator().manual_seed(4)
    logits = torch.randn(500, 10, generator=generator)
    labels = torch.randint(0, 10, (500,), generator=generator)
    report = calibration_report(logits, labels)
    assert set(report) == {
        "ece", "mce", "adaptive_ece", "classwise_ece", "brier", "nll", "accuracy", "mean_confidence",
    }
    probs = logits.softmax(1)
    assert report["ece"] == pytest.approx(expected_calibration_error(probs, labels))
    assert report["accuracy"] == pytest.approx((probs.argmax(1) == labels).double().mean().item())
    assert all(isinstance(value, float) for value in report.values())


def test_invalid_inputs_raise_data_error():
    probs = torch.tensor([[0.7, 0.3]])
    with pytest.raises(DataError):
        expected_calibration_error(probs, torch.tensor([2]))
    with pytest.raises(DataError):
        expected_calibration_error(probs * 2, torch.tensor([0]))
    with pytest.raises(DataError):
        expected_calibration_error(probs, torch.tensor([0]), n_bins=0)
    with pytest.raises(DataError):
        fit_temperature(torch.tensor([[float("nan"), 0.0]]), torch.tensor([0]))

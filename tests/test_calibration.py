"""Temperature scaling, calibration error, operating points and patient-grouped intervals."""

import numpy as np
import pytest

from xraytrack.evaluation import bootstrap, operating_points
from xraytrack.evaluation.calibration import apply_temperature, expected_calibration_error, fit_temperature

CLASSES = ("COVID", "Normal", "Viral Pneumonia")


def overconfident(rng, n: int, accuracy: float = 0.7):
    """Right 70% of the time, yet always ~99% sure: the over-confidence of a fine-tuned net."""
    y = rng.integers(0, 3, n)
    pred = np.where(rng.random(n) < accuracy, y, (y + rng.integers(1, 3, n)) % 3)
    probs = np.full((n, 3), 0.005)
    probs[np.arange(n), pred] = 0.99
    return y, probs


def test_temperature_scaling_lowers_the_ece_of_an_overconfident_model():
    rng = np.random.default_rng(0)
    y_val, p_val = overconfident(rng, 600)
    y_test, p_test = overconfident(rng, 600)
    t = fit_temperature(y_val, p_val)
    assert t > 1  # softer: the model claimed more than it knew
    scaled = apply_temperature(p_test, t)
    assert (scaled.argmax(axis=1) == p_test.argmax(axis=1)).all()  # decisions unchanged
    before, after = expected_calibration_error(y_test, p_test), expected_calibration_error(y_test, scaled)
    assert before > 0.25 and after < 0.05


def test_a_threshold_picked_on_validation_is_the_one_applied_on_test():
    rng = np.random.default_rng(1)
    y_val = rng.integers(0, 2, 400)  # 1: COVID
    covid = np.clip(rng.normal(0.35 + 0.3 * y_val, 0.15), 0.001, 0.999)
    probs_val = np.c_[1 - covid, covid]
    t95 = operating_points.choose_thresholds(y_val, probs_val, ("Normal", "COVID"))["COVID"]["0.95"]
    positives = np.sort(covid[y_val == 1])
    assert (positives >= t95).mean() >= 0.95  # reaches the target on validation...
    assert (positives > t95).mean() < 0.95  # ...and is the highest threshold that does
    # on test the same threshold is read off, not re-tuned
    y_test = np.array([1, 1, 1, 0, 0])
    covid_test = np.array([t95 + 0.01, t95 - 0.01, 0.99, t95, 0.0])
    rates = operating_points.at_thresholds(y_test, np.c_[1 - covid_test, covid_test],
                                           ("Normal", "COVID"), {"COVID": {"0.95": t95}})
    assert rates["sensitivity_covid_at_sens0.95"] == pytest.approx(2 / 3)
    assert rates["specificity_covid_at_sens0.95"] == pytest.approx(1 / 2)
    assert rates["ppv_covid_at_sens0.95"] == pytest.approx(2 / 3)
    assert rates["npv_covid_at_sens0.95"] == pytest.approx(1 / 2)


def test_patient_grouped_resamples_keep_a_patients_images_together():
    groups = np.array(["a"] * 5 + ["b"] * 5 + [f"p{i}" for i in range(10)])
    for sample in bootstrap.resamples(len(groups), 50, seed=0, groups=groups):
        picked = groups[sample]
        for patient in ("a", "b"):
            assert (picked == patient).sum() % 5 == 0  # all five of a patient, or none


def test_grouped_intervals_are_wider_when_a_patients_images_agree():
    """Ten patients with ten identical images each hold the evidence of ten images, not 100."""
    rng = np.random.default_rng(2)
    correct_by_patient = rng.random(10) < 0.7
    correct = np.repeat(correct_by_patient, 10).astype(float)
    groups = np.repeat(np.arange(10), 10)

    def width(g):
        ci = bootstrap.intervals(lambda b: {"acc": correct[b].mean()},
                                 bootstrap.resamples(100, 500, 0, g))
        return ci.at["acc", "hi"] - ci.at["acc", "lo"]

    assert width(groups) > 2 * width(None)

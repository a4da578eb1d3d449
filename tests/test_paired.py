"""The paired bootstrap: one arm against the baseline on the same resampled images."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from xraytrack.evaluation import bootstrap, paired

CLASSES = ("COVID", "Normal")


def two_class(score: np.ndarray) -> np.ndarray:
    return np.column_stack([score, 1 - score])


def correlated_arms(n=44, seed=0):
    """A baseline and an arm that ranks every COVID image a little higher than it does: the same
    hard and easy images for both, as two models of one set have."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)  # COVID, Normal
    base = 1 / (1 + np.exp(-(rng.normal(size=n) + 0.8 * (y == 0))))
    better = 1 / (1 + np.exp(-(np.log(base / (1 - base)) + 0.6 * (y == 0))))
    return y, base, better


def test_a_small_consistent_gain_is_resolved_paired_where_separate_intervals_overlap():
    y, base, better = correlated_arms()
    arms = {"none": [two_class(base)], "crop": [two_class(better)]}
    gains = paired.differences(y, arms, CLASSES, "auc_covid", "none", n_boot=500)
    auc = {arm: roc_auc_score(y == 0, p[0][:, 0]) for arm, p in arms.items()}
    assert gains.at["crop", "difference"] == pytest.approx(auc["crop"] - auc["none"])
    assert gains.at["crop", "lo"] > 0 and gains.at["crop", "better_share"] > 0.975

    boots = bootstrap.resamples(len(y), 500, seed=0)  # each arm's own interval, as the site gives
    alone = {arm: bootstrap.intervals(lambda b, p=p: {"auc": roc_auc_score(y[b] == 0, p[0][b, 0])},
                                      boots).loc["auc"] for arm, p in arms.items()}
    assert alone["crop"]["lo"] < alone["none"]["hi"]  # overlapping: not resolved separately
    text = paired.describe(gains, "crop", "none", "auc_covid")
    assert "the interval is above 0: the set resolves a gain" in text


def test_identical_arms_differ_by_nothing_and_the_difference_is_not_resolved():
    y, base, _ = correlated_arms()
    gains = paired.differences(y, {"none": [two_class(base)], "copy": [two_class(base)]},
                               CLASSES, "macro_auc", "none", n_boot=100)
    assert gains.loc["copy", ["difference", "lo", "hi", "better_share"]].tolist() == [0, 0, 0, 0]
    assert "the interval holds 0" in paired.describe(gains, "copy", "none", "macro_auc")


def test_with_seeds_an_arm_scores_the_mean_over_its_models():
    y, base, better = correlated_arms(seed=3)
    rng = np.random.default_rng(1)
    noisy = np.clip(better + rng.normal(scale=0.2, size=len(y)), 0.01, 0.99)
    arms = {"none": [two_class(base), two_class(better)],
            "crop": [two_class(better), two_class(noisy)]}
    gains = paired.differences(y, arms, CLASSES, "auc_covid", "none", n_boot=50)

    def mean_auc(models):
        return np.mean([roc_auc_score(y == 0, p[:, 0]) for p in models])
    assert gains.at["crop", "difference"] == pytest.approx(mean_auc(arms["crop"]) - mean_auc(arms["none"]))


def test_patients_are_drawn_whole():
    """Duplicated images of one patient widen the paired interval only if drawn one by one."""
    y, base, better = correlated_arms(n=20)
    twice = np.tile(np.arange(20), 2)  # every patient's image twice
    arms = {"none": [two_class(base[twice])], "crop": [two_class(better[twice])]}
    by_patient = paired.differences(y[twice], arms, CLASSES, "auc_covid", "none", n_boot=400,
                                    groups=twice)
    by_image = paired.differences(y[twice], arms, CLASSES, "auc_covid", "none", n_boot=400)
    width = {name: t.at["crop", "hi"] - t.at["crop", "lo"] for name, t in
             (("patient", by_patient), ("image", by_image))}
    assert width["patient"] > width["image"]


def test_a_resample_without_positives_is_left_out_not_fatal():
    y = np.array([0, 1, 1, 1, 1, 1])
    p = two_class(np.linspace(0.9, 0.1, 6))
    gains = paired.differences(y, {"none": [p], "b": [p[::-1]]}, CLASSES, "auc_covid", "none",
                               n_boot=200)
    assert not np.isnan(gains.at["b", "lo"])  # from the resamples that hold the one COVID image
    table = pd.DataFrame({"difference": [np.nan], "lo": [np.nan], "hi": [np.nan],
                          "better_share": [np.nan]}, index=["b"])
    assert "undefined" in paired.describe(table, "b", "none", "auc_covid")


def test_misaligned_models_or_a_missing_baseline_are_errors():
    y, base, better = correlated_arms()
    with pytest.raises(ValueError, match="same rows"):
        paired.differences(y, {"none": [two_class(base)], "b": [two_class(better[:-1])]},
                           CLASSES, "auc_covid", "none")
    with pytest.raises(ValueError, match="baseline 'none'"):
        paired.differences(y, {"a": [two_class(base)]}, CLASSES, "auc_covid", "none")

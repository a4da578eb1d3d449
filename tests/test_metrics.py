import warnings

import numpy as np
import pytest

from xraytrack.evaluation.metrics import (
    balanced_accuracy_and_macro_auc,
    confusion,
    metric_name,
    one_score,
    prefixed,
    score_names,
    scores,
)

CLASSES = ("COVID", "Lung_Opacity", "Normal", "Viral Pneumonia")


def test_metric_names_follow_the_convention():
    assert [metric_name(c) for c in CLASSES] == ["covid", "lung_opacity", "normal", "viral_pneumonia"]


def test_a_perfect_model_scores_one_everywhere():
    y = np.array([0, 1, 2, 3, 2, 2, 0, 3])
    probs = np.eye(4)[y] * 0.9 + 0.025
    out = scores(y, probs, CLASSES)
    assert set(out) >= {"accuracy", "balanced_accuracy", "macro_f1", "macro_auc",
                        "f1_viral_pneumonia", "auc_lung_opacity", "pr_auc_normal",
                        "covid_sens_at_95_spec"}
    assert all(v == pytest.approx(1.0) for v in out.values())


def test_misaligned_predictions_are_caught_by_the_scores():
    """The seed's bug: right predictions, paired with labels in another order, look like chance."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    probs = np.eye(4)[y]
    shuffled = scores(y, probs[rng.permutation(400)], CLASSES)
    assert shuffled["accuracy"] < 0.4 and shuffled["macro_auc"] < 0.6


def test_confusion_rows_are_true_classes():
    y = np.array([0, 0, 1, 1])
    probs = np.eye(2)[[0, 1, 1, 1]]
    counts, rates = confusion(y, probs, 2)
    assert counts.tolist() == [[1, 1], [0, 2]]
    assert rates.tolist() == [[0.5, 0.5], [0.0, 1.0]]


def test_a_class_missing_from_the_labels_gets_no_per_class_metric():
    y = np.array([0, 1, 0, 1])
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.2, 0.1, 0.7]])
    out = prefixed(scores(y, probs, ("a", "b", "c")), "test_")
    assert not [k for k in out if k.endswith("_c")]
    assert out["test_macro_auc"] == pytest.approx((1.0 + 0.625) / 2)  # a and b only
    assert out["test_macro_f1"] == pytest.approx((1.0 + 2 / 3) / 2)  # a and b only, not c's 0
    assert out["test_recall_b"] == 0.5 and out["test_precision_a"] == 1.0


def test_labels_outside_the_model_count_as_negatives_of_every_class():
    """An external site's Other_pneumonia (-1): a false positive when called COVID."""
    y = np.array([0, 0, 1, 1, -1, -1])
    probs = np.eye(2)[[0, 0, 1, 1, 0, 1]] * 0.8 + 0.1
    out = scores(y, probs, ("COVID", "Normal"))
    assert out["accuracy"] == 1.0  # over the images with a model label
    assert out["precision_covid"] == pytest.approx(2 / 3) and out["recall_covid"] == 1.0
    assert out["specificity_covid"] == pytest.approx(3 / 4) and out["npv_covid"] == 1.0
    assert out["auc_covid"] == pytest.approx(7 / 8)  # the Other_pneumonia called COVID ties


def test_a_set_with_one_known_class_scores_without_a_warning_per_resample():
    """Normal and labels the model does not know: scikit-learn warned about a one-cell confusion
    matrix at every bootstrap resample (17 lines in one evaluation of 20 images)."""
    y = np.array([1, 1, 1, -1, -1])
    probs = np.eye(2)[[1, 1, 1, 0, 1]] * 0.8 + 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = scores(y, probs, ("COVID", "Normal"))
    assert out["balanced_accuracy"] == 1.0 and out["recall_normal"] == 1.0


def test_scores_match_scikit_learns_own_functions():
    """The per-class numbers are derived once; they must equal sklearn's separate calls."""
    from sklearn.metrics import balanced_accuracy_score, f1_score, precision_score

    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 200)
    probs = rng.dirichlet(np.ones(4), size=200) + 0.5 * np.eye(4)[y]
    pred = probs.argmax(axis=1)
    out = scores(y, probs, CLASSES)
    assert out["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert out["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert out["precision_normal"] == pytest.approx(precision_score(y, pred, average=None)[2])


@pytest.mark.parametrize("labels", [
    [0, 1, 2, 0, 1, 2, 0, 1],        # every class
    [0, 0, 1, 1, 0, 1, 0, 1],        # class 2 absent
    [0, -1, 1, 2, -1, 2, 0, 1],      # labels outside the model
    [1, 1, 1, 1, 1, 1, 1, 1],        # one class only: no AUC is defined
])
def test_the_bootstraps_fast_scores_are_those_of_scores(labels):
    y = np.array(labels)
    probs = np.random.default_rng(len(set(labels))).dirichlet(np.ones(3), size=len(y))
    full = scores(y, probs, ("COVID", "Normal", "Viral Pneumonia"))
    fast = balanced_accuracy_and_macro_auc(y, probs)
    for name in ("balanced_accuracy", "macro_auc"):
        assert fast[name] == pytest.approx(full[name], nan_ok=True), name
    for name in score_names(("COVID", "Normal", "Viral Pneumonia")):  # the paired bootstrap's
        alone = one_score(y, probs, ("COVID", "Normal", "Viral Pneumonia"), name)
        assert alone == pytest.approx(full[name], nan_ok=True), name

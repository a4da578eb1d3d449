import numpy as np
import pytest

from xraytrack.metrics import confusion, metric_name, scores

CLASSES = ("COVID", "Lung_Opacity", "Normal", "Viral Pneumonia")


def test_metric_names_follow_the_convention():
    assert [metric_name(c) for c in CLASSES] == ["covid", "lung_opacity", "normal", "viral_pneumonia"]


def test_a_perfect_model_scores_one_everywhere():
    y = np.array([0, 1, 2, 3, 2, 2, 0, 3])
    probs = np.eye(4)[y] * 0.9 + 0.025
    out = scores(y, probs, CLASSES)
    assert set(out) >= {"test_accuracy", "test_balanced_accuracy", "test_macro_f1",
                        "test_macro_auc", "test_f1_viral_pneumonia", "test_auc_lung_opacity"}
    assert all(v == pytest.approx(1.0) for v in out.values())


def test_misaligned_predictions_are_caught_by_the_scores():
    """The seed's bug: right predictions, paired with labels in another order, look like chance."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    probs = np.eye(4)[y]
    shuffled = scores(y, probs[rng.permutation(400)], CLASSES)
    assert shuffled["test_accuracy"] < 0.4 and shuffled["test_macro_auc"] < 0.6


def test_confusion_rows_are_true_classes():
    y = np.array([0, 0, 1, 1])
    probs = np.eye(2)[[0, 1, 1, 1]]
    counts, rates = confusion(y, probs, 2)
    assert counts.tolist() == [[1, 1], [0, 2]]
    assert rates.tolist() == [[0.5, 0.5], [0.0, 1.0]]


def test_auc_of_a_class_missing_from_the_test_split_is_left_out():
    y = np.array([0, 1, 0, 1])
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.2, 0.7, 0.1]])
    out = scores(y, probs, ("a", "b", "c"))
    assert "test_auc_c" not in out and out["test_macro_auc"] == 1.0

"""Test-set scores from labels and predicted probabilities, in one fixed order.

Everything here takes ``y_true`` and ``probs`` row-aligned: the caller guarantees that row i of
both is the same image, which is what the seed project got wrong.
"""

from __future__ import annotations

import logging
import re

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    roc_auc_score,
)

log = logging.getLogger(__name__)

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc")  # the scores a run leads with


def metric_name(class_name: str) -> str:
    """'Viral Pneumonia' -> 'viral_pneumonia': a class name as an MLflow metric suffix."""
    return re.sub(r"[^0-9a-z_]+", "_", class_name.lower().replace(" ", "_")).strip("_")


def per_class_auc(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """One-vs-rest ROC AUC per class; NaN for a class with no positives or no negatives."""
    aucs = np.full(probs.shape[1], np.nan)
    for c in range(probs.shape[1]):
        positives = y_true == c
        if 0 < positives.sum() < len(y_true):
            aucs[c] = roc_auc_score(positives, probs[:, c])
        else:
            log.warning("AUC of class %d undefined: the test split lacks positives or negatives", c)
    return aucs


def scores(y_true: np.ndarray, probs: np.ndarray, classes: tuple[str, ...], prefix: str = "test_"):
    """Flat dict of every metric the project logs, named ``<prefix><metric>[_<class>]``."""
    labels = np.arange(len(classes))
    y_pred = probs.argmax(axis=1)
    report = classification_report(
        y_true, y_pred, labels=labels, target_names=classes, output_dict=True, zero_division=0
    )
    aucs = per_class_auc(y_true, probs)
    out = {
        "accuracy": accuracy_score(y_true, y_pred),
        "balanced_accuracy": balanced_accuracy_score(y_true, y_pred),
        "macro_f1": f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0),
        "macro_auc": float(np.nanmean(aucs)) if not np.isnan(aucs).all() else np.nan,
    }
    for c, name in enumerate(classes):
        suffix = metric_name(name)
        out[f"precision_{suffix}"] = report[name]["precision"]
        out[f"recall_{suffix}"] = report[name]["recall"]
        out[f"f1_{suffix}"] = report[name]["f1-score"]
        out[f"auc_{suffix}"] = aucs[c]
    return {prefix + k: float(v) for k, v in out.items() if not np.isnan(v)}


def report(y_true: np.ndarray, probs: np.ndarray, classes: tuple[str, ...]) -> tuple[dict, str]:
    """scikit-learn's classification report as a dict (for JSON) and as text."""
    kwargs = dict(labels=np.arange(len(classes)), target_names=classes, zero_division=0)
    y_pred = probs.argmax(axis=1)
    return (
        classification_report(y_true, y_pred, output_dict=True, **kwargs),
        classification_report(y_true, y_pred, digits=4, **kwargs),
    )


def confusion(y_true: np.ndarray, probs: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts and row-normalised rates (rows: true class, columns: predicted)."""
    counts = confusion_matrix(y_true, probs.argmax(axis=1), labels=np.arange(n_classes))
    rows = counts.sum(axis=1, keepdims=True)
    return counts, np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)

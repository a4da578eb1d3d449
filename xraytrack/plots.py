"""Figures logged with every run: confusion matrix, ROC curves, learning curves."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: runs happen on servers and in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay  # noqa: E402


def confusion_matrix_figure(counts: np.ndarray, rates: np.ndarray, classes) -> plt.Figure:
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), constrained_layout=True)
    ConfusionMatrixDisplay(counts, display_labels=classes).plot(
        ax=axes[0], cmap="Blues", colorbar=False, values_format="d"
    )
    ConfusionMatrixDisplay(rates, display_labels=classes).plot(
        ax=axes[1], cmap="Blues", colorbar=False, values_format=".2f"
    )
    axes[0].set_title("Counts")
    axes[1].set_title("Row-normalised (recall on the diagonal)")
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=30)
    return fig


def roc_figure(y_true: np.ndarray, probs: np.ndarray, classes) -> plt.Figure:
    """One-vs-rest ROC curve per class (classes absent from the test split are left out)."""
    fig, ax = plt.subplots(figsize=(6, 6), constrained_layout=True)
    for c, name in enumerate(classes):
        positives = y_true == c
        if 0 < positives.sum() < len(y_true):
            RocCurveDisplay.from_predictions(positives, probs[:, c], name=name, ax=ax)
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="chance")
    ax.set_title("ROC, one class vs the rest (test split)")
    ax.legend(loc="lower right")
    return fig


def learning_curves_figure(history: dict[str, list[tuple[int, float]]]) -> plt.Figure:
    """One panel per metric with its training and validation curve, by epoch."""
    names = [k for k in history if not k.startswith("val_") and f"val_{k}" in history]
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(4.5 * max(len(names), 1), 4),
                             constrained_layout=True, squeeze=False)
    for ax, name in zip(axes[0], names):
        for key, label in ((name, "train"), (f"val_{name}", "validation")):
            steps, values = zip(*sorted(history[key]))
            ax.plot(np.asarray(steps) + 1, values, marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.legend()
    return fig

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


def _per_class_axes(n_classes: int):
    cols = min(n_classes, 2)
    rows = int(np.ceil(n_classes / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 5 * rows), constrained_layout=True,
                             squeeze=False)
    for ax in axes.flat[n_classes:]:
        ax.set_visible(False)
    return fig, axes.flat


def strategy_curves_figure(predictions: dict, classes, kind: str = "roc") -> plt.Figure:
    """Per class, one ROC (or precision-recall) curve per strategy on the shared test split."""
    from sklearn.metrics import PrecisionRecallDisplay

    fig, axes = _per_class_axes(len(classes))
    for c, (ax, name) in enumerate(zip(axes, classes)):
        for strategy, (y, probs) in predictions.items():
            positive = y == c
            if not 0 < positive.sum() < len(y):
                continue
            display = RocCurveDisplay if kind == "roc" else PrecisionRecallDisplay
            display.from_predictions(positive, probs[:, c], name=strategy, ax=ax)
        ax.set_title(f"{name} vs rest: {'ROC' if kind == 'roc' else 'precision-recall'}")
    return fig


def interval_bars_figure(table, metric: str = "macro_f1") -> plt.Figure:
    """The metric per strategy with its bootstrap 95% interval."""
    fig, ax = plt.subplots(figsize=(1.6 * len(table) + 2, 4), constrained_layout=True)
    values = table[metric].to_numpy()
    errors = np.vstack([values - table[f"{metric}_lo"], table[f"{metric}_hi"] - values])
    ax.bar(table.index, values, yerr=errors, capsize=6, color="tab:blue", alpha=0.8)
    low = max(0.0, float(table[f"{metric}_lo"].min()) - 0.05)
    ax.set_ylim(low, min(1.0, float(table[f"{metric}_hi"].max()) + 0.02))
    ax.set_ylabel(f"test {metric} (95% bootstrap CI)")
    ax.tick_params(axis="x", labelrotation=20)
    return fig


def overlay_figure(images: np.ndarray, heatmaps: np.ndarray, regions, titles) -> plt.Figure:
    """Each image in gray, its Grad-CAM heatmap in colour on top, the lung region outlined."""
    n = len(images)
    cols = min(n, 4)
    rows = max(1, int(np.ceil(n / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.6 * rows), squeeze=False,
                             constrained_layout=True)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, heat, region, title in zip(axes.flat, images, heatmaps, regions, titles):
        ax.imshow(img, cmap="gray")
        ax.imshow(heat, cmap="jet", alpha=0.4, vmin=0, vmax=1)
        if region is not None:
            ax.contour(region, levels=[0.5], colors="white", linewidths=0.8)
        ax.set_title(title, fontsize=8)
    return fig

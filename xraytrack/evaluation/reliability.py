"""Calibration numbers and figures for one set of predictions, before and after temperature."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from sklearn.calibration import CalibrationDisplay

from xraytrack.evaluation.calibration import (
    N_BINS,
    apply_temperature,
    class_calibration_error,
    expected_calibration_error,
)
from xraytrack.evaluation.metrics import metric_name


def calibration_scores(y: np.ndarray, probs: np.ndarray, classes) -> dict[str, float]:
    """``ece`` (top label, images with a model class) and ``ece_<class>`` (one vs the rest, for
    classes present in ``y``)."""
    known = y >= 0
    out = {"ece": expected_calibration_error(y[known], probs[known]) if known.any() else np.nan}
    for c, name in enumerate(classes):
        if (y == c).any():
            out[f"ece_{metric_name(name)}"] = class_calibration_error(y, probs, c)
    return out


def before_and_after(y: np.ndarray, probs: np.ndarray, classes, temperature: float) -> dict:
    """ECE of the raw and of the temperature-scaled probabilities (``..._calibrated``)."""
    raw = calibration_scores(y, probs, classes)
    scaled = calibration_scores(y, apply_temperature(probs, temperature), classes)
    return raw | {f"{k}_calibrated": v for k, v in scaled.items()}


def reliability_figure(y: np.ndarray, curves: dict[str, np.ndarray], classes,
                       title: str) -> plt.Figure:
    """One panel per class present: observed frequency against predicted probability, one line
    per set of probabilities in ``curves`` (e.g. raw and calibrated)."""
    present = [c for c in range(len(classes)) if (y == c).any() and (y != c).any()]
    fig, axes = plt.subplots(1, max(len(present), 1), figsize=(4.2 * max(len(present), 1), 4.2),
                             squeeze=False, constrained_layout=True)
    for ax, c in zip(axes[0], present):
        for label, probs in curves.items():
            CalibrationDisplay.from_predictions(y == c, probs[:, c], n_bins=N_BINS // 2,
                                                strategy="quantile", name=label, ax=ax)
        ax.set_title(f"{classes[c]} vs rest")
    fig.suptitle(title)
    return fig

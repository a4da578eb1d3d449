"""The last step of training: calibrate on validation and fix the operating points there.

The temperature and the per-class thresholds are chosen on the validation split only, stored
with the logged models (the served classifier applies them), and then read on the test split:
ECE before and after, and sensitivity, specificity, PPV and NPV at the validation thresholds.
"""

from __future__ import annotations

import keras
import mlflow
import numpy as np

from xraytrack.data.prepare import PreparedData
from xraytrack.evaluation import metrics, operating_points, reliability
from xraytrack.evaluation.calibration import Calibration, apply_temperature, fit_temperature
from xraytrack.evaluation.test_split import log_figure, predict_split


def validate(model: keras.Model, data: PreparedData, batch_size: int) -> np.ndarray:
    """The restored model's validation probabilities; its headline scores go into the active
    run as ``restored_val_*``: what ``register`` chooses champions by, never the test split.
    (The epoch curves' last ``val_*`` point is the last epoch, not the restored one.)"""
    probs = predict_split(model, data, "val", batch_size)
    scores = metrics.headline(metrics.scores(data.labels("val"), probs, data.classes))
    mlflow.log_metrics(metrics.prefixed(scores, "restored_val_"))
    return probs


def calibrate(y_val: np.ndarray, probs: np.ndarray, classes) -> Calibration:
    """Fit T and pick the thresholds on the validation split's probabilities."""
    temperature = fit_temperature(y_val, probs)
    thresholds = operating_points.choose_thresholds(y_val, apply_temperature(probs, temperature),
                                                    classes)
    return Calibration(temperature, thresholds)


def log_calibration(cal: Calibration, y_test: np.ndarray, test_probs: np.ndarray,
                    classes) -> dict[str, float]:
    """Into the active run: calibration.json, test ECE before/after, the operating points on
    test, and the reliability diagram."""
    mlflow.log_dict(cal.metadata(), "calibration.json")
    mlflow.log_metric("temperature", cal.temperature)
    calibrated = cal.apply(test_probs)
    values = reliability.before_and_after(y_test, test_probs, classes, cal.temperature)
    values |= operating_points.at_thresholds(y_test, calibrated, classes, cal.thresholds)
    logged = metrics.prefixed(values, "test_")
    mlflow.log_metrics(logged)
    log_figure(reliability.reliability_figure(
        y_test, {"raw": test_probs, f"T = {cal.temperature:.2f}": calibrated}, classes,
        "Reliability on the test split"), "reliability_test.png")
    return logged

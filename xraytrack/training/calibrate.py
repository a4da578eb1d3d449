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


def calibrate(model: keras.Model, data: PreparedData, batch_size: int) -> Calibration:
    """Fit T and pick the thresholds on the validation split."""
    y_val = data.labels("val")
    probs = predict_split(model, data, "val", batch_size)
    temperature = fit_temperature(y_val, probs)
    thresholds = operating_points.choose_thresholds(y_val, apply_temperature(probs, temperature),
                                                    data.classes)
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

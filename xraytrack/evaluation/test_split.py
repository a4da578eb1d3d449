"""Score a trained model on the test split and log every figure and table a reviewer asks for."""

from __future__ import annotations

import keras
import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd

from xraytrack.data.prepare import PreparedData
from xraytrack.evaluation import metrics, plots
from xraytrack.evaluation.predictions import log_predictions


def predict_split(model: keras.Model, data: PreparedData, split: str, batch_size: int) -> np.ndarray:
    """Class probabilities for ``split`` in manifest order (an unshuffled sequence, always)."""
    return model.predict(data.sequence(split, batch_size, shuffle=False), verbose=0)


def log_figure(fig: plt.Figure, name: str) -> None:
    mlflow.log_figure(fig, name)
    plt.close(fig)


def epoch_history(run_id: str) -> dict[str, list[tuple[int, float]]]:
    """Per-epoch metrics as logged in MLflow (including those copied from a resumed run)."""
    mlflow.flush_async_logging()
    client = mlflow.MlflowClient()
    keys = [k for k in client.get_run(run_id).data.metrics
            if not k.startswith(("system/", "test_", "audit_"))]
    return {k: [(m.step, m.value) for m in client.get_metric_history(run_id, k)] for k in keys}


def log_evaluation(y_true, probs, paths, classes, prefix: str = "test_") -> dict[str, float]:
    """Log scores, report, confusion matrix, ROC curves and predictions for one set of predictions.

    Returns the logged scores, named ``<prefix><metric>``."""
    values = metrics.scores(y_true, probs, classes)
    metrics.undefined_warnings(values, classes)
    logged = metrics.prefixed(values, prefix)
    mlflow.log_metrics(logged)
    report, report_text = metrics.report(y_true, probs, classes)
    mlflow.log_dict(report, "classification_report.json")
    mlflow.log_text(report_text, "classification_report.txt")
    counts, rates = metrics.confusion(y_true, probs, len(classes))
    long = pd.DataFrame(
        [(classes[t], classes[p], counts[t, p], rates[t, p])
         for t in range(len(classes)) for p in range(len(classes))],
        columns=["true", "predicted", "count", "row_normalised"],
    )
    mlflow.log_text(long.to_csv(index=False), "confusion_matrix.csv")
    log_figure(plots.confusion_matrix_figure(counts, rates, classes), "confusion_matrix.png")
    log_figure(plots.roc_figure(y_true, probs, classes), "roc_curves.png")
    log_predictions(paths, y_true, probs, classes)
    return logged


def evaluate_and_log(model: keras.Model, data: PreparedData, batch_size: int):
    """The test split is touched here, once, after training has finished: (scores, probs)."""
    probs = predict_split(model, data, "test", batch_size)
    scores = log_evaluation(data.labels("test"), probs, data.paths("test"), data.classes)
    history = epoch_history(mlflow.active_run().info.run_id)
    if history:
        log_figure(plots.learning_curves_figure(history), "learning_curves.png")
    return scores, probs

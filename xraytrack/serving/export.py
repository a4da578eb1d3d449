"""``xraytrack export``: add a run's classifier in another format (ONNX) to that same run.

The ONNX twin is logged as the run's ``classifier_onnx`` model, next to ``classifier``, so the
registry, ``predict`` and ``mlflow models serve`` find it the way they find the Keras one. It is
made once per run: exporting again returns the model already there.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow

from xraytrack.errors import XrayTrackError
from xraytrack.serving.onnx_export import export_checked
from xraytrack.tracking.loading import load_trained
from xraytrack.tracking.model_logging import ONNX_CLASSIFIER, log_onnx_classifier
from xraytrack.tracking.registry import find_logged_model
from xraytrack.tracking.runs import reopened_run

FORMATS = ("onnx",)


@dataclass
class Exported:
    run_id: str
    model_uri: str
    max_difference: float | None  # ONNX vs Keras on the check images; None when reused
    reused: bool


def export_run(ref: str, fmt: str = "onnx") -> Exported:
    """The ONNX classifier of the run behind ``ref`` (a run id, runs:/ or models:/ URI)."""
    if fmt not in FORMATS:
        raise XrayTrackError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    trained = load_trained(ref)
    run = mlflow.get_run(trained.run_id)
    found = find_logged_model(run, ONNX_CLASSIFIER)
    if found is not None:
        return Exported(trained.run_id, found.model_uri, None, reused=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        diff = export_checked(trained.model, trained.img_size, path)
        with reopened_run(trained.run_id):
            info = log_onnx_classifier(path, trained.classes, trained.img_size, trained.calibration)
            mlflow.log_metric("onnx_max_abs_difference", diff)
    return Exported(trained.run_id, info.model_uri, diff, reused=False)

"""Log a run's models: the Keras model itself, and the image classifier that serving uses.

``log_models`` is the one function that does it at the end of training; ``log_onnx_classifier``
adds the classifier's ONNX twin later (``xraytrack export``). MLflow infers pip requirements slowly (~50 s a
model), so they are pinned from this environment instead.
"""

from __future__ import annotations

import importlib.metadata
import os
import tempfile
import types
from pathlib import Path

import keras
import mlflow
import numpy as np
from mlflow.models import Model, infer_signature

import xraytrack
from xraytrack.evaluation.calibration import Calibration
from xraytrack.serving import classifier

KERAS_MODEL = "model"  # Keras flavour: raw pixels in, probabilities out
CLASSIFIER = "classifier"  # pyfunc: encoded images in, label and probabilities out
ONNX_CLASSIFIER = "classifier_onnx"  # the same contract, served by ONNX Runtime (``export``)


def _pinned(packages: list[str]) -> list[str]:
    return [f"{p}=={importlib.metadata.version(p)}" for p in packages]


def pip_requirements() -> list[str]:
    """Pinned from this environment: MLflow's inference of them takes ~50 s per model."""
    backend = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[keras.config.backend()]
    return _pinned(["mlflow", "keras", backend, "numpy", "pillow", "pandas", "pydicom"])


def onnx_requirements() -> list[str]:
    """What the ONNX classifier needs to serve: no TensorFlow, no Keras."""
    return _pinned(["mlflow", "onnxruntime", "numpy", "pillow", "pandas", "pydicom"])


def input_example(img_size: int) -> np.ndarray:
    """A mid-grey image: the model takes raw 0-255 grayscale pixels, shaped (N, H, W, 1)."""
    return np.full((1, img_size, img_size, 1), 128.0, dtype=np.float32)


def _save_keras_model(path, **kwargs):
    # MLflow 3.17's Keras flavour writes the input example before it creates the model folder
    # and crashes (MLflow issue 16183); creating the folder first is the whole workaround.
    os.makedirs(path, exist_ok=True)
    mlflow.keras.save_model(path=path, **kwargs)


# Model.log accepts any object with a flavour module's save_model; this one is mlflow.keras's.
KERAS_FLAVOR = types.SimpleNamespace(__name__="mlflow.keras", save_model=_save_keras_model)


def _metadata(classes, img_size: int, calibration: Calibration) -> dict:
    return {"classes": list(classes), "img_size": img_size, **calibration.metadata()}


def log_keras_model(model: keras.Model, classes: tuple[str, ...], img_size: int,
                    requirements: list[str], calibration: Calibration = Calibration()):
    """Raw network outputs (uncalibrated); the temperature and thresholds travel as metadata."""
    example = input_example(img_size)
    return Model.log(
        artifact_path=None,
        name=KERAS_MODEL,
        flavor=KERAS_FLAVOR,
        model=model,
        signature=infer_signature(example, model.predict(example, verbose=0)),
        input_example=example,
        pip_requirements=requirements,
        metadata=_metadata(classes, img_size, calibration),
    )


def log_classifier(model: keras.Model, classes: tuple[str, ...], img_size: int,
                   requirements: list[str], calibration: Calibration = Calibration()):
    """The image-in/label-out pyfunc, from code (``serving/served_model.py``), carrying the
    xraytrack package so it serves wherever MLflow runs; it returns calibrated probabilities."""
    example = classifier.request_frame([classifier.example_png(img_size)])
    wrapper = classifier.XrayClassifier.from_keras(model, classes, img_size, calibration)
    signature = infer_signature(example, wrapper.predict(None, example))
    with tempfile.TemporaryDirectory() as tmp:
        keras_file = Path(tmp) / "model.keras"
        model.save(keras_file)
        return mlflow.pyfunc.log_model(
            name=CLASSIFIER,
            python_model=str(Path(classifier.__file__).with_name("served_model.py")),
            artifacts={"keras_model": str(keras_file)},
            model_config=classifier.logged_config(_metadata(classes, img_size, calibration)),
            signature=signature,
            input_example=example,
            pip_requirements=requirements,
            code_paths=[str(Path(xraytrack.__file__).parent)],
            metadata=_metadata(classes, img_size, calibration),
        )


def log_onnx_classifier(onnx_path: str | Path, classes, img_size: int,
                        calibration: Calibration = Calibration()):
    """The image classifier again, its network an ONNX graph (``serving.onnx_classifier``): the
    same request and answer as ``classifier``, served without TensorFlow."""
    from xraytrack.serving.onnx_classifier import OnnxClassifier

    example = classifier.request_frame([classifier.example_png(img_size)])
    wrapper = OnnxClassifier.from_file(str(onnx_path), classes, img_size, calibration)
    return mlflow.pyfunc.log_model(
        name=ONNX_CLASSIFIER,
        python_model=str(Path(classifier.__file__).with_name("served_onnx_model.py")),
        artifacts={"onnx_model": str(onnx_path)},
        model_config=classifier.logged_config(_metadata(classes, img_size, calibration)),
        signature=infer_signature(example, wrapper.predict(None, example)),
        input_example=example,
        pip_requirements=onnx_requirements(),
        code_paths=[str(Path(xraytrack.__file__).parent)],
        metadata=_metadata(classes, img_size, calibration) | {"format": "onnx"},
    )


def log_models(model: keras.Model, classes: tuple[str, ...], img_size: int,
               calibration: Calibration = Calibration()) -> None:
    """Both of a run's models, named ``model`` and ``classifier``."""
    requirements = pip_requirements()
    log_keras_model(model, classes, img_size, requirements, calibration)
    log_classifier(model, classes, img_size, requirements, calibration)

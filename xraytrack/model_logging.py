"""Log the trained Keras model to MLflow, quickly and loadable by ``mlflow.pyfunc.load_model``."""

from __future__ import annotations

import importlib.metadata
import os
import types

import keras
import mlflow
import numpy as np
from mlflow.models import Model, infer_signature


def pip_requirements() -> list[str]:
    """Pinned from this environment: MLflow's inference of them takes ~50 s per model."""
    backend = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[keras.config.backend()]
    packages = ["mlflow", "keras", backend, "numpy", "pillow", "pandas"]
    return [f"{p}=={importlib.metadata.version(p)}" for p in packages]


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


def log_keras_model(model: keras.Model, classes: tuple[str, ...], img_size: int, name: str = "model"):
    example = input_example(img_size)
    signature = infer_signature(example, model.predict(example, verbose=0))
    return Model.log(
        artifact_path=None,
        name=name,
        flavor=KERAS_FLAVOR,
        model=model,
        signature=signature,
        input_example=example,
        pip_requirements=pip_requirements(),
        metadata={"classes": list(classes), "img_size": img_size},
    )

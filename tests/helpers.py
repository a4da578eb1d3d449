"""Shared helpers for tests that train: a fast config and an 'oracle' model."""

from __future__ import annotations

import keras
import mlflow
import numpy as np
from keras import layers

from xraytrack.config import TrainConfig
from xraytrack.models import hyperparameters
from xraytrack.models.spec import compile_classifier


def quick_config(data_dir, **overrides) -> TrainConfig:
    """Tiny and fast; without the shortcut audit, which the tests that check it turn on."""
    base = dict(architecture="simple_cnn", data_dir=str(data_dir), img_size=32, batch_size=16,
                epochs=2, augment=False, audit=False, experiment="tests",
                hyperparameters={"filters": 16})
    return TrainConfig(**(base | overrides))


def oracle_model(img_size: int, centers=(50.0, 120.0, 190.0)) -> keras.Model:
    """Reads the class straight off the mean brightness that conftest.class_image plants."""
    inputs = keras.Input((img_size, img_size, 1))
    mean = layers.GlobalAveragePooling2D()(inputs)
    logits = layers.Dense(len(centers), activation="softmax")(mean)
    model = keras.Model(inputs, logits)
    # softmax(w*m + b) with w_c = 2*k*c_c and b_c = -k*c_c^2 is softmax(-k*(m - c_c)^2): nearest center
    k = 0.05
    c = np.asarray(centers)
    model.get_layer(index=2).set_weights([(2 * k * c)[None, :], -k * c**2])
    return compile_classifier(model, hyperparameters(), 1e-3, len(centers))


def only_run(experiment: str = "tests"):
    runs = mlflow.search_runs(experiment_names=[experiment], output_format="list")
    assert len(runs) == 1, [r.info.status for r in runs]
    return runs[0]


def artifact_names(run_id: str) -> set[str]:
    return {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}


def interrupted_run(cfg: TrainConfig, after_epoch: int) -> None:
    """Train ``cfg`` as Ctrl-C would stop it, right after epoch ``after_epoch`` (0-based)."""
    import pytest

    from xraytrack.training import fitting
    from xraytrack.training.train import run_training

    original = fitting.EpochMetrics.on_epoch_end

    def interrupt(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == after_epoch:
            raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fitting.EpochMetrics, "on_epoch_end", interrupt)
        with pytest.raises(KeyboardInterrupt):
            run_training(cfg)

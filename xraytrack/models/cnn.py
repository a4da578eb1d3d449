"""The seed project's small CNNs: 150x150 input, Conv/MaxPool blocks, a dense head, softmax."""

from __future__ import annotations

import keras
from keras import layers

from xraytrack.models.inputs import image_input
from xraytrack.models.spec import ModelSpec, compile_classifier


def _learning_rate(hp) -> float:
    return hp.Float("learning_rate", 1e-5, 1e-2, sampling="log", default=1e-3)


def _conv_blocks(x, hp, blocks: int, dropout: float | None = None):
    base = hp.Choice("filters", [16, 32, 48, 64], default=32)
    for i in range(blocks):
        x = layers.Conv2D(base * 2**i, 3, activation="relu", name=f"conv{i + 1}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"conv_dropout{i + 1}")(x)
    return layers.Flatten(name="flatten")(x)


def _head(x, inputs, hp, spec: ModelSpec, name: str, units: int, dropout: float | None):
    x = layers.Dense(hp.Choice("dense_units", [32, 64, 128, 256], default=units),
                     activation="relu", name="dense")(x)
    if dropout is not None:
        x = layers.Dropout(dropout, name="dense_dropout")(x)
    outputs = layers.Dense(spec.num_classes, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name=name)
    return compile_classifier(model, hp, _learning_rate(hp), spec.num_classes)


def simple_cnn(hp, spec: ModelSpec) -> keras.Model:
    """Conv 32/64/128 + MaxPool, Dense 128 (the seed's first model; also its two-class one)."""
    inputs, x = image_input(spec)
    x = _conv_blocks(x, hp, blocks=3)
    return _head(x, inputs, hp, spec, "simple_cnn", units=128, dropout=None)


def dropout_cnn(hp, spec: ModelSpec) -> keras.Model:
    """Two blocks with Dropout 0.2 after each, Dense 64, Dropout 0.3 (trained with EarlyStopping)."""
    inputs, x = image_input(spec)
    x = _conv_blocks(x, hp, blocks=2, dropout=hp.Float("conv_dropout", 0.0, 0.5, step=0.1, default=0.2))
    dense_dropout = hp.Float("dense_dropout", 0.0, 0.6, step=0.1, default=0.3)
    return _head(x, inputs, hp, spec, "dropout_cnn", units=64, dropout=dense_dropout)


def adapted_cnn(hp, spec: ModelSpec) -> keras.Model:
    """The three blocks, Dense 128, Dropout 0.5."""
    inputs, x = image_input(spec)
    x = _conv_blocks(x, hp, blocks=3)
    dense_dropout = hp.Float("dense_dropout", 0.0, 0.6, step=0.1, default=0.5)
    return _head(x, inputs, hp, spec, "adapted_cnn", units=128, dropout=dense_dropout)

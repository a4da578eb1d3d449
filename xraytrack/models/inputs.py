"""Preprocessing, augmentation and rescaling as layers inside the model, so one pipeline serves
every backend and a saved model takes raw 0-255 grayscale pixels wherever it is loaded."""

from __future__ import annotations

import keras
from keras import layers

from xraytrack.models import preprocessing
from xraytrack.models.spec import ModelSpec


def augmentation(spec: ModelSpec) -> keras.Sequential:
    """Small geometric and contrast jitter; active only while training."""
    steps = [
        layers.RandomRotation(10 / 360, fill_mode="constant"),
        layers.RandomZoom(0.1, fill_mode="constant"),
        layers.RandomTranslation(0.05, 0.05, fill_mode="constant"),
        layers.RandomContrast(0.1),
    ]
    if spec.horizontal_flip:
        steps.append(layers.RandomFlip("horizontal"))
    if keras.config.backend() == "jax":
        # Keras marks its affine augmentations as not XLA-compilable (TensorFlow's XLA lacks their
        # transform op), which turns compilation off for the whole model. JAX's own implementation
        # compiles, and an uncompiled JAX training step runs op by op (docs/backends.md).
        for layer in steps:
            layer.supports_jit = True
    return keras.Sequential(steps, name="augmentation")


def image_input(spec: ModelSpec, scale_to: str = "unit"):
    """The model's input and its preprocessed tensor, scaled to [0, 1] or [-1, 1]: the strategies
    that need the raw frame, those of every pass, augmentation, then the other training-only
    strategies."""
    inputs = keras.Input(spec.input_shape, name="image")
    steps = preprocessing.parse(spec.preprocess)
    x = inputs
    for layer in preprocessing.training_first(steps, spec.lung_box):
        x = layer(x)
    for layer in preprocessing.every_pass(steps, spec.img_size, spec.lung_box):
        x = layer(x)
    x = augmentation(spec)(x) if spec.augment else x
    for layer in preprocessing.training_only(steps):
        x = layer(x)
    if scale_to == "unit":
        x = layers.Rescaling(1 / 255, name="rescale")(x)
    else:
        x = layers.Rescaling(1 / 127.5, offset=-1, name="rescale")(x)
    return inputs, x

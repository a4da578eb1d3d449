"""A trained Keras model as an ONNX graph, checked against Keras before anyone serves it.

Keras 3 exports ONNX itself (``model.export(format="onnx")``: tf2onnx on TensorFlow, torch.onnx
on PyTorch, jax2tf on JAX). Two things need care: the export traces ``model(x)`` without
``training=False``, which would bake the augmentation layers (random ops ONNX lacks) into the
graph, so the inference pass is wrapped first; and the batch size stays free.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from xraytrack.errors import XrayTrackError

TOLERANCE = 1e-4  # largest allowed difference of any probability, ONNX vs Keras
# Preprocessing layers (models.preprocessing) whose ops tf2onnx cannot convert, and why.
NOT_EXPORTABLE = {"equalize": "its per-image histogram uses searchsorted (TensorFlow's UpperBound), "
                              "which tf2onnx does not convert"}


def check_exportable(model: keras.Model) -> None:
    """Refuse, in one line and before a minute of tracing, a model ONNX cannot hold."""
    for layer in model.layers:
        if layer.name in NOT_EXPORTABLE:
            raise XrayTrackError(f"this model's preprocessing {layer.name!r} cannot be exported "
                                 f"to ONNX: {NOT_EXPORTABLE[layer.name]}; serve its Keras "
                                 "classifier instead")


def inference_model(model: keras.Model, img_size: int) -> keras.Model:
    """The model's inference pass alone: no augmentation, dropout off, BatchNorm statistics fixed."""
    image = keras.Input((img_size, img_size, 1), name="image")
    return keras.Model(image, model(image, training=False), name=f"{model.name}_inference")


def export(model: keras.Model, img_size: int, path: str | Path) -> Path:
    spec = keras.InputSpec(shape=(None, img_size, img_size, 1), dtype="float32", name="image")
    inference_model(model, img_size).export(str(path), format="onnx", verbose=False,
                                            input_signature=[spec])
    return Path(path)


def check_images(img_size: int, n: int = 8, seed: int = 0) -> np.ndarray:
    """Images to compare the two on: mid-grey, black, white and random noise, as pixels 0-255."""
    rng = np.random.default_rng(seed)
    flat = [np.full((img_size, img_size), v, np.float32) for v in (0.0, 128.0, 255.0)]
    noise = rng.uniform(0, 255, (n, img_size, img_size)).astype(np.float32)
    return np.concatenate([np.stack(flat), noise])[..., None]


def max_difference(model: keras.Model, path: str | Path, pixels: np.ndarray) -> float:
    from xraytrack.serving.onnx_classifier import session

    onnx = session(str(path))
    theirs = onnx.run(None, {onnx.get_inputs()[0].name: pixels.astype(np.float32)})[0]
    ours = model.predict(pixels.astype(np.float32), verbose=0)
    return float(np.abs(np.asarray(theirs, np.float64) - ours).max())


def export_checked(model: keras.Model, img_size: int, path: str | Path,
                   pixels: np.ndarray | None = None) -> float:
    """Export and compare with Keras on ``pixels`` (default ``check_images``); refuse a graph that
    differs by more than ``TOLERANCE``. Returns the largest difference."""
    check_exportable(model)
    export(model, img_size, path)
    diff = max_difference(model, path, check_images(img_size) if pixels is None else pixels)
    if not diff <= TOLERANCE:
        raise XrayTrackError(f"the ONNX graph differs from the Keras model by {diff:.2e} "
                             f"(more than {TOLERANCE:g}); not logged")
    return diff
